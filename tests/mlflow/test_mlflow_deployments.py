"""Real deployments (issue #10): MLflow's production runners with several workers, beside MLflow's basic-auth app,
and only on the MLflow versions the plugin is tested with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
import pytest
import requests

from mlflow_e2e import (GateServer, Registry, free_port, hosted_evidence, make_registry, server_command, server_env,
                        start_server)
from test_mlflow_publish import refused

from tiergate.integrations.mlflow.startup import (MLFLOW_FLOOR, MLFLOW_NEWEST, UNTESTED_ENV, deployment_problem,
                                              untested_mlflow)

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("admin", "gate-test-Admin-password-1")


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """MlflowClient sends these as HTTP basic auth."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])


def exercise(url: str, registry: Registry, auth: tuple[str, str] | None = None) -> None:
    """What every deployment must do: register (allowed), refuse an unattested promotion, allow an attested one,
    refuse a route that writes past the gate; a few times over, so that every worker answers some."""
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(url)  # mlflow.register_model resolves models:/ and registers there
    mlflow.set_registry_uri(url)
    try:
        _exercise(url, registry, auth)
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def _exercise(url: str, registry: Registry, auth: tuple[str, str] | None) -> None:
    from mlflow.exceptions import MlflowException

    for _ in range(3):
        model = registry.log_model()
        version = registry.register(model)
        assert registry.tags(version.name, version.version)["tiergate.decision"] == "allow"
        with pytest.raises(MlflowException) as excinfo:
            registry.client.set_registered_model_alias(version.name, "production", version.version)
        assert "tier 'hosted' denied" in refused(excinfo)
        demo = requests.post(f"{url}/ajax-api/3.0/mlflow/demo/generate", json={}, auth=auth, timeout=60)
        assert demo.status_code == 403 and demo.json()["error_code"] == "PERMISSION_DENIED", demo.text
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    assert registry.tags(version.name, version.version)["tiergate.tier"] == "hosted"


def test_uvicorn_with_two_workers_beside_basic_auth(gate_server: GateServer, tmp_path: Path, credentials: None) -> None:
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF)")
    env = {"GATE_TRUST": str(gate_server.trust_path), "GATE_LOG": str(tmp_path / "gate-log.db"),
           "GATE_MLFLOW_AUTH": "basic-auth", "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "gate-test-secret"}
    server = start_server(tmp_path / "server", f"sqlite:///{tmp_path / 'mlflow.db'}", env, workers=2)
    try:
        anonymous = requests.post(f"{server.url}/api/2.0/mlflow/registered-models/create", json={"name": "x"},
                                  timeout=60)
        assert anonymous.status_code == 401, anonymous.text  # basic-auth answers first
        exercise(server.url, make_registry(server.url, tmp_path, gate_server.world), ADMIN)
        log = server.log_text()
        assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2, log[-2000:]
    finally:
        server.stop()


def test_gunicorn_with_two_workers(gate_server: GateServer, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    env = {"GATE_TRUST": str(gate_server.trust_path), "GATE_LOG": str(tmp_path / "gate-log.db")}
    server = start_server(tmp_path / "server", f"sqlite:///{tmp_path / 'mlflow.db'}", env, workers=2,
                          options=("--gunicorn-opts", "--timeout 120"))
    try:
        exercise(server.url, make_registry(server.url, tmp_path, gate_server.world))
        workers = set(re.findall(r"Booting worker with pid: (\d+)", server.log_text()))
        assert len(workers) == 2, server.log_text()[-2000:]
    finally:
        server.stop()


def test_the_server_refuses_to_start_on_an_untested_mlflow(tmp_path: Path) -> None:
    """A newer MLflow may add a route that writes the registry; the plugin does not start on it unless the
    administrator says so. (The version is what the installed distribution metadata says: a stand-in earlier on
    the path says 9.0.0.)"""
    fake = tmp_path / "site" / "mlflow-9.0.0.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: mlflow\nVersion: 9.0.0\n")
    env = server_env({"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])})
    command = server_command(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts", free_port())
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            start_new_session=True)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("tiergate:")]
    assert lines == [(f"tiergate: refusing to start the MLflow server: mlflow 9.0.0 is not a version tiergate "
                      f"is tested with ({MLFLOW_FLOOR} to {MLFLOW_NEWEST}), so it cannot vouch that every route that "
                      f"writes the registry is gated; install mlflow {MLFLOW_NEWEST} or a tiergate that supports "
                      f"9.0.0, or set {UNTESTED_ENV}=9.0.0 to run it anyway")]
    assert "uvicorn" not in result.stderr.lower()  # no worker was started


@pytest.mark.parametrize(("version", "environ", "ok"), [
    (MLFLOW_FLOOR, {}, True), (MLFLOW_NEWEST, {}, True), ("3.17.1", {}, True),
    ("3.16.2", {}, False), ("3.18.0", {}, False), ("3.18.0", {UNTESTED_ENV: "3.18.0"}, True),
    ("3.18.0", {UNTESTED_ENV: "1"}, False),  # the opt-in names the version, so an upgrade needs a new decision
    ("3.18.0rc1", {}, False),
])
def test_which_mlflow_versions_the_plugin_starts_on(version: str, environ: dict[str, str], ok: bool) -> None:
    assert (untested_mlflow(version, environ) is None) == ok


def test_an_unknown_auth_app_is_refused_not_ignored() -> None:
    """A typo must not serve the registry without the authentication the administrator asked for."""
    assert deployment_problem({"GATE_MLFLOW_AUTH": "basic_auth"}) is not None
    assert deployment_problem({"GATE_MLFLOW_AUTH": "basic-auth"}) is None
    assert deployment_problem({}) is None


def test_the_declared_mlflow_range_is_exactly_what_ci_tests() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"mlflow>={MLFLOW_FLOOR},<={MLFLOW_NEWEST}"' in pyproject
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert f'GATE_MLFLOW_VERSION: "{MLFLOW_FLOOR}"' in workflow  # the floor job; the other jobs get the newest
    from importlib.metadata import version

    assert version("mlflow") in (MLFLOW_FLOOR, MLFLOW_NEWEST), "run the tests on the floor or the newest MLflow"
    assert sys.version_info >= (3, 10)
