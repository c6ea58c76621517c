"""The plugin's pieces without a server: targets, tags, the manifest cache, configuration reloads, routes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from support import NOW, World, write_model
from gate.core.decision import decide
from gate.core.manifest import hash_model
from gate.core.policy import Policy
from gate.errors import ConfigError
from gate.integrations.mlflow import internals
from gate.integrations.mlflow.cache import ManifestCache
from gate.integrations.mlflow.holder import GateHolder
from gate.integrations.mlflow.routes import (
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
from gate.integrations.mlflow.tags import DIGEST, TIER, decision_tags, is_reserved
from gate.integrations.mlflow.targets import is_release_target, tier_for


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
    assert call.context() == {"host": "mlflow", "rpc": SET_ALIAS, "model": "tiny", "version": "3", "alias": "production"}
    created = parse_call(CREATE_VERSION, {"name": "tiny", "source": "models:/m-1", "model_id": "m-1",
                                          "tags": [{"key": "release.tier", "value": "open"}]})
    assert created.tags == (("release.tier", "open"),) and created.model_id == "m-1" and created.run_id is None
    with pytest.raises(MalformedCall, match="no 'alias'"):
        parse_call(SET_ALIAS, {"name": "tiny", "version": "3"})


def test_release_gate_tags_are_reserved_whatever_their_case() -> None:
    assert is_reserved("release_gate.tier") and is_reserved("Release_Gate.Decision")
    assert not is_reserved("release.tier") and not is_reserved(None)


def test_the_tier_tag_keeps_the_highest_tier_published_for_the_same_weights(policy: Policy, world: World, manifest) -> None:
    allowed = decide(policy, "internal", manifest, [], world.trust(), NOW)

    def after(existing: dict[str, str], decision=allowed) -> dict[str, str]:
        return {**existing, **decision_tags(decision, policy, existing)}

    assert after({})[TIER] == "internal" and after({})[DIGEST] == manifest.digest
    assert after({TIER: "hosted", DIGEST: manifest.digest})[TIER] == "hosted"
    assert after({TIER: "hosted", DIGEST: "sha256:" + "0" * 64})[TIER] == "internal"  # new weights
    assert after({TIER: "restricted", DIGEST: manifest.digest})[TIER] == "internal"  # a tier the policy dropped
    warned = after({}, replace(allowed, decision="deny", mode="warn"))
    assert warned["release_gate.decision"] == "deny (warn mode, not enforced)"


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
    (model / ".attestations" / "a.json").write_text("{}")  # attestations are not part of the identity
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
    assert internals.is_prompt(tag, "prompt-template")
    assert not internals.is_prompt(tag, "models:/m-123")  # weights labelled a prompt are still weights
    assert not internals.is_prompt((), "prompt-template")


def test_every_watched_call_is_routed_on_both_api_prefixes() -> None:
    routes = internals.registry_routes(WATCHED)
    assert routes[("POST", "/api/2.0/mlflow/registered-models/alias")] == SET_ALIAS
    assert routes[("POST", "/ajax-api/2.0/mlflow/registered-models/alias")] == SET_ALIAS
    assert routes[("DELETE", "/api/2.0/mlflow/registered-models/alias")] == DELETE_ALIAS
    assert routes[("PATCH", "/ajax-api/2.0/mlflow/model-versions/update")] == UPDATE_VERSION
    assert set(routes.values()) == WATCHED
    from mlflow.server import app as flask_app

    assert internals.unserved_routes(routes, flask_app) == []  # all Flask rules: the hook sees every one
    assert internals.unserved_routes({("POST", "/api/2.0/mlflow/elsewhere"): SET_ALIAS}, flask_app) == [
        "POST /api/2.0/mlflow/elsewhere"]


def test_gate_help_and_gate_mlflow_help_do_not_import_mlflow() -> None:
    probe = ("import sys; from gate.cli import main\n"
             "for args in (['--help'], ['mlflow', '--help'], ['mlflow', 'check', '--help']):\n"
             "    try: main(args)\n"
             "    except SystemExit: pass\n"
             "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
