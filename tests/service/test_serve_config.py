"""`gate serve` refuses to start on a broken configuration: one clear line, exit 2, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import run_gate
from tiergate.core.keys import PrivateKey, write_keypair

from .conftest import GateEnv


def serve(env: GateEnv, **overrides: str) -> object:
    options = {"--trust": str(env.trust), "--key": str(env.key), "--tokens": str(env.tokens),
               "--log": str(env.tmp / "config-test.db"), "--port": "0"}
    options.update(overrides)
    args = [a for k, v in options.items() if v is not None for a in (k, v)]
    return run_gate("serve", *args)


@pytest.mark.parametrize(("change", "message"), [
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



def test_gate_serve_reads_trust_key_and_log_from_gate_config(gate_env: GateEnv, tmp_path: Path) -> None:
    """One configuration: the service takes what it needs from GATE_CONFIG when no option says otherwise."""
    config = tmp_path / "gate.yaml"
    config.write_text(f"trust: {gate_env.trust}\nkey: {gate_env.key}\nlog: service.db\n")
    command = [sys.executable, "-m", "tiergate", "serve", "--tokens", str(gate_env.tokens), "--port", "0"]
    env = {**os.environ, "GATE_CONFIG": str(config)}
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, cwd=tmp_path, env=env)
    try:
        line = proc.stderr.readline().decode()  # type: ignore[union-attr]
        assert "serving on" in line and f"log {tmp_path / 'service.db'}" in line, line
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    config.write_text("trust: trust.yaml\nsurprise: 1\n")
    result = run_gate("serve", "--tokens", str(gate_env.tokens), "--port", "0", env={"GATE_CONFIG": str(config)})
    assert result.returncode == 2 and "surprise" in result.stderr and "Traceback" not in result.stderr
