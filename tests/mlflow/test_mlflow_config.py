"""A broken gate configuration denies rather than allows, and stops the server from starting at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlflow_e2e import GateServer, Registry, free_port, server_command, server_env

pytestmark = pytest.mark.e2e


def test_a_trust_store_broken_while_the_server_runs_denies_publishes_until_fixed(
        registry: Registry, gate_server: GateServer) -> None:
    from mlflow.exceptions import RestException

    model = registry.log_model()
    trust = gate_server.trust_path
    good = trust.read_bytes()
    try:
        trust.write_text("version: 1\nevaluators:\n  - id: evalco\n    keys: []\n")
        with pytest.raises(RestException) as excinfo:
            registry.register(model)
        assert excinfo.value.error_code == "PERMISSION_DENIED"
        message = excinfo.value.message
        assert "configuration is broken" in message and str(trust) in message and "evaluators[0]" in message
        run = registry.client.create_run(registry.experiment_id)
        registry.client.log_metric(run.info.run_id, "loss", 0.25)  # the rest of MLflow keeps working
    finally:
        trust.write_bytes(good)
    version = registry.register(model)  # the fixed file is picked up without a restart
    assert registry.tags(version.name, version.version)["tiergate.decision"] == "allow"


def test_the_server_refuses_to_start_with_a_broken_configuration(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ntiers:\n  - name: internal\n    requires: {max_age: soon}\n")
    command = server_command(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts", free_port())
    result = subprocess.run(command, env=server_env({"GATE_POLICY": str(policy)}), cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, start_new_session=True)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "tiergate: refusing to start the MLflow server" in result.stderr
    assert f"{policy}: tiers[0] (internal).requires.max_age" in result.stderr
    assert "uvicorn" not in result.stderr.lower()  # no worker was started
