"""The README's main-job command, run as a newcomer would (in a scratch folder)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO


@pytest.mark.e2e
def test_demo_refuses_then_allows_a_real_mlflow_promotion(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "MLFLOW_"))}
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert out.count("RestException PERMISSION_DENIED (HTTP 403)") == 2  # promotions: no evidence, changed weights
    assert out.count("HTTPError PERMISSION_DENIED (HTTP 403)") == 1  # the re-upload of changed weights
    assert "are frozen once published through the release gate" in out and "\nuploaded" not in out
    assert "tiergate.tier = hosted" in out and "alias set" in out
    assert "these weights are not the ones evaluated" in out
    assert out.index("HTTPError PERMISSION_DENIED") < out.index("on the server's disk") < out.index(
        "these weights are not the ones evaluated")
    assert "log audit passed" in out
