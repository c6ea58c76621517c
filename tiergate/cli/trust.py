"""``gate trust``: change a trust store without editing YAML by hand.

``gate trust add`` appends one evaluator to the store's ``evaluators`` list as text, so the file keeps its comments
and layout; the result is loaded and checked in full before it replaces the file (atomically), so a mistake changes
nothing.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from collections.abc import Callable

import click

from tiergate.core.attestation import RISK_DOMAINS
from tiergate.core.files import parse_yaml, read_limited
from tiergate.core.keys import PublicKey
from tiergate.core.timeutil import format_time, parse_time
from tiergate.core.trust import EVALUATOR_KINDS, TrustStore
from tiergate.errors import ConfigError, UsageError


def _quoted(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _identity_lines(key: PublicKey | None, sigstore: dict[str, str], x509: dict[str, list[str] | str]) -> list[str]:
    """The lines of one ``keys`` item naming the identity (without its validity fields)."""
    if key is not None:
        return ["    - pem: |", *(f"        {line}" for line in key.to_pem().decode("ascii").strip().splitlines())]
    if sigstore:
        return ["    - sigstore:", *(f"        {name}: {_quoted(value)}" for name, value in sigstore.items())]
    lines = ["    - x509:"]
    for name, value in x509.items():
        shown = f"[{', '.join(_quoted(v) for v in value)}]" if isinstance(value, list) else _quoted(value)
        lines.append(f"        {name}: {shown}")
    return lines


def _entry(evaluator_id: str, organization: str, kind: str, scope: tuple[str, ...], identity: list[str],
           valid_from: datetime | None, valid_until: datetime | None, indent: int) -> str:
    pad = " " * indent
    lines = [f"- id: {_quoted(evaluator_id)}", f"  organization: {_quoted(organization)}", f"  kind: {kind}"]
    if scope:
        lines.append(f"  scope: [{', '.join(scope)}]")
    lines += ["  keys:", *identity]
    if valid_from:
        lines.append(f"      valid_from: {format_time(valid_from)}")
    if valid_until:
        lines.append(f"      valid_until: {format_time(valid_until)}")
    return "".join(f"{pad}{line}\n" for line in lines)


def _append(text: str, source: Path, entry_at: Callable[[int], str]) -> str:
    """Return ``text`` with an entry added at the end of its ``evaluators`` list.

    Raises ConfigError when the list is not where text can be appended safely (not a block list at the end of the
    file, or a flow list that is not empty).
    """
    import yaml

    root = yaml.compose(text)
    node = next((v for k, v in getattr(root, "value", []) if getattr(k, "value", None) == "evaluators"), None)
    if not isinstance(node, yaml.SequenceNode):
        raise ConfigError(f"{source}: has no 'evaluators' list to add to")
    rest = text[node.end_mark.index:]
    if node.flow_style:
        if node.value:
            raise ConfigError(f"{source}: evaluators is a non-empty [flow] list; write it as a block list to use "
                              "gate trust add")
        before = text[:node.start_mark.index].rstrip(" ")
        return before + "\n" + entry_at(2) + rest.lstrip(" ").removeprefix("\n")
    if any(line.strip() and not line.lstrip().startswith("#") for line in rest.splitlines()):
        raise ConfigError(f"{source}: evaluators must be the last setting of the file for gate trust add to append "
                          "to it; move it to the end")
    head = text[:node.end_mark.index]
    if not head.endswith("\n"):
        head += "\n"
    return head + entry_at(node.value[0].start_mark.column - 2 if node.value else 2) + rest.lstrip("\n")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


@click.group("trust")
def trust_group() -> None:
    """Change a trust store without editing YAML by hand."""


@trust_group.command("add")
@click.argument("trust_path", metavar="TRUST", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--id", "evaluator_id", required=True, help="The evaluator's id (as it signs attestations).")
@click.option("--organization", required=True, help="The organization it belongs to.")
@click.option("--kind", type=click.Choice(EVALUATOR_KINDS), required=True, help="Who the evaluator is.")
@click.option("--pub", "pub_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The evaluator's public key (PEM), embedded in the store.")
@click.option("--sigstore-issuer", metavar="URL", help="Trust a Sigstore keyless identity of this OIDC issuer ...")
@click.option("--sigstore-identity", metavar="ID", help="... with exactly this identity (e-mail or URI) ...")
@click.option("--sigstore-identity-pattern", metavar="REGEX", help="... or any identity this pattern matches whole.")
@click.option("--x509-root", "x509_roots", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trust certificates of this root CA (PEM; repeatable), with ...")
@click.option("--x509-san", metavar="NAME", help="... this SAN (e-mail, URI or DNS name) ...")
@click.option("--x509-subject", metavar="RFC4514", help="... and/or this subject (e.g. 'CN=model signer,O=EvalCo').")
@click.option("--scope", multiple=True, type=click.Choice(sorted(RISK_DOMAINS)),
              help="A risk domain it may attest (repeatable; default: any).")
@click.option("--valid-from", "valid_from", metavar="TIME", help="The identity counts from this RFC 3339 time.")
@click.option("--valid-until", "valid_until", metavar="TIME", help="The identity counts until this RFC 3339 time.")
def trust_add_command(trust_path: Path, evaluator_id: str, organization: str, kind: str, pub_path: Path | None,
                      sigstore_issuer: str | None, sigstore_identity: str | None,
                      sigstore_identity_pattern: str | None, x509_roots: tuple[Path, ...], x509_san: str | None,
                      x509_subject: str | None, scope: tuple[str, ...], valid_from: str | None,
                      valid_until: str | None) -> None:
    """Add an evaluator with one signing identity to TRUST (a key with --pub, a Sigstore identity with
    --sigstore-issuer, or a CA with --x509-root), keeping the file's comments; nothing changes unless the result
    loads."""
    kinds = [name for name, given in (("--pub", pub_path), ("--sigstore-issuer", sigstore_issuer),
                                      ("--x509-root", x509_roots)) if given]
    stray = ((sigstore_identity or sigstore_identity_pattern) and not sigstore_issuer) or \
        ((x509_san or x509_subject) and not x509_roots)
    if len(kinds) != 1 or stray:
        raise UsageError("give one identity: --pub KEY, --sigstore-issuer (with --sigstore-identity or "
                         "--sigstore-identity-pattern), or --x509-root (with --x509-san or --x509-subject)")
    key = PublicKey.load(pub_path) if pub_path else None
    sigstore = {name: value for name, value in (("issuer", sigstore_issuer), ("identity", sigstore_identity),
                                                ("identity_pattern", sigstore_identity_pattern)) if value}
    # Root paths as the trust store reads them: relative to its folder.
    roots = [os.path.relpath(root.resolve(), trust_path.parent.resolve()) for root in x509_roots]
    x509 = {name: value for name, value in (("roots", roots), ("san", x509_san), ("subject", x509_subject)) if value}
    start, end = _time(valid_from, "--valid-from"), _time(valid_until, "--valid-until")
    before = TrustStore.load(trust_path)  # refuse to edit a store that does not load today
    if before.evaluator(evaluator_id):
        raise UsageError(f"{trust_path}: evaluator {evaluator_id!r} is already listed; edit its entry instead")
    owner = before.owner(key.key_id) if key else None
    if owner and key:
        raise UsageError(f"{trust_path}: key {key.key_id[:16]} is already listed for evaluator {owner[0].id!r}; "
                         "one key belongs to one evaluator")
    text = read_limited(trust_path, "trust store").decode("utf-8")
    identity = _identity_lines(key, sigstore, x509)
    new = _append(text, trust_path, lambda indent: _entry(evaluator_id, organization, kind, scope, identity, start,
                                                           end, indent))
    added = TrustStore.from_dict(parse_yaml(new.encode("utf-8"), trust_path), source=str(trust_path),
                                 base_dir=trust_path.parent)
    fd, tmp = tempfile.mkstemp(dir=trust_path.parent, prefix=".trust-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new)
        os.chmod(tmp, trust_path.stat().st_mode & 0o777)
        os.replace(tmp, trust_path)  # atomic: a running gate sees the old store or the new one, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    entry = added.evaluator(evaluator_id)
    assert entry is not None
    click.echo(f"added evaluator {evaluator_id} ({entry.keys[0].label}) to {trust_path}", err=True)
