"""The one question every publish path asks: may this model go out at this tier? Answered by a :class:`Decider`.

The CLI, the gate service, the Hub webhook, the MLflow plugin, the Hub wrapper and the git hook all turn their event
into one :meth:`Decider.decide` call. Two implementations: :class:`~tiergate.runtime.local.LocalDecider` (a policy and a
trust store, optionally a log) and :class:`~tiergate.runtime.remote.RemoteDecider` (a gate service decides and logs);
:class:`~tiergate.runtime.gate.Gate` puts the reloader (:mod:`tiergate.runtime.reload`) around either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from collections.abc import Mapping, Sequence

from tiergate.core.decision import Decision
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.verify import AttestationInput


@dataclass(frozen=True)
class RecordedDecision:
    """A decision and where the log holds it (None when no log is configured)."""

    decision: Decision
    log_index: int | None


class Decider(Protocol):
    """Decides on releasing a model at a tier and records the decision with the publish event."""

    @property
    def policy(self) -> Policy:
        """The policy tiers are named in (for a remote decider: the local copy, used to choose the tier)."""
        ...

    def decide(self, tier: str, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
               context: Mapping[str, Any] | None = None, now: datetime | None = None) -> RecordedDecision:
        """Decide on ``model`` (a manifest, or a ``sha256:`` digest) at ``tier`` with ``attestations`` and record
        the decision with ``context`` (the publish event). ``now`` replays a past moment where the decider allows it.

        Raises :class:`~tiergate.errors.GateError` when no decision can be made or recorded (callers deny).
        """
        ...
