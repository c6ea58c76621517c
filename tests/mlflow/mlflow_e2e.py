"""A real ``mlflow server --app-name tiergate`` for the tests, and small real models to publish to it.

The fixtures are re-exported by this folder's conftest.py; the server is memoized per pytest session, so every
module shares one server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator, Mapping

import pytest
import requests

from support import Evaluator, World
from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.timeutil import utcnow
from tiergate.core.verify import AttestationInput

STARTUP_TIMEOUT = 120.0  # a cold first start on 2 cores takes ~30 s
SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # otherwise a huey job runner of ~7 processes starts
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


# --- models -------------------------------------------------------------------------------------------------------


def safetensors_bytes(tensors: Mapping[str, tuple[str, list[int], bytes]]) -> bytes:
    """A safetensors file, written by hand: u64 little-endian header length, JSON header, then the tensor data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header with spaces to 8-byte alignment
    return struct.pack("<Q", len(raw)) + raw + b"".join(data for _, _, data in tensors.values())


def write_tiny_model(root: Path, seed: int = 0) -> Path:
    """A tiny two-layer model: safetensors weights (float32), a config and a tokenizer (named after the folder, so
    that every model of a session has its own digest)."""
    root.mkdir(parents=True, exist_ok=True)
    weights = {
        "layer0.weight": ("F32", [8, 4], struct.pack("<32f", *[(seed + i) / 64 for i in range(32)])),
        "layer0.bias": ("F32", [8], struct.pack("<8f", *[seed / 8] * 8)),
    }
    (root / "model.safetensors").write_bytes(safetensors_bytes(weights))
    (root / "config.json").write_text(json.dumps({"architectures": ["Tiny"], "hidden_size": 4, "name": root.name}))
    (root / "tokenizer.json").write_text('{"version": "1.0"}')
    return root


def hosted_evidence(world: World, manifest: Manifest, evaluator: str = "evalco") -> list[AttestationInput]:
    """What the default policy's 'hosted' tier asks for, signed now (so the test does not age out)."""
    when = utcnow() - timedelta(hours=1)
    specs: list[tuple[str, dict[str, float], int]] = [
        ("risk_assessment", {"completed": 1}, 1),
        ("wmdp_bio", {"acc": 0.26}, 1273),
        ("wmdp_chem", {"acc": 0.27}, 408),
        ("wmdp_cyber", {"acc": 0.28}, 1987),
        ("strongreject", {"score": 0.04}, 313),
        ("harmbench", {"asr": 0.02}, 400),
    ]
    return [world.attest(manifest, evaluator, bench, metrics, sample_size=n, when=when) for bench, metrics, n in specs]


@dataclass
class Published:
    """A logged model on the server: its id, the local folder it was uploaded from, and that folder's manifest."""

    model_id: str
    local: Path
    manifest: Manifest

    @property
    def uri(self) -> str:
        return f"models:/{self.model_id}"


@dataclass
class Registry:
    """Helpers that drive the server the way a user does, with the real MlflowClient."""

    client: Any
    experiment_id: str
    tmp: Path
    world: World
    counter: list[int] = field(default_factory=lambda: [0])
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def unique(self, prefix: str) -> str:
        """Names unique across the session: every test shares one server and its registry."""
        self.counter[0] += 1
        return f"{prefix}-{self.run}-{self.counter[0]}"

    def log_model(self, seed: int | None = None) -> Published:
        name = self.unique("tiny")
        local = write_tiny_model(self.tmp / name, seed if seed is not None else self.counter[0])
        model = self.client.create_logged_model(self.experiment_id, name=name)
        self.client.log_model_artifacts(model.model_id, str(local))
        return Published(model.model_id, local, hash_model(local))

    def attach(self, model: Published, attestations: list[AttestationInput]) -> None:
        """Upload attestations into the model's ``.attestations/`` artifact folder, as an evaluator would."""
        folder = self.tmp / self.unique("attestations")
        folder.mkdir()
        for item in attestations:
            (folder / Path(item.source).name).write_bytes(item.data)
        self.client.log_model_artifacts(model.model_id, str(folder), artifact_path=".attestations")

    def register(self, model: Published, name: str | None = None) -> Any:
        import mlflow

        return mlflow.register_model(model.uri, name or self.unique("reg"))

    def tags(self, name: str, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(name, version).tags)


# --- the server ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def server_command(backend_uri: str, artifacts: Path, port: int, app_name: str | None = "tiergate",
                   workers: int = 1, options: tuple[str, ...] = ()) -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), *options]
    return command + (["--app-name", app_name] if app_name else [])


def server_env(gate_env: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without any GATE_* of the developer's, plus the server's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    return {**env, **SERVER_ENV, **gate_env}


def start_server(workdir: Path, backend_uri: str, gate_env: Mapping[str, str], app_name: str | None = "tiergate",
                 workers: int = 1, options: tuple[str, ...] = ()) -> Server:
    """Start ``mlflow server`` in its own session (so that stopping it stops its workers) and wait until healthy."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "server.log"
    command = server_command(backend_uri, workdir / "mlartifacts", port, app_name, workers, options)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=workdir,
                                   env=server_env(gate_env), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{server.log_text()[-3000:]}")
        try:
            if requests.get(f"{server.url}/health", timeout=2).ok:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"mlflow server not healthy after {STARTUP_TIMEOUT:.0f} s:\n{server.log_text()[-3000:]}")


def session_world(tmp: Path, key_pool: Callable[..., PrivateKey]) -> World:
    tmp.mkdir(parents=True, exist_ok=True)
    return World(tmp, {
        "acme-internal": Evaluator("acme-internal", "Acme AI", "developer", key_pool("acme-internal")),
        "evalco": Evaluator("evalco", "EvalCo", "third_party", key_pool("evalco")),
        "aisi": Evaluator("aisi", "UK AI Security Institute", "government", key_pool("aisi")),
    })


@dataclass
class GateServer:
    """The shared server and what it was started with."""

    server: Server
    world: World
    trust_path: Path
    workdir: Path

    @property
    def log_path(self) -> Path:
        return self.workdir / "gate-log.db"

    @property
    def artifacts_dir(self) -> Path:
        """The server's ``--artifacts-destination``: its artifact store, plain files on this machine's disk."""
        return self.workdir / "server" / "mlartifacts"

    def stored_file(self, artifact_uri: str, *parts: str) -> Path:
        """Where a file under a proxied artifact URI (``mlflow-artifacts:/1/models/m-…/artifacts``) lies on disk."""
        from urllib.parse import urlparse

        return self.artifacts_dir.joinpath(urlparse(artifact_uri).path.lstrip("/"), *parts)


_SHARED: dict[str, GateServer] = {}


def shared_server(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory,
                  key_pool: Callable[..., PrivateKey]) -> GateServer:
    """One plugin server per pytest session, however many test modules use it; stopped when the session ends."""
    if "server" not in _SHARED:
        workdir = tmp_path_factory.mktemp("mlflow-gate")
        world = session_world(workdir / "world", key_pool)
        trust = world.trust_path()
        gate_env = {"GATE_TRUST": str(trust), "GATE_LOG": str(workdir / "gate-log.db")}
        server = start_server(workdir / "server", f"sqlite:///{workdir / 'server' / 'mlflow.db'}", gate_env)
        config.add_cleanup(server.stop)
        _SHARED["server"] = GateServer(server, world, trust, workdir)
    return _SHARED["server"]


@pytest.fixture(scope="session")
def gate_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory,
                key_pool: Callable[..., PrivateKey]) -> GateServer:
    return shared_server(pytestconfig, tmp_path_factory, key_pool)


@pytest.fixture(scope="session")
def client_env(gate_server: GateServer) -> Iterator[None]:
    """Point the mlflow client at the server; no retries, so a refusal surfaces at once."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")}
    os.environ["MLFLOW_TRACKING_URI"] = gate_server.server.url
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_registry(server_url: str, tmp: Path, world: World) -> Registry:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server_url, registry_uri=server_url)
    experiment_id = client.create_experiment(f"gate-{os.getpid()}-{time.monotonic_ns()}")
    return Registry(client, experiment_id, tmp, world)


def own_registry(server_url: str, tmp: Path, world: World, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A registry on a server a test started itself (the client pointed at it for this test only)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server_url)
    mlflow.set_registry_uri(server_url)
    return make_registry(server_url, tmp, world)


@pytest.fixture
def registry(gate_server: GateServer, client_env: None, tmp_path: Path) -> Registry:
    import mlflow

    mlflow.set_tracking_uri(gate_server.server.url)
    mlflow.set_registry_uri(gate_server.server.url)
    return make_registry(gate_server.server.url, tmp_path, gate_server.world)
