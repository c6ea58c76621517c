"""The tier a registry call needs: a lookup in the policy's ``targets.mlflow`` table, nothing more.

Names are compared case-insensitively. MLflow folds stage names itself (``production`` becomes ``Production``), and
an alias or tag value that differs only in case from a release target is read as that target by people and by
case-insensitive tooling, so it must not slip past the gate.
"""

from __future__ import annotations

from typing import Mapping

from gate.core.policy import Policy
from gate.integrations.mlflow.routes import (
    CREATE_VERSION,
    DELETE_ALIAS,
    DELETE_TAG,
    SET_ALIAS,
    SET_TAG,
    TRANSITION_STAGE,
    UPDATE_VERSION,
    Call,
)


def _lookup(table: Mapping[str, str], name: str | None) -> str | None:
    if name is None:
        return None
    folded = name.casefold()
    return next((tier for key, tier in table.items() if key.casefold() == folded), None)


def _tag_tier(policy: Policy, key: str | None, value: str | None) -> str | None:
    values = next((v for k, v in policy.mlflow.tags.items() if key is not None and k.casefold() == key.casefold()), None)
    return _lookup(values, value) if values is not None else None


def tier_for(call: Call, policy: Policy) -> str | None:
    """The tier the call publishes to, or None when it publishes nowhere the policy names (it passes untouched).

    A new version is registered at ``registration`` or, if it is created with release tags, at the highest tier
    those tags name: tags set at creation are as much a publication as tags set later.
    """
    targets = policy.mlflow
    if call.rpc == CREATE_VERSION:
        tiers = [targets.registration] + [t for k, v in call.tags if (t := _tag_tier(policy, k, v))]
        return max(tiers, key=policy.rank)
    if call.rpc == UPDATE_VERSION:
        return targets.registration
    if call.rpc == SET_ALIAS:
        return _lookup(targets.aliases, call.alias)
    if call.rpc == SET_TAG:
        return _tag_tier(policy, call.tag_key, call.tag_value)
    if call.rpc == TRANSITION_STAGE:
        return _lookup(targets.stages, call.stage)
    return None


def is_release_target(call: Call, policy: Policy) -> bool:
    """Whether a deletion takes back something the policy treats as a release (worth recording)."""
    if call.rpc == DELETE_ALIAS:
        return _lookup(policy.mlflow.aliases, call.alias) is not None
    if call.rpc == DELETE_TAG:
        folded = (call.tag_key or "").casefold()
        return any(k.casefold() == folded for k in policy.mlflow.tags)
    return False
