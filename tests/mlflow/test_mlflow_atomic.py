"""End to end: a gated registry call is one step with respect to every other registry write (issue #10, findings 1-4).

Each test drives a real server the way the attacks did and then checks the invariant (:mod:`mlflow_invariant`) for the
models involved: every version in a gated state has a log entry allowing exactly its current bytes at that tier or
above, and its files are frozen. The races are made wide on purpose: the weights are large enough that hashing them
takes a while, and their file's ctime is touched before each try so that the gate hashes them again (the manifest
cache keys on ctime). Before the store guard and the registry lock each of these broke the invariant within a few
tries.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from mlflow_e2e import GateServer, Published, Registry, hosted_evidence, safetensors_bytes, write_tiny_model
from mlflow_invariant import Invariant

pytestmark = pytest.mark.e2e

TRIES = 4
BIG = 96 * 1024 * 1024  # hashing this takes a noticeable time on 2 shared cores: the window the attacks used


@pytest.fixture
def invariant(gate_server: GateServer) -> Invariant:
    from tiergate.runtime import Gate, GateConfig

    policy = Gate.load(GateConfig.from_env({"GATE_TRUST": str(gate_server.trust_path)})).policy
    checker = Invariant(f"sqlite:///{gate_server.workdir / 'server' / 'mlflow.db'}", gate_server.artifacts_dir,
                        gate_server.log_path, policy)
    yield checker
    checker.close()


def big_model(registry: Registry, attested: bool) -> Published:
    """A logged model with large weights (so that hashing them takes a while), with hosted evidence or none."""
    from tiergate.core.manifest import hash_model

    name = registry.unique("big")
    local = write_tiny_model(registry.tmp / name, registry.counter[0])
    filler = struct.pack("<f", registry.counter[0] / 7) * (BIG // 4)
    (local / "big.safetensors").write_bytes(safetensors_bytes({"filler": ("F32", [BIG // 4], filler)}))
    model = registry.client.create_logged_model(registry.experiment_id, name=name)
    registry.client.log_model_artifacts(model.model_id, str(local))
    published = Published(model.model_id, local, hash_model(local))
    if attested:
        registry.attach(published, hosted_evidence(registry.world, published.manifest))
    return published


def force_rehash(gate_server: GateServer, registry: Registry, model: Published) -> None:
    """Touch the stored weights (same bytes, new ctime): the gate's next decision hashes them again."""
    location = registry.client.get_logged_model(model.model_id).artifact_location
    os.utime(gate_server.stored_file(location, "big.safetensors"))


def concurrently(first: Callable[[], Any], *then: Callable[[], Any], delay: float = 0.08) -> None:
    """Start ``first``; ``delay`` seconds later (while the gate hashes) run ``then`` in order; wait for all. Errors
    (refusals) are expected and ignored: the invariant afterwards is what counts."""
    def quietly(call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception:
            pass

    thread = threading.Thread(target=quietly, args=(first,))
    thread.start()
    time.sleep(delay)
    for call in then:
        quietly(call)
    thread.join()


def test_a_rename_or_re_create_during_a_gated_call_cannot_move_the_release_to_other_weights(
        registry: Registry, gate_server: GateServer, invariant: Invariant) -> None:
    """Finding 1: alias/tag/stage on X/1 (weights A, attested) while X is renamed away and Z (weights B, no
    evidence) is renamed to X, or X deleted and re-created with B."""
    c = registry.client
    attested = big_model(registry, attested=True)
    plain = registry.log_model()
    gated_calls: list[Callable[[str], Any]] = [
        lambda x: c.set_registered_model_alias(x, "production", "1"),
        lambda x: c.set_model_version_tag(x, "1", "release.tier", "hosted"),
        lambda x: c.transition_model_version_stage(x, "1", "Production"),
        lambda x: c.set_registered_model_alias(x, "champion", "1"),
    ]
    for attempt in range(TRIES):
        x, z, parked = registry.unique("x"), registry.unique("z"), registry.unique("parked")
        registry.register(attested, x)
        registry.register(plain, z)
        force_rehash(gate_server, registry, attested)
        if attempt % 2 == 0:
            swap = [lambda: c.rename_registered_model(x, parked), lambda: c.rename_registered_model(z, x)]
        else:
            swap = [lambda: c.delete_registered_model(x), lambda: c.create_registered_model(x),
                    lambda: c.create_model_version(x, plain.uri, model_id=plain.model_id)]
        concurrently(lambda: gated_calls[attempt](x), *swap)
        assert invariant.violations(frozenset({x, z, parked})) == [], f"attempt {attempt}"


def test_weights_uploaded_while_a_version_is_created_at_a_release_tier_are_not_published(
        registry: Registry, gate_server: GateServer, invariant: Invariant, tmp_path: Path) -> None:
    """Finding 2: CreateModelVersion(tags release.tier=hosted) while a file is uploaded into the model's folder."""
    extra = tmp_path / "extra.safetensors"
    extra.write_bytes(safetensors_bytes({"w": ("F32", [4], struct.pack("<4f", 1, 2, 3, 4))}))
    for attempt in range(TRIES):
        model = big_model(registry, attested=True)
        name = registry.unique("created")
        registry.client.create_registered_model(name)
        concurrently(lambda: registry.client.create_model_version(name, model.uri, model_id=model.model_id,
                                                                  tags={"release.tier": "hosted"}),
                     lambda: registry.client.log_model_artifact(model.model_id, str(extra)))
        assert invariant.violations(frozenset({name})) == [], f"attempt {attempt}"


def test_a_creation_whose_decision_cannot_be_recorded_publishes_nothing(
        registry: Registry, gate_server: GateServer, invariant: Invariant) -> None:
    """Finding 3: renames racing a creation at a release tier made the gate's tag write fail after MLflow had
    created the version; the call still returned 200, the version stayed at hosted, untagged and unfrozen."""
    c = registry.client
    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    registry.register(model)  # hashed once: the creations below decide in milliseconds, like the renames
    for attempt in range(TRIES * 3):
        x, parked = registry.unique("x"), registry.unique("parked")
        c.create_registered_model(x)
        stop = threading.Event()

        def flip() -> None:
            names = [x, parked]
            while not stop.is_set():
                try:
                    c.rename_registered_model(names[0], names[1])
                    names.reverse()
                except Exception:
                    pass

        flipper = threading.Thread(target=flip)
        flipper.start()
        for _ in range(5):
            for target in (x, parked):
                try:
                    c.create_model_version(target, model.uri, model_id=model.model_id, tags={"release.tier": "hosted"})
                except Exception:
                    pass
        stop.set()
        flipper.join()
        assert invariant.violations(frozenset({x, parked})) == [], f"attempt {attempt}"


def test_a_server_side_writer_is_gated_at_the_registry_store(tmp_path: Path, key_pool: Callable[..., Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 4: code inside the server (the demo generator's in-process client, jobs) writes through MLflow's
    registry store without passing any route, so a route-level gate never saw it: it put ``production`` on
    unattested weights. Guarded at the store class, such a write is decided like a REST call: here an in-process
    ``MlflowClient`` on the server's own database, as the demo generator makes one."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import BACKEND_STORE_URI_ENV_VAR, handlers

    from tiergate.core.log.backends import open_store
    from tiergate.core.manifest import hash_model
    from tiergate.integrations.mlflow.gatekeeper import RegistryGate
    from tiergate.integrations.mlflow.holder import GateHolder
    from tiergate.integrations.mlflow.lock import FileLock, RegistryLock
    from tiergate.integrations.mlflow.registry import StoreGuard, deactivate
    from mlflow_e2e import session_world

    world = session_world(tmp_path / "world", key_pool)
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv(BACKEND_STORE_URI_ENV_VAR, db)
    monkeypatch.setattr(handlers, "_model_registry_store", None)
    in_process = MlflowClient(tracking_uri=db, registry_uri=db)
    plain, attested = write_tiny_model(tmp_path / "plain", 1), write_tiny_model(tmp_path / "attested", 2)
    manifest = hash_model(attested)
    (attested / ".attestations").mkdir()
    for item in hosted_evidence(world, manifest):
        (attested / ".attestations" / Path(item.source).name).write_bytes(item.data)
    in_process.create_registered_model("weights")
    for folder in (plain, attested):  # registered before the gate is installed: the setting, not the attack
        in_process.create_model_version("weights", str(folder))

    holder = GateHolder({"GATE_TRUST": str(world.trust_path()), "GATE_LOG": str(tmp_path / "log.db")})
    lock = RegistryLock(FileLock(tmp_path / "registry.lock"))
    StoreGuard(RegistryGate(holder), lambda: lock).install()
    try:
        with pytest.raises(MlflowException) as excinfo:
            in_process.set_registered_model_alias("weights", "production", "1")
        assert excinfo.value.error_code == "PERMISSION_DENIED" and "tier 'hosted' denied" in excinfo.value.message
        with pytest.raises(MlflowException):
            in_process.set_model_version_tag("weights", "1", "release.tier", "hosted")
        assert in_process.get_registered_model("weights").aliases == {}
        in_process.set_registered_model_alias("weights", "production", "2")  # evidence for those bytes: allowed
        assert in_process.get_model_version("weights", "2").tags["tiergate.digest"] == manifest.digest
        with pytest.raises(MlflowException) as excinfo:  # the gate's tags are its own, in-process too
            in_process.set_model_version_tag("weights", "2", "tiergate.tier", "open")
        assert "written by the release gate only" in excinfo.value.message
        in_process.rename_registered_model("weights", "renamed")  # holds a gated version: recorded first
    finally:
        deactivate()
    log = open_store(str(tmp_path / "log.db"))
    try:
        entries = [json.loads(e.entry) for e in log.find(model_digest=manifest.digest)]
        contexts = [e["context"] for e in entries if e["kind"] == "decision"]  # not the attestations they cite
    finally:
        log.close()
    assert [c.get("writer") for c in contexts] == ["in-process", "in-process"]
    assert (contexts[-1]["event"], contexts[-1]["new_name"]) == ("renamed", "renamed")


def test_renaming_or_deleting_a_model_that_holds_gated_versions_is_a_gated_event(
        registry: Registry, gate_server: GateServer) -> None:
    """Recorded in the gate's log before MLflow acts (one entry per decided version); refused while it cannot be
    recorded (a broken configuration), instead of happening unrecorded."""
    from mlflow.exceptions import RestException

    from tiergate.core.log.backends import open_store

    model = registry.log_model()
    version = registry.register(model)
    renamed = registry.unique("renamed")
    trust = gate_server.trust_path
    good = trust.read_bytes()
    try:
        trust.write_text("version: 1\nevaluators: []\nbroken: [\n")
        with pytest.raises(RestException) as excinfo:
            registry.client.rename_registered_model(version.name, renamed)
        assert excinfo.value.error_code == "PERMISSION_DENIED" and "recorded first" in excinfo.value.message
        empty = registry.unique("empty")
        registry.client.create_registered_model(empty)
        registry.client.rename_registered_model(empty, registry.unique("still-empty"))  # nothing decided: free
    finally:
        trust.write_bytes(good)
    registry.client.rename_registered_model(version.name, renamed)
    registry.client.delete_registered_model(renamed)
    store = open_store(str(gate_server.log_path))
    try:
        contexts = [json.loads(e.entry)["context"] for e in store.find(model_digest=model.manifest.digest)]
    finally:
        store.close()
    events = [(c["rpc"], c.get("event"), c.get("model"), c.get("new_name")) for c in contexts[-2:]]
    assert events == [("RenameRegisteredModel", "renamed", version.name, renamed),
                      ("DeleteRegisteredModel", "deleted", renamed, None)]
