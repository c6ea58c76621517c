"""The gate's configuration: one file (``GATE_CONFIG``) and/or ``GATE_*`` variables, read the same way by every
command and integration.

Configuration comes from a YAML file (``GATE_CONFIG``) and/or environment variables, environment winning::

    policy: policy.yaml          # GATE_POLICY   (default: the policy shipped with tiergate)
    trust: trust.yaml            # GATE_TRUST    (required to allow anything above the lowest tier)
    log: gate-log.db             # GATE_LOG      (a SQLite file, or a postgresql:// URL; optional)
    server: http://127.0.0.1:8700  # GATE_SERVER (a gate service; optional)
    token_env: GATE_TOKEN        # the environment variable holding the service bearer token
    key: gate.key                # GATE_KEY      (the gate's signing key, for VSAs and log checkpoints)
    timeout: 30                  # GATE_TIMEOUT  seconds for a call to the gate service
    server_key: gate.vkey        # GATE_SERVER_KEY the service's log key: its answers must be signed with it
    max_age: 300                 # GATE_MAX_AGE  seconds a signed answer's time may differ from this clock
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from tiergate.core.answer import DEFAULT_MAX_AGE
from tiergate.core.files import load_yaml
from tiergate.errors import config_error

_FIELDS = {"policy": "GATE_POLICY", "trust": "GATE_TRUST", "log": "GATE_LOG", "server": "GATE_SERVER",
           "key": "GATE_KEY", "timeout": "GATE_TIMEOUT", "token_env": None, "server_key": "GATE_SERVER_KEY",
           "max_age": "GATE_MAX_AGE", "witnesses": None, "witnesses_required": None}


@dataclass(frozen=True)
class GateConfig:
    policy: Path | None = None
    trust: Path | None = None
    log: str | None = None
    server: str | None = None
    token_env: str = "GATE_TOKEN"  # noqa: S105 - the name of the environment variable, not a token
    key: Path | None = None
    timeout: float = 30.0
    server_key: Path | None = None
    max_age: float = DEFAULT_MAX_AGE
    #: With a service: the witness keys trusted, and how many must cosign the checkpoint (signed with
    #: ``server_key``) covering a decision before the answer counts (:mod:`tiergate.runtime.witnessed`).
    witnesses: tuple[str, ...] = ()
    witnesses_required: int = 0
    source: str = "environment"

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env)

    @property
    def file(self) -> Path | None:
        """The ``GATE_CONFIG`` file these settings were read from (None: environment and options only)."""
        return None if self.source == "environment" else Path(self.source)

    def override(self, **values: Any) -> GateConfig:
        """These settings with the ones given (not None) replaced: command-line options over the configuration."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GateConfig:
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
                # A path given in the environment is relative to where the command runs, not to the file. Made
                # absolute but not resolved: a symlink in it is followed at every check, never frozen here.
                is_path = name in ("policy", "trust", "key", "server_key") or (name == "log" and "://" not in value)
                values[name] = os.path.abspath(os.path.expanduser(value)) if is_path else value
        return cls._build(values, source, base)

    @classmethod
    def _build(cls, values: Mapping[str, Any], source: str, base: Path) -> GateConfig:
        def path(name: str) -> Path | None:
            value = values.get(name)
            if value is None:
                return None
            p = Path(str(value)).expanduser()
            return p if p.is_absolute() else base / p

        try:
            timeout = float(values.get("timeout", 30.0))
        except (TypeError, ValueError):
            raise config_error(source, "timeout",
                               f"must be a number of seconds, found {values.get('timeout')!r}") from None
        if timeout <= 0:
            raise config_error(source, "timeout", "must be positive")
        try:
            max_age = float(values.get("max_age", DEFAULT_MAX_AGE))
        except (TypeError, ValueError):
            raise config_error(source, "max_age",
                               f"must be a number of seconds, found {values.get('max_age')!r}") from None
        if not 0 < max_age <= 86400:
            raise config_error(source, "max_age", "must be more than 0 and at most 86400 seconds")
        server = values.get("server")
        if server is not None and not str(server).startswith(("http://", "https://")):
            raise config_error(source, "server", f"must be an http(s):// URL, found {server!r}")
        log = values.get("log")
        if log is not None and "://" not in str(log):
            log = str(path("log"))
        witnesses = values.get("witnesses") or ()
        if not isinstance(witnesses, (list, tuple)) or not all(isinstance(w, str) for w in witnesses):
            raise config_error(source, "witnesses", "must be a list of witness verifier keys")
        required = values.get("witnesses_required", 0)
        if isinstance(required, bool) or not isinstance(required, int) or required < 0:
            raise config_error(source, "witnesses_required", f"must be a whole number, found {required!r}")
        # A key is a vkey (name+id+base64) or a file holding one, relative to the configuration like every path.
        witnesses = [w if "+" in w else str(base / Path(w).expanduser()) for w in witnesses]
        return cls(policy=path("policy"), trust=path("trust"), log=str(log) if log else None,
                   server=str(server).rstrip("/") if server else None,
                   token_env=str(values.get("token_env") or "GATE_TOKEN"), key=path("key"), timeout=timeout,
                   server_key=path("server_key"), max_age=max_age, witnesses=tuple(witnesses),
                   witnesses_required=required, source=source)
