"""``gate witness``: run a C2SP tlog-witness that cosigns a gate log's checkpoints only if they are consistent."""

from __future__ import annotations

import time
from pathlib import Path

import click

from tiergate.errors import ConfigError

_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command("witness")
@click.option("--config", "config_path", type=_PATH, required=True,
              help='The logs to witness, JSON: {"logs": [{"origin": ORIGIN, "keys": [LOG_VKEY]}]} (the vkey `gate '
                   'serve` prints).')
@click.option("--key", "key_path", type=_PATH, required=True,
              help="The witness's Ed25519 private key (`gate keygen NAME`); keep it apart from any log's key.")
@click.option("--name", required=True, help="The witness's name in its cosignatures, e.g. witness.example.com/w1.")
@click.option("--state", "state_path", type=_PATH, required=True,
              help="File holding the latest cosigned checkpoint per log (created; back it up: losing it lets a "
                   "fork through).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8710, show_default=True,
              help="Port (0: any free port; the one chosen is printed).")
def witness_command(config_path: Path, key_path: Path, name: str, state_path: Path, host: str, port: int) -> None:
    """Run a witness (C2SP tlog-witness, POST /add-checkpoint): it cosigns a checkpoint of a configured log only with
    a valid consistency proof from the last checkpoint it cosigned for that log, and refuses a fork (409).

    Prints the witness's verifier key (give it to `gate serve --witness` and to auditors' `--witness`). Stops on
    Ctrl-C or SIGTERM.
    """
    from tiergate.cli.serve import serve_until_stopped
    from tiergate.core.keys import PrivateKey
    from tiergate.core.log.cosignature import WitnessSigner
    from tiergate.core.log.witness import Witness, WitnessState, load_witness_config
    from tiergate.service.witness import WitnessHTTPServer

    logs = load_witness_config(config_path)
    key = PrivateKey.load(key_path)
    if key.public.algorithm != "ed25519":
        raise ConfigError(f"{key_path}: a witness cosigns with Ed25519; this is a {key.public.algorithm} key")
    signer = WitnessSigner(name, key)
    for log in logs.values():
        if any(k.raw_public_key == signer.verifier.raw_public_key for k in log.keys):
            raise ConfigError(f"{key_path}: the witness key is also a key of log {log.origin!r}; use a key of its own")
    witness = Witness(signer, logs, WitnessState(state_path), time.time)
    try:
        server = WitnessHTTPServer((host, port), witness)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
    click.echo(f"gate: witness serving on http://{bound_host}:{bound_port} ({len(logs)} log(s))", err=True)
    click.echo(f"gate: witness verifier key {signer.verifier.vkey()}", err=True)
    serve_until_stopped(server)
    click.echo("gate: witness stopped", err=True)
