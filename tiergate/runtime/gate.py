"""The gate as commands and integrations hold it: a configuration, followed as its files change, and one
:meth:`Gate.decide` that decides and records a publish through the configured :class:`~tiergate.runtime.port.Decider`.

Where a gate service is configured (``server``) the service decides and records
(:class:`~tiergate.runtime.remote.RemoteDecider`); otherwise the decision is made here with the policy and trust store
and appended to the log, if one is configured (:class:`~tiergate.runtime.local.LocalDecider`). Either way the
configuration files are watched (:mod:`tiergate.runtime.reload`): a revocation reaches the next decision, a broken file
refuses every decision until it is fixed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from tiergate.core.answer import load_answer_key
from tiergate.core.decision import Decision
from tiergate.core.log.store import LogStore
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput
from tiergate.errors import ConfigError
from tiergate.runtime.config import GateConfig
from tiergate.runtime.local import LocalDecider, StoreLog
from tiergate.runtime.port import Decider, RecordedDecision
from tiergate.runtime.reload import ConfigurationBroken, Loaded, Reloader


@dataclass(frozen=True)
class Rules:
    """What decisions are judged against: a policy and a trust store, as loaded together."""

    policy: Policy
    trust: TrustStore


def load_rules(policy: Path | None, trust: Path | None, no_trust: str = "(no trust store given)") -> Loaded[Rules]:
    """Load the policy (None: the shipped one) and the trust store (None: an empty one, described by ``no_trust``),
    with the files they were read from. Raises ConfigError naming the file."""
    loaded_policy = Policy.load(policy)
    store = TrustStore.load(trust) if trust else TrustStore((), source=no_trust)
    files = ((policy,) if policy else ()) + store.files
    return Loaded(Rules(loaded_policy, store), files)


#: Told of each reload: the new rules, or why the files do not load (then the rules are None).
OnChange = Callable[[Rules | None, ConfigurationBroken | None], None]


def describe_change(rules: Rules | None, error: ConfigurationBroken | None) -> str:
    """One line for an operator's log about a reload."""
    if error is not None or rules is None:
        return str(error)
    return (f"reloaded: trust store {rules.trust.source} ({rules.trust.digest}), policy {rules.policy.uri} "
            f"({rules.policy.digest})")


@dataclass(frozen=True)
class _State:
    """One loaded configuration: the settings, the rules, and the decider they make."""

    config: GateConfig
    rules: Rules
    decider: Decider


class _Logs:
    """The log stores opened so far, by URL: a reload keeps the same connection to the same log."""

    def __init__(self) -> None:
        self._stores: dict[str, LogStore] = {}

    def store(self, url: str) -> LogStore:
        if url not in self._stores:
            self._stores[url] = _open_log(url)
        return self._stores[url]


class Gate:
    """A gate following its configuration: build one at start-up, reuse it for every publish."""

    def __init__(self, states: Callable[[], _State]) -> None:
        self._states = states

    @classmethod
    def load(cls, config: GateConfig | None = None, environ: Mapping[str, str] | None = None,
             on_change: OnChange | None = None) -> Gate:
        """The gate for ``config`` (default: ``GATE_CONFIG`` and ``GATE_*`` of ``environ``, read again when the
        ``GATE_CONFIG`` file changes). Raises ConfigError now when it does not load: a broken configuration stops
        start-up instead of a publish."""
        gate = cls.follow(config, environ, on_change)
        error = gate.error
        if isinstance(error, ConfigurationBroken):
            raise error.reason  # at start-up the file's own error says it all
        if error is not None:
            raise error
        return gate

    @classmethod
    def follow(cls, config: GateConfig | None = None, environ: Mapping[str, str] | None = None,
               on_change: OnChange | None = None) -> Gate:
        """Like :meth:`load`, but never raises: while the configuration does not load, every use of the gate raises
        :class:`~tiergate.runtime.reload.ConfigurationBroken` (see :attr:`error`). ``on_change`` is told of each reload
        (the new rules, or why they do not load), for the operator's log."""
        logs = _Logs()

        def settings() -> GateConfig:
            return config if config is not None else GateConfig.from_env(environ)

        def load() -> Loaded[_State]:
            current = settings()
            loaded = load_rules(current.policy, current.trust, f"(no trust store configured in {current.source})")
            decider = _decider(current, loaded.value, logs)
            # The service key is followed too: replacing a compromised key reaches the next decision.
            files = tuple(p for p in (current.file, current.server_key) if p is not None) + loaded.files
            return Loaded(_State(current, loaded.value, decider), files)

        def roots() -> list[Path]:
            env_file = (environ if environ is not None else os.environ).get("GATE_CONFIG")
            found = [Path(env_file)] if config is None and env_file else []
            try:
                current = settings()
            except ConfigError:
                return found
            return found + [p for p in (current.file, current.policy, current.trust, current.server_key)
                            if p is not None]

        def changed(state: _State | None, error: ConfigurationBroken | None) -> None:
            if on_change is not None:
                on_change(state.rules if state is not None else None, error)

        return cls(Reloader(load, roots, on_change=changed).current)

    @classmethod
    def pinned(cls, rules: Rules, decider: Decider, config: GateConfig | None = None) -> Gate:
        """A gate over one fixed version of the rules (no files followed), deciding with ``decider``: for a host
        that has already chosen both (the service's webhook, for one event)."""
        state = _State(config or GateConfig(), rules, decider)
        return cls(lambda: state)

    # --- what the configuration is now ---------------------------------------------------------------------------

    @property
    def error(self) -> ConfigError | None:
        """Why the configuration does not load now (None when it does)."""
        try:
            self._states()
        except ConfigError as exc:
            return exc
        return None

    def current(self) -> Gate:
        """This gate as its files are now, kept so (several uses agree on one version); raises
        :class:`~tiergate.runtime.reload.ConfigurationBroken` while they do not load."""
        state = self._states()
        return type(self)(lambda: state)

    @property
    def config(self) -> GateConfig:
        return self._states().config

    @property
    def policy(self) -> Policy:
        return self._states().rules.policy

    @property
    def trust(self) -> TrustStore:
        return self._states().rules.trust

    @property
    def decider(self) -> Decider:
        return self._states().decider

    # --- deciding ------------------------------------------------------------------------------------------------

    def decide(self, tier: str, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
               context: Mapping[str, Any] | None = None, now: datetime | None = None) -> Decision:
        """Decide on releasing ``model`` at ``tier`` and record the decision with its ``context`` (the publish event).

        Errors propagate (a broken configuration, a service that cannot answer, a log that cannot record): callers
        turn any exception into a deny.
        """
        return self.decide_recorded(tier, model, attestations, context, now).decision

    def decide_recorded(self, tier: str, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
                        context: Mapping[str, Any] | None = None, now: datetime | None = None) -> RecordedDecision:
        """:meth:`decide`, also saying at which log index the decision was recorded, for hosts that show it."""
        return self.decider.decide(tier, model, attestations, context, now)


def _decider(config: GateConfig, rules: Rules, logs: _Logs) -> Decider:
    if config.server:
        from tiergate.runtime.remote import RemoteDecider  # requests, only when a service is configured

        from tiergate.runtime.witnessed import Witnessing

        key = load_answer_key(config.server_key) if config.server_key is not None else None
        witnessing = Witnessing.load(config.server_key, config.witnesses, config.witnesses_required)
        return RemoteDecider(rules.policy, config.server, config.token, config.timeout, key, config.max_age,
                             witnessing)
    log = StoreLog(logs.store(config.log)) if config.log else None
    return LocalDecider(rules.policy, rules.trust, log)


def _open_log(url: str) -> LogStore:
    from tiergate.core.log.backends import open_store

    try:
        return open_store(url)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unreachable or unusable log is a configuration error
        raise ConfigError(f"cannot open the decision log {url}: {exc}") from None


__all__ = ["ConfigurationBroken", "Gate", "OnChange", "Rules", "describe_change", "load_rules"]
