"""The GitHub Action's script, run as the runner would run it (no runner exists here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, World, write_model

SCRIPT = REPO / ".github" / "actions" / "tiergate" / "run.sh"


def run_action(tmp: Path, model: Path, tier: str, trust: Path) -> tuple[subprocess.CompletedProcess[str], str, str]:
    summary, output = tmp / "summary.md", tmp / "output.txt"
    env = {
        **os.environ,
        "GATE": str(Path(sys.executable).parent / "gate"),
        "INPUT_MODEL_DIR": str(model), "INPUT_TIER": tier, "INPUT_TRUST": str(trust),
        "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
    }
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    return result, summary.read_text() if summary.exists() else "", output.read_text() if output.exists() else ""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "model")


def test_action_denies_and_writes_the_table(tmp_path: Path, model: Path, world: World) -> None:
    result, summary, output = run_action(tmp_path, model, "open", world.trust_path())
    assert result.returncode == 1
    assert "::error title=tiergate::release denied at tier open" in result.stdout
    assert "tiergate: DENY at tier `open`" in summary
    assert "| :x: not met | `wmdp-bio-open`" in summary
    assert "decision=deny" in output and "satisfied-tier=internal" in output


def test_action_allows_internal(tmp_path: Path, model: Path, world: World) -> None:
    result, summary, output = run_action(tmp_path, model, "internal", world.trust_path())
    assert result.returncode == 0, result.stderr
    assert "ALLOW" in summary and "decision=allow" in output


def test_action_configuration_error_exits_2(tmp_path: Path, model: Path) -> None:
    result, _, _ = run_action(tmp_path, model, "open", tmp_path / "missing-trust.yaml")
    assert result.returncode == 2
    assert "configuration error" in result.stdout and "trust store not found" in result.stderr
