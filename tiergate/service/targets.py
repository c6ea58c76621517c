"""Publish targets to tiers for the service's decision API: a caller may name *where* it publishes and let the
policy say which tier that needs.

The rule is the core's (:mod:`tiergate.core.targets`), the same the MLflow plugin and the Hub wrapper apply: names are
normalised (case, Unicode NFKC, surrounding whitespace), a look-alike of a listed name is refused, and an MLflow
alias, stage or tag the policy does not list needs what registration needs.
"""

from __future__ import annotations

from tiergate.core.targets import TARGET_FORMS, Target, TargetError, TargetPolicy, UnknownTarget, required_tier

__all__ = ["TARGET_FORMS", "TargetError", "UnknownTarget", "tier_for_target"]


def tier_for_target(policy: TargetPolicy, target: str) -> str:
    """The tier ``policy`` requires for publishing to ``target``; raises :class:`~tiergate.core.targets.TargetError`
    (:class:`UnknownTarget` for text that is no target, ``ConfusableTarget`` for a look-alike)."""
    return required_tier(policy, Target.parse(target))
