"""Publish targets to tiers: a caller may name *where* it publishes and let the policy say which tier that needs.

Target names follow the policy file's ``targets`` section:

- ``huggingface:private``, ``huggingface:gated_manual``, ``huggingface:gated_auto``, ``huggingface:public``;
- ``mlflow:registration``, ``mlflow:alias:<alias>``, ``mlflow:stage:<stage>``, ``mlflow:tag:<key>=<value>``.

An MLflow alias, stage or tag the policy does not list needs no more than registration, as in the MLflow plugin.
"""

from __future__ import annotations

from gate.core.policy import Policy

TARGET_FORMS = ("huggingface:private", "huggingface:gated_manual", "huggingface:gated_auto", "huggingface:public",
                "mlflow:registration", "mlflow:alias:<name>", "mlflow:stage:<name>", "mlflow:tag:<key>=<value>")


class UnknownTarget(ValueError):
    """The target string is not one of :data:`TARGET_FORMS`."""


def tier_for_target(policy: Policy, target: str) -> str:
    """The tier ``policy`` requires for publishing to ``target``; raises :class:`UnknownTarget`."""
    system, _, rest = target.partition(":")
    if system == "huggingface" and rest in ("private", "gated_manual", "gated_auto", "public"):
        return str(getattr(policy.huggingface, rest))
    if system == "mlflow":
        kind, _, name = rest.partition(":")
        ml = policy.mlflow
        if kind == "registration" and not name:
            return ml.registration
        if kind == "alias" and name:
            return ml.aliases.get(name, ml.registration)
        if kind == "stage" and name:
            return ml.stages.get(name, ml.registration)
        if kind == "tag" and "=" in name:
            key, _, value = name.partition("=")
            return ml.tags.get(key, {}).get(value, ml.registration)
    raise UnknownTarget(f"unknown target {target!r}; use one of {', '.join(TARGET_FORMS)}")
