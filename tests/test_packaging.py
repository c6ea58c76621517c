"""The wheel users install carries what the package reads at run time and what the docs promise, and its metadata
passes the package index's checks (twine check)."""

from __future__ import annotations

import re
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


def test_the_project_urls_are_the_one_location_the_docs_name(wheel: Path) -> None:
    metadata = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    urls = dict(line.removeprefix("Project-URL: ").split(", ", 1) for line in text.splitlines()
                if line.startswith("Project-URL: "))
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    assert all(url.startswith("https://github.com/tiergate/tiergate") for url in urls.values())
    # README, guides, the example workflow and the Action name the same repository, and no placeholder of it.
    texts = [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "docs" / "examples").glob("*.yml"),
             *(REPO / ".github" / "actions").rglob("*.yml")]
    for path in texts:
        body = path.read_text(encoding="utf-8")
        assert "your-org" not in body and "<org>" not in body, path
        for repo in {m.split("/.github")[0] for m in re.findall(r"uses: ([\w.-]+/tiergate)/\.github", body)}:
            assert repo == "tiergate/tiergate", (path, repo)
