"""Fixtures that run the real ``gate serve`` in its own process group on a free 127.0.0.1 port.

One server (SQLite log) is shared by the whole session for the endpoint tests; tests that corrupt, crash or
replicate a log start their own with :func:`start_server` and get them killed (whole process group) afterwards.
The port is chosen by the server itself (``--port 0``) and read from its start-up line, so there is no race for a
"free" port between choosing and binding it.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator

import pytest
import requests
import yaml

from support import Evaluator, World
from tiergate.runtime.client import GateClient
from tiergate.core.keys import PrivateKey, PublicKey, write_keypair
from tiergate.core.log.checkpoint import NoteSigner
from tiergate.service.tokens import hash_token

ORIGIN = "test.tiergate.local/log"
STARTUP_TIMEOUT = 30.0
_SERVING = re.compile(r"serving on (http://127\.0\.0\.1:\d+)")

POLICY = {
    "version": 1,
    "name": "service-tests",
    "tiers": [
        {"name": "internal"},
        {"name": "hosted", "requires": {"signers": {"min_organizations": 1}, "evaluations": [
            {"id": "sr", "benchmark": "strongreject", "metric": "score", "comparator": "<=", "threshold": 0.10}]}},
        {"name": "gated", "requires": {"signers": {"min_organizations": 2, "kinds": ["third_party"]}}},
        {"name": "open", "requires": {"formats": {"allow": ["safetensors"]}, "evaluations": [
            {"id": "mmlu", "benchmark": "mmlu", "metric": "acc", "comparator": ">", "threshold": 0.5}]}},
    ],
    "targets": {"huggingface": {"public": "open", "private": "internal"}},
}


@dataclass
class GateEnv:
    """Everything a gate service needs, written once per session: trust store, gate key, tokens, policy."""

    tmp: Path
    world: World
    trust: Path
    key: Path
    pub: Path
    vkey: Path
    tokens: Path
    token: str
    policy: Path

    def serve_args(self, log: str | Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "tiergate", "serve", "--port", "0", "--trust", str(self.trust), "--key",
                str(self.key), "--tokens", str(self.tokens), "--policy", str(self.policy), "--log", str(log),
                "--origin", ORIGIN, *extra]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: str
    stderr: Path
    env: GateEnv

    def client(self, token: str | None = "default", timeout: float = 30.0) -> GateClient:  # noqa: S107 - a marker
        return GateClient(self.url, token=self.env.token if token == "default" else token, timeout=timeout,
                          answer_key=PublicKey.load(self.env.pub))

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)  # generous: CI shares 2 cores with a second xdist worker

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)

    def output(self) -> str:
        return self.stderr.read_text(errors="replace")


def launch(env: GateEnv, log: str | Path, *extra: str, name: str = "gate-serve",
           preexec: Callable[[], None] | None = None) -> Server:
    """``gate serve`` on ``log``; ``preexec`` runs in the child before it starts (e.g. to set a resource limit)."""
    stderr = env.tmp / f"{name}-{secrets.token_hex(4)}.stderr"
    with open(stderr, "wb") as handle:
        proc = subprocess.Popen(env.serve_args(log, *extra), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=handle, start_new_session=True, cwd=env.tmp,
                                preexec_fn=preexec)  # noqa: PLW1509 - a resource limit, set before exec; no threads
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        match = _SERVING.search(stderr.read_text(errors="replace"))
        if match:
            return Server(proc, match.group(1), str(log), stderr, env)
        if proc.poll() is not None:
            raise RuntimeError(f"gate serve exited with {proc.returncode}: {stderr.read_text(errors='replace')}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"gate serve did not start within {STARTUP_TIMEOUT} s: {stderr.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def gate_env(tmp_path_factory: pytest.TempPathFactory, key_pool: Callable[..., PrivateKey]) -> GateEnv:
    tmp = tmp_path_factory.mktemp("gate-service")
    evaluators = {
        "evalco": Evaluator("evalco", "EvalCo", "third_party", key_pool("evalco")),
        "redteam": Evaluator("redteam", "RedTeam Labs", "third_party", key_pool("redteam")),
        "aisi": Evaluator("aisi", "UK AI Security Institute", "government", key_pool("aisi")),
    }
    world = World(tmp, evaluators)
    key = PrivateKey.generate()
    private, public = write_keypair(key, tmp / "gate")
    vkey = tmp / "gate.vkey"
    vkey.write_text(NoteSigner(ORIGIN, key).verifier.vkey() + "\n")
    token = secrets.token_urlsafe(24)
    tokens = tmp / "tokens.txt"
    tokens.write_text(f"# service tests\n{hash_token(token)}  tests\n{hash_token('other-token')}  other\n")
    policy = tmp / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    return GateEnv(tmp, world, world.trust_path(), private, public, vkey, tokens, token, policy)


@pytest.fixture(scope="session")
def server(gate_env: GateEnv) -> Iterator[Server]:
    """The session's shared service (SQLite log). Tests may add to its log but must not corrupt it."""
    started = launch(gate_env, gate_env.tmp / "shared-log.db", name="shared")
    yield started
    started.kill()


@dataclass
class Launcher:
    env: GateEnv
    started: list[Server] = field(default_factory=list)

    def __call__(self, log: str | Path, *extra: str) -> Server:
        started = launch(self.env, log, *extra)
        self.started.append(started)
        return started


@pytest.fixture
def start_server(gate_env: GateEnv) -> Iterator[Launcher]:
    """Start services of one's own (own log); every process group is killed after the test."""
    launcher = Launcher(gate_env)
    yield launcher
    for started in launcher.started:
        started.kill()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
