"""``gate mlflow check``: the client-side check CI runs against a tracking server, with gate check's exit codes."""

from __future__ import annotations

import pytest

from support import run_gate
from mlflow_e2e import GateServer, Registry, hosted_evidence

pytestmark = pytest.mark.e2e


def gate_mlflow(gate_server: GateServer, *args: str):
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "GATE_TRUST": str(gate_server.trust_path)}
    return run_gate("mlflow", "check", *args, "--tracking-uri", gate_server.server.url, env=env)


def test_check_denies_then_allows_once_attested(registry: Registry, gate_server: GateServer) -> None:
    model = registry.log_model()
    version = registry.register(model)
    uri = f"models:/{version.name}/{version.version}"

    denied = gate_mlflow(gate_server, uri, "--tier", "hosted")
    assert denied.returncode == 1, denied.stderr
    assert "decision: DENY" in denied.stdout and "NOT MET" in denied.stdout
    assert "tier 'hosted' denied" in denied.stderr and "risk-assessment" in denied.stderr
    assert model.manifest.digest in denied.stdout  # the digest of what was registered, computed client side

    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    allowed = gate_mlflow(gate_server, uri, "--tier", "hosted", "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert '"decision": "allow"' in allowed.stdout


def test_check_reports_bad_input_with_exit_2(registry: Registry, gate_server: GateServer) -> None:
    version = registry.register(registry.log_model())
    missing = gate_mlflow(gate_server, f"models:/{version.name}/99", "--tier", "internal")
    assert missing.returncode == 2 and f"cannot download models:/{version.name}/99" in missing.stderr
    not_registry = gate_mlflow(gate_server, "runs:/abc/model", "--tier", "internal")
    assert not_registry.returncode == 2 and "expected a registry URI" in not_registry.stderr
    bad_tier = gate_mlflow(gate_server, f"models:/{version.name}/{version.version}", "--tier", "public")
    assert bad_tier.returncode == 2 and "unknown tier 'public'" in bad_tier.stderr


def test_check_needs_a_tracking_server(tmp_path) -> None:
    result = run_gate("mlflow", "check", "models:/tiny/1", "--tier", "internal", cwd=tmp_path,
                      env={"MLFLOW_TRACKING_URI": ""})
    assert result.returncode == 2 and "no tracking server" in result.stderr
    assert list(tmp_path.iterdir()) == []  # MLflow's local fallback would have left a database here
