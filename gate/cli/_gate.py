"""What the deciding commands share: the options that override ``GATE_CONFIG``, the gate they make, the report.

Every command that decides (``gate check``, ``gate hf ...``, ``gate mlflow check``, the pre-push hook) reads the same
configuration as the integrations (``GATE_CONFIG`` and ``GATE_*``, see :class:`~gate.runtime.GateConfig`), its
options winning, and decides through :meth:`gate.runtime.Gate.decide`: with ``server:`` configured the gate service
decides (and an unreachable one denies), exactly as for the MLflow plugin or the Hub wrapper.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gate.cli._options import policy_option, trust_option
from gate.core.decision import Decision
from gate.core.render import decision_markdown, decision_text
from gate.runtime import Gate, GateConfig



__all__ = ["load_gate", "policy_option", "report", "trust_option"]


def load_gate(policy_path: Path | None = None, trust_path: Path | None = None, **settings: Any) -> Gate:
    """The gate of ``GATE_CONFIG`` / ``GATE_*`` with the options given (not None) winning. Raises ConfigError."""
    config = GateConfig.from_env().override(policy=policy_path, trust=trust_path, **settings)
    return Gate.load(config)


def report(decision: Decision, as_json: bool, markdown_path: Path | None) -> None:
    """Print the decision, append Markdown if asked, and exit with the code the decision implies."""
    click.echo(decision.to_json() if as_json else decision_text(decision), nl=not as_json)
    if markdown_path is not None:
        with open(markdown_path, "a", encoding="utf-8") as handle:
            handle.write(decision_markdown(decision))
    if decision.decision == "deny":
        click.echo(f"gate: {decision.summary()}", err=True)
    sys.exit(0 if decision.allowed else 1)
