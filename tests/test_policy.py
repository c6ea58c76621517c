"""Policy files: loading, inheritance, validation errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tiergate.core.manifest import weight_format
from tiergate.core.policy import Policy, parse_duration
from tiergate.errors import ConfigError

BASE = {
    "version": 1,
    "name": "test",
    "tiers": [
        {"name": "internal"},
        {"name": "hosted", "requires": {"evaluations": [
            {"id": "sr", "benchmark": "strongreject", "metric": "score", "comparator": "<=", "threshold": 0.1}]}},
        {"name": "open", "requires": {"signers": {"min_organizations": 2}, "max_age": "90d", "evaluations": [
            {"id": "sr-open", "benchmark": "strongreject", "metric": "score", "comparator": "<=", "threshold": 0.05}]}},
    ],
}


def load(tmp_path: Path, data: dict) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return Policy.load(path)


def mutate(**changes) -> dict:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        target = data
        keys = dotted.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return data


def test_default_policy_loads_with_four_ordered_tiers() -> None:
    policy = Policy.load()
    assert policy.tier_names == ("internal", "hosted", "gated", "open")
    assert policy.uri.startswith("builtin:")
    assert policy.digest.startswith("sha256:")
    assert policy.huggingface.public == "open" and policy.huggingface.gated_manual == "gated"
    assert policy.mlflow.aliases["production"] == "hosted"
    assert policy.mlflow.tags["release.tier"]["open"] == "open"


def test_inheritance_folds_requirements_of_lower_tiers(tmp_path: Path) -> None:
    policy = load(tmp_path, BASE)
    open_tier = policy.effective("open")
    assert [r.id for _, r in open_tier.evaluations] == ["sr", "sr-open"]
    assert open_tier.chain == ("open", "hosted", "internal")
    assert open_tier.signers.min_organizations == 2
    assert policy.effective("internal").evaluations == ()


def test_default_open_tier_inherits_everything() -> None:
    policy = Policy.load()
    ids = {r.id for _, r in policy.effective("open").evaluations}
    hosted = {r.id for _, r in policy.effective("hosted").evaluations}
    gated = {r.id for _, r in policy.effective("gated").evaluations}
    assert hosted < gated < ids
    eff = policy.effective("open")
    assert eff.max_age == parse_duration("90d")  # the strictest of 180d / 120d / 90d
    assert set(eff.signers.required_kinds) == {"third_party", "government"}
    assert eff.allowed_formats == ("gguf", "safetensors")


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (mutate(tiers__1__extends="nonexistent"), "tiers[1] (hosted).extends", "unknown tier 'nonexistent'"),
        (mutate(tiers__1__requires__evaluations__0__comparator="~="), "comparator", "'~=' is not one of"),
        (mutate(tiers__0__extends="open"), "extends", "inheritance cycle"),
        (mutate(tiers__2__name="hosted"), "tiers[2].name", "duplicate tier 'hosted'"),
        (mutate(tiers__1__requires__evaluations__0__threshold="low"), "threshold", "must be a finite number"),
        (mutate(tiers__2__requires__max_age="three months"), "max_age", "not a duration"),
        (mutate(version=2), "version", "expected 1"),
        (mutate(tiers__1__requires__signers={"min_organizations": -1}), "min_organizations", "whole number"),
        (mutate(tiers__1__requires__evaluations__0__benchmark=None,
                tiers__1__requires__evaluations__0__risk_domain=None),
         "evaluations[0]", "no value"),  # a field written as null is refused before its meaning is read
        (mutate(tiers__1__colour="red"), "colour", "unknown field"),
        (mutate(tiers__1__requires__evaluations__0__with=[{"metric": "n", "comparator": "reported", "threshold": 1}]),
         "with[0].comparator", "'reported' is not one of"),
        (mutate(targets={"huggingface": {"public": "world"}}), "targets.huggingface.public", "unknown tier 'world'"),
    ],
)
def test_policy_mistakes_name_the_file_and_field(tmp_path: Path, data: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, data)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "policy.yaml")), message
    assert field in message and words in message, message
    assert "\n" not in message


def test_unknown_tier_requested_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown tier 'public'"):
        Policy.load().tier("public")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ntiers: [\n  - name: x\n")
    with pytest.raises(ConfigError, match=r"policy.yaml: line \d+"):
        Policy.load(path)


def test_policy_digest_changes_with_content(tmp_path: Path) -> None:
    a = load(tmp_path, BASE).digest
    b = load(tmp_path, mutate(name="other")).digest
    assert a != b


def test_weight_formats_by_suffix() -> None:
    assert weight_format("model.safetensors") == "safetensors"
    assert weight_format("sub/pytorch_model.bin") == "pickle"
    assert weight_format("x.PT") == "pickle"
    assert weight_format("config.json") is None
    assert weight_format("dir.pkl/README") is None
