"""Letting a gate service decide: a :class:`~tiergate.runtime.port.Decider` that asks ``POST /v1/decisions``.

The service decides with its policy, its trust store and the attestations its log holds (plus those sent), and logs
the decision. What comes back must be exactly a decision about the model (and tier, or target) that was asked about,
signed by the service's key over the nonce sent with this request (:mod:`tiergate.core.answer`), so a captured
answer replayed later, or one to another request, is refused; anything else, like any failure to get an answer
(:mod:`tiergate.runtime.transport`), raises :class:`~tiergate.runtime.transport.GateServiceError` saying the publish
is denied.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from tiergate.core.answer import (
    DEFAULT_MAX_AGE,
    AnswerError,
    AnswerRequest,
    new_nonce,
    verify_answer,
)
from tiergate.core.decision import Decision
from tiergate.core.keys import PublicKey
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.targets import Target, TargetError, required_tier
from tiergate.core.timeutil import utcnow
from tiergate.core.verify import AttestationInput
from tiergate.errors import InputError, UsageError
from tiergate.runtime.client import GateClient
from tiergate.runtime.local import model_digest
from tiergate.runtime.port import RecordedDecision
from tiergate.runtime.witnessed import Witnessing


@dataclass(frozen=True)
class RemoteDecider:
    """Asks the gate service at ``server``. ``policy`` is the local policy, used by callers to choose the tier."""

    policy: Policy
    server: str
    token: str | None = None
    timeout: float = 30.0
    #: The service's log key (its answers must be signed with it) and the age its answers may have, seconds.
    answer_key: PublicKey | None = None
    max_age: float = DEFAULT_MAX_AGE
    #: If set, an answer counts only once a witnessed checkpoint covers it (:mod:`tiergate.runtime.witnessed`).
    witnessing: Witnessing | None = None

    def decide(self, tier: str, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
               context: Mapping[str, Any] | None = None, now: datetime | None = None) -> RecordedDecision:
        """Raises :class:`~tiergate.runtime.transport.GateServiceError` unless the service answers with a decision about
        this model at this tier; ``now`` must be None (the service times its decisions, UsageError otherwise)."""
        if now is not None:
            raise UsageError("a gate service times its own decisions; a decision at another time (--now) is local-only")
        client = GateClient(self.server, self.token, self.timeout, answer_key=self.answer_key, max_age=self.max_age)
        recorded = ask(client, model, attestations, context, tier=tier)
        if self.witnessing is not None:
            if recorded.log_index is None:
                raise client.transport.fail("did not say where in its log the decision is", True)
            self.witnessing.confirm(client, recorded.log_index, recorded.decision.to_dict(), self.timeout)
        return recorded


def ask(client: GateClient, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
        context: Mapping[str, Any] | None = None, *, tier: str | None = None,
        target: str | None = None) -> RecordedDecision:
    """Ask the service behind ``client`` to decide (and log) a release of ``model`` at ``tier`` or ``target``.

    Raises :class:`~tiergate.runtime.transport.GateServiceError` (the publish is denied) unless the answer is a
    well-formed decision about this very model and tier (for a target: the tier the service's policy gives it).
    """
    if (tier is None) == (target is None):
        raise InputError("give exactly one of tier and target")
    wanted = model_digest(model)
    # A manifest goes with its files' content classes: the service cannot see the files.
    model_body: dict[str, Any] = ({"manifest": model.to_dict(content=True)} if isinstance(model, Manifest)
                                  else {"digest": wanted})
    body: dict[str, Any] = {
        "model": model_body,
        "attestations": [base64.b64encode(item.data).decode("ascii") for item in attestations],
        "context": dict(context or {}),
    }
    body.update({"tier": tier} if tier is not None else {"target": target})
    t = client.transport
    if client.answer_key is None:  # refused before anything is sent: no answer could be trusted
        raise t.fail("cannot be trusted: no key to check its signed answers was configured (set server_key: in "
                     "GATE_CONFIG or GATE_SERVER_KEY to the service's log key, the vkey `gate serve` prints)", True)
    asked = AnswerRequest(new_nonce(), wanted, tier, target)
    body["nonce"] = asked.nonce
    raw = client.post_decision(body)
    try:
        signed = verify_answer(raw.signed, client.answer_key, asked, raw.content, utcnow(), client.max_age)
    except AnswerError as exc:
        raise t.fail(str(exc), True) from None
    try:
        decision = Decision.from_dict(t.json(raw, publish=True))
    except InputError as exc:
        raise t.fail(f"sent something that is not a decision ({exc})", True) from None
    if decision.model_digest != wanted:
        raise t.fail(f"answered about {decision.model_digest}, not {wanted}", True)
    if tier is not None and decision.requested_tier != tier:
        raise t.fail(f"answered for tier {decision.requested_tier!r}, not {tier!r}", True)
    if (decision.decision, decision.requested_tier) != (signed.decision, signed.tier):
        raise t.fail(f"signed a {signed.decision} at tier {signed.tier!r} but sent a {decision.decision} at tier "
                     f"{decision.requested_tier!r}", True)
    if raw.log_index is not None and raw.log_index != signed.log_index:
        raise t.fail(f"signed log index {signed.log_index} but said {raw.log_index}", True)
    if target is not None:
        expected = _target_tier(client, target, decision.policy_digest)
        if decision.requested_tier != expected:
            raise t.fail(f"answered for tier {decision.requested_tier!r}, but its policy "
                         f"({decision.policy_digest[:19]}...) requires tier {expected!r} for {target}", True)
    return RecordedDecision(decision, signed.log_index)


def _target_tier(client: GateClient, target: str, policy_digest: str) -> str:
    """The tier the service's policy ``policy_digest`` requires for ``target``, resolved here from what the service
    reports of that policy (``GET /v1/policy``).

    A decision asked for by target names the tier it was decided at and the policy it was decided with; this checks
    the two agree, so an answer for a lower tier (a mix-up, a replayed answer, a server resolving the target wrongly)
    is a deny. The service reports its policy itself, so this does not protect against a service that lies
    consistently; only a policy held by the caller could.
    """
    t = client.transport
    summary = client.policy(publish=True)
    if summary["digest"] != policy_digest:
        raise t.fail(f"decided with policy {policy_digest[:19]}... but reports policy "
                     f"{str(summary['digest'])[:19]}...", True)
    try:
        targets = summary["targets"]
        hf, ml = targets["huggingface"], targets["mlflow"]
        view = SimpleNamespace(
            huggingface=SimpleNamespace(**{k: str(hf[k]) for k in ("private", "gated_manual", "gated_auto", "public")}),
            mlflow=SimpleNamespace(registration=str(ml["registration"]), aliases=dict(ml["aliases"]),
                                   stages=dict(ml["stages"]), tags={str(k): dict(v) for k, v in ml["tags"].items()}))
        expected = required_tier(view, Target.parse(target))
    except TargetError as exc:
        raise t.fail(f"decided on a target its policy does not know: {exc}", True) from None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise t.fail("sent a malformed policy (no valid 'targets')", True) from None
    if not isinstance(expected, str) or expected not in summary["tiers"]:
        raise t.fail(f"reports target {target} needing tier {expected!r}, which is not one of its policy's tiers", True)
    return expected
