"""The decision shown on a model version as ``tiergate.*`` tags, which only the gate may write.

The tags are for people looking at the MLflow UI; the log is the record. ``tiergate.tier`` is the highest tier
the version's current weights have been published at: an alias at a lower tier later does not lower it, new weights
(a different digest) reset it.
"""

from __future__ import annotations

from collections.abc import Mapping

from tiergate.core.decision import Decision
from tiergate.core.policy import Policy
from tiergate.errors import ConfigError

PREFIX = "tiergate."
TIER = PREFIX + "tier"
DECISION = PREFIX + "decision"
DIGEST = PREFIX + "digest"
LOG_INDEX = PREFIX + "log_index"  # where the decision sits in the gate's log, for auditors
#: MLflow's mark of a prompt (``mlflow.prompt.constants.IS_PROMPT_TAG_KEY``), on prompt versions and prompts.
PROMPT_MARKER = "mlflow.prompt.is_prompt"


def is_reserved(key: str | None) -> bool:
    """Keys clients may not set or delete (compared case-insensitively, as people read them)."""
    return key is not None and key.casefold().startswith(PREFIX)


def decision_tags(decision: Decision, policy: Policy, existing: Mapping[str, str],
                  log_index: int | None = None) -> dict[str, str]:
    """The tags to write for ``decision`` on a version that currently has the tags ``existing``: only those that
    change, because each tag is its own database write and an alias on an already-published version changes none."""
    tier = decision.requested_tier
    previous = existing.get(TIER)
    if previous and existing.get(DIGEST) == decision.model_digest:
        try:
            if policy.rank(previous) > policy.rank(tier):
                tier = previous
        except ConfigError:  # a tier the current policy no longer has: the new decision replaces it
            pass
    verdict = (decision.decision if decision.decision == "allow" or decision.mode != "warn"
               else "deny (warn mode, not enforced)")
    tags = {TIER: tier, DECISION: verdict, DIGEST: decision.model_digest}
    if log_index is not None:
        tags[LOG_INDEX] = str(log_index)
    return {key: value for key, value in tags.items() if existing.get(key) != value}
