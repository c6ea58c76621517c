"""``gate log``: auditor commands that check the gate's transparency log offline.

Every command trusts only the gate's public key (``--key-file VKEY`` or ``--pub GATE.pub``) and, for ``audit``, the
auditor's own trust store. Entries and proofs come from a gate service (``--server``) or straight from a copy of the
log database (``--log``); either way they are re-hashed and verified here. Exit 0 verified, 1 not, 2 usage.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import click

from tiergate.errors import UsageError, VerificationError

if TYPE_CHECKING:  # the log, the client and the audit are imported by the command that reads them
    from tiergate.audit.keys import CheckpointKey
    from tiergate.audit.sources import LogSource
    from tiergate.core.log.checkpoint import Checkpoint
    from tiergate.core.log.store import LogStore
    from tiergate.runtime.client import GateClient

_PATH = click.Path(dir_okay=False, path_type=Path)
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def _source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--server", envvar="GATE_SERVER", metavar="URL",
                     help="Gate service to read the log from (env GATE_SERVER)."),
        click.option("--log", "log_target", metavar="PATH_OR_URL",
                     help="Read the log database directly instead (SQLite file or postgresql:// URL)."),
        click.option("--log-namespace", help="PostgreSQL schema or SQLite table prefix of the log (with --log)."),
        click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per request to --server."),
    ]):
        func = option(func)
    return func


def _key_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--key-file", type=_EXISTING,
                     help="The log's verifier key (vkey line, as `gate serve` prints it)."),
        click.option("--pub", type=_EXISTING, help="The gate's Ed25519 public key (PEM, GATE.pub from `gate keygen`)."),
        click.option("--origin", help="Require checkpoints of this log origin (recommended with --pub)."),
    ]):
        func = option(func)
    return _witness_options(func)


def _witness_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--witness", "witness_keys", multiple=True, metavar="VKEY", expose_value=False,
                     callback=_remember, help="A trusted witness's verifier key, or a file holding it (repeatable)."),
        click.option("--witnesses-required", type=click.IntRange(0), default=0, metavar="K", expose_value=False,
                     callback=_remember, help="Refuse a checkpoint without valid cosignatures by K distinct --witness "
                                              "keys (default 0)."),
    ]):
        func = option(func)
    return func


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Witness options go to every command through the context, not each command's signature."""
    ctx.meta[f"tiergate.{param.name}"] = value
    return value


class _Opened:
    """The log source a command reads, closed at the end (a database connection)."""

    def __init__(self, server: str | None, log_target: str | None, namespace: str | None, timeout: float) -> None:
        from tiergate.audit.sources import ServerSource, StoreSource

        if server is not None and log_target is not None and _from_environment("server"):
            server = None  # an explicit --log wins over a GATE_SERVER set in the environment
        if (server is None) == (log_target is None):
            raise UsageError("say where the log is: --server URL (a gate service) or --log PATH_OR_URL (its database)")
        self.store: LogStore | None = None
        self.client: GateClient | None = None
        self.source: LogSource
        if server is not None:
            from tiergate.runtime.client import GateClient

            self.client = GateClient(server, timeout=timeout)
            self.source = ServerSource(self.client)
        else:
            from tiergate.service.config import open_log

            assert log_target is not None
            self.store = open_log(log_target, namespace)
            self.source = StoreSource(self.store, log_target)

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.store is not None:
            self.store.close()


def _from_environment(parameter: str) -> bool:
    context = click.get_current_context(silent=True)
    return context is not None and context.get_parameter_source(parameter) == click.core.ParameterSource.ENVIRONMENT


def _key(key_file: Path | None, pub: Path | None, origin: str | None) -> CheckpointKey:
    from tiergate.audit.keys import CheckpointKey

    meta = click.get_current_context().meta
    return CheckpointKey.load(key_file, pub, origin, tuple(meta.get("tiergate.witness_keys", ())),
                              int(meta.get("tiergate.witnesses_required", 0)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _verified_checkpoint(opened: _Opened, key: CheckpointKey, checkpoint_file: Path | None) -> Checkpoint:
    """The checkpoint to prove against: from a file, or fetched from the service; verified either way."""
    from tiergate.audit.keys import read_checkpoint_file

    if checkpoint_file is not None:
        return key.verify(read_checkpoint_file(checkpoint_file), str(checkpoint_file))
    note = opened.source.checkpoint()
    if note is None:
        raise UsageError("reading a database directly, give the checkpoint to check against: --checkpoint FILE")
    return key.verify(note, "the service's checkpoint")


@click.group("log")
def log_group() -> None:
    """Audit the transparency log of decisions, offline: checkpoints, inclusion and consistency proofs, full audits."""


@log_group.command("checkpoint")
@_source_options
@_key_options
@click.option("--save", type=_PATH, help="Write the verified checkpoint here (keep it: later audits compare with it).")
def checkpoint_command(server: str | None, log_target: str | None, log_namespace: str | None, timeout: float,
                       key_file: Path | None, pub: Path | None, origin: str | None, save: Path | None) -> None:
    """Fetch the service's signed checkpoint and verify its signature."""
    key = _key(key_file, pub, origin)
    if server is None:
        raise UsageError("a checkpoint is signed by the gate service: give --server URL")
    with _Opened(server, None, None, timeout) as opened:
        assert opened.client is not None  # opened with --server
        note = opened.client.checkpoint()
    checkpoint = key.verify(note, f"checkpoint from {server}")
    if save is not None:
        save.write_bytes(note)
    witnessed = ""
    if key.witnesses:
        from tiergate.core.log.checkpoint import SignedNote
        from tiergate.core.log.cosignature import cosignatures_of

        names = sorted(c.name for c in cosignatures_of(SignedNote.parse(note), key.witnesses))
        witnessed = f", cosigned by {len(names)} of {len(key.witnesses)} trusted witnesses ({', '.join(names)})"
    click.echo(f"checkpoint verified: log {checkpoint.origin}, {checkpoint.size} entries, "
               f"root {_b64(checkpoint.root_hash)}" + witnessed + (f" (saved to {save})" if save else ""))


@log_group.command("prove")
@click.argument("entry_index", type=click.IntRange(min=0))
@_source_options
@_key_options
@click.option("--checkpoint", "checkpoint_file", type=_EXISTING,
              help="Prove against this saved checkpoint instead of the current one.")
@click.option("--json", "as_json", is_flag=True, help="Print the entry and the proof as JSON.")
def prove_command(entry_index: int, server: str | None, log_target: str | None, log_namespace: str | None,
                  timeout: float, key_file: Path | None, pub: Path | None, origin: str | None,
                  checkpoint_file: Path | None, as_json: bool) -> None:
    """Prove that entry ENTRY_INDEX is in the log: its inclusion proof, verified against a signed checkpoint."""
    from tiergate.audit.entries import EntryProblem, describe
    from tiergate.core.log.merkle import leaf_hash, verify_inclusion

    key = _key(key_file, pub, origin)
    with _Opened(server, log_target, log_namespace, timeout) as opened:
        checkpoint = _verified_checkpoint(opened, key, checkpoint_file)
        if entry_index >= checkpoint.size:
            raise VerificationError(f"entry {entry_index} is not covered by the checkpoint ({checkpoint.size} entries)")
        found = [e for e in opened.source.entries(entry_index, entry_index + 1) if e.index == entry_index]
        if not found:
            raise VerificationError(f"entry {entry_index} is missing from {opened.source.name}")
        data = found[0].data
        proof = opened.source.inclusion_proof(entry_index, checkpoint.size)
    verify_inclusion(leaf_hash(data), entry_index, checkpoint.size, proof, checkpoint.root_hash)
    try:
        what = describe(data)
        summary = f"{what.text} for {what.model_digest}"
    except EntryProblem as exc:
        summary = f"not a well-formed entry: {exc}"
    if as_json:
        click.echo(json.dumps({"index": entry_index, "size": checkpoint.size, "origin": checkpoint.origin,
                               "root": _b64(checkpoint.root_hash), "proof": [_b64(h) for h in proof],
                               "entry": data.decode("utf-8", "replace")}, indent=2, sort_keys=True))
    click.echo(f"entry {entry_index} ({summary}) is included in log {checkpoint.origin} at size {checkpoint.size}: "
               "inclusion proof verified against the signed checkpoint", err=as_json)


@log_group.command("consistency")
@click.argument("old_checkpoint", type=_EXISTING)
@click.argument("new_checkpoint", type=_EXISTING)
@_source_options
@_key_options
def consistency_command(old_checkpoint: Path, new_checkpoint: Path, server: str | None, log_target: str | None,
                        log_namespace: str | None, timeout: float, key_file: Path | None, pub: Path | None,
                        origin: str | None) -> None:
    """Prove that NEW_CHECKPOINT's log extends OLD_CHECKPOINT's: nothing was rewritten or removed in between."""
    from tiergate.audit.keys import read_checkpoint_file
    from tiergate.core.log.merkle import verify_consistency

    key = _key(key_file, pub, origin)
    old = key.verify(read_checkpoint_file(old_checkpoint), str(old_checkpoint))
    new = key.verify(read_checkpoint_file(new_checkpoint), str(new_checkpoint))
    if old.origin != new.origin:
        raise VerificationError(f"the checkpoints are of different logs: {old.origin!r} and {new.origin!r}")
    if old.size > new.size:
        raise VerificationError(f"{old_checkpoint} ({old.size} entries) is larger than {new_checkpoint} ({new.size}): "
                                "give the older checkpoint first")
    proof: list[bytes] = []
    if 0 < old.size < new.size:
        with _Opened(server, log_target, log_namespace, timeout) as opened:
            proof = opened.source.consistency_proof(old.size, new.size)
    if old.size:
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    click.echo(f"consistent: log {new.origin} grew from {old.size} to {new.size} entries without changing any "
               f"earlier entry ({len(proof)} proof hashes verified)")


@log_group.command("audit")
@_source_options
@click.option("--trust", "trust_path", type=_PATH,
              help="Your trust store: attestation entries must verify against it (default: GATE_TRUST, or trust: in "
                   "GATE_CONFIG).")
@click.option("--key-file", type=_EXISTING, help="The log's verifier key (vkey line, as `gate serve` prints it).")
@click.option("--pub", type=_EXISTING, help="The gate's Ed25519 public key (PEM).")
@click.option("--origin", help="Require checkpoints of this log origin.")
@click.option("--checkpoint", "checkpoint_files", type=_EXISTING, multiple=True,
              help="A checkpoint saved earlier (repeatable): the log must still match each.")
@click.option("--unsigned-ok", is_flag=True,
              help="With --log and no --checkpoint: pass on the entries alone (nothing signed vouches for the "
                   "root; whoever edited the database could have rewritten all of it).")
@click.option("--from", "from_file", type=_EXISTING,
              help="A checkpoint saved by an earlier audit: audit only the entries added since (proven to extend it).")
@click.option("--legacy-ok", is_flag=True,
              help="Accept decision entries written before decisions cited their policy, trust store and "
                   "attestations (pre-v2): they are counted, not re-derived. Without it they fail the audit.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_witness_options
def audit_command(server: str | None, log_target: str | None, log_namespace: str | None, timeout: float,
                  trust_path: Path | None, key_file: Path | None, pub: Path | None, origin: str | None,
                  checkpoint_files: tuple[Path, ...], unsigned_ok: bool, from_file: Path | None, legacy_ok: bool,
                  as_json: bool) -> None:
    """Download every entry, re-check each (attestations against --trust), re-derive every decision from the policy,
    trust store and attestations it cites, recompute the tree and compare it with every checkpoint given and the
    service's current one. Names the first bad entry.

    Reading a database (--log), give a checkpoint saved from the service (--checkpoint): without one nothing signed
    says the root is the gate's, and the audit fails unless --unsigned-ok says that is enough. With --from, only the
    entries added since that checkpoint are read; a newer checkpoint (--checkpoint, or the service's) is required."""
    from tiergate.audit.auditor import NamedCheckpoint, Problem, audit_log
    from tiergate.audit.keys import read_checkpoint_file
    from tiergate.core.trust import TrustStore
    from tiergate.errors import GateError

    from tiergate.cli._options import configured

    trust = TrustStore.load(configured(trust_path, "trust", "gate log audit"))
    early: list[Problem] = []
    with _Opened(server, log_target, log_namespace, timeout) as opened:
        needs_key = bool(checkpoint_files) or opened.client is not None
        needs_key = needs_key or from_file is not None
        key = _key(key_file, pub, origin) if needs_key or key_file or pub else None
        checkpoints = [NamedCheckpoint(str(p), key.verify(read_checkpoint_file(p), str(p)))
                       for p in checkpoint_files] if key is not None else []  # a key is read when there are any
        since = (NamedCheckpoint(str(from_file), key.verify(read_checkpoint_file(from_file), str(from_file)))
                 if from_file is not None and key is not None else None)
        if opened.client is not None:
            assert key is not None  # needs_key
            try:
                note = opened.client.checkpoint()
                checkpoints.append(NamedCheckpoint("the service's current checkpoint",
                                                   key.verify(note, "the service's checkpoint")))
            except GateError as exc:
                early.append(Problem(None, f"no valid current checkpoint: {exc}"))
        if since is not None and not checkpoints:
            raise UsageError("--from needs a newer checkpoint to audit up to: give --checkpoint FILE, or --server")
        report = audit_log(opened.source, trust, checkpoints, since=since, legacy_ok=legacy_ok)
        if not checkpoints and opened.client is None and not unsigned_ok:
            early.append(Problem(None, "nothing signed to compare the root with: give --checkpoint FILE (saved with "
                                       "`gate log checkpoint --server URL --save FILE`), or --unsigned-ok to accept "
                                       "the entries alone"))
    report.problems[:0] = early
    _print_audit(report, as_json)
    sys.exit(0 if report.ok else 1)


def _print_audit(report: Any, as_json: bool) -> None:
    first = report.first_bad
    if as_json:
        click.echo(json.dumps({
            "ok": report.ok, "source": report.source, "size": report.size, "root": _b64(report.root),
            "kinds": dict(report.kinds), "checkpoints_matched": report.matched, "from": report.start,
            "legacy_accepted": report.legacy,
            "problems": [{"index": p.index, "reason": p.reason} for p in report.problems],
            "first_bad_entry": first.index if first else None,
        }, indent=2, sort_keys=True))
    kinds = ", ".join(f"{n} {k if n == 1 else 'policies' if k == 'policy' else k + 's'}"
                      for k, n in sorted(report.kinds.items())) or "no entries"
    if report.ok:
        matched = f"; root matches {len(report.matched)} signed checkpoint(s)" if report.matched else \
            " (no checkpoint given: nothing signed to compare the root with)"
        what = f"{report.size} entries" if not report.start else \
            f"entries {report.start}-{report.size - 1} (added since the checkpoint audited from)"
        legacy = f"; {report.legacy} pre-v2 decision(s) accepted without re-derivation (--legacy-ok)" \
            if report.legacy else ""
        root = f", root {_b64(report.root)}" if not report.start else ""
        click.echo(f"log audit passed: {what} ({kinds}) from {report.source}{root}{matched}{legacy}", err=as_json)
        return
    for problem in report.problems[:20]:
        click.echo(f"  {problem.line()}", err=True)
    if len(report.problems) > 20:
        click.echo(f"  ... and {len(report.problems) - 20} more", err=True)
    assert first is not None
    click.echo(f"gate: log audit FAILED ({len(report.problems)} problem(s) in {report.source}); first bad "
               f"{first.line()}", err=True)


@log_group.command("find")
@click.option("--model", required=True, help="Model digest (sha256:<hex>).")
@_source_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def find_command(model: str, server: str | None, log_target: str | None, log_namespace: str | None, timeout: float,
                 as_json: bool) -> None:
    """List the log entries about a model: attestations accepted for it and decisions on it."""
    from tiergate.audit.entries import EntryProblem, describe
    from tiergate.core.manifest import parse_digest

    digest = f"sha256:{parse_digest(model)}"
    rows: list[dict[str, Any]] = []
    with _Opened(server, log_target, log_namespace, timeout) as opened:
        if opened.client is not None:
            start: int | None = 0
            while start is not None:
                found, start = opened.client.find(digest, start)
                rows += [{"index": r["index"], "kind": r["kind"]} for r in found]
        else:
            position = 0
            while True:  # a page at a time: a busy model has many entries, each up to 1 MiB
                assert opened.store is not None  # opened with --log
                page = opened.store.find(model_digest=digest, start=position, limit=32)
                for entry in page:
                    try:
                        text = describe(entry.entry)
                        rows.append({"index": entry.index, "kind": text.kind, "summary": text.text})
                    except EntryProblem as exc:
                        rows.append({"index": entry.index, "kind": "malformed", "summary": str(exc)})
                if len(page) < 32:
                    break
                position = page[-1].index + 1
    if as_json:
        click.echo(json.dumps({"model": digest, "entries": rows}, indent=2, sort_keys=True))
        return
    for row in rows:
        click.echo(f"{row['index']:>8}  {row['kind']:<12} {row.get('summary', '')}".rstrip())
    click.echo(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'} about {digest}", err=True)
