"""Re-deriving a decision entry from what it cites: does its outcome follow, and is everything it cites there?

A decision entry's ``basis`` (:class:`~tiergate.core.log.entries.Basis`) cites the policy entry and trust store entry
it was judged under and the attestation entries it used. The auditor rebuilds that policy and trust store from the
log's bytes, re-verifies the cited attestations against that trust store at the decision's time, runs the policy
again at the decision's time and tier, and compares the outcome, the mode, the highest tier supported and every
requirement row (status and the attestations it rests on) with what the entry says. An entry that cites an index
that is not earlier in the log, or not an entry of the kind cited, or of another model or digest, fails where it
cites it. Nothing a decision entry says about itself is taken on trust except:

- the ``formats`` row of a decision on a file list (``files_digest`` set): the log holds the list's digest, not the
  list, so that row is taken from the entry and the highest tier supported is not compared.

(OMS signatures bind files the log does not hold and are never logged; they satisfy no requirement, so nothing is
lost.)

Entries written before decisions cited their basis (pre-v2) cannot be re-derived: :class:`NotRederivable`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tiergate.audit.entries import EntryProblem
from tiergate.core.decision import Decision, RequirementResult
from tiergate.core.log.entries import (
    AttestationRecord, DecisionRecord, EntryFormatError, ParsedEntry, PolicyRecord, TrustRecord, parse_entry,
)
from tiergate.core.policy import Policy
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput
from tiergate.errors import GateError
from tiergate.runtime.local import LocalDecider, logged_index, source_of_logged

R = TypeVar("R", Policy, TrustStore)

#: Attestation entries kept in memory for the decisions after them; older ones are read again by index.
ATTESTATION_WINDOW = 1 << 16

#: Reads the entry at an index (bytes already checked against the audited tree), None when the log has none there.
Fetch = Callable[[int], "bytes | None"]


class NotRederivable(EntryProblem):
    """A decision entry without a basis: written before decisions cited one (a pre-v2 entry)."""


@dataclass
class Rederiver:
    """Fed every well-formed entry in index order (:meth:`see`); re-derives each decision entry.

    ``trust`` is the auditor's own trust store: a trust entry with the same digest is the same store, so the
    signatures it checked are not checked again. ``fetch`` reads entries cited from before the window kept in
    memory (or from before the audited range, in an incremental audit).
    """

    fetch: Fetch
    trust: TrustStore | None = None
    rules: dict[int, Policy | TrustStore] = field(default_factory=dict)
    _bad_rules: dict[int, str] = field(default_factory=dict)
    _attestations: dict[int, AttestationRecord] = field(default_factory=dict)
    _parsed: dict[str, Policy | TrustStore] = field(default_factory=dict)

    def see(self, index: int, record: ParsedEntry, decision: Decision | None = None) -> None:
        """Remember what later decisions may cite; re-derive a decision (``decision``: its record read back, when
        the caller already has it). Raises :class:`EntryProblem`."""
        if isinstance(record, AttestationRecord):
            if len(self._attestations) >= ATTESTATION_WINDOW:
                self._attestations.clear()  # a bound, not an LRU: misses are read again by index
            self._attestations[index] = record
        elif isinstance(record, (PolicyRecord, TrustRecord)):
            try:
                self.rules[index] = self._rules_of(record)
            except GateError as exc:
                self._bad_rules[index] = str(exc)
                raise EntryProblem(f"the {'policy' if isinstance(record, PolicyRecord) else 'trust store'} it "
                                   f"records does not load: {exc}") from None
        elif isinstance(record, DecisionRecord):
            self.rederive(index, record, decision)

    def _rules_of(self, record: PolicyRecord | TrustRecord) -> Policy | TrustStore:
        cached = self._parsed.get(record.digest)
        if cached is not None:
            return cached
        if isinstance(record, PolicyRecord):
            loaded: Policy | TrustStore = Policy.from_bytes(record.data, record.uri)
        elif self.trust is not None and self.trust.digest == record.digest:
            loaded = self.trust  # the same files: share what its signature memo already knows
        else:
            loaded = TrustStore.from_bytes(record.data, record.key_files, record.source)
        self._parsed[record.digest] = loaded
        return loaded

    # --- one decision ------------------------------------------------------------------------------------------

    def rederive(self, index: int, record: DecisionRecord, decision: Decision | None = None) -> None:
        """Raise :class:`EntryProblem` unless the decision at ``index`` follows from what it cites."""
        basis = record.basis
        if basis is None:
            raise NotRederivable("not re-derivable (pre-v2 entry: it does not cite the policy, trust store and "
                                 "attestations it was judged on)")
        if decision is None:
            try:
                decision = Decision.from_dict(record.decision)
            except GateError as exc:
                raise EntryProblem(f"malformed decision: {exc}") from None
        policy = self._cited_rules(index, basis.policy, Policy, "policy", decision.policy_digest)
        if basis.trust is None:
            if decision.trust_digest is not None:
                raise EntryProblem(f"was judged under trust store {decision.trust_digest} but cites no trust entry")
            trust = TrustStore((), source=decision.trust_source)
        else:
            trust = self._cited_rules(index, basis.trust, TrustStore, "trust store", decision.trust_digest)
        first_appended = index - basis.appended_with
        cited = list(basis.attestations)
        if first_appended < 0:
            raise EntryProblem(f"cites the {basis.appended_with} entries before it as appended with it; there are "
                               f"only {index}")
        if cited and cited[-1] >= first_appended:
            raise EntryProblem(f"cites attestation entry {cited[-1]}, which is not earlier in the log than the "
                               f"{basis.appended_with} appended with it" if cited[-1] < index else
                               f"cites attestation entry {cited[-1]}, which is not earlier in the log")
        items: list[AttestationInput] = []
        for n in [*cited, *range(first_appended, index)]:
            attestation = self._cited_attestation(index, n, record.model_digest)
            # Judged as when the decision was made: with the time the log first recorded it.
            items.append(AttestationInput(source_of_logged(n), attestation.data, recorded_at=attestation.time))
        held = set(cited)
        for source, _ in decision.inputs:
            n = logged_index(source)
            if n is not None and n not in held:
                raise EntryProblem(f"its inputs name {source}, which its basis does not cite")
        try:
            again = LocalDecider(policy, trust).decide(decision.requested_tier, record.model_digest.split(":", 1)[1],
                                                       items, now=decision.time).decision
        except GateError as exc:
            raise EntryProblem(f"cannot be re-derived: {exc}") from None
        _compare(decision, again)

    def _cited_rules(self, index: int, cited: int, kind: type[R], what: str, digest: str | None) -> R:
        if cited >= index:
            raise EntryProblem(f"cites {what} entry {cited}, which is not earlier in the log")
        if cited in self._bad_rules:
            raise EntryProblem(f"cites {what} entry {cited}, which does not load")
        found = self.rules.get(cited)
        if found is None:
            data = self.fetch(cited)
            record = _parse(data) if data is not None else None
            if not isinstance(record, (PolicyRecord, TrustRecord)):
                raise EntryProblem(f"cites {what} entry {cited}, which is " +
                                   ("not in the log (or not as it was signed)" if data is None else
                                    f"not a {what} entry"))
            try:
                found = self.rules[cited] = self._rules_of(record)
            except GateError as exc:
                raise EntryProblem(f"cites {what} entry {cited}, which does not load: {exc}") from None
        if not isinstance(found, kind):
            raise EntryProblem(f"cites {what} entry {cited}, which is not a {what} entry")
        if found.digest != digest:
            raise EntryProblem(f"was judged under {what} {digest}, but cites entry {cited}, which holds {found.digest}")
        return found

    def _cited_attestation(self, index: int, cited: int, model: str) -> AttestationRecord:
        found = self._attestations.get(cited)
        if found is None:
            data = self.fetch(cited) if cited < index else None
            record = _parse(data) if data is not None else None
            if not isinstance(record, AttestationRecord):
                raise EntryProblem(f"cites attestation entry {cited}, which is " + (
                    "not earlier in the log" if cited >= index else
                    "not in the log (or not as it was signed)" if data is None else "not an attestation entry"))
            found = record
        if found.model_digest != model:
            raise EntryProblem(f"cites attestation entry {cited}, which is about {found.model_digest}, not {model}")
        return found


def _parse(data: bytes) -> ParsedEntry | None:
    try:
        return parse_entry(data)
    except EntryFormatError:
        return None  # the entry itself is reported where it is; here it is simply not what was cited


def _rows(decision: Decision) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(r.id, r.tier, r.status, tuple(sorted(r.evidence))) for r in decision.requirements]


def _compare(recorded: Decision, again: Decision) -> None:
    """Raise :class:`EntryProblem` naming the first difference between a recorded decision and its re-derivation."""
    rows = list(again.requirements)
    if recorded.files_digest is not None:  # the file list is not in the log: its formats row is the entry's
        formats = {r.id: r for r in recorded.requirements if r.id == "formats"}
        rows = [formats.get(r.id, r) if r.id == "formats" else r for r in rows]
    outcome = "allow" if all(r.met for r in rows) else "deny"
    claimed = f"{recorded.decision} at tier {recorded.requested_tier}"
    if outcome != recorded.decision:
        raise EntryProblem(f"does not follow from what it cites: it says {claimed}, re-derived {outcome}"
                           f"{_first_row_difference(recorded.requirements, rows)}")
    if recorded.mode != again.mode:
        raise EntryProblem(f"does not follow from what it cites: mode {recorded.mode}, the cited policy says "
                           f"{again.mode}")
    if recorded.files_digest is None and recorded.satisfied_tier != again.satisfied_tier:
        raise EntryProblem(f"does not follow from what it cites: highest tier supported {recorded.satisfied_tier}, "
                           f"re-derived {again.satisfied_tier}")
    mine = _rows(recorded)
    theirs = [(r.id, r.tier, r.status, tuple(sorted(r.evidence))) for r in rows]
    if mine != theirs:
        raise EntryProblem(f"does not follow from what it cites: {claimed}"
                           f"{_first_row_difference(recorded.requirements, rows) or ', with other requirements'}")


def _first_row_difference(recorded: tuple[RequirementResult, ...], again: list[RequirementResult]) -> str:
    ours = {r.id: r for r in recorded}
    for row in again:
        mine = ours.pop(row.id, None)
        if mine is None:
            return f" (requirement {row.id} is missing from it: re-derived {row.status}: {row.reason})"
        if (mine.status, sorted(mine.evidence)) != (row.status, sorted(row.evidence)):
            return f" (requirement {row.id}: it says {mine.status}, re-derived {row.status}: {row.reason})"
    if ours:
        return f" (requirement {next(iter(ours))} is not one the cited policy has at that tier)"
    return ""
