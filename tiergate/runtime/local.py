"""Deciding here: a policy, a trust store and, optionally, a log that records each decision.

The gate service decides with this too: it adds the attestations its log holds for the model (``evidence``) and
records newly accepted attestations beside the decision (its own :class:`DecisionLog`).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from collections.abc import Callable, Mapping, Sequence

from tiergate.core.bundle import is_oms_signature
from tiergate.core.decision import Decision, decide
from tiergate.core.log.entries import (
    POLICY, TRUST, Basis, attestation_entry, decision_entry, policy_entry, rules_key, trust_entry,
)
from tiergate.core.log.store import LogStore
from tiergate.core.manifest import Manifest, parse_digest
from tiergate.core.policy import Policy
from tiergate.core.timeutil import utcnow
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput
from tiergate.runtime.port import RecordedDecision

#: The attestations already held for a model (``sha256:<hex>``), judged along with those sent.
Evidence = Callable[[str], Sequence[AttestationInput]]


class DecisionLog(Protocol):
    """Where decisions are recorded."""

    def record(self, decision: Decision, context: Mapping[str, Any], sent: Sequence[AttestationInput],
               held: Sequence[AttestationInput], policy: Policy, trust: TrustStore) -> RecordedDecision:
        """Record ``decision`` (made with ``held`` + ``sent`` under ``policy`` and ``trust``) and its ``context``;
        return it as recorded (long texts may be cut) with its log index. Raises when it cannot be recorded: an
        unrecorded decision did not happen."""
        ...


def source_of_logged(index: int) -> str:
    """How a decision names an attestation held in the log (its entry index)."""
    return f"log:{index}"


def logged_index(source: str) -> int | None:
    """The log index a :func:`source_of_logged` names, None for any other source."""
    prefix, _, number = source.partition(":")
    return int(number) if prefix == "log" and number.isdigit() and number == str(int(number)) else None


@dataclass
class RulesLog:
    """Logs each policy and trust store decisions are judged under once, as its own entry, and remembers where.

    A writer that restarts finds them again by their digest (the store indexes them under :func:`rules_key`); two
    replicas may both log one, harmlessly: the content is the same and each decision cites the one it found.
    """

    store: LogStore
    _known: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def basis(self, policy: Policy, trust: TrustStore, now: datetime) -> tuple[int, int | None]:
        """The log indices of the entries of ``policy`` and ``trust`` (None for an empty in-memory trust store),
        appending them first when the log does not hold them. Raises EntryFormatError for rules built in memory (a
        decision the log could not re-derive is not recorded, so it did not happen)."""
        policy_index = self._index(POLICY, policy.digest, lambda: policy_entry(policy, now))
        if trust.digest is None and not trust.evaluators:
            return policy_index, None  # nothing to record: an empty store trusts nobody
        return policy_index, self._index(TRUST, str(trust.digest), lambda: trust_entry(trust, now))

    def _index(self, kind: str, digest: str, entry: Callable[[], bytes]) -> int:
        key = rules_key(kind, digest)
        with self._lock:
            known = self._known.get(key)
            if known is None:
                found = self.store.find(model_digest=key, limit=1)
                known = found[0].index if found else self.store.append(entry(), model_digest=key)
                self._known[key] = known
            return known


def decision_entries(decision: Decision, context: Mapping[str, Any], sent: Sequence[AttestationInput],
                     held: Sequence[AttestationInput], rules: Callable[[], tuple[int, int | None]],
                     fits: Callable[[bytes], bytes] = lambda entry: entry) -> list[bytes]:
    """The entries recording ``decision``, to append in one go: every attestation of ``sent`` newly accepted, then
    the decision, citing the policy and trust entries (``rules()``, asked for last: they may be appended then, so
    only for a decision that can be logged), the ``held`` attestations (by log index) and the attestations appended
    with it. ``fits`` checks each attestation entry (raising when it cannot be logged). Raises DecisionTooLarge
    (EntryFormatError) for a decision too large to log."""
    digest = decision.model_digest
    rejected = {r.digest for r in decision.rejected}
    known = {a.digest for a in held}
    entries: list[bytes] = []
    for item in sent:
        data = item.data
        item_digest = "sha256:" + hashlib.sha256(data).hexdigest()
        # An OMS signature binds files, not a digest: it could not be re-verified from the log alone, so the
        # decision cites it (inputs) but it is not logged as an attestation of the model.
        if item_digest not in rejected and item_digest not in known and not is_oms_signature(data):
            known.add(item_digest)
            # Logged with the time it was received, which its judgement used (recorded_at): the audit uses it too.
            entries.append(fits(attestation_entry(data, digest, item.recorded_at or decision.time)))
    decision_entry(decision, context)  # too large, or a context that is not one: refused before anything is logged
    cited = sorted({n for n in (logged_index(a.source) for a in held) if n is not None})
    policy, trust = rules()
    entries.append(decision_entry(decision, context, Basis(policy, trust, tuple(cited), len(entries))))
    return entries


@dataclass
class StoreLog:
    """A :class:`DecisionLog` appending each decision, the attestations it newly accepted and the rules it was judged
    under (once) to a log store, so that the log alone re-derives it."""

    store: LogStore
    rules: RulesLog | None = None

    def __post_init__(self) -> None:
        self.rules = self.rules or RulesLog(self.store)

    def record(self, decision: Decision, context: Mapping[str, Any], sent: Sequence[AttestationInput],
               held: Sequence[AttestationInput], policy: Policy, trust: TrustStore) -> RecordedDecision:
        assert self.rules is not None
        rules = self.rules
        entries = decision_entries(decision, context, sent, held, lambda: rules.basis(policy, trust, decision.time))
        indices = self.store.append_many(entries, [decision.model_digest] * len(entries))
        return RecordedDecision(decision, indices[-1])


def model_digest(model: Manifest | str) -> str:
    """``sha256:<hex>`` of a manifest or a digest (bare hex accepted); raises InputError for anything else."""
    return model.digest if isinstance(model, Manifest) else f"sha256:{parse_digest(model)}"


@dataclass(frozen=True)
class LocalDecider:
    """A :class:`~tiergate.runtime.port.Decider` judging with ``policy`` and ``trust`` in this process."""

    policy: Policy
    trust: TrustStore
    log: DecisionLog | None = None
    evidence: Evidence | None = None
    clock: Callable[[], datetime] = utcnow

    def decide(self, tier: str, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
               context: Mapping[str, Any] | None = None, now: datetime | None = None) -> RecordedDecision:
        held = list(self.evidence(model_digest(model))) if self.evidence is not None else []
        sent = list(attestations)
        decision = decide(self.policy, tier, model, held + sent, self.trust, now or self.clock())
        if self.log is None:
            return RecordedDecision(decision, None)
        return self.log.record(decision, dict(context or {}), sent, held, self.policy, self.trust)
