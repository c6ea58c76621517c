"""`gate serve` refuses to start on a broken configuration: one clear line, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import run_gate
from gate.core.keys import PrivateKey, write_keypair

from .conftest import GateEnv


def serve(env: GateEnv, **overrides: str) -> "object":
    options = {"--trust": str(env.trust), "--key": str(env.key), "--tokens": str(env.tokens),
               "--log": str(env.tmp / "config-test.db"), "--port": "0"}
    options.update(overrides)
    args = [a for k, v in options.items() if v is not None for a in (k, v)]
    return run_gate("serve", *args)


@pytest.mark.parametrize("change, message", [
    ({"--trust": None}, "gate serve needs --trust"),
    ({"--trust": "/nonexistent/trust.yaml"}, "trust store not found"),
    ({"--tokens": "CLEAR"}, "not a SHA-256 hex digest"),
    ({"--key": "ECDSA"}, "checkpoints are signed with Ed25519"),
    ({"--origin": "has space"}, "contains a space"),
    ({"--log": "postgresql://postgres@127.0.0.1:1/test"}, "cannot connect to the PostgreSQL log"),
    ({"--log": "mysql://x/y"}, "unsupported log store"),
    ({"--max-body": "10"}, "--max-body 10 must be between"),
])
def test_broken_configuration_refuses_to_start(gate_env: GateEnv, tmp_path: Path, change, message) -> None:
    change = dict(change)
    if change.get("--tokens") == "CLEAR":
        clear = tmp_path / "tokens.txt"
        clear.write_text("plain-text-token\n")
        change["--tokens"] = str(clear)
    if change.get("--key") == "ECDSA":
        change["--key"] = str(write_keypair(PrivateKey.generate("ecdsa-p256"), tmp_path / "ec")[0])
    result = serve(gate_env, **change)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_token_hash_reads_stdin(gate_env: GateEnv) -> None:
    result = run_gate("serve", "token-hash", input=b"s3cret\n")
    assert result.returncode == 0 and len(result.stdout.strip()) == 64
    assert run_gate("serve", "token-hash", input=b"\n").returncode == 2
