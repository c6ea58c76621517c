"""Deciding here: a policy, a trust store and, optionally, a log that records each decision.

The gate service decides with this too: it adds the attestations its log holds for the model (``evidence``) and
records newly accepted attestations beside the decision (its own :class:`DecisionLog`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from collections.abc import Callable, Mapping, Sequence

from tiergate.core.decision import Decision, decide
from tiergate.core.log.entries import decision_entry
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
               held: Sequence[AttestationInput]) -> RecordedDecision:
        """Record ``decision`` (made with ``held`` + ``sent``) and its ``context``; return it as recorded (long texts
        may be cut) with its log index. Raises when it cannot be recorded: an unrecorded decision did not happen."""
        ...


@dataclass(frozen=True)
class StoreLog:
    """A :class:`DecisionLog` appending one decision entry per decision to a log store."""

    store: LogStore

    def record(self, decision: Decision, context: Mapping[str, Any], sent: Sequence[AttestationInput],
               held: Sequence[AttestationInput]) -> RecordedDecision:
        index = self.store.append(decision_entry(decision, context), model_digest=decision.model_digest)
        return RecordedDecision(decision, index)


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
        return self.log.record(decision, dict(context or {}), sent, held)
