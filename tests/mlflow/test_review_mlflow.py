"""Red-team review (issue 10): attacks on the frozen files of gated versions through a real ``mlflow server``."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from mlflow_e2e import GateServer, Registry, hosted_evidence

pytestmark = pytest.mark.e2e


def test_deleting_the_logged_model_does_not_unfreeze_a_gated_versions_files(
        registry: Registry, gate_server: GateServer, tmp_path) -> None:
    """DeleteLoggedModel only marks the logged model deleted: its files stay, and the registered version (whose
    storage location is fixed) still serves them. Before the fix, the guard looked the logged model up without
    deleted ones, found nothing, concluded "nothing left to protect", and let any user overwrite the weights that
    ``models:/name@production`` serves."""
    import mlflow.artifacts

    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    version = registry.register(model)
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    original = (model.local / "model.safetensors").read_bytes()
    location = registry.client.get_logged_model(model.model_id).artifact_location
    stored = location.removeprefix("mlflow-artifacts:").lstrip("/")

    registry.client.delete_logged_model(model.model_id)  # passes: tracking data only
    response = requests.put(f"{gate_server.server.url}/api/2.0/mlflow-artifacts/artifacts/{stored}/model.safetensors",
                            data=b"undecided bytes", timeout=30)
    assert response.status_code == 403, (response.status_code, response.text)
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{version.name}@production",
                                                dst_path=str(tmp_path / "served"))
    assert (tmp_path / "served" / "model.safetensors").read_bytes() == original or \
        Path(local, "model.safetensors").read_bytes() == original


@pytest.mark.parametrize("key", ["tiergate.tier", "TierGate.Decision", "tiergate.digest"])
def test_reserved_tags_cannot_be_forged_at_creation(registry: Registry, key: str) -> None:
    """A client may not write the gate's tags through CreateModelVersion's or CreateRegisteredModel's own tags."""
    from mlflow.exceptions import MlflowException

    model = registry.log_model()
    name = registry.unique("forge")
    with pytest.raises(MlflowException):
        registry.client.create_registered_model(name, tags={key: "open"})
    registry.client.create_registered_model(name)
    with pytest.raises(MlflowException):
        registry.client.create_model_version(name, model.uri, tags={key: "open"}, model_id=model.model_id)
    for mv in registry.client.search_model_versions(f"name='{name}'"):
        assert not any(k.casefold().startswith("tiergate.") and v == "open" for k, v in mv.tags.items()), mv.tags


def test_an_experiment_located_inside_a_gated_versions_files_cannot_add_files_to_them(
        registry: Registry, tmp_path) -> None:
    """CreateExperiment passes (tracking data) and takes any artifact location: one inside a gated version's folder
    makes every run of it write there. The run's upload names the gated logged model's id, so it is refused."""
    model = registry.log_model()
    version = registry.register(model)
    location = registry.client.get_logged_model(model.model_id).artifact_location
    experiment = registry.client.create_experiment(registry.unique("nested"), artifact_location=location)
    run = registry.client.create_run(experiment)
    extra = tmp_path / "extra.bin"
    extra.write_bytes(b"\0" * 32)
    with pytest.raises(requests.HTTPError) as excinfo:
        registry.client.log_artifact(run.info.run_id, str(extra))
    assert excinfo.value.response.status_code == 403
    assert f"{version.name}/{version.version}" in excinfo.value.response.json()["message"]


def test_spellings_of_an_artifact_write_into_a_gated_version_change_nothing(
        registry: Registry, gate_server: GateServer) -> None:
    """Encoded separators, doubled slashes, ``.`` segments, a trailing slash, the ajax-api prefix, other methods: each
    is refused or does not write; the weights stay what the gate decided on."""
    model = registry.log_model()
    registry.register(model)
    location = registry.client.get_logged_model(model.model_id).artifact_location
    stored = location.removeprefix("mlflow-artifacts:").lstrip("/")
    url = gate_server.server.url
    encoded = stored.replace("/", "%2F")
    targets = [
        f"{url}/api/2.0/mlflow-artifacts/artifacts/{encoded}%2Fmodel.safetensors",
        f"{url}/api/2.0/mlflow-artifacts/artifacts/{stored.replace('/', '//')}//model.safetensors",
        f"{url}//api/2.0/mlflow-artifacts/artifacts/{stored}/model.safetensors",
        f"{url}/api/2.0/mlflow-artifacts/artifacts/./{stored}/./model.safetensors",
        f"{url}/api/2.0/mlflow-artifacts/artifacts/{stored}/x/../model.safetensors",
        f"{url}/api/2.0/mlflow-artifacts/artifacts/{stored}/x/%2E%2E/model.safetensors",
        f"{url}/ajax-api/2.0/mlflow-artifacts/artifacts/{stored}/model.safetensors",
        f"{url}/api/2.0/mlflow-artifacts/artifacts/{stored}/model.safetensors/",
    ]
    for target in targets:
        for method in ("PUT", "POST", "PATCH"):
            response = requests.request(method, target, data=b"undecided bytes", timeout=30, allow_redirects=True)
            assert response.status_code >= 400, (method, target, response.status_code, response.text[:200])
    assert (gate_server.stored_file(location, "model.safetensors").read_bytes()
            == (model.local / "model.safetensors").read_bytes())
