"""The plugin's pieces without a server: targets, tags, the manifest cache, configuration reloads, routes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from content_samples import envelope_bytes
from support import NOW, World, write_model

from tiergate.core.decision import decide
from tiergate.core.manifest import hash_model
from tiergate.core.policy import Policy
from tiergate.errors import ConfigError
from tiergate.integrations.mlflow.cache import ManifestCache
from tiergate.integrations.mlflow.holder import GateHolder
from tiergate.integrations.mlflow.internals import artifacts as mlflow_artifacts
from tiergate.integrations.mlflow.internals import registry as mlflow_registry
from tiergate.integrations.mlflow.routes import (
    CREATE_VERSION,
    DELETE_ALIAS,
    SET_ALIAS,
    SET_TAG,
    TRANSITION_STAGE,
    UPDATE_VERSION,
    WATCHED,
    Call,
    MalformedCall,
    parse_call,
)
from tiergate.integrations.mlflow.tags import DIGEST, TIER, decision_tags, is_reserved
from tiergate.integrations.mlflow.targets import is_release_target, tier_for


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


@pytest.mark.parametrize(("call", "tier"), [
    (Call(CREATE_VERSION, "m", source="models:/m-1"), "internal"),
    (Call(CREATE_VERSION, "m", source="models:/m-1", tags=(("release.tier", "GATED"), ("team", "x"))), "gated"),
    (Call(UPDATE_VERSION, "m", "1"), "internal"),
    (Call(SET_ALIAS, "m", "1", alias="production"), "hosted"),
    (Call(SET_ALIAS, "m", "1", alias="Champion"), "hosted"),
    (Call(SET_ALIAS, "m", "1", alias="candidate"), None),
    (Call(SET_TAG, "m", "1", tag_key="release.tier", tag_value="open"), "open"),
    (Call(SET_TAG, "m", "1", tag_key="RELEASE.TIER", tag_value="Open"), "open"),
    (Call(SET_TAG, "m", "1", tag_key="release.tier", tag_value="experimental"), None),
    (Call(SET_TAG, "m", "1", tag_key="team", tag_value="open"), None),
    (Call(TRANSITION_STAGE, "m", "1", stage="production"), "hosted"),
    (Call(TRANSITION_STAGE, "m", "1", stage="Archived"), None),
])
def test_the_tier_a_call_needs_comes_from_the_policy_targets(policy: Policy, call: Call, tier: str | None) -> None:
    assert tier_for(call, policy) == tier


def test_only_withdrawals_of_release_targets_are_recorded(policy: Policy) -> None:
    assert is_release_target(Call(DELETE_ALIAS, "m", alias="PRODUCTION"), policy)
    assert not is_release_target(Call(DELETE_ALIAS, "m", alias="candidate"), policy)


def test_calls_are_read_from_mlflow_s_parsed_fields_and_described_for_people() -> None:
    call = parse_call(SET_ALIAS, {"name": "tiny", "alias": "production", "version": "3"})
    assert call.describe() == "setting alias 'production' on model 'tiny' version 3"
    assert call.context() == {"host": "mlflow", "rpc": SET_ALIAS, "model": "tiny", "version": "3",
                              "alias": "production"}
    created = parse_call(CREATE_VERSION, {"name": "tiny", "source": "models:/m-1", "model_id": "m-1",
                                          "tags": [{"key": "release.tier", "value": "open"}]})
    assert created.tags == (("release.tier", "open"),) and created.model_id == "m-1" and created.run_id is None
    with pytest.raises(MalformedCall, match="no 'alias'"):
        parse_call(SET_ALIAS, {"name": "tiny", "version": "3"})


def test_tiergate_tags_are_reserved_whatever_their_case() -> None:
    assert is_reserved("tiergate.tier") and is_reserved("TierGate.Decision")
    assert not is_reserved("release.tier") and not is_reserved(None)


def test_the_tier_tag_keeps_the_highest_tier_published_for_the_same_weights(
        policy: Policy, world: World, manifest) -> None:
    allowed = decide(policy, "internal", manifest, [], world.trust(), NOW)

    def after(existing: dict[str, str], decision=allowed) -> dict[str, str]:
        return {**existing, **decision_tags(decision, policy, existing)}

    assert after({})[TIER] == "internal" and after({})[DIGEST] == manifest.digest
    assert after({TIER: "hosted", DIGEST: manifest.digest})[TIER] == "hosted"
    assert after({TIER: "hosted", DIGEST: "sha256:" + "0" * 64})[TIER] == "internal"  # new weights
    assert after({TIER: "restricted", DIGEST: manifest.digest})[TIER] == "internal"  # a tier the policy dropped
    warned = after({}, replace(allowed, decision="deny", mode="warn"))
    assert warned["tiergate.decision"] == "deny (warn mode, not enforced)"


def test_only_tags_that_change_are_written(policy: Policy, world: World, manifest) -> None:
    allowed = decide(policy, "internal", manifest, [], world.trust(), NOW)
    current = decision_tags(allowed, policy, {})
    assert len(current) == 3 and decision_tags(allowed, policy, current) == {}


class CountingHasher:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, root: Path):
        self.calls += 1
        return hash_model(root)


def test_the_cache_reuses_manifests_of_untouched_weights_and_catches_any_rewrite(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    hasher = CountingHasher()
    cache = ManifestCache(hasher=hasher)
    first, cached = cache.manifest(model)
    assert not cached and cache.manifest(model) == (first, True) and hasher.calls == 1

    (model / ".attestations").mkdir()
    (model / ".attestations" / "a.json").write_bytes(envelope_bytes())  # attestations are not part of the identity
    assert cache.manifest(model)[1] and hasher.calls == 1

    weights = model / "model.safetensors"
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime tells
    changed, cached = cache.manifest(model)
    assert not cached and changed.digest != first.digest and hasher.calls == 2

    (model / "extra.safetensors").write_bytes(b"x")
    assert not cache.manifest(model)[1] and hasher.calls == 3


def test_the_cache_keeps_at_most_its_size(tmp_path: Path) -> None:
    cache = ManifestCache(entries=1)
    a, b = write_model(tmp_path / "a"), write_model(tmp_path / "b")
    cache.manifest(a)
    cache.manifest(b)
    assert not cache.manifest(a)[1]


def test_the_holder_reloads_changed_files_and_refuses_while_they_are_broken(tmp_path: Path, world: World) -> None:
    trust = world.trust_path()
    holder = GateHolder(environ={"GATE_TRUST": str(trust)})
    assert holder.error is None and len(holder.current().trust.evaluators) == len(world.evaluators)

    trust.write_text("version: 1\nevaluators: [{id: x}]\n")
    with pytest.raises(ConfigError, match="evaluators"):
        holder.current()
    data = world.trust_dict()
    data["evaluators"] = data["evaluators"][:1]
    trust.write_text(yaml.safe_dump(data))
    assert len(holder.current().trust.evaluators) == 1

    broken_config = tmp_path / "gate.yaml"
    broken_config.write_text("trust: trust.yaml\nsurprise: 1\n")
    holder = GateHolder(environ={"GATE_CONFIG": str(broken_config)})
    assert holder.error is not None and "surprise" in str(holder.error)
    broken_config.write_text("trust: trust.yaml\n")
    assert holder.current().config.trust == trust


def test_prompts_are_recognised_by_their_placeholder_source_not_by_their_tag_alone() -> None:
    tag = (("mlflow.prompt.is_prompt", "true"),)
    assert mlflow_registry.is_prompt(tag, "prompt-template")
    assert not mlflow_registry.is_prompt(tag, "models:/m-123")  # weights labelled a prompt are still weights
    assert not mlflow_registry.is_prompt((), "prompt-template")


def test_every_watched_call_is_routed_on_both_api_prefixes() -> None:
    routes = mlflow_registry.registry_routes(WATCHED)
    assert routes[("POST", "/api/2.0/mlflow/registered-models/alias")] == SET_ALIAS
    assert routes[("POST", "/ajax-api/2.0/mlflow/registered-models/alias")] == SET_ALIAS
    assert routes[("DELETE", "/api/2.0/mlflow/registered-models/alias")] == DELETE_ALIAS
    assert routes[("PATCH", "/ajax-api/2.0/mlflow/model-versions/update")] == UPDATE_VERSION
    assert set(routes.values()) == WATCHED
    from mlflow.server import app as flask_app

    assert mlflow_registry.unserved_routes(routes, flask_app) == []  # all Flask rules: the hook sees every one
    assert mlflow_registry.unserved_routes({("POST", "/api/2.0/mlflow/elsewhere"): SET_ALIAS}, flask_app) == [
        "POST /api/2.0/mlflow/elsewhere"]


def test_gate_help_and_gate_mlflow_help_do_not_import_mlflow() -> None:
    probe = ("import sys; from tiergate.cli import main\n"
             "for args in (['--help'], ['mlflow', '--help'], ['mlflow', 'check', '--help']):\n"
             "    try: main(args)\n"
             "    except SystemExit: pass\n"
             "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- frozen artifacts -------------------------------------------------------------------------------------------

from tiergate.integrations.mlflow.artifacts import (  # noqa: E402
    ArtifactGuard,
    ArtifactWrite,
    frozen_by,
)
from tiergate.integrations.mlflow.gatekeeper import Deny  # noqa: E402
from tiergate.integrations.mlflow.internals.artifacts import PROXIED, GatedVersion  # noqa: E402

MODEL_ID = "m-" + "a" * 32
RUN_ID = "b" * 32


def proxied(path: str) -> tuple[str, ...]:
    return mlflow_artifacts.proxied_place(path)


@pytest.fixture
def gated() -> list[tuple[GatedVersion, tuple[str, ...]]]:
    return [
        (GatedVersion("tiny", "1", "sha256:" + "1" * 64, f"mlflow-artifacts:/1/models/{MODEL_ID}/artifacts"),
         proxied(f"1/models/{MODEL_ID}/artifacts")),
        (GatedVersion("run-model", "2", "sha256:" + "2" * 64, f"runs:/{RUN_ID}/weights", RUN_ID),
         proxied(f"1/{RUN_ID}/artifacts/weights")),
    ]


@pytest.mark.parametrize(("path", "deletes", "frozen"), [
    (f"1/models/{MODEL_ID}/artifacts/model.safetensors", False, ["tiny/1"]),
    (f"1/models/{MODEL_ID}/artifacts/sub/new-file.bin", False, ["tiny/1"]),  # adding files changes the version too
    (f"1/models/{MODEL_ID}/artifacts/.attestations/evalco.intoto.json", False, []),  # evidence may be added
    (f"1/models/{MODEL_ID}/artifacts/.attestations/model.safetensors", False, ["tiny/1"]),  # but only evidence
    (f"1/models/{MODEL_ID}/artifacts/.attestations/evalco.intoto.json", True, ["tiny/1"]),  # and not taken away
    (f"1/models/{MODEL_ID}", True, ["tiny/1"]),  # a delete above the version's folder removes it
    ("1", True, ["tiny/1", "run-model/2"]),
    ("1", False, []),
    (f"1/models/{MODEL_ID}-other/artifacts/model.safetensors", False, []),
    (f"1/{RUN_ID}/artifacts/weights/model.safetensors", False, ["run-model/2"]),
    (f"1/{RUN_ID}/artifacts/checkpoints/model.safetensors", False, []),  # the run's other folders are not frozen
    (f"1/{RUN_ID}/artifacts/weights-v2/model.safetensors", False, []),  # compared by path segment, not by prefix
    (f"1/{RUN_ID}/artifacts/checkpoints", True, []),
])
def test_a_write_is_refused_exactly_when_it_changes_a_gated_version_s_files(
        gated: list, path: str, deletes: bool, frozen: list[str]) -> None:
    write = ArtifactWrite("UploadArtifact" if not deletes else "DeleteArtifact", path, proxied(path), deletes)
    assert [f"{v.name}/{v.version}" for v in frozen_by(write, gated)] == frozen


def test_places_compare_every_way_of_naming_the_server_s_artifact_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.server import ARTIFACTS_DESTINATION_ENV_VAR

    store = tmp_path / "mlartifacts"
    monkeypatch.setenv(ARTIFACTS_DESTINATION_ENV_VAR, str(store))
    expected = (PROXIED, "1", "models", MODEL_ID, "artifacts")
    assert mlflow_artifacts.place(f"mlflow-artifacts:/1/models/{MODEL_ID}/artifacts") == expected
    assert mlflow_artifacts.place(f"mlflow-artifacts://host:5000/1/models/{MODEL_ID}/artifacts/") == expected
    proxied = f"http://host:5000/api/2.0/mlflow-artifacts/artifacts/1/models/{MODEL_ID}/artifacts"
    assert mlflow_artifacts.place(proxied) == expected
    assert mlflow_artifacts.place(f"file://{store}/1/models/{MODEL_ID}/artifacts") == expected  # the store's own URI
    assert mlflow_artifacts.place("s3://Bucket/a/b") == ("s3", "bucket", "a", "b")
    assert mlflow_artifacts.proxied_path(f"1/models/{MODEL_ID}/artifacts/x") == f"1/models/{MODEL_ID}/artifacts/x"
    with pytest.raises(Exception):
        mlflow_artifacts.proxied_path("1/../../etc/passwd")  # MLflow's own validation, applied first
    assert mlflow_artifacts.entity_ids(expected + (RUN_ID, "m-short", "B" * 32)) == {MODEL_ID, RUN_ID}


@pytest.mark.parametrize("sql", [True, False], ids=["sql-registry", "searched-registry"])
def test_gated_versions_are_found_by_the_ids_their_files_lie_under(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: bool) -> None:
    from mlflow.entities.model_registry import ModelVersionTag

    if sql:
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{tmp_path / 'registry.db'}")
    else:
        from mlflow.store.model_registry.file_store import FileStore

        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        monkeypatch.chdir(tmp_path)  # the file store creates ./mlflow.db
        store = FileStore(str(tmp_path / "registry"))
    monkeypatch.setattr(mlflow_artifacts, "registry_store", lambda: store)
    digest = ModelVersionTag("tiergate.digest", "sha256:" + "1" * 64)
    store.create_registered_model("tiny")
    run_version = store.create_model_version("tiny", f"mlflow-artifacts:/1/{RUN_ID}/artifacts/w", run_id=RUN_ID)
    model_version = store.create_model_version("tiny", f"mlflow-artifacts:/1/models/{MODEL_ID}/artifacts")
    ungated = store.create_model_version("tiny", f"mlflow-artifacts:/1/models/{MODEL_ID}/artifacts/x")
    deleted = store.create_model_version("tiny", f"mlflow-artifacts:/1/models/{MODEL_ID}/artifacts/y")
    for version in (run_version, model_version, deleted):
        store.set_model_version_tag("tiny", version.version, digest)
    store.delete_model_version("tiny", deleted.version)

    def found(ids: frozenset[str] | None) -> list[str]:
        return sorted(v.version for v in mlflow_artifacts.gated_versions(ids))

    assert found(frozenset({RUN_ID})) == [str(run_version.version)]
    assert found(frozenset({MODEL_ID})) == [str(model_version.version)]
    assert found(frozenset({"c" * 32})) == []
    assert found(None) == sorted([str(run_version.version), str(model_version.version)])
    assert str(ungated.version) not in found(None)


def test_the_index_finds_what_the_scan_finds_and_never_less(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.entities.model_registry import ModelVersionTag
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setattr(mlflow_artifacts, "registry_store", lambda: store)
    digest = ModelVersionTag("tiergate.digest", "sha256:" + "1" * 64)
    runs = [f"{i:032x}" for i in range(1, 9)]
    for n in range(4):  # gated before the index existed: the start-up backfill covers them
        store.create_registered_model(f"old-{n}")
        v = store.create_model_version(f"old-{n}", f"mlflow-artifacts:/1/{runs[n]}/artifacts/w", run_id=runs[n])
        store.set_model_version_tag(f"old-{n}", v.version, digest)

    def scanned(ids: frozenset[str]) -> list[tuple[str, str]]:
        return sorted((v.name, v.version) for v in mlflow_artifacts._gated_versions_sql(store, ids))

    def looked_up(ids: frozenset[str]) -> list[tuple[str, str]]:
        return sorted((v.name, v.version) for v in mlflow_artifacts.gated_versions(ids))

    assert not mlflow_artifacts._index_complete(store)  # no index: the scan answers
    assert mlflow_artifacts.build_index() == 4 and mlflow_artifacts._index_complete(store)
    # gated after: indexed by the store guard before its tag, as registry.StoreGuard does
    store.create_registered_model("new")
    mlflow_artifacts.index_version("new", None, f"runs:/{runs[5]}/model", runs[5])
    v = store.create_model_version("new", f"runs:/{runs[5]}/model", run_id=runs[5], tags=[digest])
    mlflow_artifacts.index_version("new", v.version)
    later = store.create_model_version("new", f"mlflow-artifacts:/1/models/m-{runs[6]}/artifacts")
    mlflow_artifacts.index_version("new", later.version, f"mlflow-artifacts:/1/models/m-{runs[6]}/artifacts")
    store.set_model_version_tag("new", later.version, digest)
    store.rename_registered_model("old-1", "renamed")
    mlflow_artifacts.rename_in_index("old-1", "renamed")
    for ids in [{runs[0]}, {runs[1]}, {runs[5]}, {f"m-{runs[6]}"}, {runs[7]}, {runs[0], runs[5], f"m-{runs[6]}"}]:
        assert looked_up(frozenset(ids)) == scanned(frozenset(ids)), ids
    assert looked_up(frozenset({runs[1]})) == [("renamed", "1")]
    assert looked_up(frozenset({runs[7]})) == []
    # a version gated without being indexed (what index_unsure reports) is still found: lookups scan again
    store.create_registered_model("stray")
    stray = store.create_model_version("stray", f"mlflow-artifacts:/1/{runs[7]}/artifacts", run_id=runs[7])
    store.set_model_version_tag("stray", stray.version, digest)
    assert looked_up(frozenset({runs[7]})) == []  # the hole index_unsure exists to close
    mlflow_artifacts.index_unsure()
    assert looked_up(frozenset({runs[7]})) == [("stray", "1")]
    assert mlflow_artifacts.build_index() == 7 and looked_up(frozenset({runs[7]})) == [("stray", "1")]


class _Guard(ArtifactGuard):
    def __init__(self, outcome: Deny | Exception | None) -> None:
        self.outcome = outcome
        self.seen: list[ArtifactWrite] = []

    def before(self, write: ArtifactWrite, requester) -> Deny | None:
        self.seen.append(write)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def file_lock(tmp_path: Path):
    from tiergate.integrations.mlflow.lock import FileLock, RegistryLock

    lock = RegistryLock(FileLock(tmp_path / "registry.lock"))
    return lambda: lock


def test_the_flask_hook_refuses_frozen_writes_and_fails_closed_with_a_403(tmp_path: Path) -> None:
    from flask import Flask

    from tiergate.integrations.mlflow.hook import install

    app = Flask("unit")
    app.add_url_rule("/api/2.0/mlflow-artifacts/artifacts/<path:artifact_path>", "artifacts",
                     lambda artifact_path: "{}", methods=["GET", "PUT", "DELETE"])
    app.add_url_rule("/api/2.0/mlflow/runs/log-metric", "_log_metric", lambda: "{}", methods=["POST"])
    guard = _Guard(Deny("tiergate refused it"))
    install(app, None, guard, file_lock(tmp_path))  # type: ignore[arg-type]  (no registry call is made here)
    client = app.test_client()
    response = client.delete("/api/2.0/mlflow-artifacts/artifacts/1/models/x/artifacts")
    assert response.status_code == 403 and response.json == {"error_code": "PERMISSION_DENIED",
                                                               "message": "tiergate refused it"}
    assert guard.seen[-1].deletes and guard.seen[-1].path == "1/models/x/artifacts"
    assert client.get("/api/2.0/mlflow-artifacts/artifacts/1/x").status_code == 200  # reads are not looked at
    assert client.post("/api/2.0/mlflow/runs/log-metric", json={}).status_code == 200
    assert len(guard.seen) == 1
    guard.outcome = RuntimeError("registry unreachable")
    response = client.put("/api/2.0/mlflow-artifacts/artifacts/1/x/model.bin", data=b"weights")
    assert response.status_code == 403 and "fails closed" in response.json["message"]
    assert "registry unreachable" in response.json["message"]
    guard.outcome = None
    assert client.put("/api/2.0/mlflow-artifacts/artifacts/1/x/model.bin", data=b"weights").status_code == 200
    assert client.put("/api/2.0/mlflow-artifacts/artifacts/..%2f..%2fetc/x", data=b"").status_code == 403


def test_the_asgi_guard_checks_the_uploads_mlflow_s_fastapi_app_serves_itself(tmp_path: Path) -> None:
    import asyncio
    import json

    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import create_fastapi_app

    from tiergate.integrations.mlflow.hook import ArtifactWriteGuard

    routes = mlflow_artifacts.native_routes(create_fastapi_app(flask_app))
    passed: list[str] = []

    async def inner(scope, receive, send) -> None:
        passed.append(f"{scope['method']} {scope['path']}")

    def call(guard: _Guard, method: str, path: str) -> tuple[int | None, dict]:
        sent: list[dict] = []
        chunks = [{"type": "http.request", "body": b"x" * 10, "more_body": True},
                  {"type": "http.request", "body": b"x", "more_body": False}]

        async def receive() -> dict:
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
                 "query_string": b"", "headers": [(b"host", b"127.0.0.1:5000")], "client": ("10.0.0.7", 1234),
                 "scheme": "http", "server": ("127.0.0.1", 5000)}
        asyncio.run(ArtifactWriteGuard(inner, guard, routes, file_lock(tmp_path))(scope, receive, send))
        if not sent:
            return None, {}
        assert not chunks  # the refused upload's body was read before answering
        return sent[0]["status"], json.loads(sent[1]["body"])

    upload = "/api/2.0/mlflow-artifacts/artifacts/1/models/x/artifacts/model.bin"
    status, body = call(_Guard(Deny("tiergate refused it")), "PUT", upload)
    assert (status, body["error_code"], body["message"]) == (403, "PERMISSION_DENIED", "tiergate refused it")
    status, body = call(_Guard(RuntimeError("boom")), "PUT", upload.replace("/api/", "/ajax-api/"))
    assert status == 403 and "fails closed" in body["message"]
    guard = _Guard(None)
    assert call(guard, "PUT", upload) == (None, {}) and guard.seen[0].path == "1/models/x/artifacts/model.bin"
    for method, path in (("DELETE", upload), ("GET", upload), ("POST", "/api/2.0/mlflow/runs/log-metric")):
        assert call(guard, method, path) == (None, {})  # Flask serves these (the hook checks the delete): passed on
    assert len(guard.seen) == 1 and passed[-3:] == [f"DELETE {upload}", f"GET {upload}",
                                                     "POST /api/2.0/mlflow/runs/log-metric"]


def test_every_artifact_write_this_mlflow_serves_is_one_the_gate_understands() -> None:
    from mlflow.server import app as flask_app

    routes = mlflow_artifacts.artifact_write_routes()
    for prefix in ("/api/2.0", "/ajax-api/2.0"):
        assert routes[("PUT", f"{prefix}/mlflow-artifacts/artifacts/<path:artifact_path>")] == "UploadArtifact"
        assert routes[("DELETE", f"{prefix}/mlflow-artifacts/artifacts/<path:artifact_path>")] == "DeleteArtifact"
        complete = ("POST", f"{prefix}/mlflow-artifacts/mpu/complete/<path:artifact_path>")
        assert routes[complete] == "CompleteMultipartUpload"
        assert routes[("POST", f"{prefix}/mlflow/artifacts/presigned-upload-url")] == "CreatePresignedUploadUrl"
    assert routes[("POST", "/ajax-api/2.0/mlflow/upload-artifact")] == "UploadArtifact (UI)"
    assert mlflow_artifacts.unknown_artifact_writes(flask_app, routes) == frozenset()
    assert mlflow_artifacts.native_upload_path("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/a/b") == "1/a/b"
    assert mlflow_artifacts.native_upload_path("DELETE", "/api/2.0/mlflow-artifacts/artifacts/1/a/b") is None


# --- the registry lock and the store guard -------------------------------------------------------------------------


def test_the_registry_lock_excludes_writers_lets_uploads_share_and_is_re_entrant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from tiergate.integrations.mlflow import lock as lock_module
    from tiergate.integrations.mlflow.lock import FileLock, LockTimeout, RegistryLock

    monkeypatch.setattr(lock_module, "WAIT_SECONDS", 0.0)  # a lock that is taken is reported at once
    lock = RegistryLock(FileLock(tmp_path / "registry.lock"))
    other = RegistryLock(FileLock(tmp_path / "registry.lock"))  # another worker's
    outcomes: list[str] = []

    def try_in_thread(attempt) -> None:
        def run() -> None:
            try:
                attempt()
                outcomes.append("got it")
            except LockTimeout as exc:
                outcomes.append(str(exc))
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()

    def exclusive() -> None:
        with other.exclusive():
            pass

    with lock.exclusive():
        with lock.exclusive():  # a store method calling another one
            lock.shared().release()  # and an upload the same thread makes: covered by its exclusive hold
        try_in_thread(exclusive)
        try_in_thread(lambda: other.shared().release())
    assert outcomes[0].startswith("the registry is busy") and outcomes[1].startswith("the registry is busy")
    upload = lock.shared()
    try_in_thread(lambda: other.shared().release())  # uploads do not wait for each other
    try_in_thread(exclusive)  # a gated call waits for the upload
    upload.release()
    try_in_thread(exclusive)
    assert outcomes[2:] == ["got it", outcomes[3], "got it"] and outcomes[3].startswith("the registry is busy")


def test_the_lock_lives_in_the_backend_store_and_other_backends_refuse_registry_writes(tmp_path: Path) -> None:
    from tiergate.integrations.mlflow.lock import FileLock, PostgresLock, Unsupported, backend_for

    sqlite = backend_for(f"sqlite:///{tmp_path}/mlflow.db")
    assert isinstance(sqlite, FileLock) and sqlite.path == tmp_path / "mlflow.db.tiergate.lock"
    assert isinstance(backend_for("postgresql+psycopg://u@h/db"), PostgresLock)
    for uri in ("mysql://u@h/db", "sqlite://", "file:///tmp/mlruns", "not a uri"):
        backend = backend_for(uri)
        assert isinstance(backend, Unsupported)
        with pytest.raises(ConfigError, match="cannot lock"):
            backend.acquire(shared=False)


def test_every_public_method_of_this_mlflow_s_registry_store_is_classified_and_unknown_ones_are_refused() -> None:
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    from tiergate.integrations.mlflow.registry import unknown_methods

    assert unknown_methods(SqlAlchemyStore) == []

    class Newer(SqlAlchemyStore):  # a future MLflow's store with a write the gate has never seen
        def promote_model_version(self, name: str, version: str) -> None: ...

        def get_something(self) -> None: ...  # reads are recognised by name

    assert unknown_methods(Newer) == ["promote_model_version"]
