"""The service's settings and turning them into a ready :class:`~tiergate.service.app.GateService`.

Everything is loaded and checked before the port opens, so a broken configuration (a missing trust store, a key
that cannot sign checkpoints, a tokens file holding a clear token, an unreachable database) stops start-up with one
line naming the file, instead of surfacing as failed publishes later.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tiergate.core.keys import PrivateKey
from tiergate.core.log.checkpoint import NoteSigner, key_name_problem
from tiergate.core.log.cosignature import WitnessVerifier
from tiergate.core.log.backends import open_store
from tiergate.core.log.store import LogStore, StoreError
from tiergate.errors import ConfigError, extra_missing
from tiergate.runtime.gate import describe_change, load_rules
from tiergate.runtime.reload import Reloader
from tiergate.service.app import CHECKPOINT_INTERVAL, GateService
from tiergate.service.http import DEFAULT_MAX_BODY
from tiergate.service.tokens import TokenSet
from tiergate.service.witness import WitnessClient

DEFAULT_ORIGIN = "tiergate.local/log"
DEFAULT_PORT = 8700
DEFAULT_LOG = "gate-log.db"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_HF_TOKEN_ENV = "HF_TOKEN"  # noqa: S105 - the name of the environment variable, not a token


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
    #: The environment variable holding the Hugging Face webhook's secret; None: the webhook endpoint is off (404).
    hf_webhook_secret_env: str | None = None
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    #: The environment variable holding the Hub token containment acts with (settings, discussions).
    hf_token_env: str = DEFAULT_HF_TOKEN_ENV
    #: ``(add-checkpoint URL prefix, witness vkey or a file holding it)`` of each witness asked to cosign.
    witnesses: tuple[tuple[str, str], ...] = ()
    #: Seconds between two checkpoint signings at most (:data:`tiergate.service.app.CHECKPOINT_INTERVAL`).
    checkpoint_interval: float = CHECKPOINT_INTERVAL


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
    # The policy, the trust store and its key files are followed while the service runs (a revocation reaches the
    # next decision); they must load now, so a broken file stops start-up.
    rules = Reloader(lambda: load_rules(config.policy, config.trust),
                     lambda: [p for p in (config.policy, config.trust) if p is not None],
                     on_change=lambda new, error: print(f"gate serve: {describe_change(new, error)}", file=sys.stderr,
                                                        flush=True))
    if rules.error is not None:
        raise rules.error.reason
    signer = _signer(config)
    tokens = TokenSet.load(config.tokens)
    hub = _hf_settings(config)
    store = open_log(config.log, config.log_namespace)
    witnesses = _witnesses(config)
    service = GateService(rules=rules.current, store=store, signer=signer, tokens=tokens, origin=config.origin,
                          witnesses=witnesses, checkpoint_interval=config.checkpoint_interval)
    if hub is not None:
        from tiergate.service.seen import DatabaseSeen
        from tiergate.service.webhook import HfWebhook

        secret, token = hub
        try:
            seen = DatabaseSeen(config.log, config.log_namespace)
        except StoreError as exc:
            store.close()
            raise ConfigError(f"cannot open the webhook table next to the log {config.log}: {exc}") from None
        except BaseException:
            store.close()
            raise
        service.hf_webhook = HfWebhook(service, secret, seen, endpoint=config.hf_endpoint, token=token)
    return service


def _witnesses(config: ServiceConfig) -> list[WitnessClient]:
    """The witnesses to ask, each with the key its cosignatures must verify with; a key may be given in a file."""
    clients: list[WitnessClient] = []
    for url, key in config.witnesses:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--witness {url!r}: the URL must be http(s)://HOST[:PORT][/PREFIX]")
        verifier = WitnessVerifier.load(key, f"--witness {url}")
        if any(c.verifier.key_id == verifier.key_id and c.verifier.name == verifier.name for c in clients):
            raise ConfigError(f"--witness {url}: witness {verifier.name} is given twice")
        clients.append(WitnessClient(url, verifier))
    return clients


def _hf_settings(config: ServiceConfig) -> tuple[str, str] | None:
    """The webhook's secret and the Hub token, read from the environment variables named; None when the feature is
    off. A variable named but empty stops start-up: a webhook nobody can call, or that cannot contain, is a mistake."""
    if config.hf_webhook_secret_env is None:
        return None
    secret = os.environ.get(config.hf_webhook_secret_env, "")
    if not secret.strip():
        raise ConfigError(f"--hf-webhook-secret-env: ${config.hf_webhook_secret_env} is not set or empty "
                          "(it must hold the secret configured on the Hub webhook)")
    if len(secret) < 16:
        raise ConfigError(f"--hf-webhook-secret-env: the secret in ${config.hf_webhook_secret_env} is "
                          f"{len(secret)} characters; use at least 16 random ones")
    token = os.environ.get(config.hf_token_env, "").strip()
    if not token:
        raise ConfigError(f"--hf-token-env: ${config.hf_token_env} is not set or empty (containment needs a Hub "
                          "token with write access to the watched repositories)")
    parts = urlsplit(config.hf_endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--hf-endpoint {config.hf_endpoint!r} must be an http(s):// URL")
    if importlib.util.find_spec("huggingface_hub") is None:  # found, not imported: that waits for the first event
        raise extra_missing("hf", "huggingface_hub, which the Hugging Face webhook needs")
    return secret, token
