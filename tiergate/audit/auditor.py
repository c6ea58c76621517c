"""The whole-log audit: read every entry, re-check it, recompute the tree, compare with every signed checkpoint.

When a checkpoint's root does not match the recomputed tree, the first bad entry is found by bisection over
consistency proofs: a prefix of ``k`` recomputed entries is genuine exactly when a consistency proof from ``k`` to
the checkpoint's size verifies with the recomputed root of that prefix (and a prefix of a genuine prefix is
genuine), so O(log n) proofs name the first entry that differs from what the gate signed. The proofs themselves
are not trusted; a prefix counts as genuine only when the proof verifies against the signed root.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tiergate.audit.entries import EntryProblem, WebhookLinks, check_entry
from tiergate.audit.rederive import NotRederivable, Rederiver
from tiergate.audit.sources import LogSource
from tiergate.core.log.checkpoint import Checkpoint
from tiergate.core.log.merkle import (
    MerkleTree, consistency_path_ranges, leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion,
)
from tiergate.core.trust import TrustStore
from tiergate.errors import GateError


@dataclass(frozen=True)
class NamedCheckpoint:
    label: str  # where it came from: a file name, or "the service's current checkpoint"
    checkpoint: Checkpoint


@dataclass(frozen=True)
class Problem:
    index: int | None  # the entry it is about, when it can be pinned to one
    reason: str

    def line(self) -> str:
        return f"entry {self.index}: {self.reason}" if self.index is not None else self.reason


@dataclass
class AuditReport:
    source: str
    size: int = 0  # entries read and hashed
    root: bytes = b""
    kinds: Counter[str] = field(default_factory=Counter)
    matched: list[str] = field(default_factory=list)  # labels of checkpoints whose root matched
    legacy: int = 0  # decision entries accepted without re-derivation (pre-v2, with --legacy-ok)
    start: int = 0  # the first entry read: the size of the checkpoint an incremental audit started from
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        pinned = [p for p in self.problems if p.index is not None]
        if pinned:
            return min(pinned, key=lambda p: p.index)  # type: ignore[arg-type, return-value]
        return self.problems[0] if self.problems else None


def audit_log(source: LogSource, trust: TrustStore | None, checkpoints: list[NamedCheckpoint],
              max_problems: int = 100, since: NamedCheckpoint | None = None, legacy_ok: bool = False) -> AuditReport:
    """Audit ``source`` up to the largest checkpoint (or its current size when there is none): every entry re-checked,
    every decision re-derived from what it cites, the tree recomputed and compared with each checkpoint.

    With ``since`` (a checkpoint verified earlier), only the entries added after it are read and re-derived; what
    they cite from before it is read by index and proven by inclusion in ``since``, and a consistency proof shows
    that each later checkpoint extends ``since`` with exactly these entries. ``legacy_ok``: a decision entry that
    cannot be re-derived because it cites nothing (pre-v2) is counted, not a problem.
    """
    report = AuditReport(source.name, start=since.checkpoint.size if since is not None else 0)
    target = max((c.checkpoint.size for c in checkpoints), default=None)
    if target is None:
        target = source.size()
    start = since.checkpoint.size if since is not None else 0
    if start > target:
        report.problems.append(Problem(None, f"{since.label if since else ''} covers {start} entries, more than the "
                                             f"{target} of the newest checkpoint: the log shrank or forked"))
        return report
    tree = MerkleTree()  # the entries read: the whole log, or those since `since` (leaf i at i - start)
    links = WebhookLinks()
    fetched: dict[int, bytes | None] = {}

    def fetch(index: int) -> bytes | None:
        """An entry cited from before the one being checked, read again and checked against the tree."""
        if index not in fetched:
            fetched[index] = _fetch(source, index, start, tree, since)
        return fetched[index]

    rederiver = Rederiver(fetch, trust)

    def problem(index: int | None, reason: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(Problem(index, reason))

    for entry in source.entries(start, target):
        if entry.index != start + tree.size:
            problem(start + tree.size, f"missing: the log jumps from here to entry {entry.index} (deleted?)")
            break
        hashed = leaf_hash(entry.data)
        if entry.stored_leaf_hash is not None and entry.stored_leaf_hash != hashed:
            problem(entry.index, "its bytes do not match the leaf hash stored beside them (edited in the database)")
        tree.append(hashed)
        try:
            summary = check_entry(entry.index, entry.data, trust)
            report.kinds[summary.kind] += 1
            links.check(entry.index, summary)
            assert summary.record is not None
            rederiver.see(entry.index, summary.record, summary.decision)
        except NotRederivable as exc:
            if legacy_ok:
                report.legacy += 1
            else:
                problem(entry.index, f"{exc}; audit it with --legacy-ok to accept such entries")
        except EntryProblem as exc:
            problem(entry.index, str(exc))
    report.size = start + tree.size
    read_until = start + tree.size
    if read_until < target and not any(p.index == read_until for p in report.problems):
        problem(read_until, f"entries missing from {read_until}: {source.name} has {read_until} entries, but a "
                            f"checkpoint covers {target}")
    if since is None:
        report.root = tree.root()
        for named in checkpoints:
            _check_checkpoint(source, tree, named, report, checkpoints)
    else:
        for named in checkpoints:
            _check_extension(source, tree, since, named, report)
    return report


def _fetch(source: LogSource, index: int, start: int, tree: MerkleTree, since: NamedCheckpoint | None) -> bytes | None:
    """Entry ``index`` read again from ``source``; None when it is not there or not the entry audited there."""
    found = next(iter(source.entries(index, index + 1)), None)
    if found is None or found.index != index:
        return None
    hashed = leaf_hash(found.data)
    if index >= start:
        return found.data if index - start < tree.size and tree.subtree_root(0, index - start) == hashed else None
    assert since is not None  # below `start` only in an incremental audit: prove it is in the verified checkpoint
    try:
        verify_inclusion(hashed, index, since.checkpoint.size, source.inclusion_proof(index, since.checkpoint.size),
                         since.checkpoint.root_hash)
    except GateError:
        return None
    return found.data


def _check_extension(source: LogSource, tree: MerkleTree, since: NamedCheckpoint, named: NamedCheckpoint,
                     report: AuditReport) -> None:
    """Does ``named`` extend ``since`` with exactly the entries read (leaf ``since.size + i`` is ``tree``'s ``i``)?

    The consistency proof from the source is verified as it is, then again with every node that covers only new
    entries recomputed from the entries read: both roots then come from the verified old checkpoint and the bytes
    audited, not from anything the source says about the new part.
    """
    old, cp = since.checkpoint, named.checkpoint
    if cp.size < old.size:
        report.problems.append(Problem(None, f"{named.label} ({cp.size} entries) is older than {since.label} "
                                             f"({old.size}); give checkpoints newer than the one audited from"))
        return
    if cp.size > old.size + tree.size:
        report.problems.append(Problem(None, f"{named.label} covers {cp.size} entries; only "
                                             f"{old.size + tree.size} could be read"))
        return
    if cp.size == old.size:
        ok = cp.root_hash == old.root_hash
    else:
        try:
            proof = source.consistency_proof(old.size, cp.size)
            verify_consistency(old.size, cp.size, old.root_hash, cp.root_hash, proof)
            ranges = consistency_path_ranges(old.size, cp.size)
            ours = [_range_root(tree, a - old.size, b - old.size) if a >= old.size else node
                    for (a, b), node in zip(ranges, proof, strict=True)]
            verify_consistency(old.size, cp.size, old.root_hash, cp.root_hash, ours)
            ok = True
        except GateError:
            ok = False
    if ok:
        report.matched.append(named.label)
    else:
        report.problems.append(Problem(old.size, f"the entries added since {since.label} do not extend it to the "
                                                 f"root signed in {named.label}: the first that differs is at or "
                                                 f"after this one"))


def _range_root(tree: MerkleTree, start: int, end: int) -> bytes:
    """The root of leaves ``[start, end)`` of ``tree`` (a consistency proof's node over new entries only)."""
    return root_from_leaf_hashes(tree.subtree_root(0, i) for i in range(start, end))


def _check_checkpoint(source: LogSource, tree: MerkleTree, named: NamedCheckpoint, report: AuditReport,
                      others: list[NamedCheckpoint]) -> None:
    cp = named.checkpoint
    if cp.size > tree.size:
        report.problems.append(Problem(None, f"{named.label} covers {cp.size} entries; only {tree.size} could be read"))
        return
    if tree.root(cp.size) == cp.root_hash:
        report.matched.append(named.label)
        return
    # The largest smaller checkpoint the entries match proves that prefix; the source's proofs may prove more (a
    # database whose stored interior hashes were left alone), never less.
    proven = max((o.checkpoint.size for o in others
                  if o.checkpoint.size < cp.size and tree.root(o.checkpoint.size) == o.checkpoint.root_hash), default=0)
    first = _first_differing(source, tree, cp, proven)
    where = f"the first {cp.size} entries do not hash to the root signed in {named.label}"
    if first == 0:
        report.problems.append(Problem(None, f"{where}; no prefix of the log could be proven to match it (the "
                                             "log's stored hashes were rewritten too, or it forked): give an older "
                                             "checkpoint (--checkpoint) to narrow down where"))
    else:
        report.problems.append(Problem(first, f"differs from what was signed: {where}; entries 0-{first - 1} are "
                                              "proven to match it, this is the first that could not be"))


def _first_differing(source: LogSource, tree: MerkleTree, cp: Checkpoint, proven: int) -> int:
    """The size of the longest prefix of the entries read proven to be what ``cp`` signed, by bisection with the
    source's consistency proofs, at least ``proven`` (a prefix a smaller signed checkpoint matched)."""
    def genuine(k: int) -> bool:
        try:
            verify_consistency(k, cp.size, tree.root(k), cp.root_hash, source.consistency_proof(k, cp.size))
        except GateError:
            return False
        return True

    good, bad = proven, cp.size
    while bad - good > 1:
        middle = (good + bad) // 2
        if genuine(middle):
            good = middle
        else:
            bad = middle
    return good
