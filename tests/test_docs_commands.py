"""Every command in every guide runs as written (docs/testing.md, "The guides' commands"), and the example workflow's
steps run as a runner would run them.

Each guide runs in a fresh directory of its own, its commands in sequence in one shell, against this checkout's
`gate`; the guides are independent, so they can run in parallel (`-n 2`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from docs_commands import REPO, Guide, guide_env, parse_guide, prepare, problems, run_commands

GUIDES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PARSED = {path.name: parse_guide(path) for path in GUIDES}
RUNNABLE = [name for name, guide in PARSED.items() if guide.commands()]


def _run_guide(guide: Guide, tmp_path: Path, extra_env: dict[str, str] | None = None) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    prepare(guide, workdir)
    results = run_commands(guide.commands(), workdir, guide_env(workdir, extra_env))
    found = problems(guide, results)
    assert not found, "\n\n".join(found)


@pytest.mark.parametrize("name", [n for n in RUNNABLE if not PARSED[n].needs])
def test_guide_commands_run_as_written(name: str, tmp_path: Path) -> None:
    _run_guide(PARSED[name], tmp_path)


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
