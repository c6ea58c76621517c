"""``gate serve``: run the gate service; ``gate serve token-hash``: hash a bearer token for the tokens file."""

from __future__ import annotations

import signal
import socketserver
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from tiergate.errors import ConfigError

if TYPE_CHECKING:  # the service is imported when `gate serve` runs, not when the CLI starts
    from tiergate.service.app import GateService

_PATH = click.Path(dir_okay=False, path_type=Path)


class _Stop(Exception):
    """Raised in the main thread by SIGTERM so the server shuts down like on Ctrl-C."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


@click.group("serve", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, envvar="GATE_HOST", help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True, envvar="GATE_PORT",
              help="Port (0: any free port; the one chosen is printed).")
@click.option("--policy", "policy_path", type=_PATH,
              help="Tier policy YAML (default: GATE_POLICY, or policy: in GATE_CONFIG, or the policy shipped with "
                   "tiergate).")
@click.option("--trust", "trust_path", type=_PATH,
              help="Trust store YAML (required; default: GATE_TRUST, or trust: in GATE_CONFIG).")
@click.option("--log", "log_target",
              help="Log store: a SQLite file, or a postgresql:// URL shared by several replicas (default: GATE_LOG, "
                   "or log: in GATE_CONFIG, or gate-log.db).")
@click.option("--log-namespace", envvar="GATE_LOG_NAMESPACE",
              help="PostgreSQL schema (default tiergate) or SQLite table prefix of the log.")
@click.option("--key", "key_path", type=_PATH,
              help="The gate's Ed25519 private key, signing checkpoints (`gate keygen NAME`; required; default: "
                   "GATE_KEY, or key: in GATE_CONFIG).")
@click.option("--tokens", "tokens_path", type=_PATH, envvar="GATE_TOKENS",
              help="File of SHA-256 hashes of the bearer tokens allowed to submit and decide (required).")
@click.option("--origin", default="tiergate.local/log", show_default=True, envvar="GATE_ORIGIN",
              help="The log's name in its checkpoints (and the checkpoint key's name).")
@click.option("--max-body", type=int, default=16 * 1024 * 1024, show_default=True,
              help="Largest request body, bytes (attestations are capped at 2 MiB and webhook payloads at 1 MiB "
                   "below it).")
@click.option("--max-connections", type=click.IntRange(1, 10000), default=128, show_default=True,
              envvar="GATE_MAX_CONNECTIONS",
              help="Connections served at once (a thread each); more are answered 503 and closed.")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=60.0, show_default=True,
              envvar="GATE_REQUEST_TIMEOUT", metavar="SECONDS",
              help="Seconds a request may take to arrive, headers and body, however slowly it trickles in (408 "
                   "after); each read also times out after 30 s.")
@click.option("--hf-webhook-secret-env", metavar="VAR", envvar="GATE_HF_WEBHOOK_SECRET_ENV",
              help="Turn on POST /v1/webhooks/huggingface (containment): the environment variable holding the Hub "
                   "webhook's secret. Off (404) without it.")
@click.option("--hf-endpoint", metavar="URL", default="https://huggingface.co", show_default=True,
              envvar="GATE_HF_ENDPOINT", help="Hugging Face Hub API endpoint the webhook re-checks and contains on.")
@click.option("--hf-token-env", metavar="VAR", default="HF_TOKEN", show_default=True, envvar="GATE_HF_TOKEN_ENV",
              help="The environment variable holding the Hub token containment acts with (write access to the "
                   "watched repositories).")
@click.option("--max-client-connections", type=click.IntRange(1, 10000), envvar="GATE_MAX_CLIENT_CONNECTIONS",
              help="Connections one client address may hold at once (default: three quarters of --max-connections).")
@click.option("--reads-per-second", type=click.FloatRange(0), default=500.0, show_default=True,
              envvar="GATE_READS_PER_SECOND",
              help="Public (unauthenticated) requests one client address may make per second, in bursts of two "
                   "seconds' worth; more get 429. Decisions are never limited by it. 0: unlimited.")
@click.option("--read-share", type=click.FloatRange(0), default=0.1, show_default=True, envvar="GATE_READ_SHARE",
              metavar="SECONDS",
              help="Seconds of CPU time per second one client address's public requests may take while the service "
                   "decides (a costly page counts for what it costs); more get 429. 0: unlimited.")
@click.option("--checkpoint-interval", type=click.FloatRange(0, 3600), default=0.5, show_default=True,
              envvar="GATE_CHECKPOINT_INTERVAL", metavar="SECONDS",
              help="Sign a new checkpoint (and send it to the witnesses) at most this often; reads are served the "
                   "last one signed. 0: re-sign on the first read after every append.")
@click.option("--witness", "witnesses", nargs=2, multiple=True, metavar="URL VKEY",
              help="A witness to cosign each new checkpoint (repeatable): its add-checkpoint URL prefix and its "
                   "verifier key (as `gate witness` prints it, or a file holding it).")
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, policy_path: Path | None, trust_path: Path | None,
                  log_target: str | None, log_namespace: str | None, key_path: Path | None, tokens_path: Path | None,
                  origin: str, max_body: int, max_connections: int, request_timeout: float,
                  hf_webhook_secret_env: str | None, hf_endpoint: str, hf_token_env: str,
                  max_client_connections: int | None, reads_per_second: float, read_share: float,
                  checkpoint_interval: float,
                  witnesses: tuple[tuple[str, str], ...]) -> None:
    """Run the gate service: attestation store, decisions and the transparency log over HTTP.

    Submitting attestations and deciding need a bearer token; reading the log is public. The OpenAPI document is at
    /openapi.json. With --hf-webhook-secret-env it also answers the Hugging Face Hub's webhook and contains releases
    the gate denies. Stops cleanly on Ctrl-C or SIGTERM.
    """
    if ctx.invoked_subcommand is not None:
        return
    from tiergate.runtime import GateConfig
    from tiergate.service.config import DEFAULT_LOG, ServiceConfig, load_service
    from tiergate.service.http import GateHTTPServer

    # The one configuration (GATE_CONFIG and GATE_*), options winning; server:, server_key:, max_age:, token_env:
    # and timeout: are for the service's clients.
    shared = GateConfig.from_env()
    trust_path, policy_path, key_path = trust_path or shared.trust, policy_path or shared.policy, key_path or shared.key
    log_target = log_target or shared.log or DEFAULT_LOG
    missing = [flag for flag, value in (("--trust", trust_path), ("--key", key_path), ("--tokens", tokens_path))
               if value is None]
    if missing:
        raise ConfigError(f"gate serve needs {', '.join(missing)} (or env GATE_TRUST, GATE_KEY, GATE_TOKENS; or "
                          "trust: and key: in GATE_CONFIG)")
    assert trust_path
    assert key_path
    assert tokens_path
    config = ServiceConfig(trust=trust_path, key=key_path, tokens=tokens_path, policy=policy_path, log=log_target,
                           log_namespace=log_namespace, origin=origin, host=host, port=port, max_body=max_body,
                           hf_webhook_secret_env=hf_webhook_secret_env or None, hf_endpoint=hf_endpoint,
                           hf_token_env=hf_token_env, witnesses=witnesses,
                           checkpoint_interval=checkpoint_interval)
    service = load_service(config)
    try:
        server = GateHTTPServer((host, port), service, max_body, max_connections=max_connections,
                                request_timeout=request_timeout, max_client_connections=max_client_connections,
                                reads_per_second=reads_per_second, read_share=read_share)
    except OSError as exc:
        _close(service)
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"gate: serving on http://{bound_host!s}:{bound_port} (log {_shown(log_target)}, origin {origin}, "
               f"{service.store.size()} entries)", err=True)
    click.echo(f"gate: log verifier key {service.signer.verifier.vkey()}", err=True)
    if service.hf_webhook is not None:
        click.echo(f"gate: Hugging Face webhook on /v1/webhooks/huggingface (Hub {hf_endpoint})", err=True)
    for witness in service.witnesses:
        click.echo(f"gate: witness {witness.verifier.name} at {witness.url}", err=True)
    stop_publishing = threading.Event()
    if checkpoint_interval > 0:
        threading.Thread(target=service.run_publisher, args=(stop_publishing,), daemon=True,
                         name="checkpoint-publisher").start()
    try:
        serve_until_stopped(server)
    finally:
        stop_publishing.set()
        _close(service)
    click.echo("gate: stopped", err=True)


def serve_until_stopped(server: socketserver.BaseServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the listening socket."""
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()


def _close(service: GateService) -> None:
    """Let running webhook checks log their results, then close the webhook table and the log."""
    webhook = service.hf_webhook
    if webhook is not None:
        webhook.close()
        webhook.seen.close()
    service.store.close()


def _shown(target: str) -> str:
    """The log target for messages, without a password."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(target)
    except ValueError:
        return "<log URL>"
    if parts.password is None:
        return target
    return target.replace(f":{parts.password}@", ":***@", 1)


@serve_command.command("token-hash")
def token_hash_command() -> None:
    """Read a bearer token on standard input and print the line to put in the tokens file (its SHA-256).

    Make a token with e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`.
    """
    from tiergate.service.tokens import hash_token

    token = sys.stdin.readline().strip()
    if not token:
        raise ConfigError("no token on standard input (pipe it in: echo \"$TOKEN\" | gate serve token-hash)")
    click.echo(hash_token(token))
