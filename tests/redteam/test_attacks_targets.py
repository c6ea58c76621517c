"""Red-team cases against publish targets (issue 10): look-alike names must not pass a release ungated.

The policy maps targets to tiers (``mlflow:alias:production`` -> hosted). A name the policy maps, written another way
(case, width, surrounding space) is that target; a name that only *looks like* it (Cyrillic or Greek letters, digits
for letters, invisible characters) is refused; anything else is no release. One rule for every integration:
``tiergate.core.targets``.
"""

from __future__ import annotations

import pytest

from tiergate.core.policy import Policy

CONFUSABLE = "confusable"

# (id, target text, the tier it needs with the default policy, None for no release, or CONFUSABLE)
TARGETS = [
    ("targets-alias-exact", "mlflow:alias:production", "hosted"),
    ("targets-alias-capitalised", "mlflow:alias:Production", "hosted"),
    ("targets-alias-trailing-space", "mlflow:alias:production ", "hosted"),
    ("targets-alias-full-width", "mlflow:alias:\uff50\uff52\uff4f\uff44\uff55\uff43\uff54\uff49\uff4f\uff4e", "hosted"),
    ("targets-alias-cyrillic-er", "mlflow:alias:\u0440roduction", CONFUSABLE),
    ("targets-alias-cyrillic-o", "mlflow:alias:pr\u043educti\u043en", CONFUSABLE),
    ("targets-alias-zero-width-space", "mlflow:alias:prod\u200buction", CONFUSABLE),
    ("targets-alias-digit-for-letter", "mlflow:alias:pub1ic", CONFUSABLE),
    ("targets-alias-greek-omicron", "mlflow:alias:champi\u03bfn", CONFUSABLE),
    ("targets-alias-unmapped", "mlflow:alias:nightly", None),
    ("targets-stage-upper", "mlflow:stage:PRODUCTION", "hosted"),
    ("targets-tag-value-space", "mlflow:tag:release.tier=hosted ", "hosted"),
    ("targets-tag-value-upper", "mlflow:tag:release.tier=HOSTED", "hosted"),
    ("targets-tag-value-cyrillic-shha", "mlflow:tag:release.tier=\u04bbosted", CONFUSABLE),
    ("targets-tag-value-open-full-width", "mlflow:tag:release.tier=\uff4fpen", "open"),
    ("targets-hub-public-upper", "huggingface:PUBLIC", "open"),
]


@pytest.mark.parametrize(("target_id", "text", "expected"), TARGETS, ids=[t[0] for t in TARGETS])
def test_target_names_are_normalised_once(target_id: str, text: str, expected: str | None) -> None:
    from tiergate.core.targets import ConfusableTarget, Target, mapped_tier

    policy = Policy.load(None)
    if expected == CONFUSABLE:
        with pytest.raises(ConfusableTarget, match="looks like"):
            mapped_tier(policy, Target.parse(text))
    else:
        assert mapped_tier(policy, Target.parse(text)) == expected
