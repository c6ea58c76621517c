"""The gate as the integrations use it: configuration, then one call that decides and records a publish.

Every integration (MLflow plugin, Hub wrapper and webhook, CI, git hook) turns its publish event into one
:meth:`Gate.decide` call and the :class:`~gate.core.decision.Decision` back into its host's native refusal. Where a
gate service is configured, the service decides and records (the integration is its client); otherwise the decision
is made here with the local policy and trust store and appended to the local log, if one is configured.

Configuration comes from a YAML file (``GATE_CONFIG``) and/or environment variables, environment winning::

    policy: policy.yaml          # GATE_POLICY   (default: the policy shipped with release-gate)
    trust: trust.yaml            # GATE_TRUST    (required to allow anything above the lowest tier)
    log: gate-log.db             # GATE_LOG      (a SQLite file, or a postgresql:// URL; optional)
    server: http://127.0.0.1:8700  # GATE_SERVER (a gate service; optional)
    token_env: GATE_TOKEN        # the environment variable holding the service bearer token
    key: gate.key                # GATE_KEY      (the gate's signing key, for VSAs and log checkpoints)
    timeout: 30                  # GATE_TIMEOUT  seconds for a call to the gate service
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from gate.core.decision import Decision, decide
from gate.core.manifest import Manifest
from gate.core.policy import Policy
from gate.core.timeutil import utcnow
from gate.core.trust import TrustStore
from gate.core.verify import AttestationInput
from gate.core.files import load_yaml
from gate.errors import ConfigError, config_error

_FIELDS = {"policy": "GATE_POLICY", "trust": "GATE_TRUST", "log": "GATE_LOG", "server": "GATE_SERVER",
           "key": "GATE_KEY", "timeout": "GATE_TIMEOUT", "token_env": None}


@dataclass(frozen=True)
class GateConfig:
    policy: Path | None = None
    trust: Path | None = None
    log: str | None = None
    server: str | None = None
    token_env: str = "GATE_TOKEN"
    key: Path | None = None
    timeout: float = 30.0
    source: str = "environment"

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "GateConfig":
        """Read ``GATE_CONFIG`` (if set) and the ``GATE_*`` variables; relative paths are relative to the file."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        source = "environment"
        base = Path.cwd()
        if env.get("GATE_CONFIG"):
            source = env["GATE_CONFIG"]
            data = load_yaml(source, "gate config") or {}
            if not isinstance(data, Mapping):
                raise config_error(source, None, "must be a mapping of settings")
            unknown = sorted(set(data) - set(_FIELDS))
            if unknown:
                raise config_error(source, unknown[0], f"unknown setting (expected {', '.join(sorted(_FIELDS))})")
            values.update(data)
            base = Path(source).resolve().parent
        for name, var in _FIELDS.items():
            if var and env.get(var):
                value = env[var]
                # A path given in the environment is relative to where the command runs, not to the file.
                is_path = name in ("policy", "trust", "key") or (name == "log" and "://" not in value)
                values[name] = str(Path(value).expanduser().resolve()) if is_path else value
        return cls._build(values, source, base)

    @classmethod
    def _build(cls, values: Mapping[str, Any], source: str, base: Path) -> "GateConfig":
        def path(name: str) -> Path | None:
            value = values.get(name)
            if value is None:
                return None
            p = Path(str(value)).expanduser()
            return p if p.is_absolute() else base / p

        try:
            timeout = float(values.get("timeout", 30.0))
        except (TypeError, ValueError):
            raise config_error(source, "timeout", f"must be a number of seconds, found {values.get('timeout')!r}") from None
        if timeout <= 0:
            raise config_error(source, "timeout", "must be positive")
        server = values.get("server")
        if server is not None and not str(server).startswith(("http://", "https://")):
            raise config_error(source, "server", f"must be an http(s):// URL, found {server!r}")
        log = values.get("log")
        if log is not None and "://" not in str(log):
            log = str(path("log"))
        return cls(policy=path("policy"), trust=path("trust"), log=str(log) if log else None,
                   server=str(server).rstrip("/") if server else None,
                   token_env=str(values.get("token_env") or "GATE_TOKEN"), key=path("key"), timeout=timeout,
                   source=source)


@dataclass(frozen=True)
class RecordedDecision:
    """A decision and where the log holds it (None when no log is configured)."""

    decision: Decision
    log_index: int | None


@dataclass
class Gate:
    """A loaded gate: policy, trust store and where decisions go. Build one at start-up, reuse it per request."""

    config: GateConfig
    policy: Policy
    trust: TrustStore
    _log: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, config: GateConfig | None = None) -> "Gate":
        """Load and check everything now, so a broken configuration stops start-up instead of a publish."""
        config = config or GateConfig.from_env()
        policy = Policy.load(config.policy)
        trust = (TrustStore.load(config.trust) if config.trust
                 else TrustStore((), source=f"(no trust store configured in {config.source})"))
        gate = cls(config, policy, trust)
        if config.log and not config.server:
            gate._log = _open_log(config.log)
        return gate

    def decide(
        self,
        tier: str,
        model: Manifest | str,
        attestations: Sequence[AttestationInput] = (),
        context: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """Decide on releasing ``model`` at ``tier`` and record the decision with its ``context`` (the publish event).

        With a gate service configured the service decides (and the client fails closed); otherwise it is decided
        here. Errors propagate: callers turn any exception into a deny.
        """
        return self.decide_recorded(tier, model, attestations, context, now).decision

    def decide_recorded(
        self,
        tier: str,
        model: Manifest | str,
        attestations: Sequence[AttestationInput] = (),
        context: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> RecordedDecision:
        """:meth:`decide`, also saying at which log index the decision was recorded, for hosts that show it."""
        if self.config.server:
            from gate.client import GateClient

            client = GateClient(self.config.server, token=self.config.token, timeout=self.config.timeout)
            return client.decide_recorded(tier=tier, model=model, attestations=attestations, context=context or {})
        decision = decide(self.policy, tier, model, attestations, self.trust, now or utcnow())
        index = None
        if self._log is not None:
            from gate.core.log.entries import decision_entry

            index = self._log.append(decision_entry(decision, context or {}), model_digest=decision.model_digest)
        return RecordedDecision(decision, index)


def _open_log(url: str) -> Any:
    from gate.core.log.store import open_store

    try:
        return open_store(url)
    except ConfigError:
        raise
    except Exception as exc:  # an unreachable or unusable log is a configuration error at start-up
        raise ConfigError(f"cannot open the decision log {url}: {exc}") from None
