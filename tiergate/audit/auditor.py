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
from tiergate.audit.sources import LogSource
from tiergate.core.log.checkpoint import Checkpoint
from tiergate.core.log.merkle import MerkleTree, ProofError, leaf_hash, verify_consistency
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
              max_problems: int = 100) -> AuditReport:
    """Audit ``source`` up to the largest checkpoint (or its current size when there is none)."""
    report = AuditReport(source.name)
    target = max((c.checkpoint.size for c in checkpoints), default=None)
    if target is None:
        target = source.size()
    tree = MerkleTree()
    links = WebhookLinks()

    def problem(index: int | None, reason: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(Problem(index, reason))

    for entry in source.entries(0, target):
        if entry.index != tree.size:
            problem(tree.size, f"missing: the log jumps from here to entry {entry.index} (deleted?)")
            break
        hashed = leaf_hash(entry.data)
        if entry.stored_leaf_hash is not None and entry.stored_leaf_hash != hashed:
            problem(entry.index, "its bytes do not match the leaf hash stored beside them (edited in the database)")
        try:
            summary = check_entry(entry.index, entry.data, trust)
            report.kinds[summary.kind] += 1
            links.check(entry.index, summary)
        except EntryProblem as exc:
            problem(entry.index, str(exc))
        tree.append(hashed)
    report.size = tree.size
    report.root = tree.root()
    if tree.size < target and not any(p.index == tree.size for p in report.problems):
        problem(tree.size, f"entries missing from {tree.size}: {source.name} has {tree.size} entries, but a "
                           f"checkpoint covers {target}")
    for named in checkpoints:
        _check_checkpoint(source, tree, named, report)
    return report


def _check_checkpoint(source: LogSource, tree: MerkleTree, named: NamedCheckpoint, report: AuditReport) -> None:
    cp = named.checkpoint
    if cp.size > tree.size:
        report.problems.append(Problem(None, f"{named.label} covers {cp.size} entries; only {tree.size} could be read"))
        return
    if tree.root(cp.size) == cp.root_hash:
        report.matched.append(named.label)
        return
    first = _first_differing(source, tree, cp)
    where = f"the first {cp.size} entries do not hash to the root signed in {named.label}"
    if first is None:
        report.problems.append(Problem(None, f"{where} (the entry could not be pinned down: the log's proofs fail)"))
    else:
        index, proven = first
        note = (f"entries 0-{index - 1} are proven to match it" if proven else
                "no earlier entry could be proven to match it either (or the log's stored hashes were rewritten too)")
        report.problems.append(Problem(index, f"differs from what was signed: {where}; {note}"))


def _first_differing(source: LogSource, tree: MerkleTree, cp: Checkpoint) -> tuple[int, bool] | None:
    """Bisection with consistency proofs: ``(index of the first bad entry, whether a good prefix was proven)``."""
    def genuine(k: int) -> bool:
        proof = source.consistency_proof(k, cp.size)
        try:
            verify_consistency(k, cp.size, tree.root(k), cp.root_hash, proof)
        except ProofError:
            return False
        return True

    good, bad = 0, cp.size
    try:
        while bad - good > 1:
            middle = (good + bad) // 2
            if genuine(middle):
                good = middle
            else:
                bad = middle
    except GateError:
        return None
    return bad - 1, good > 0
