"""``gate check`` (the decision) and ``gate verify-vsa`` (checking a signed summary of one)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tiergate.cli._gate import check, load_gate, policy_option, report, trust_option
from tiergate.cli._options import (decision_json_option, hash_with_progress, markdown_summary_option, no_cache_option,
                                   now_option, quiet_option, resolve_now, skip_git_option)
from tiergate.core.collect import model_attestations, read_attestations
from tiergate.core.keys import PrivateKey, PublicKey
from tiergate.core.vsa import sign_vsa, tier_level, verify_vsa
from tiergate.errors import UsageError


def _split_paths(paths: tuple[Path, ...], hf: str | None) -> tuple[Path | None, tuple[Path, ...]]:
    """``MODEL_DIR [ATTESTATION...]``, or with ``--hf`` only attestations; checked here so both forms read well."""
    model_dir, attestations = (None, paths) if hf else (paths[0] if paths else None, paths[1:])
    if not hf:
        if model_dir is None:
            raise UsageError("give the model folder to check (gate check MODEL_DIR --tier T), or --hf REPO_ID")
        if not model_dir.is_dir():
            raise UsageError(f"MODEL_DIR {model_dir} is not a folder")
    for path in attestations:
        if not path.exists():
            raise UsageError(f"attestation {path} does not exist")
    return model_dir, attestations


@click.command("check")
@click.argument("paths", nargs=-1, metavar="MODEL_DIR [ATTESTATION]...", type=click.Path(path_type=Path))
@click.option("--hf", "hf_target", metavar="REPO_ID[@REV]",
              help="Check a revision already on the Hugging Face Hub instead of a folder (same as gate hf check).")
@click.option("--tier", required=True, help="The tier the release is going to (e.g. internal, hosted, gated, open).")
@trust_option
@policy_option
@now_option
@decision_json_option
@click.option("--vsa", "vsa_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a signed SLSA VSA of the decision here.")
@click.option("--gate-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The gate's private key, to sign --vsa (default: GATE_KEY, or key: in GATE_CONFIG).")
@click.option("--resource-uri", help="Resource URI for the VSA (default: the model folder's name).")
@markdown_summary_option
@click.option("--server", metavar="URL",
              help="Let this gate service decide and log (default: GATE_SERVER, or server: in GATE_CONFIG); the model "
                   "is still hashed here.")
@click.option("--token-env", metavar="VAR",
              help="Environment variable holding the service's bearer token (default: token_env: in GATE_CONFIG, "
                   "or GATE_TOKEN).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds to wait for the service (default: GATE_TIMEOUT, or timeout: in GATE_CONFIG, or 30).")
@click.option("--server-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The service's log key (the vkey line `gate serve` prints, or its PEM public key): its answers "
                   "must be signed with it (default: GATE_SERVER_KEY, or server_key: in GATE_CONFIG).")
@click.option("--max-age", type=click.FloatRange(min=0, min_open=True, max=86400), metavar="SECONDS",
              help="Seconds a signed answer's time may differ from this clock (default: GATE_MAX_AGE, or max_age: "
                   "in GATE_CONFIG, or 300).")
@click.option("--witness", "witnesses", multiple=True, metavar="VKEY",
              help="With a service: a witness whose cosignature counts (repeatable; default: witnesses: in "
                   "GATE_CONFIG).")
@click.option("--witnesses-required", type=click.IntRange(0), metavar="K",
              help="With a service: deny unless the checkpoint covering the decision, signed with --server-key, "
                   "carries K valid cosignatures of --witness keys and the decision is proven included under it.")
@skip_git_option
@no_cache_option
@quiet_option
@click.pass_context
def check_command(ctx: click.Context, paths: tuple[Path, ...], hf_target: str | None, tier: str,
                  trust_path: Path | None, policy_path: Path | None, now_text: str | None, as_json: bool,
                  vsa_path: Path | None, gate_key: Path | None, resource_uri: str | None, markdown_path: Path | None,
                  server: str | None, token_env: str | None, timeout: float | None, server_key: Path | None,
                  max_age: float | None, witnesses: tuple[str, ...], witnesses_required: int | None,
                  quiet: bool) -> None:
    """Decide whether MODEL_DIR may be released at --tier.

    Verifies every attestation (ATTESTATIONS plus MODEL_DIR/.attestations), evaluates the policy, prints one row per
    requirement and the highest tier the evidence supports. Exit 0 allow, 1 deny, 2 usage or configuration error.

    Settings not given as options come from GATE_CONFIG and the GATE_* variables, as for every integration; a
    decision is recorded in the log configured there (log:), if any.

    With a gate service (--server, GATE_SERVER or server: in GATE_CONFIG) the service decides (with its policy, trust
    store and the attestations it holds, plus these) and logs the decision; if it cannot be reached or answers
    anything but a decision signed with its key (--server-key) for this very request, the release is denied.

    With --hf REPO_ID[@REV] a pushed Hub revision is checked from its metadata, without downloading the weights.
    """
    model_dir, attestations = _split_paths(paths, hf_target)
    if hf_target:
        if server or vsa_path:
            raise UsageError("--hf cannot be combined with --server or --vsa")
        from tiergate.cli.hf import check_command as hf_check

        ctx.invoke(hf_check, target=hf_target, attestations=attestations, tier=tier, trust_path=trust_path,
                   policy_path=policy_path, now_text=now_text, as_json=as_json, markdown_path=markdown_path)
        return
    assert model_dir is not None
    gate = load_gate(policy_path, trust_path, server=server, token_env=token_env, timeout=timeout,
                     server_key=server_key, max_age=max_age, witnesses=witnesses or None,
                     witnesses_required=witnesses_required).current()
    remote = gate.config.server is not None
    if remote and (vsa_path is not None or now_text):  # refused before any hashing
        raise UsageError("--vsa and --now are local-only: with a gate service (--server, GATE_SERVER or server: in "
                         f"{gate.config.source}) the service signs and times its decisions")
    if not remote:
        gate.policy.tier(tier)  # an unknown tier is a usage error before any hashing
    elif not gate.config.token:  # denied before hashing what could not be sent
        from tiergate.runtime.transport import DENIED, GateServiceError

        raise GateServiceError(f"no bearer token for the gate service in ${gate.config.token_env} (set it, or name "
                               f"another variable with --token-env or token_env: in GATE_CONFIG); {DENIED}")
    elif gate.config.server_key is None:  # no answer could be trusted: denied before hashing too
        from tiergate.runtime.transport import DENIED, GateServiceError

        raise GateServiceError("no key to check the gate service's signed answers with (give --server-key, the vkey "
                               "`gate serve` prints, or set GATE_SERVER_KEY or server_key: in GATE_CONFIG); "
                               f"{DENIED}")
    key_path = gate_key or gate.config.key
    if vsa_path and not key_path:
        raise UsageError("--vsa needs the gate's signing key: --gate-key KEY (or env GATE_KEY)")
    key = PrivateKey.load(key_path) if vsa_path and key_path else None
    now = resolve_now(now_text) if now_text else None
    items = read_attestations(attestations) + model_attestations(model_dir)
    manifest = hash_with_progress(model_dir, quiet)
    context = {"client": "gate check", "model_dir": model_dir.resolve().name}
    decision = check(gate, tier, manifest, items, context, now)
    if key is not None and vsa_path is not None:
        vsa_path.write_bytes(sign_vsa(decision, resource_uri or model_dir.resolve().name, gate.policy.tier_names,
                                      key).to_json())
    report(decision, as_json, markdown_path)


@click.command("verify-vsa")
@click.argument("vsa_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The gate's public key.")
@click.option("--digest", help="Also require the VSA to be about this model digest (sha256:...).")
@click.option("--tier", help="Also require this tier to be among the verified levels.")
def verify_vsa_command(vsa_file: Path, key_path: Path, digest: str | None, tier: str | None) -> None:
    """Verify a VSA written by ``gate check --vsa``: signature, and optionally model and tier. Exit 0 only if PASSED."""
    from tiergate.core.collect import read_attestation
    from tiergate.core.manifest import parse_digest

    summary = verify_vsa(read_attestation(vsa_file)[0].data, PublicKey.load(key_path))
    problems = []
    if digest and summary.model_digest != f"sha256:{parse_digest(digest)}":
        problems.append(f"it is about {summary.model_digest}, not {digest}")
    if tier and tier_level(tier) not in summary.verified_levels:
        problems.append(f"tier {tier} is not among its verified levels "
                        f"({', '.join(summary.verified_levels) or 'none'})")
    if not summary.passed:
        problems.append("its result is FAILED: the release it summarises was denied")
    click.echo(f"VSA signed by the gate key: {summary.result} for {summary.model_digest} ({summary.resource_uri}); "
               f"verified levels: {', '.join(summary.verified_levels) or 'none'}; policy {summary.policy_digest[:19]}")
    if problems:
        click.echo("gate: VSA does not vouch for this release: " + "; ".join(problems), err=True)
        sys.exit(1)
