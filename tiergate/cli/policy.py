"""``gate policy validate`` and ``gate policy explain``."""

from __future__ import annotations

from pathlib import Path

import click

from tiergate.core.policy import Policy, format_duration


@click.group("policy")
def policy_group() -> None:
    """Validate or explain a tier policy."""


@policy_group.command("validate")
@click.argument("policy_file", type=click.Path(dir_okay=False, path_type=Path))
def validate_command(policy_file: Path) -> None:
    """Check POLICY_FILE; print its digest and tiers, or the first mistake (file and field). Exit 2 on a mistake."""
    policy = Policy.load(policy_file)
    for name in policy.tier_names:
        policy.effective(name)
    click.echo(f"{policy_file}: valid policy '{policy.name}' ({policy.digest}); tiers: {' < '.join(policy.tier_names)}")


def explain_tier(policy: Policy, name: str) -> list[str]:
    tier = policy.effective(name)
    own = policy.tier(name)
    lines = [f"Tier '{tier.name}'" + (f": {own.description}" if own.description else "")]
    if len(tier.chain) > 1:
        lines.append(f"  Includes everything '{tier.chain[1]}' requires.")
    if tier.mode == "warn":
        lines.append("  Mode: warn - a failed check is reported but does not block.")
    if not (tier.evaluations or tier.signers.min_organizations or tier.signers.required_kinds or tier.max_age
            or tier.allowed_formats):
        lines.append("  Requires nothing: any model may be released at this tier.")
    for owner, req in tier.evaluations:
        source = f" ({req.description})" if req.description != req.id else ""
        inherited = f" [from {owner}]" if owner != tier.name else ""
        cited = f" Source: {req.source}." if req.source else ""
        lines.append(f"  - {req.id}: a signed evaluation showing {req.describe()}{source}{inherited}{cited}")
    s = tier.signers
    if s.min_organizations:
        lines.append(f"  - Evidence signed by at least {s.min_organizations} different evaluator organization(s).")
    if s.min_independent:
        lines.append(f"  - At least {s.min_independent} of them independent of the model developer.")
    for kind in s.required_kinds:
        lines.append(f"  - At least one {kind.replace('_', ' ')} evaluator among the signers.")
    if tier.max_age:
        lines.append(f"  - Only attestations at most {format_duration(tier.max_age)} old count; "
                     "older ones are ignored.")
    if tier.allowed_formats:
        lines.append(f"  - Weight files only in {', '.join(tier.allowed_formats)}, judged by content "
                     "(pickle-bearing and unrecognised files refused).")
    return lines


@policy_group.command("explain")
@click.argument("policy_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tier", help="Explain only this tier.")
def explain_command(policy_file: Path | None, tier: str | None) -> None:
    """Say in plain words what each tier of POLICY_FILE requires (default: the policy GATE_POLICY or GATE_CONFIG
    names, the one decisions use; else the shipped policy)."""
    from tiergate.cli._options import configured

    policy = Policy.load(configured(policy_file, "policy"))
    names = [policy.tier(tier).name] if tier else list(policy.tier_names)
    click.echo(f"Policy '{policy.name}' ({policy.uri}, {policy.digest[:19]}...); tiers from least to most open: "
               f"{' < '.join(policy.tier_names)}.\n")
    for name in names:
        click.echo("\n".join(explain_tier(policy, name)) + "\n")
