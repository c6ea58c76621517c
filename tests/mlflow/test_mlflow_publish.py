"""End to end: a real MLflow server with the plugin, driven by the real MlflowClient, on a small real model."""

from __future__ import annotations

import pytest

from mlflow_e2e import GateServer, Registry, hosted_evidence

pytestmark = pytest.mark.e2e

#: Stages are deprecated in MLflow (aliases replace them) but still served, so still gated.
stages_deprecated = pytest.mark.filterwarnings("ignore:.*transition_model_version_stage.*:FutureWarning")

HOSTED_REQUIREMENTS = ("risk-assessment", "wmdp-bio-reported", "strongreject-hosted", "harmbench-hosted",
                       "signers.organizations")


def refused(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The RestException's message, after checking it is the gate's 403 and not some other failure."""
    from mlflow.exceptions import RestException

    exc = excinfo.value
    assert isinstance(exc, RestException), exc
    assert exc.error_code == "PERMISSION_DENIED" and exc.get_http_status_code() == 403, exc
    return exc.message


def test_registration_is_gated_at_internal_and_the_decision_is_shown_on_the_version(registry: Registry) -> None:
    model = registry.log_model()
    version = registry.register(model)
    tags = registry.tags(version.name, version.version)
    assert tags["tiergate.tier"] == "internal"
    assert tags["tiergate.decision"] == "allow"
    assert tags["tiergate.digest"] == model.manifest.digest


def test_alias_without_evidence_is_refused_naming_what_is_missing_then_allowed_once_attested(
        registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    model = registry.log_model()
    version = registry.register(model)
    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_registered_model_alias(version.name, "production", version.version)
    message = refused(excinfo)
    assert "alias 'production'" in message and "tier 'hosted' denied" in message
    for requirement in HOSTED_REQUIREMENTS:
        assert requirement in message
    assert registry.client.get_registered_model(version.name).aliases == {}

    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    assert registry.client.get_model_version_by_alias(version.name, "production").version == version.version
    tags = registry.tags(version.name, version.version)
    assert (tags["tiergate.tier"], tags["tiergate.decision"]) == ("hosted", "allow")


def test_a_weight_file_changed_after_attestation_is_refused(registry: Registry, gate_server: GateServer) -> None:
    from mlflow.exceptions import MlflowException

    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    version = registry.register(model)
    registry.client.set_registered_model_alias(version.name, "production", version.version)

    # Through the API the weights are frozen now (test_mlflow_artifacts.py); someone with access to the artifact
    # store's disk can still change them, and the next promotion hashes them again.
    location = registry.client.get_logged_model(model.model_id).artifact_location
    stored = gate_server.stored_file(location, "model.safetensors")
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    stored.write_bytes(bytes(data))

    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_registered_model_alias(version.name, "champion", version.version)
    message = refused(excinfo)
    assert "tier 'hosted' denied" in message and "6 attestation(s) rejected" in message
    assert "these weights are not the ones evaluated" in message
    assert "risk-assessment" in message


def test_an_alias_on_verified_unchanged_weights_does_not_hash_them_again(
        registry: Registry, gate_server: GateServer) -> None:
    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    version = registry.register(model)
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    registry.client.set_registered_model_alias(version.name, "champion", version.version)
    lines = [line for line in gate_server.server.log_text().splitlines() if f"model '{version.name}'" in line]
    champion = [line for line in lines if "alias 'champion'" in line]
    assert champion and "weights unchanged, not re-hashed" in champion[-1], lines
    assert "weights hashed" in next(line for line in lines if "registering" in line or "alias 'production'" in line)


@stages_deprecated
def test_a_tag_or_stage_that_names_a_tier_is_gated_at_that_tier(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    model = registry.log_model()
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    version = registry.register(model)

    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_model_version_tag(version.name, version.version, "release.tier", "open")
    message = refused(excinfo)
    assert "tier 'open' denied" in message and "tamper-resistance" in message and "signers.kind.government" in message
    registry.client.set_model_version_tag(version.name, version.version, "release.tier", "hosted")
    registry.client.set_model_version_tag(version.name, version.version, "team", "nlp")  # not a release target

    registry.client.transition_model_version_stage(version.name, version.version, "production")  # MLflow folds case
    assert registry.client.get_model_version(version.name, version.version).current_stage == "Production"
    assert registry.tags(version.name, version.version)["tiergate.tier"] == "hosted"


def test_creating_a_version_with_a_release_tag_is_gated_at_the_tag_s_tier(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    model = registry.log_model()
    name = registry.unique("reg")
    registry.client.create_registered_model(name)
    with pytest.raises(MlflowException) as excinfo:
        registry.client.create_model_version(name, model.uri, tags={"release.tier": "open"}, model_id=model.model_id)
    assert "tier 'open' denied" in refused(excinfo)
    assert registry.client.search_model_versions(f"name = '{name}'") == []


@stages_deprecated
def test_a_stage_transition_to_production_without_evidence_is_refused(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    version = registry.register(registry.log_model())
    with pytest.raises(MlflowException) as excinfo:
        registry.client.transition_model_version_stage(version.name, version.version, "Production")
    assert "stage 'Production'" in refused(excinfo)
    registry.client.transition_model_version_stage(version.name, version.version, "Staging")  # internal
    registry.client.update_model_version(version.name, version.version, description="tiny test model")


def test_a_version_registered_from_a_run_s_artifacts_is_gated_too(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    model = registry.log_model()
    run = registry.client.create_run(registry.experiment_id)
    registry.client.log_artifacts(run.info.run_id, str(model.local), "weights")
    name = registry.unique("reg")
    registry.client.create_registered_model(name)
    version = registry.client.create_model_version(name, f"runs:/{run.info.run_id}/weights", run_id=run.info.run_id)
    assert registry.tags(name, version.version)["tiergate.digest"] == model.manifest.digest
    with pytest.raises(MlflowException) as excinfo:
        registry.client.set_registered_model_alias(name, "champion", version.version)
    assert "tier 'hosted' denied" in refused(excinfo)


def test_every_decision_and_withdrawal_is_in_the_gate_log_with_the_publish_event(
        registry: Registry, gate_server: GateServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from tiergate.core.log.backends import open_store

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")  # sent as HTTP basic auth: the claimed user
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-checked-without-basic-auth")
    model = registry.log_model()
    version = registry.register(model)
    with pytest.raises(Exception):
        registry.client.set_registered_model_alias(version.name, "production", version.version)
    registry.attach(model, hosted_evidence(registry.world, model.manifest))
    registry.client.set_registered_model_alias(version.name, "production", version.version)
    registry.client.delete_registered_model_alias(version.name, "production")

    store = open_store(str(gate_server.log_path))
    try:
        entries = [json.loads(e.entry) for e in store.find(model_digest=model.manifest.digest)]
    finally:
        store.close()
    events = [(e["context"]["rpc"], e["decision"]["requested_tier"], e["decision"]["decision"]) for e in entries]
    assert events == [("CreateModelVersion", "internal", "allow"), ("SetRegisteredModelAlias", "hosted", "deny"),
                      ("SetRegisteredModelAlias", "hosted", "allow"),
                      ("DeleteRegisteredModelAlias", "internal", "allow")]
    context = entries[2]["context"]
    assert context["host"] == "mlflow" and context["model"] == version.name and context["version"] == version.version
    assert context["alias"] == "production" and context["user"] == "alice"
    assert context["server"] == gate_server.server.url
    # The version shows where its latest decision sits in the log, so an auditor can prove it (gate log prove).
    indexes = [e.index for e in store_entries(gate_server, model.manifest.digest)]
    assert registry.tags(version.name, version.version)["tiergate.log_index"] == str(indexes[2])
    assert entries[3]["context"]["event"] == "withdrawn"


def store_entries(gate_server: GateServer, digest: str) -> list:
    from tiergate.core.log.backends import open_store

    store = open_store(str(gate_server.log_path))
    try:
        return store.find(model_digest=digest)
    finally:
        store.close()
