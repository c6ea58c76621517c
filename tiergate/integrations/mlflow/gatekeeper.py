"""One registry call in, one outcome out: pass it, refuse it, or let it through with the decision tags to write.

This is the adapter proper: it finds the weights a call publishes, hands them with their attestations to
:meth:`tiergate.runtime.Gate.decide` and turns the :class:`~tiergate.core.decision.Decision` into an outcome. What a
tier requires is the core's business; which tier a call needs is the policy's ``targets.mlflow`` table (``targets``).
It is called by the store guard (:mod:`tiergate.integrations.mlflow.registry`) with the registry lock held, so what it
resolves is what MLflow then writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from tiergate.core.collect import model_attestations
from tiergate.core.decision import Decision
from tiergate.core.manifest import hash_model, parse_digest
from tiergate.errors import GateError
from tiergate.integrations.mlflow.cache import ManifestCache
from tiergate.integrations.mlflow.holder import GateHolder
from tiergate.integrations.mlflow.internals import artifacts as mlflow_artifacts
from tiergate.integrations.mlflow.internals import registry as mlflow_registry
from tiergate.integrations.mlflow.routes import CREATE_VERSION, DELETE_ALIAS, RECORDED, Call, refusal
from tiergate.integrations.mlflow.tags import DIGEST, decision_tags
from tiergate.integrations.mlflow.targets import is_release_target, tier_for
from tiergate.runtime import Gate

log = logging.getLogger("tiergate.integrations.mlflow")


@dataclass(frozen=True)
class Deny:
    """Refuse the call with this message (it reaches the client as PERMISSION_DENIED)."""

    message: str


@dataclass(frozen=True)
class Publish:
    """Allowed: the decision is shown on the version (``tags``) in the same step as MLflow's write (see
    :mod:`tiergate.integrations.mlflow.registry`)."""

    call: Call
    tags: Mapping[str, str]
    version: str | None  # None for a version being created: its tags go into the creation itself
    existing: Mapping[str, str] = field(default_factory=dict)  # the version's tags when it was decided on
    location: str | None = None  # where the gate found the files it decided on (an artifact URI)


@dataclass(frozen=True)
class Withdraw:
    """A release target taken away (alias or tag deleted): recorded once MLflow has done it."""

    call: Call
    version: mlflow_registry.Version | None
    context: Mapping[str, Any] = field(default_factory=dict)


Outcome = Deny | Publish | Withdraw | None


class RegistryGate:
    """Decides registry calls with the gate the holder has, reusing manifests of unchanged weights."""

    def __init__(self, holder: GateHolder, cache: ManifestCache | None = None) -> None:
        self._holder = holder
        self._cache = cache or ManifestCache()

    @property
    def holder(self) -> GateHolder:
        """Where the gate's configuration comes from (shared with the artifact guard)."""
        return self._holder

    def before(self, call: Call, requester: Mapping[str, str]) -> Outcome:
        """The outcome for ``call``, decided before MLflow carries it out. Exceptions mean: refuse (fail closed)."""
        refused = refusal(call)  # the same rule the request hook applies, for calls that reach the store otherwise
        if refused is not None:
            return Deny(refused)
        if call.rpc in RECORDED:
            return self._withdrawal(call, requester)
        try:
            gate = self._holder.current()
        except GateError as exc:
            return Deny(f"tiergate refused {call.describe()}: the gate's configuration is broken ({exc}); "
                        "registry publishes are refused until an administrator fixes it")
        tier = tier_for(call, gate.policy)
        weights = self._weights(call) if tier is not None else None
        if tier is None or weights is None:
            return None
        location, existing = weights
        decision, log_index = self._decide(gate, tier, location, call, requester)
        if not decision.allowed:
            return Deny(f"tiergate refused {call.describe()}: {decision.summary()}")
        return Publish(call, decision_tags(decision, gate.policy, existing, log_index), call.version, existing,
                       location)

    @staticmethod
    def _weights(call: Call) -> tuple[str, dict[str, str]] | None:
        """Where the weights the call publishes are (an artifact URI) and the version's current tags; None for a
        prompt, which has no weights."""
        if call.rpc == CREATE_VERSION:
            if mlflow_registry.is_prompt(call.tags, call.source):
                return None
            assert call.source is not None
            return mlflow_registry.new_version_location(call.source, call.model_id, call.run_id), {}
        assert call.version is not None
        version = mlflow_registry.get_version(call.name, call.version)
        if mlflow_registry.is_prompt(version.tags, version.source):
            return None
        return mlflow_registry.resolve_location(version.download_uri), dict(version.tags)

    def _decide(self, gate: Gate, tier: str, location: str, call: Call,
                requester: Mapping[str, str]) -> tuple[Decision, int | None]:
        started = time.monotonic()
        with mlflow_registry.local_copy(location) as (path, in_place):
            manifest, cached = self._cache.manifest(path) if in_place else (hash_model(path), False)
            attestations = model_attestations(path)
        recorded = gate.decide_recorded(tier, manifest, attestations, {**call.context(), **requester})
        decision = recorded.decision
        how = "weights unchanged, not re-hashed" if cached else f"weights hashed ({manifest.total_size} bytes)"
        log.info("%s: %s at tier '%s' for %s; %d attestation(s); %s; %.2f s", call.describe(), decision.decision,
                 tier, decision.model_digest, len(attestations), how, time.monotonic() - started)
        return decision, recorded.log_index

    def _withdrawal(self, call: Call, requester: Mapping[str, str]) -> Outcome:
        """Never blocks: a configuration or lookup problem is logged, and the withdrawal goes ahead."""
        try:
            gate = self._holder.current()
            if not is_release_target(call, gate.policy):
                return None
            if call.rpc == DELETE_ALIAS:
                version = mlflow_registry.version_by_alias(call.name, call.alias or "")
            else:
                version = mlflow_registry.get_version(call.name, call.version or "")
        except Exception as exc:  # noqa: BLE001 - the version is looked up to be recorded; a lookup failure is logged
            log.warning("%s: not recorded (%s: %s)", call.describe(), type(exc).__name__, exc)
            return None
        context = {**call.context(), **requester, "event": "withdrawn"}
        if version is not None:
            context["version"] = version.version
        return Withdraw(call, version, context)

    def record_withdrawal(self, outcome: Withdraw) -> None:
        """Recorded in the gate's log as a decision at the lowest tier, which has nothing to refuse.

        The log records decisions, so taking a release back is logged as one, with the event in its context. It
        needs the digest the gate recorded on the version; a version the gate never decided on has none.
        """
        log.info("%s (%s)", outcome.call.describe(), ", ".join(f"{k}={v}" for k, v in outcome.context.items()))
        gate = self._holder.current()
        digest = outcome.version.tags.get(DIGEST) if outcome.version else None
        if not (gate.config.log or gate.config.server) or not digest:
            return
        gate.decide(gate.policy.tier_names[0], parse_digest(digest), (), outcome.context)

    def record_event(self, describe: str, versions: list[mlflow_artifacts.GatedVersion],
                     context: Mapping[str, Any]) -> None:
        """Record a registry event that moves or removes gated versions (a registered model renamed or deleted, a
        version deleted): one entry per version, as a withdrawal is recorded (a decision at the lowest tier about the
        version's digest, the event in its context). Raises when it cannot be recorded: the event is then refused.
        """
        gate = self._holder.current()  # a broken configuration raises: nothing can be recorded
        log.info("%s (%d gated version(s))", describe, len(versions))
        if not (gate.config.log or gate.config.server):
            return
        for version in versions:
            gate.decide(gate.policy.tier_names[0], parse_digest(version.digest), (),
                        {**context, "model": version.name, "version": version.version})
