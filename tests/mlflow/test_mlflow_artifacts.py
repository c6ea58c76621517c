"""End to end: once the gate has decided on a version, its files cannot be changed through MLflow's artifact API.

The bypass this closes: register and promote a model with its evidence, then overwrite the weights through the
artifact proxy (``log_model_artifact`` to the same logged model, ``log_artifact`` to the run):
``models:/name@production`` served unevaluated bytes while the version's tags still said allow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from mlflow_e2e import GateServer, Published, Registry, hosted_evidence

pytestmark = pytest.mark.e2e

FROZEN = "are frozen once published through the release gate; log a new model and register a new version"


def refused(excinfo: pytest.ExceptionInfo[requests.HTTPError]) -> str:
    """The gate's message, after checking the failure is its 403. MLflow's client raises ``requests.HTTPError`` (not
    ``RestException``) for artifact calls, with the server's JSON in the response."""
    response = excinfo.value.response
    assert response is not None and response.status_code == 403, excinfo.value
    body = response.json()
    assert body["error_code"] == "PERMISSION_DENIED", body
    return str(body["message"])


def changed_copy(model: Published, tmp: Path) -> Path:
    """The model's weight file with one bit flipped, under the same name."""
    data = bytearray((model.local / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    changed = tmp / "changed" / "model.safetensors"
    changed.parent.mkdir(parents=True, exist_ok=True)
    changed.write_bytes(bytes(data))
    return changed


def served_weights(uri: str, tmp: Path) -> bytes:
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp))
    return (Path(local) / "model.safetensors").read_bytes()


def test_the_weights_of_a_published_version_cannot_be_overwritten_through_the_artifact_api(
        registry: Registry, gate_server: GateServer, tmp_path: Path) -> None:
    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    version = registry.register(model)
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    original = (model.local / "model.safetensors").read_bytes()

    changed = changed_copy(model, tmp_path)
    with pytest.raises(requests.HTTPError) as excinfo:
        registry.client.log_model_artifact(model.model_id, str(changed))  # the bypass: same logged model, same name
    message = refused(excinfo)
    assert f"model version {version.name}/{version.version} {FROZEN}" in message
    assert "model.safetensors" in message and model.manifest.digest in message
    with pytest.raises(requests.HTTPError) as excinfo:
        registry.client.log_model_artifacts(model.model_id, str(changed.parent), artifact_path="extra")  # new files too
    refused(excinfo)

    assert served_weights(f"models:/{version.name}@production", tmp_path / "served") == original
    tags = registry.tags(version.name, version.version)
    assert (tags["tiergate.decision"], tags["tiergate.digest"]) == ("allow", model.manifest.digest)
    assert gate_server.stored_file(registry.client.get_logged_model(model.model_id).artifact_location,
                                   "model.safetensors").read_bytes() == original


def test_deletes_and_the_other_artifact_routes_are_refused_too(registry: Registry, gate_server: GateServer) -> None:
    model = registry.log_model()
    version = registry.register(model)  # registered through the gate: frozen already, at tier internal
    location = registry.client.get_logged_model(model.model_id).artifact_location
    stored = location.removeprefix("mlflow-artifacts:").lstrip("/")  # "<experiment>/models/<model id>/artifacts"
    url = gate_server.server.url
    experiment = stored.split("/models/")[0]
    attempts = [
        ("DELETE", f"{url}/api/2.0/mlflow-artifacts/artifacts/{stored}/model.safetensors", None),
        ("DELETE", f"{url}/api/2.0/mlflow-artifacts/artifacts/{stored}", None),
        ("DELETE", f"{url}/ajax-api/2.0/mlflow-artifacts/artifacts/{experiment}/models", None),  # above it
        ("PUT", f"{url}/ajax-api/2.0/mlflow-artifacts/artifacts/{stored}/model.safetensors", b"not the weights"),
        ("PUT", f"{url}/api/2.0/mlflow-artifacts/artifacts/{stored}/.attestations/weights.safetensors", b"\0" * 16),
        ("POST", f"{url}/api/2.0/mlflow-artifacts/mpu/create/{stored}",
         json.dumps({"path": "model.safetensors", "num_parts": 1})),
        ("POST", f"{url}/api/2.0/mlflow/artifacts/presigned-upload-url",
         json.dumps({"model_id": model.model_id, "path": "model.safetensors"})),
    ]
    for method, target, body in attempts:
        response = requests.request(method, target, data=body, timeout=30,
                                    headers={"Content-Type": "application/json"} if method == "POST" else {})
        assert response.status_code == 403, (method, target, response.status_code, response.text)
        assert response.json()["error_code"] == "PERMISSION_DENIED"
        assert f"{version.name}/{version.version} {FROZEN}" in response.json()["message"], response.text
    assert (gate_server.stored_file(location, "model.safetensors").read_bytes()
            == (model.local / "model.safetensors").read_bytes())


def test_a_version_registered_from_a_run_freezes_its_folder_not_the_rest_of_the_run(
        registry: Registry, gate_server: GateServer, tmp_path: Path) -> None:
    model = registry.log_model()
    run = registry.client.create_run(registry.experiment_id)
    registry.client.log_artifacts(run.info.run_id, str(model.local), "weights")
    name = registry.unique("reg")
    registry.client.create_registered_model(name)
    version = registry.client.create_model_version(name, f"runs:/{run.info.run_id}/weights", run_id=run.info.run_id)

    changed = changed_copy(model, tmp_path)
    with pytest.raises(requests.HTTPError) as excinfo:
        registry.client.log_artifact(run.info.run_id, str(changed), "weights")
    assert f"model version {name}/{version.version} {FROZEN}" in refused(excinfo)
    response = requests.post(f"{gate_server.server.url}/ajax-api/2.0/mlflow/upload-artifact",  # the UI's upload
                             params={"run_uuid": run.info.run_id, "path": "weights/config.json"}, data=b"{}",
                             timeout=30)
    assert response.status_code == 403 and FROZEN in response.json()["message"]

    registry.client.log_artifact(run.info.run_id, str(changed), "checkpoints")  # outside the version's folder: fine
    assert {f.path for f in registry.client.list_artifacts(run.info.run_id)} == {"checkpoints", "weights"}
    assert served_weights(f"models:/{name}/{version.version}", tmp_path / "served") == (
        model.local / "model.safetensors").read_bytes()


def test_evidence_can_still_be_attached_to_a_registered_version(registry: Registry) -> None:
    model = registry.log_model()
    version = registry.register(model)
    registry.attach(model, hosted_evidence(registry.world, model.manifest))  # into .attestations/: allowed
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    assert registry.tags(version.name, version.version)["tiergate.tier"] == "hosted"


def test_artifact_writes_to_logged_models_and_runs_nobody_registered_still_work(
        registry: Registry, tmp_path: Path) -> None:
    model = registry.log_model()
    changed = changed_copy(model, tmp_path)
    registry.client.log_model_artifact(model.model_id, str(changed))  # normal training: overwrite a checkpoint
    assert served_weights(model.uri, tmp_path / "served") == changed.read_bytes()
    run = registry.client.create_run(registry.experiment_id)
    registry.client.log_artifact(run.info.run_id, str(changed), "weights")
    registry.client.log_artifact(run.info.run_id, str(changed), "weights")  # again, replacing it
    assert [f.path for f in registry.client.list_artifacts(run.info.run_id, "weights")] == ["weights/model.safetensors"]

    # A registration the gate refused leaves no version behind, so nothing is frozen either.
    name = registry.unique("reg")
    registry.client.create_registered_model(name)
    with pytest.raises(Exception):
        registry.client.create_model_version(name, model.uri, tags={"release.tier": "open"}, model_id=model.model_id)
    registry.client.log_model_artifact(model.model_id, str(changed))


def test_a_refused_write_is_in_the_gate_log_with_the_version_it_protects(
        registry: Registry, gate_server: GateServer, tmp_path: Path) -> None:
    from tiergate.core.log.backends import open_store

    model = registry.log_model()
    version = registry.register(model)
    with pytest.raises(requests.HTTPError):
        registry.client.log_model_artifact(model.model_id, str(changed_copy(model, tmp_path)))
    store = open_store(str(gate_server.log_path))
    try:
        entries = [json.loads(e.entry) for e in store.find(model_digest=model.manifest.digest)]
    finally:
        store.close()
    refusal = entries[-1]["context"]
    assert refusal["rpc"] == "ArtifactWrite" and refusal["event"] == "write refused"
    assert refusal["call"] == "UploadArtifact" and refusal["path"].endswith("/artifacts/model.safetensors")
    assert (refusal["model"], refusal["version"]) == (version.name, version.version)
    assert "write refused" not in [e["context"].get("event") for e in entries[:-1]]
    assert f"refused uploading artifact '{refusal['path']}'" in gate_server.server.log_text()


def test_evidence_added_to_a_frozen_version_must_be_small_well_formed_attestations(
        registry: Registry, gate_server: GateServer, tmp_path: Path) -> None:
    """An upload into a frozen version's ``.attestations/`` that is not an attestation (a 17 MiB file, junk) would make
    every later decision on the version fail, and could not be deleted: refused, through the upload MLflow's FastAPI
    app serves and through the UI's upload (a Flask route), whose handlers then get the checked bytes unchanged."""
    model = registry.log_model()
    registry.register(model)
    location = registry.client.get_logged_model(model.model_id).artifact_location
    stored = location.removeprefix("mlflow-artifacts:").lstrip("/")
    url = f"{gate_server.server.url}/api/2.0/mlflow-artifacts/artifacts/{stored}/.attestations"
    good = hosted_evidence(registry.world, model.manifest)[0].data
    for name, body, reason in (("big.json", b" " * (17 * 1024 * 1024), "larger than"),
                               ("junk.json", b"not an attestation", "not a DSSE envelope or OMS bundle"),
                               ("lines.jsonl", good.replace(b"\n", b"") + b"\n{}\n", "line 2")):
        response = requests.put(f"{url}/{name}", data=body, timeout=60)
        assert response.status_code == 403 and reason in response.json()["message"], (name, response.text)
        assert not gate_server.stored_file(location, ".attestations", name).exists()
    assert requests.put(f"{url}/evalco.json", data=good, timeout=60).status_code == 200
    assert gate_server.stored_file(location, ".attestations", "evalco.json").read_bytes() == good

    run = registry.client.create_run(registry.experiment_id)  # the UI's upload, into a version registered from a run
    registry.client.log_artifacts(run.info.run_id, str(model.local), "weights")
    name = registry.unique("reg")
    registry.client.create_registered_model(name)
    registry.client.create_model_version(name, f"runs:/{run.info.run_id}/weights", run_id=run.info.run_id)
    ui = f"{gate_server.server.url}/ajax-api/2.0/mlflow/upload-artifact"
    response = requests.post(ui, params={"run_uuid": run.info.run_id, "path": "weights/.attestations/x.json"},
                             data=b"{}", timeout=60)
    assert response.status_code == 403 and "not a DSSE envelope" in response.json()["message"]
    response = requests.post(ui, params={"run_uuid": run.info.run_id, "path": "weights/.attestations/evalco.json"},
                             data=good, timeout=60)
    assert response.status_code == 200, response.text
    fetched = registry.client.download_artifacts(run.info.run_id, "weights/.attestations/evalco.json", str(tmp_path))
    assert Path(fetched).read_bytes() == good
