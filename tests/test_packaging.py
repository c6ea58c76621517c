"""The wheel users install carries what the package reads at run time and what the docs promise, and its metadata
passes the package index's checks (twine check)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_carries_the_schemas_the_default_policy_and_its_types(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    schemas = {p.name for p in (REPO / "tiergate" / "data" / "schemas").glob("*.json")}
    assert schemas and {f"tiergate/data/schemas/{name}" for name in schemas} <= names
    assert {"tiergate/data/default-policy.yaml", "tiergate/py.typed"} <= names
    assert not any(name.startswith(("tests/", "docs/", "bench/")) for name in names)


def test_twine_check_passes(wheel: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
