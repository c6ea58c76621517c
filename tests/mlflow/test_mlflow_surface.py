"""Issue #10 findings 4-6 at the routes, on the shared real server: deny by default, the registry's own tags and
prompts, copies, look-alike targets, and `gate mlflow check` asking the server it is told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from mlflow_e2e import GateServer, Registry, hosted_evidence, write_tiny_model
from support import run_gate
from test_mlflow_publish import refused

pytestmark = pytest.mark.e2e


def post(gate_server: GateServer, path: str, body: object) -> requests.Response:
    return requests.post(f"{gate_server.server.url}{path}", json=body, timeout=60)


# --- deny by default --------------------------------------------------------------------------------------------


def test_the_demo_generator_which_writes_the_registry_in_process_is_refused(registry: Registry,
                                                                           gate_server: GateServer) -> None:
    """Finding 4's route: it registered prompts and set aliases through an in-process client."""
    answer = post(gate_server, "/ajax-api/3.0/mlflow/demo/generate", {"features": ["prompts"]})
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["error_code"] == "PERMISSION_DENIED"
    assert "demo generator" in body["message"] and "gate mlflow routes" in body["message"]
    assert post(gate_server, "/ajax-api/3.0/mlflow/demo/delete", {}).status_code == 403
    assert registry.client.get_experiment_by_name("MLflow Demo") is None  # the handler never ran


def test_job_submission_served_by_fastapi_is_refused(gate_server: GateServer) -> None:
    answer = post(gate_server, "/ajax-api/3.0/jobs/", {"job_name": "optimize_prompts", "params": {}})
    assert answer.status_code == 403 and answer.json()["error_code"] == "PERMISSION_DENIED", answer.text
    assert requests.post(f"{gate_server.server.url}/ajax-api/3.0/jobs/search", json={}, timeout=60).status_code != 403


def test_tracking_writes_and_reads_still_pass(registry: Registry) -> None:
    run = registry.client.create_run(registry.experiment_id)
    registry.client.log_metric(run.info.run_id, "loss", 0.5)
    registry.client.set_experiment_tag(registry.experiment_id, "team", "vision")
    assert registry.client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}


def test_gate_mlflow_routes_lists_every_route_with_its_verdict() -> None:
    result = run_gate("mlflow", "routes", "--json")
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)
    verdicts = {(r["method"], r["path"]): r["verdict"] for r in routes}
    assert verdicts[("POST", "/ajax-api/3.0/mlflow/demo/generate")] == "refused"
    assert verdicts[("POST", "/api/2.0/mlflow/registered-models/alias")] == "gated"
    assert verdicts[("PUT", "/api/2.0/mlflow-artifacts/artifacts/{artifact_path:path}")] == "gated"  # FastAPI's
    assert verdicts[("POST", "/api/2.0/mlflow/runs/log-metric")] == "passes"
    assert verdicts[("GET", "/api/2.0/mlflow/registered-models/get")] == "read-only"
    # A GET that runs the assistant's agent.
    assert verdicts[("GET", "/ajax-api/3.0/mlflow/assistant/sessions/{session_id}/stream")] == "refused"
    # no route of this MLflow is one the gate does not know
    assert not [r for r in routes if "does not know" in r["reason"]]
    text = run_gate("mlflow", "routes", "--verdict", "refused")
    assert text.returncode == 0 and "/ajax-api/3.0/mlflow/demo/generate" in text.stdout
    assert "/runs/log-metric" not in text.stdout


def test_every_registry_write_route_is_gated_or_refused() -> None:
    """Each ModelRegistryService call that writes, on every path MLflow serves it, is gated or refused."""
    from mlflow.protos import databricks_pb2
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.server import app as flask_app
    from mlflow.server.handlers import _get_paths

    from tiergate.integrations.mlflow.surface import FlaskSurface, READING_HANDLERS

    surface = {(r.method, r.path): r for r in FlaskSurface().routes(flask_app)}
    checked = 0
    for method in ModelRegistryService.DESCRIPTOR.methods:
        for endpoint in method.GetOptions().Extensions[databricks_pb2.rpc].endpoints:
            for path in _get_paths(endpoint.path, version=endpoint.since.major):
                route = surface[(endpoint.method, path)]
                if endpoint.method == "GET" or route.handler in READING_HANDLERS:
                    continue
                assert route.verdict in ("gated", "refused"), route
                checked += 1
    assert checked >= 28  # 14 registry writes, each under /api and /ajax-api


def test_an_unknown_writer_is_refused_and_an_unknown_reader_is_not() -> None:
    """What a new MLflow release would add: a route no list names."""
    from flask import Flask

    from tiergate.integrations.mlflow.surface import FlaskSurface

    app = Flask("next-mlflow")
    app.add_url_rule("/api/2.0/mlflow/registered-models/promote", "_promote", lambda: "", methods=["POST"])
    app.add_url_rule("/api/2.0/mlflow/registered-models/peek", "_peek", lambda: "", methods=["GET"])
    app.add_url_rule("/api/2.0/mlflow/runs/log-metric", "_log_metric", lambda: "", methods=["POST"])
    verdicts = {(r.method, r.path): r.verdict for r in FlaskSurface({}).routes(app)}
    assert verdicts[("POST", "/api/2.0/mlflow/registered-models/promote")] == "refused"
    assert verdicts[("GET", "/api/2.0/mlflow/registered-models/peek")] == "read-only"
    assert verdicts[("POST", "/api/2.0/mlflow/runs/log-metric")] == "passes"


def test_scorer_routes_are_refused_when_scorers_may_run_client_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask

    from tiergate.integrations.mlflow.surface import FlaskSurface

    app = Flask("scorers")
    app.add_url_rule("/api/3.0/mlflow/scorers/register", "_register_scorer", lambda: "", methods=["POST"])
    app.add_url_rule("/ajax-api/3.0/mlflow/scorer/invoke", "_invoke_scorer_handler", lambda: "", methods=["POST"])
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS", raising=False)
    assert {r.verdict for r in FlaskSurface({}).routes(app) if r.method == "POST"} == {"passes"}
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS", "true")
    assert {r.verdict for r in FlaskSurface({}).routes(app) if r.method == "POST"} == {"refused"}


# --- the registry's own tags, copies, prompts --------------------------------------------------------------------


def test_tiergate_tags_are_reserved_on_registered_models_too(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    version = registry.register(registry.log_model())
    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_registered_model_tag(version.name, "tiergate.tier", "open")
    assert "written by the release gate only" in refused(excinfo)
    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_registered_model_tag(version.name, "TierGate.Decision", "allow")
    refused(excinfo)
    with pytest.raises(MlflowException) as excinfo:
        registry.client.create_registered_model(registry.unique("forged"), tags={"tiergate.decision": "allow"})
    refused(excinfo)
    with pytest.raises(MlflowException) as excinfo:
        registry.client.delete_registered_model_tag(version.name, "tiergate.tier")
    refused(excinfo)
    assert not any(k.startswith("tiergate.") for k in registry.client.get_registered_model(version.name).tags)
    registry.client.set_registered_model_tag(version.name, "team", "vision")  # other tags are the owner's


def test_copy_model_version_works_and_the_copy_is_decided_afresh(registry: Registry) -> None:
    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    source = registry.register(model)
    registry.client.set_registered_model_alias(source.name, "production", source.version)
    source_tags = registry.tags(source.name, source.version)
    assert source_tags["tiergate.tier"] == "hosted"

    copy = registry.client.copy_model_version(f"models:/{source.name}/{source.version}", registry.unique("copy"))
    tags = registry.tags(copy.name, copy.version)
    assert tags["tiergate.decision"] == "allow" and tags["tiergate.digest"] == model.manifest.digest
    assert tags["tiergate.tier"] == "internal"  # registered, not yet published anywhere
    assert tags["tiergate.log_index"] != source_tags["tiergate.log_index"]  # its own decision


def test_a_copy_with_release_tags_is_decided_at_their_tier(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    source = registry.register(registry.log_model())
    src = registry.client.get_model_version(source.name, source.version)
    with pytest.raises(MlflowException) as excinfo:  # a copy tagged for hosted, without hosted evidence
        _copy_with_tags(registry, src, dict(src.tags, **{"release.tier": "hosted"}))
    assert "tier 'hosted' denied" in refused(excinfo)


def _copy_with_tags(registry: Registry, src: object, tags: dict[str, str]) -> object:
    name = registry.unique("copy")
    registry.client.create_registered_model(name)
    return registry.client.create_model_version(name, f"models:/{src.name}/{src.version}",  # type: ignore[attr-defined]
                                                tags=tags, model_id=src.model_id)  # type: ignore[attr-defined]


def test_gate_tags_that_are_not_the_sources_are_still_refused(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    source = registry.register(registry.log_model())
    src = registry.client.get_model_version(source.name, source.version)
    with pytest.raises(MlflowException) as excinfo:
        _copy_with_tags(registry, src, dict(src.tags, **{"tiergate.tier": "open"}))
    assert "written by the release gate only" in refused(excinfo)


def test_a_prompt_cannot_shed_its_prompt_marker(registry: Registry, gate_server: GateServer) -> None:
    """Finding 6: a prompt version took release.tier=open and alias public (prompts have no weights, so they pass),
    then shed its prompt tags to look like a released model version nobody decided on. Sent as REST calls: MLflow's
    client hides prompts from its registered-model methods, an attacker does not use it."""
    import mlflow

    name = registry.unique("prompt")
    version = str(mlflow.genai.register_prompt(name=name, template="Answer {{question}}").version)
    api = f"{gate_server.server.url}/api/2.0/mlflow"
    alias = requests.post(f"{api}/registered-models/alias", json={"name": name, "alias": "public", "version": version},
                          timeout=60)
    assert alias.status_code == 200, alias.text  # a prompt's alias: prompts have no weights, nothing to gate
    marker = "mlflow.prompt.is_prompt"
    for method, path, body in (
            ("DELETE", "model-versions/delete-tag", {"name": name, "version": version, "key": marker}),
            ("POST", "model-versions/set-tag", {"name": name, "version": version, "key": marker, "value": "false"}),
            ("DELETE", "registered-models/delete-tag", {"name": name, "key": marker}),
            ("POST", "registered-models/set-tag", {"name": name, "key": marker, "value": "false"})):
        answer = requests.request(method, f"{api}/{path}", json=body, timeout=60)
        assert answer.status_code == 403, (path, answer.text)
        assert "is set when a prompt is created and never changed" in answer.json()["message"]
    stored = requests.get(f"{api}/model-versions/get", params={"name": name, "version": version}, timeout=60).json()
    assert {t["key"]: t["value"] for t in stored["model_version"]["tags"]}[marker] == "true"


# --- look-alike targets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["prоduction", "ｐｒｏｄｕｃｔｉｏｎ", "Production"])
def test_look_alike_aliases_are_refused_or_gated_never_passed(registry: Registry, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    version = registry.register(registry.log_model())
    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_registered_model_alias(version.name, alias, version.version)
    message = refused(excinfo)
    assert ("looks like the release target 'production'" in message) or ("tier 'hosted' denied" in message)
    assert registry.client.get_registered_model(version.name).aliases == {}


@pytest.mark.parametrize("value", ["hosted ", "ＨＯＳＴＥＤ", "hоsted"])
def test_look_alike_tier_tags_are_refused_or_gated_never_passed(registry: Registry, value: str) -> None:
    from mlflow.exceptions import MlflowException

    version = registry.register(registry.log_model())
    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_model_version_tag(version.name, version.version, "release.tier", value)
    refused(excinfo)
    assert "release.tier" not in registry.tags(version.name, version.version)


# --- gate mlflow check asks the server it is told ------------------------------------------------------------------


def test_check_never_reads_a_local_mlflow_db(registry: Registry, gate_server: GateServer, tmp_path: Path) -> None:
    """Finding 5: with --tracking-uri, the model was resolved in ./mlflow.db of the current folder."""
    from mlflow import MlflowClient

    name = registry.unique("local-only")
    local = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                         registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = local.create_experiment("local", artifact_location=(tmp_path / "artifacts").as_uri())
    weights = write_tiny_model(tmp_path / "weights", seed=99)
    logged = local.create_logged_model(experiment, name="local")
    local.log_model_artifacts(logged.model_id, str(weights))
    local.create_registered_model(name)
    local.create_model_version(name, local.get_logged_model(logged.model_id).artifact_location)

    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "GATE_TRUST": str(gate_server.trust_path),
           "MLFLOW_TRACKING_URI": "", "MLFLOW_REGISTRY_URI": ""}
    result = run_gate("mlflow", "check", f"models:/{name}/1", "--tier", "internal", "--tracking-uri",
                      gate_server.server.url, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr  # the server has no such model
    assert "ALLOW" not in result.stdout and f"cannot download models:/{name}/1" in result.stderr

    model = registry.log_model()
    on_server = registry.register(model, name=name)  # the same name on the server: that one is read
    result = run_gate("mlflow", "check", f"models:/{name}/{on_server.version}", "--tier", "internal", "--json",
                      "--tracking-uri", gate_server.server.url, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model_digest"] == model.manifest.digest


def test_check_refuses_a_local_store_as_tracking_uri(tmp_path: Path) -> None:
    result = run_gate("mlflow", "check", "models:/tiny/1", "--tier", "internal", "--tracking-uri",
                      f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path)
    assert result.returncode == 2 and "name the MLflow tracking server" in result.stderr


def test_an_unknown_writer_served_by_fastapi_is_refused() -> None:
    """The same on the ASGI side: a route MLflow's FastAPI app serves itself that no list names."""
    import asyncio

    from fastapi import FastAPI

    from tiergate.integrations.mlflow.surface import RefusedNativeRoutes, asgi_routes

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/ajax-api/3.0/mlflow/registry/promote/{name}")
    def promote(name: str) -> dict[str, str]:
        return {}

    @app.get("/ajax-api/3.0/mlflow/registry/peek")
    def peek() -> dict[str, str]:
        return {}

    verdicts = {(r.method, r.path): r.verdict for r in asgi_routes(app)}
    assert verdicts == {("POST", "/ajax-api/3.0/mlflow/registry/promote/{name}"): "refused",
                        ("GET", "/ajax-api/3.0/mlflow/registry/peek"): "read-only"}
    passed: list[str] = []

    async def inner(scope, receive, send) -> None:
        passed.append(scope["path"])

    async def call(method: str, path: str, root_path: str = "") -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": []}
        await RefusedNativeRoutes(inner, app)(scope, receive, send)
        return sent

    refused = asyncio.run(call("POST", "/ajax-api/3.0/mlflow/registry/promote/tiny"))
    assert refused[0]["status"] == 403 and b"PERMISSION_DENIED" in refused[1]["body"]
    behind_a_prefix = asyncio.run(call("POST", "/mlflow/ajax-api/3.0/mlflow/registry/promote/tiny", "/mlflow"))
    assert behind_a_prefix[0]["status"] == 403  # uvicorn --root-path: the route is matched as routed
    assert asyncio.run(call("GET", "/ajax-api/3.0/mlflow/registry/peek")) == []
    assert passed == ["/ajax-api/3.0/mlflow/registry/peek"]
