"""What the deciding commands share: the options that override ``GATE_CONFIG``, the gate they make, the report.

Every command that decides (``gate check``, ``gate hf ...``, ``gate mlflow check``, the pre-push hook) reads the same
configuration as the integrations (``GATE_CONFIG`` and ``GATE_*``, see :class:`~tiergate.runtime.GateConfig`), its
options winning, and decides through :meth:`tiergate.runtime.Gate.decide`: with ``server:`` configured the gate service
decides (and an unreachable one denies), exactly as for the MLflow plugin or the Hub wrapper.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import click

from tiergate.cli._options import policy_option, trust_option
from tiergate.core.decision import Decision
from tiergate.core.manifest import Manifest
from tiergate.core.render import decision_markdown, decision_text
from tiergate.core.verify import AttestationInput
from tiergate.errors import UsageError
from tiergate.runtime import Gate, GateConfig, LocalDecider



__all__ = ["check", "load_gate", "policy_option", "report", "trust_option"]


def load_gate(policy_path: Path | None = None, trust_path: Path | None = None, **settings: Any) -> Gate:
    """The gate of ``GATE_CONFIG`` / ``GATE_*`` with the options given (not None) winning. Raises ConfigError."""
    config = GateConfig.from_env().override(policy=policy_path, trust=trust_path, **settings)
    return Gate.load(config)


def check(gate: Gate, tier: str, model: Manifest, attestations: Sequence[AttestationInput],
          context: Mapping[str, Any], now: datetime | None) -> Decision:
    """The decision of a check command (it publishes nothing): recorded like any other, except a replay (``--now``),
    judged as of then and recorded nowhere, so the log only holds decisions timed by the gate's clock. Raises
    UsageError for a replay with a gate service (the service times its decisions)."""
    if now is None:
        return gate.decide(tier, model, attestations, context)
    if gate.config.server is not None:
        raise UsageError("--now is local-only: with a gate service (--server, GATE_SERVER or server: in "
                         f"{gate.config.source}) the service times its decisions")
    return LocalDecider(gate.policy, gate.trust).decide(tier, model, attestations, context, now).decision


def report(decision: Decision, as_json: bool, markdown_path: Path | None) -> None:
    """Print the decision, append Markdown if asked, and exit with the code the decision implies."""
    click.echo(decision.to_json() if as_json else decision_text(decision), nl=not as_json)
    if markdown_path is not None:
        with open(markdown_path, "a", encoding="utf-8") as handle:
            handle.write(decision_markdown(decision))
    if decision.decision == "deny":
        click.echo(f"gate: {decision.summary()}", err=True)
    sys.exit(0 if decision.allowed else 1)
