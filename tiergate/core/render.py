"""Rendering a decision for people: a terminal table and GitHub-flavoured Markdown (for $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from tiergate.core.decision import Decision

_MARK = {"met": "met", "not_met": "NOT MET"}


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def decision_text(decision: Decision) -> str:
    lines = [
        f"model      {decision.model_digest}",
        f"policy     {decision.policy_uri} ({decision.policy_digest[:19]}...)",
        f"trust      {decision.trust_source}"
        + (f" ({decision.trust_digest[:19]}...)" if decision.trust_digest else ""),
        f"tier       {decision.requested_tier} (mode {decision.mode})",
        "",
    ]
    if not decision.requirements:
        lines.append(f"  tier '{decision.requested_tier}' has no requirements")
    width = max((len(r.id) for r in decision.requirements), default=0)
    for row in decision.requirements:
        shown = ", ".join(_short(d) for d in row.evidence[:3]) + (
            f", +{len(row.evidence) - 3}" if len(row.evidence) > 3 else "")
        evidence = f"  [{shown}]" if row.evidence and row.met else ""
        lines.append(f"  {_MARK[row.status]:<8} {row.id:<{width}}  {row.reason}{evidence}")
    if decision.rejected:
        lines += ["", "rejected attestations (counted as absent):"]
        lines += [f"  {r.source}: {r.reason}" for r in decision.rejected]
    lines += ["", f"highest tier supported: {decision.satisfied_tier or 'none'}", ""]
    verdict = "ALLOW" if decision.decision == "allow" else "DENY"
    if decision.decision == "deny" and decision.mode == "warn":
        verdict += " (warn mode: reported, not enforced)"
    lines.append(f"decision: {verdict}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def decision_markdown(decision: Decision) -> str:
    icon = (":white_check_mark:" if decision.decision == "allow"
            else ":warning:" if decision.mode == "warn" else ":no_entry:")
    lines = [
        f"### {icon} tiergate: {decision.decision.upper()} at tier `{decision.requested_tier}`",
        "",
        (f"Model `{decision.model_digest}` · policy `{_cell(decision.policy_uri)}` (`{decision.policy_digest[:19]}`) · "
         f"mode `{decision.mode}` · highest tier supported: `{decision.satisfied_tier or 'none'}`"),
        "",
        "| status | requirement | tier | why | evidence |",
        "|---|---|---|---|---|",
    ]
    for row in decision.requirements:
        status = ":white_check_mark: met" if row.met else ":x: not met"
        evidence = ", ".join(f"`{_short(d)}`" for d in row.evidence)
        lines.append(f"| {status} | `{row.id}` | {row.tier} | {_cell(row.reason)} | {evidence} |")
    if decision.rejected:
        lines += ["", "**Rejected attestations** (counted as absent):", ""]
        lines += [f"- `{_cell(r.source)}`: {_cell(r.reason)}" for r in decision.rejected]
    return "\n".join(lines) + "\n"
