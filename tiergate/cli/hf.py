"""``gate hf``: publish to the Hugging Face Hub through the gate, and check what is already there.

``gate hf upload`` mirrors ``hf upload`` (same arguments) but decides for the whole upload first and sends nothing
when the gate denies. ``gate hf check`` verifies a pushed revision from Hub metadata without downloading weights.
huggingface_hub is imported only when one of these commands runs.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import click

from tiergate.cli._gate import check, load_gate, policy_option, report, trust_option
from tiergate.cli._options import decision_json_option, markdown_summary_option, now_option, quiet_option, resolve_now
from tiergate.core.render import decision_text
from tiergate.errors import GateError, UsageError

repo_type_option = click.option("--repo-type", type=click.Choice(["model", "dataset", "space"]), default=None,
                                help="Repository type (default: model).")
token_option = click.option("--token", envvar="HF_TOKEN",
                            help="Hugging Face token (env HF_TOKEN; default: the saved login).")
attestation_option = click.option("--attestation", "attestation_paths", multiple=True,
                                  type=click.Path(exists=True, path_type=Path),
                                  help="Extra attestation file or folder (repeatable), besides .attestations/.")


def _endpoint() -> str | None:
    # Read at run time: huggingface_hub reads HF_ENDPOINT once, at import.
    return os.environ.get("HF_ENDPOINT") or None


@contextmanager
def hub_errors(repo: str) -> Iterator[None]:
    """Turn the Hub's errors into one line: a wrong repo or revision is a usage error (2), the rest deny (1)."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import httpx

    try:
        yield
    except RepositoryNotFoundError:
        raise UsageError(f"{repo}: repository not found (or not visible with this token)") from None
    except RevisionNotFoundError:
        raise UsageError(f"{repo}: no such revision") from None
    except HfHubHTTPError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GateError(f"{repo}: the Hub refused or failed: {first}; nothing was allowed") from None
    except (OSError, httpx.TransportError) as exc:
        raise GateError(f"{repo}: cannot reach the Hub ({exc}); nothing was allowed") from None


def _extra_attestations(paths: tuple[Path, ...]) -> list[Any]:
    from tiergate.core.collect import read_attestations

    return read_attestations(paths)


@click.group("hf")
def hf_group() -> None:
    """Gate Hugging Face Hub publishes: upload through the gate, check a pushed revision."""


@hf_group.command("upload")
@click.argument("repo_id")
@click.argument("local_path", required=False, type=click.Path(exists=True, path_type=Path))
@click.argument("path_in_repo", required=False)
@repo_type_option
@click.option("--revision", help="Branch to upload to (created from main if missing).")
@click.option("--private", is_flag=True, default=None, help="Create the repository private if it does not exist.")
@click.option("--include", multiple=True, help="Glob patterns of files to upload.")
@click.option("--exclude", multiple=True, help="Glob patterns of files not to upload.")
@click.option("--delete", multiple=True, help="Glob patterns of files to delete from the repo in the same commit.")
@click.option("--commit-message", help="Summary of the commit.")
@click.option("--commit-description", help="Description of the commit.")
@click.option("--create-pr", is_flag=True, help="Upload as a new pull request.")
@token_option
@attestation_option
@trust_option
@policy_option
@now_option
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@quiet_option
def upload_command(repo_id: str, local_path: Path | None, path_in_repo: str | None, repo_type: str | None,
                   revision: str | None, private: bool | None, include: tuple[str, ...], exclude: tuple[str, ...],
                   delete: tuple[str, ...], commit_message: str | None, commit_description: str | None,
                   create_pr: bool, token: str | None, attestation_paths: tuple[Path, ...], trust_path: Path | None,
                   policy_path: Path | None, now_text: str | None, as_json: bool, quiet: bool) -> None:
    """Upload LOCAL_PATH (default: the current folder) to REPO_ID, if the gate allows it.

    Same arguments as `hf upload`. The gate decides once, for everything the upload will put in the repository (the
    files being uploaded plus what the repository already holds), at the tier the repository's visibility implies
    (a new repository: --private -> the policy's private tier, otherwise its public tier), before any request that
    changes anything. Denied: nothing is sent, exit 1. Evidence: LOCAL_PATH/.attestations/, the repository's
    .attestations/, --attestation, and the gate service if GATE_SERVER is set.
    """
    from tiergate.integrations.hf.api import GatedHfApi
    from tiergate.integrations.hf.errors import GateDenied

    local = local_path or Path(".")
    gate = load_gate(policy_path, trust_path)
    now = resolve_now(now_text) if now_text else None
    api = GatedHfApi(gate, attestations=_extra_attestations(attestation_paths), clock=(lambda: now) if now else None,
                     endpoint=_endpoint(), token=token)
    try:
        with hub_errors(repo_id):
            info = api.publish(repo_id, local, path_in_repo, repo_type=repo_type, revision=revision, private=private,
                               include=list(include) or None, exclude=list(exclude) or None,
                               delete=list(delete) or None, commit_message=commit_message,
                               commit_description=commit_description, create_pr=create_pr, token=token)
    except GateDenied as denied:
        report(denied.decision, as_json, None)
        return
    decision = api.last_decision
    if decision is not None:
        click.echo(decision.to_json() if as_json else decision_text(decision), nl=not as_json)
    url = getattr(info, "pr_url", None) or getattr(info, "commit_url", None) or str(info)
    click.echo(f"gate: uploaded to {url}", err=True)


def _split_repo(text: str) -> tuple[str, str | None]:
    repo, _, rev = text.partition("@")
    if not repo or "@" in rev:
        raise UsageError(f"{text!r}: expected REPO_ID or REPO_ID@REVISION")
    return repo, rev or None


@hf_group.command("check")
@click.argument("target", metavar="REPO_ID[@REVISION]")
@click.argument("attestations", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--tier", help="Tier to check for (default: the one the repository's current visibility implies).")
@repo_type_option
@token_option
@trust_option
@policy_option
@now_option
@decision_json_option
@markdown_summary_option
@click.option("--verify-bytes", is_flag=True,
              help="Also download every LFS file and check its bytes against the sha256 the Hub lists (for Xet "
                   "storage that sha256 is the uploading client's word). Slow: it reads the whole model.")
def check_command(target: str, attestations: tuple[Path, ...], tier: str | None, repo_type: str | None,
                  token: str | None, trust_path: Path | None, policy_path: Path | None, now_text: str | None,
                  as_json: bool, markdown_path: Path | None, verify_bytes: bool) -> None:
    """Decide whether a revision already on the Hub may be released at --tier, without downloading its weights.

    Per-file sha256 digests come from the Hub's LFS metadata; small regular files are downloaded and hashed. The
    manifest built from them is the one `gate check` computes for the folder the revision was uploaded from.
    --verify-bytes downloads the LFS files too and refuses any whose bytes are not the listed sha256.
    Evidence: the revision's .attestations/, ATTESTATIONS, and the gate service if GATE_SERVER is set.
    Exit 0 allow, 1 deny, 2 usage or configuration error.
    """
    from huggingface_hub import HfApi

    from tiergate.integrations.hf import remote
    from tiergate.integrations.hf.tiers import tier_for

    repo_id, revision = _split_repo(target)
    gate = load_gate(policy_path, trust_path)
    if tier is not None:
        gate.policy.tier(tier)  # an unknown tier is a usage error before any request
    extra = _extra_attestations(attestations)
    now = resolve_now(now_text) if now_text else None
    api = HfApi(endpoint=_endpoint(), token=token)
    with hub_errors(target):
        rev = remote.read_revision(api, repo_id, revision=revision, repo_type=repo_type, token=token)
        manifest = remote.revision_manifest(api, rev, token)
        found = remote.revision_attestations(api, rev, token=token)
        if verify_bytes:
            read = remote.verify_listed_sha256(api, rev, token)
            click.echo(f"gate: {rev.label}: {read} bytes of LFS files downloaded and hashed: each is the sha256 the "
                       "Hub lists", err=True)
    chosen = tier or tier_for(gate.policy, rev.state)
    lfs = sum(1 for f in rev.files.values() if f.is_lfs)
    click.echo(f"gate: {rev.label} ({rev.state.describe()}): {len(manifest.files)} files, "
               f"{manifest.total_size} bytes; {lfs} LFS digest(s) from metadata, "
               f"{len(found)} attestation(s) in .attestations/", err=True)
    decision = check(gate, chosen, manifest, found + extra,
                           {"integration": "huggingface", "action": "check", "repo": repo_id,
                            "repo_type": rev.repo_type, "revision": revision or "main", "commit": rev.sha,
                            "visibility": rev.state.describe()}, now)
    report(decision, as_json, markdown_path)


__all__ = ["hf_group", "upload_command", "check_command", "hub_errors"]

