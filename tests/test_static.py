"""Types and lint are part of the suite: `mypy --strict` on the package and ruff on the whole tree must be clean.

Both read their configuration from pyproject.toml ([tool.mypy], [tool.ruff]), where every relaxation says why. They
come with the dev extra; where they are missing the tests skip loudly, and under CI (CI=true) they fail instead.
mypy keeps its cache in .mypy_cache, so a run after a small change takes seconds.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool) is None:
        message = f"{tool} is not installed: pip install -e '.[dev]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_mypy_strict_is_clean() -> None:
    result = _run("mypy")  # files, strictness and the justified relaxations: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "--no-cache", ".")  # the package, tests, bench and scripts: [tool.ruff]
    assert result.returncode == 0, f"ruff found problems:\n{result.stdout}{result.stderr}"
