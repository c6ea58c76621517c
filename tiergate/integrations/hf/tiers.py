"""Which policy tier a Hub repository's state implies, and what state a requested change leads to.

The mapping itself is policy (``targets.huggingface`` in the policy file); this module only reads the Hub's words
for a state — ``private``, ``gated`` ('manual' | 'auto' | False), ``visibility`` — and picks the policy's target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiergate.core.policy import Policy
from tiergate.core.targets import HUB_STATES, HUGGINGFACE, Target, required_tier

PRIVATE, GATED_MANUAL, GATED_AUTO, PUBLIC = HUB_STATES


@dataclass(frozen=True)
class HubState:
    """Who can download a repo's files: private (members only), gated manual/auto, or public."""

    private: bool
    gated: str | bool = False  # 'manual' | 'auto' | False

    @property
    def target(self) -> str:
        """The name of this state among the policy's Hugging Face targets."""
        if self.private:
            return PRIVATE
        if self.gated == "manual":
            return GATED_MANUAL
        if self.gated == "auto":
            return GATED_AUTO
        return PUBLIC

    def describe(self) -> str:
        return {PRIVATE: "private", GATED_MANUAL: "gated (manual approval)", GATED_AUTO: "gated (automatic approval)",
                PUBLIC: "public"}[self.target]

    @classmethod
    def of(cls, info: Any) -> HubState:
        """From a ``ModelInfo``/``DatasetInfo``; an unknown ``private`` counts as public (fail closed)."""
        gated = getattr(info, "gated", False)
        return cls(private=bool(getattr(info, "private", False)), gated=gated if gated in ("manual", "auto") else False)


#: A repository about to be created with ``private=None`` may be public (an organization's default decides): the
#: gate assumes public, the wider audience.
def requested_state(current: HubState | None, *, private: bool | None = None, gated: Any = None,
                    visibility: str | None = None) -> HubState:
    """The state after ``update_repo_settings``/``create_repo`` with these arguments (None = unchanged/default)."""
    state = current or HubState(private=False)
    is_private = state.private
    if visibility is not None:
        is_private = visibility == "private"
    elif private is not None:
        is_private = bool(private)
    new_gated = state.gated if gated is None else (gated if gated in ("manual", "auto") else False)
    return HubState(private=is_private, gated=new_gated)


def tier_for(policy: Policy, state: HubState) -> str:
    """The tier a release in ``state`` needs, per the policy's ``targets.huggingface`` (the core's target rule)."""
    return required_tier(policy, Target(HUGGINGFACE, state.target))


def widens(policy: Policy, before: HubState | None, after: HubState) -> bool:
    """Whether going from ``before`` to ``after`` needs a higher tier (a publish), e.g. private -> public."""
    if before is None:
        return True
    return policy.rank(tier_for(policy, after)) > policy.rank(tier_for(policy, before))


def containment_state(policy: Policy, current: HubState, satisfied_tier: str | None) -> HubState:
    """The least restrictive state the evidence supports, for a revision denied in ``current``.

    Gated (manual approval) if the policy's tier for it is one the model satisfies, else private: the policy decides
    which; containment only picks among the Hub's states.
    """
    gated = HubState(private=False, gated="manual")
    if (satisfied_tier is not None and not current.private
            and policy.rank(tier_for(policy, gated)) <= policy.rank(satisfied_tier)
            and policy.rank(tier_for(policy, gated)) < policy.rank(tier_for(policy, current))):
        return gated
    return HubState(private=True, gated=current.gated)
