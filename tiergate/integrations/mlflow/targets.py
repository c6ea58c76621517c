"""The tier a registry call needs: the core's target rule (:mod:`tiergate.core.targets`) applied to the call.

Names are normalised as the core does it (case, Unicode NFKC, surrounding whitespace): MLflow folds stage names
itself (``production`` becomes ``Production``), and an alias or tag value that differs only in case or width from a
release target is read as that target by people and by case-insensitive tooling. A look-alike of a release target
(``prоduction`` with a Cyrillic ``о``, ``pro duction``) raises :class:`~tiergate.core.targets.ConfusableTarget`: the
call is refused, never passed as if it published nowhere.
"""

from __future__ import annotations

from tiergate.core.policy import Policy
from tiergate.core.targets import (ALIAS, MLFLOW, REGISTRATION, STAGE, TAG, Target, is_mapped, mapped_tag_key,
                                   mapped_tier)
from tiergate.integrations.mlflow.routes import (
    CREATE_VERSION,
    DELETE_ALIAS,
    DELETE_TAG,
    SET_ALIAS,
    SET_TAG,
    TRANSITION_STAGE,
    UPDATE_VERSION,
    Call,
)


def _tag(key: str | None, value: str | None) -> Target:
    return Target(MLFLOW, TAG, key or "", value or "")


def tier_for(call: Call, policy: Policy) -> str | None:
    """The tier the call publishes to, or None when it publishes nowhere the policy names (it passes untouched).
    Raises :class:`~tiergate.core.targets.ConfusableTarget` for a look-alike of a release target.

    A new version is registered at ``registration`` or, if it is created with release tags, at the highest tier
    those tags name: tags set at creation are as much a publication as tags set later.
    """
    if call.rpc == CREATE_VERSION:
        tiers = [policy.mlflow.registration] + [t for k, v in call.tags if (t := mapped_tier(policy, _tag(k, v)))]
        return max(tiers, key=policy.rank)
    if call.rpc == UPDATE_VERSION:
        return mapped_tier(policy, Target(MLFLOW, REGISTRATION))
    if call.rpc == SET_ALIAS:
        return mapped_tier(policy, Target(MLFLOW, ALIAS, call.alias or ""))
    if call.rpc == SET_TAG:
        return mapped_tier(policy, _tag(call.tag_key, call.tag_value))
    if call.rpc == TRANSITION_STAGE:
        return mapped_tier(policy, Target(MLFLOW, STAGE, call.stage or ""))
    return None


def is_release_target(call: Call, policy: Policy) -> bool:
    """Whether a deletion takes back something the policy treats as a release, or a look-alike of it (worth
    recording)."""
    if call.rpc == DELETE_ALIAS:
        return is_mapped(policy, Target(MLFLOW, ALIAS, call.alias or ""))
    if call.rpc == DELETE_TAG:
        return mapped_tag_key(policy, call.tag_key or "")
    return False
