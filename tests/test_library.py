"""The library API: docs/library.md's examples run as written, and `import tiergate` exports exactly what it
promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tiergate
from tiergate import api
from content_samples import envelope_bytes
from support import World, write_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "library.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.mark.parametrize("index", range(2))
def test_the_docs_examples_run_as_written(index: int, tmp_path: Path, world: World) -> None:
    manifest = tiergate.hash_model(write_model(tmp_path / "model"))
    (tmp_path / "model" / ".attestations").mkdir()
    good = world.attest(manifest, next(iter(world.evaluators)), "mmlu", {"acc": 0.7})
    (tmp_path / "model" / ".attestations" / "mmlu.json").write_bytes(good.data)
    # An envelope that does not verify: judged alone (a file that is no envelope at all is refused with the model).
    (tmp_path / "model" / ".attestations" / "bad.json").write_bytes(envelope_bytes())
    (tmp_path / "trust.yaml").write_text(world.trust_path().read_text())
    result = subprocess.run([sys.executable, "-c", _python_blocks()[index]], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if index == 0:
        assert result.stdout.startswith("allow release at tier 'internal' allowed")
    else:
        lines = sorted(result.stdout.splitlines())
        assert [line.split()[:2] for line in lines] == [["INVALID", "model/.attestations/bad.json"],
                                                        ["VALID", "model/.attestations/mmlu.json"]], lines


def test_the_package_root_exports_the_public_api_lazily() -> None:
    assert sorted(tiergate.__all__) == sorted(api.__all__)
    for name in tiergate.__all__:
        assert getattr(tiergate, name) is getattr(api, name)
    with pytest.raises(AttributeError):
        tiergate.not_a_name  # noqa: B018
    probe = "import sys, tiergate; print(any(m.startswith('tiergate.core') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_check_decides_like_the_cli(tmp_path: Path, world: World) -> None:
    model = write_model(tmp_path / "model")
    decision = tiergate.check(model, tier="hosted", trust=world.trust_path())
    assert isinstance(decision, tiergate.Decision) and decision.decision == "deny" and decision.missing
    with pytest.raises(tiergate.ConfigError):
        tiergate.check(model, tier="no-such-tier")
