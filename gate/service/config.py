"""The service's settings and turning them into a ready :class:`~gate.service.app.GateService`.

Everything is loaded and checked before the port opens, so a broken configuration (a missing trust store, a key
that cannot sign checkpoints, a tokens file holding a clear token, an unreachable database) stops start-up with one
line naming the file, instead of surfacing as failed publishes later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gate.core.keys import PrivateKey
from gate.core.log.checkpoint import NoteSigner, key_name_problem
from gate.core.log.store import LogStore, StoreError, open_store
from gate.core.policy import Policy
from gate.core.trust import TrustStore
from gate.errors import ConfigError
from gate.service.app import GateService
from gate.service.http import DEFAULT_MAX_BODY
from gate.service.tokens import TokenSet

DEFAULT_ORIGIN = "release-gate.local/log"
DEFAULT_PORT = 8700
DEFAULT_LOG = "gate-log.db"


@dataclass(frozen=True)
class ServiceConfig:
    trust: Path
    key: Path
    tokens: Path
    policy: Path | None = None
    log: str = DEFAULT_LOG
    log_namespace: str | None = None
    origin: str = DEFAULT_ORIGIN
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_body: int = DEFAULT_MAX_BODY


def _signer(config: ServiceConfig) -> NoteSigner:
    problem = key_name_problem(config.origin)
    if problem:
        raise ConfigError(f"--origin {config.origin!r} {problem} (it names the log in every checkpoint)")
    key = PrivateKey.load(config.key)
    if key.public.algorithm != "ed25519":
        raise ConfigError(f"{config.key}: checkpoints are signed with Ed25519; this is a {key.public.algorithm} key "
                          "(make one with `gate keygen NAME`)")
    return NoteSigner(config.origin, key)


def open_log(target: str, namespace: str | None) -> LogStore:
    """Open the log store, turning any failure into a configuration error (it happens at start-up)."""
    try:
        return open_store(target, namespace=namespace)
    except ConfigError:
        raise
    except (StoreError, OSError) as exc:
        raise ConfigError(f"cannot open the log {target}: {exc}") from None


def load_service(config: ServiceConfig) -> GateService:
    if not 1024 <= config.max_body <= 1 << 30:
        raise ConfigError(f"--max-body {config.max_body} must be between 1024 bytes and 1 GiB")
    policy = Policy.load(config.policy)
    trust = TrustStore.load(config.trust)
    signer = _signer(config)
    tokens = TokenSet.load(config.tokens)
    store = open_log(config.log, config.log_namespace)
    return GateService(policy=policy, trust=trust, store=store, signer=signer, tokens=tokens, origin=config.origin)
