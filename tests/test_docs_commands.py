"""Every command in every guide runs as written (docs/testing.md, "The guides' commands"), and the example workflow's
steps run as a runner would run them.

Each guide runs in a fresh directory of its own, its commands in sequence in one shell, against this checkout's
`gate`; the guides are independent, so they can run in parallel (`-n 2`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_commands import (
    REPO,
    Guide,
    free_ports,
    guide_env,
    parse_guide,
    prepare,
    problems,
    run_commands,
    shown_lines_missing,
    with_ports,
)

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
    results = run_commands(with_ports(guide.commands(), free_ports()), workdir, guide_env(workdir, extra_env))
    found = problems(guide, results)
    assert not found, "\n\n".join(found)


def _slowest_first(name: str) -> tuple[bool, bool, str]:
    # An MLflow server takes longest to start: handed out first, it runs beside the other guides under -n 2.
    commands = " ".join(c.text for c in PARSED[name].commands())
    return ("mlflow server" not in commands, not _starts_servers(PARSED[name]), name)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.e2e] if _starts_servers(PARSED[n]) else [])
                                  for n in sorted(RUNNABLE, key=_slowest_first)])
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
        assert not guide.untagged_prompts, (f"{guide.name}: commands at a prompt in a block that is not run (tag it "
                                            f"console): lines {guide.untagged_prompts}")
        for block in guide.blocks:
            assert block.commands or block.skip, f"{guide.name}:{block.line}: a {block.tag} block with no command"


def test_the_conventions_are_read_as_documented(tmp_path: Path) -> None:
    # The reader of the guides can fail: a wrong status or a line the command did not print is reported.
    page = tmp_path / "guide.md"
    page.write_text(
        "<!-- docs-test: files: llama-7b -->\n"
        "```console\n$ gate hash llama-7b \\\n    --json\n{\"model\": \"llama-7b\"}\n"
        "$ gate check x --tier open\ngate: release at tier 'open' denied: ...\n"
        "$ gate verify y\ngate: y: not found\n$ false\n$ echo $?\n1\n```\n"
        "<!-- docs-test: skip: an example of a skip reason -->\n```bash\nrm -rf /\n```\n"
        "```bash\ncat > f <<'EOF'\na: 1\nEOF\n# a comment\ntrue\n```\n```yaml\nnot: run\n```\n"
    )
    guide = parse_guide(page)
    assert guide.files == ["llama-7b"] and [b.skip for b in guide.blocks] == [None, "an example of a skip reason", None]
    hash_json, check, verify, false, heredoc, true = guide.commands()
    assert hash_json.text == "gate hash llama-7b \\\n    --json" and hash_json.expected_status_ok(0)
    assert check.expect == 1 and not check.expected_status_ok(2)
    assert verify.expected_status_ok(2) and verify.expected_status_ok(1) and not verify.expected_status_ok(0)
    assert false.expect == 1 and heredoc.text == "cat > f <<'EOF'\na: 1\nEOF" and true.text == "true"
    assert shown_lines_missing(hash_json.shown, '{\n  "model": "llama-7b"\n}') == []
    assert shown_lines_missing(hash_json.shown, '{"model": "other"}') != []
    assert shown_lines_missing(("digest sha256:c750ae5a... of llama-7b",),
                               "digest sha256:" + "ab" * 32 + " of llama-7b") == []
    assert shown_lines_missing(("decision: ALLOW",), "decision: DENY") == ["decision: ALLOW"]
