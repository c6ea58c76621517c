"""What the gate leaves alone, what it keeps for itself, and how it fails: closed, with a 403, never a 5xx."""

from __future__ import annotations

import pytest
import requests

from mlflow_e2e import GateServer, Registry

pytestmark = pytest.mark.e2e


def test_prompts_pass_untouched_even_to_release_aliases(registry: Registry, gate_server: GateServer) -> None:
    import mlflow.genai

    name = registry.unique("prompt")
    prompt = mlflow.genai.register_prompt(name=name, template="Summarize {{text}} in one line.")
    mlflow.genai.set_prompt_alias(name, "production", prompt.version)
    assert mlflow.genai.load_prompt(f"prompts:/{name}@production").template.startswith("Summarize")
    # The client hides prompts from get_model_version; the REST API shows the version's tags.
    raw = requests.get(f"{gate_server.server.url}/api/2.0/mlflow/model-versions/get",
                       params={"name": name, "version": str(prompt.version)}, timeout=30).json()
    assert not any(tag["key"].startswith("tiergate.") for tag in raw["model_version"]["tags"])


def test_calls_outside_the_registry_pass_untouched(registry: Registry) -> None:
    run = registry.client.create_run(registry.experiment_id)
    registry.client.log_metric(run.info.run_id, "loss", 0.5)
    registry.client.set_tag(run.info.run_id, "tiergate.tier", "open")  # a run tag, not the gate's business
    found = registry.client.search_runs([registry.experiment_id])
    assert [r.data.metrics["loss"] for r in found if r.info.run_id == run.info.run_id] == [0.5]


def test_aliases_and_tags_the_policy_does_not_name_pass(registry: Registry) -> None:
    version = registry.register(registry.log_model())
    registry.client.set_registered_model_alias(version.name, "candidate", version.version)
    registry.client.set_model_version_tag(version.name, version.version, "release.tier", "experimental")
    registry.client.delete_registered_model_alias(version.name, "candidate")


def test_tiergate_tags_cannot_be_set_or_removed_by_clients(registry: Registry) -> None:
    from mlflow.exceptions import RestException

    model = registry.log_model()
    version = registry.register(model)
    for attempt in (
        lambda: registry.client.set_model_version_tag(version.name, version.version, "tiergate.tier", "open"),
        lambda: registry.client.set_model_version_tag(version.name, version.version, "TierGate.decision", "allow"),
        lambda: registry.client.delete_model_version_tag(version.name, version.version, "tiergate.digest"),
        lambda: registry.client.create_model_version(version.name, model.uri, model_id=model.model_id,
                                                     tags={"tiergate.tier": "open"}),
    ):
        with pytest.raises(RestException) as excinfo:
            attempt()
        assert excinfo.value.error_code == "PERMISSION_DENIED"
        assert "written by the release gate only" in excinfo.value.message
    assert registry.tags(version.name, version.version)["tiergate.tier"] == "internal"


def test_the_ui_s_ajax_api_is_gated_like_the_rest_api(registry: Registry, gate_server: GateServer) -> None:
    version = registry.register(registry.log_model())
    response = requests.post(f"{gate_server.server.url}/ajax-api/2.0/mlflow/registered-models/alias",
                             json={"name": version.name, "alias": "production", "version": version.version}, timeout=30)
    assert response.status_code == 403
    body = response.json()
    assert body["error_code"] == "PERMISSION_DENIED" and "risk-assessment" in body["message"]
    # MLflow's parser also reads camelCase and double-encoded JSON bodies: so does the gate.
    # JSON text built with %: its braces stay literal.
    raw = ('"{\\"name\\": \\"%s\\", \\"version\\": \\"%s\\", \\"key\\": \\"release.tier\\", '  # noqa: UP031
           '\\"value\\": \\"open\\"}"' % (version.name, version.version))
    response = requests.post(f"{gate_server.server.url}/api/2.0/mlflow/model-versions/set-tag", data=raw,
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 403 and "tier 'open' denied" in response.json()["message"]


def test_a_call_the_gate_cannot_decide_is_refused_with_a_403_not_a_5xx(registry: Registry) -> None:
    from mlflow.exceptions import RestException

    name = registry.unique("reg")
    registry.client.create_registered_model(name)
    run = registry.client.create_run(registry.experiment_id)
    with pytest.raises(RestException) as excinfo:  # MLflow's own source check refuses this one before its store
        registry.client.create_model_version(name, "/etc", run_id=run.info.run_id)
    assert excinfo.value.get_http_status_code() in (400, 403)
    with pytest.raises(RestException) as excinfo:
        registry.client.create_model_version(name, f"runs:/{run.info.run_id}/no-such-folder", run_id=run.info.run_id)
    assert excinfo.value.error_code == "PERMISSION_DENIED" and excinfo.value.get_http_status_code() == 403
    assert registry.client.search_model_versions(f"name = '{name}'") == []
    with pytest.raises(RestException) as excinfo:
        registry.client.set_registered_model_alias(name, "production", "7")  # no such version
    assert excinfo.value.get_http_status_code() == 403 and "fails closed" in excinfo.value.message


def test_withdrawing_a_release_is_never_blocked_and_is_logged(registry: Registry, gate_server: GateServer) -> None:
    from mlflow_e2e import hosted_evidence

    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    version = registry.register(model)
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    registry.client.set_model_version_tag(version.name, version.version, "release.tier", "hosted")
    registry.client.delete_registered_model_alias(version.name, "production")
    registry.client.delete_model_version_tag(version.name, version.version, "release.tier")
    log = gate_server.server.log_text()
    assert f"removing alias 'production' on model '{version.name}'" in log
    assert f"removing tag release.tier on model '{version.name}' version {version.version}" in log
