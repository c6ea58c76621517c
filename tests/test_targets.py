"""One target -> tier rule (tiergate.core.targets), the same in the service, the MLflow plugin, the Hub and git.

Issue #13 item 3: ``mlflow:alias:Production`` was ``internal`` to the service (case-sensitive) and ``hosted`` to the
MLflow plugin. Issue #10 finding 6: look-alikes of a release target (``release.tier='hosted '``, an alias with a
space, Cyrillic or full-width ``production``) passed the plugin ungated.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiergate.core.policy import Policy
from tiergate.core.targets import ConfusableTarget, Target, TargetError, UnknownTarget, normalise, tier_named
from tiergate.errors import ConfigError
from tiergate.integrations.hf.tiers import HubState, tier_for as hub_tier
from tiergate.integrations.mlflow.routes import SET_ALIAS, SET_TAG, TRANSITION_STAGE, Call
from tiergate.integrations.mlflow.targets import tier_for as mlflow_tier
from tiergate.service.targets import tier_for_target

POLICY = Policy.load()


def plugin_tier(target: Target) -> str:
    """What the MLflow plugin requires for the registry call that publishes to ``target``."""
    call = {"alias": Call(SET_ALIAS, "m", "1", alias=target.name),
            "stage": Call(TRANSITION_STAGE, "m", "1", stage=target.name),
            "tag": Call(SET_TAG, "m", "1", tag_key=target.name, tag_value=target.value)}[target.kind]
    tier = mlflow_tier(call, POLICY)
    return POLICY.mlflow.registration if tier is None else tier  # an unlisted name is no release: registration


@pytest.mark.parametrize(("text", "tier"), [
    ("mlflow:alias:Production", "hosted"),
    ("mlflow:alias:production ", "hosted"),
    ("mlflow:alias:ＰＲＯＤＵＣＴＩＯＮ", "hosted"),  # full width: NFKC makes it production
    ("mlflow:stage:production", "hosted"),
    ("mlflow:tag:release.tier=hosted ", "hosted"),
    ("mlflow:tag:Release.Tier=OPEN", "open"),
    ("mlflow:alias:staging", "internal"),  # listed nowhere: what registration needs
    ("mlflow:tag:team=vision", "internal"),
])
def test_the_service_and_the_plugin_agree(text: str, tier: str) -> None:
    target = Target.parse(text)
    assert tier_for_target(POLICY, text) == tier
    assert plugin_tier(target) == tier


@pytest.mark.parametrize("text", [
    "mlflow:alias:prоduction",  # Cyrillic о
    "mlflow:alias:рroduction",  # Cyrillic р
    "mlflow:alias:pro duction",  # a space inside
    "mlflow:alias:pub\u200blic",  # an invisible character
    "mlflow:alias:públic",  # an accent
    "mlflow:alias:pr\u0585duction",  # Armenian օ, in no table: an unknown non-ASCII letter is a wildcard
    "mlflow:stage:Prοduction",  # Greek ο
    "mlflow:tag:release.tier=hοsted",
    "mlflow:tag:release_tier=open",  # a look-alike key
])
def test_look_alikes_of_a_release_target_are_refused_everywhere(text: str) -> None:
    target = Target.parse(text)
    with pytest.raises(ConfusableTarget, match="looks like the release target"):
        tier_for_target(POLICY, text)
    with pytest.raises(ConfusableTarget):
        plugin_tier(target)


@pytest.mark.parametrize("alias", ["本番環境です", "生产", "продакшн", "staging", "prod", "v2"])
def test_names_in_other_scripts_or_simply_different_are_not_look_alikes(alias: str) -> None:
    assert tier_for_target(POLICY, f"mlflow:alias:{alias}") == "internal"  # unlisted: what registration needs


def test_the_hub_reads_its_states_through_the_same_rule() -> None:
    for state in (HubState(True), HubState(False, "manual"), HubState(False, "auto"), HubState(False)):
        assert hub_tier(POLICY, state) == tier_for_target(POLICY, f"huggingface:{state.target}")
    assert tier_for_target(POLICY, "HuggingFace:Public") == "open"


@pytest.mark.parametrize("text", ["mlflow:alias:", "mlflow:tag:novalue", "mlflow:registration:x", "hub:public",
                                  "huggingface:everyone", "mlflow:alias:   "])
def test_malformed_targets_are_unknown(text: str) -> None:
    with pytest.raises(UnknownTarget):
        Target.parse(text)


def test_git_tiers_use_the_same_normalisation() -> None:
    assert tier_named(POLICY.tier_names, " Hosted ") == "hosted"
    assert tier_named(POLICY.tier_names, "ｏｐｅｎ") == "open"
    with pytest.raises(ConfigError, match="looks like"):
        tier_named(POLICY.tier_names, "оpen")
    with pytest.raises(ConfigError, match="unknown tier"):
        tier_named(POLICY.tier_names, "public")


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(names, st.sampled_from(["alias", "stage"]))
def test_the_service_and_the_plugin_agree_on_any_name(name: str, kind: str) -> None:
    target = Target(kind=kind, system="mlflow", name=name)
    try:
        expected: str | type = tier_for_target(POLICY, str(target))
    except TargetError as exc:
        expected = type(exc)
    try:
        got: str | type = plugin_tier(target)
    except TargetError as exc:
        got = type(exc)
    if name.strip() and ":" not in name:  # text the service can parse back to the same target
        assert got == expected


@settings(max_examples=300, deadline=None)
@given(names)
def test_a_name_is_the_release_target_or_not_but_never_an_ungated_look_alike(name: str) -> None:
    """Whatever the name, the plugin either gates it at the target's tier, refuses it, or the name cannot be read as
    any listed alias (its normal form differs from all of them)."""
    try:
        tier = plugin_tier(Target("mlflow", "alias", name))
    except ConfusableTarget:
        return
    listed = {normalise(a): t for a, t in POLICY.mlflow.aliases.items()}
    if normalise(name) in listed:
        assert tier == listed[normalise(name)]
    else:
        assert tier == POLICY.mlflow.registration
