"""Every command in every guide runs as written (docs/testing.md, "The guides' commands"), and the example workflow's
steps run as a runner would run them.

Each guide runs in a fresh directory of its own, its commands in sequence in one shell, against this checkout's
`gate`; the guides are independent, so they can run in parallel (`-n 2`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from docs_commands import REPO, Guide, guide_env, parse_guide, prepare, problems, run_commands

GUIDES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PARSED = {path.name: parse_guide(path) for path in GUIDES}
RUNNABLE = [name for name, guide in PARSED.items() if guide.commands()]
SERVICES = {"hub"}  # what `docs-test: needs:` may name (docs/testing.md)
_SERVERS = ("mlflow server", "gate serve --", "gate serve &")


def _starts_servers(guide: Guide) -> bool:
    return bool(guide.needs) or any(s in c.text for c in guide.commands() for s in _SERVERS)


@pytest.fixture(scope="module")
def hub_env() -> Iterator[dict[str, str]]:
    """The Hub stand-in of the Hub tests, on 127.0.0.1, for guides that upload: huggingface_hub talks to it as to the
    Hub (HF_ENDPOINT), with a token the stand-in accepts."""
    from hf.hub_standin import HubStandin

    hub = HubStandin()
    endpoint = hub.start()
    yield {"HF_ENDPOINT": endpoint, "HF_TOKEN": "hf_test", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    hub.stop()


def _run_guide(guide: Guide, tmp_path: Path, extra_env: dict[str, str] | None = None) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    prepare(guide, workdir)
    results = run_commands(guide.commands(), workdir, guide_env(workdir, extra_env))
    found = problems(guide, results)
    assert not found, "\n\n".join(found)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.e2e] if _starts_servers(PARSED[n]) else [])
                                  for n in RUNNABLE])
def test_guide_commands_run_as_written(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    guide = PARSED[name]
    assert set(guide.needs) <= SERVICES, guide.needs
    env = request.getfixturevalue("hub_env") if "hub" in guide.needs else None
    _run_guide(guide, tmp_path, env)


def test_skips_are_few_and_say_why(capsys: pytest.CaptureFixture[str]) -> None:
    skipped = [(b.guide, b.line, b.skip) for g in PARSED.values() for b in g.blocks if b.skip is not None]
    with capsys.disabled():
        print("\nguide blocks not run:")
        for guide, line, reason in skipped:
            print(f"  {guide}:{line}: {reason}")
    assert all(reason and len(reason) > 10 for _, _, reason in skipped), skipped
    assert len(skipped) <= 12, "keep skips few: give the block concrete, runnable values instead"


def test_every_guide_is_looked_at() -> None:
    # A guide with shell blocks that are neither run nor skipped would be a hole.
    assert "README.md" in RUNNABLE and "evaluator.md" in RUNNABLE
    for guide in PARSED.values():
        for block in guide.blocks:
            assert block.commands or block.skip, f"{guide.name}:{block.line}: a {block.tag} block with no command"
