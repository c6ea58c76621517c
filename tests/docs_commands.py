"""Run the guides' shell blocks as written: parsing (blocks, commands, shown output), the files a guide starts from,
and running one guide's commands in sequence in one shell. The convention is documented in docs/testing.md.

- A fenced block tagged ``bash``, ``sh`` or ``console`` is run; any other tag (``yaml``, ``python``, none) is not.
- ``console``: a line starting with ``$ `` is a command (a line ending in ``\\`` continues it); the lines after it,
  up to the next command, are its shown output. ``bash``/``sh``: every line is a command (comment lines aside).
- Exit codes: a command followed by ``$ echo $?`` must exit with the number shown; otherwise one whose shown output
  ends with ``gate: release at tier '...' denied`` must exit 1, one whose shown output ends with another ``gate: ...``
  line (the CLI's one-line error) must fail (exit 1 or 2), and every other must exit 0.
- Shown output is checked loosely: each shown line must appear in what the command printed (stdout and stderr),
  ``...`` standing for anything, hexadecimal runs of 8 or more characters (digests, key ids), base64 and RFC 3339
  times for any value of their kind, whitespace runs for any whitespace; shown JSON is compared as JSON.
- ``<!-- docs-test: skip: REASON -->`` on the line before a block: not run (the test lists every skip and its reason).
- ``<!-- docs-test: files: NAME ... -->`` anywhere in a guide: the files (named in ``FILES``) the guide assumes you
  already have, e.g. your model folder and evaluation logs; they are put in the guide's fresh directory first.
- ``<!-- docs-test: needs: SERVICE ... -->``: a service the guide talks to (``SERVICES`` below).
- The ports of ``GUIDE_PORTS`` in commands and shown output are replaced by free ones for each run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN_TAGS = {"bash", "sh", "console"}
_FENCE = re.compile(r"^\s*```(\S*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(skip|files|needs):\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Command:
    """One command of a guide, the output it shows, and the exit status it implies."""

    text: str
    line: int
    shown: tuple[str, ...]
    expect: int | None  # an exact status, or None: "fails" (1 or 2) when ``fails`` is set, else 0
    fails: bool = False

    def expected_status_ok(self, status: int) -> bool:
        if self.expect is not None:
            return status == self.expect
        return status in (1, 2) if self.fails else status == 0


@dataclass(frozen=True)
class Block:
    guide: str
    line: int
    tag: str
    commands: tuple[Command, ...]
    skip: str | None = None


@dataclass
class Guide:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    #: lines of blocks that are not run but look like commands at a prompt (``$ ...``): a block someone forgot to tag
    untagged_prompts: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(REPO)) if self.path.is_relative_to(REPO) else str(self.path)

    def commands(self) -> list[Command]:
        return [c for b in self.blocks if b.skip is None for c in b.commands]


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in lines:
        pending = (pending[0], pending[1] + "\n" + text) if pending is not None else (number, text)
        if not text.endswith("\\"):
            joined.append(pending)
            pending = None
    if pending is not None:
        joined.append(pending)
    return joined


# Lines the CLI prints with its prefix that are not errors: what `gate serve` serves, what `gate hooks` installed and
# found, where `gate hf upload` uploaded.
_PROGRESS = ("gate: serving on", "gate: log verifier key", "gate: installed ", "gate: git runs hooks", "gate: runs: ",
             "gate: push to ", "gate: uploaded to ")


def _is_error_line(line: str) -> bool:
    return line.startswith("gate: ") and not line.startswith(_PROGRESS)


def _console_commands(body: list[tuple[int, str]]) -> list[Command]:
    entries: list[tuple[int, list[str], list[str]]] = []  # (line, command lines, shown lines)
    for number, text in body:
        if text.startswith("$ "):
            entries.append((number, [text[2:]], []))
        elif entries and entries[-1][1][-1].endswith("\\") and not entries[-1][2]:
            entries[-1][1].append(text)
        elif entries:
            entries[-1][2].append(text)
    commands: list[Command] = []
    for number, lines, shown in entries:
        text = "\n".join(lines)
        if text.strip() == "echo $?":
            # Pins the previous command's status rather than running.
            previous = commands[-1]
            commands[-1] = Command(previous.text, previous.line, previous.shown, int(shown[0]), previous.fails)
            continue
        fails = bool(shown) and _is_error_line(shown[-1])
        # A release shown as denied is a deny, exit 1, not a usage or configuration error (2).
        denied = fails and re.match(r"gate: release at tier '[^']+' denied", shown[-1]) is not None
        commands.append(Command(text, number, tuple(shown), 1 if denied else None, fails))
    return commands


_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)")


def _script_commands(body: list[tuple[int, str]]) -> list[Command]:
    lines: list[tuple[int, str]] = []
    heredoc: str | None = None
    for number, text in body:
        if heredoc is not None:  # a here-document's lines belong to the command that opened it
            lines[-1] = (lines[-1][0], lines[-1][1] + "\n" + text)
            heredoc = None if text.strip() == heredoc else heredoc
            continue
        if text.strip() and not text.lstrip().startswith("#"):
            lines.append((number, text))
            opened = _HEREDOC.search(text)
            heredoc = opened.group(1) if opened else None
    return [Command(text, number, (), None) for number, text in _join_continuations(lines)]


def parse_guide(path: Path) -> Guide:
    guide = Guide(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    skip: str | None = None
    index = 0
    while index < len(lines):
        text = lines[index]
        directive = _DIRECTIVE.match(text)
        if directive:
            kind, value = directive.groups()
            if kind == "skip":
                skip = value
            elif kind == "files":
                guide.files += value.split()
            else:
                guide.needs += value.split()
            index += 1
            continue
        fence = _FENCE.match(text)
        if not fence:
            if text.strip():
                skip = None  # a skip applies to the block right after it
            index += 1
            continue
        tag, start = fence.group(1), index + 1
        end = start
        indent = len(text) - len(text.lstrip())
        while end < len(lines) and not lines[end].lstrip().startswith("```"):
            end += 1
        body = [(n + 1, lines[n][indent:]) for n in range(start, end)]
        if tag in RUN_TAGS:
            commands = _console_commands(body) if tag == "console" else _script_commands(body)
            guide.blocks.append(Block(guide.name, index + 1, tag, tuple(commands), skip))
        else:
            guide.untagged_prompts += [number for number, line in body if line.startswith("$ ")]
        skip = None
        index = end + 1
    return guide


# --- what the printed output is compared with ---------------------------------------------------------------------

_VARIABLE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<time>"),
    (re.compile(r"[0-9a-f]{8,}"), "<hex>"),
    (re.compile(r"[A-Za-z0-9+/]{40,}={0,2}"), "<b64>"),
    (re.compile(r"\s+"), " "),
]


def normalise(text: str) -> str:
    for pattern, replacement in _VARIABLE:
        text = pattern.sub(replacement, text)
    return text.strip()


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _normalise_json(value: object) -> object:
    if isinstance(value, dict):
        return {key: _normalise_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise_json(item) for item in value]
    return normalise(value) if isinstance(value, str) else value


def shown_lines_missing(shown: tuple[str, ...], printed: str) -> list[str]:
    """The shown lines (those without an ellipsis) that do not appear in what was printed; shown output that is one
    JSON document is compared as JSON (the guides may lay it out more compactly than the CLI prints it)."""
    shown_json = _json_or_none("\n".join(shown)) if shown and shown[0].startswith(("{", "[")) else None
    if shown_json is not None:
        same = _normalise_json(shown_json) == _normalise_json(_json_or_none(printed))
        return [] if same else ["(the JSON document shown)"]
    got = normalise(printed)
    return [line for line in shown if not _appears(normalise(line.replace("…", "...")), got)]


def _appears(line: str, got: str) -> bool:
    """``line`` is in ``got``, an ellipsis in it standing for anything (a line of only an ellipsis says nothing)."""
    pieces = [piece.strip() for piece in line.split("...")]
    if not any(pieces):
        return True
    return re.search(".*?".join(re.escape(piece) for piece in pieces), got) is not None


# --- the files a guide starts from --------------------------------------------------------------------------------


def _importable(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _model(root: Path) -> None:
    """The same bytes every run, so the digests the guides show are this model's."""
    _importable(REPO / "tests")
    from content_samples import safetensors_bytes

    weights = bytes(range(256)) * 64
    root.mkdir()
    (root / "config.json").write_bytes(b'{"architectures": ["LlamaTiny"]}')
    (root / "model.safetensors").write_bytes(safetensors_bytes({"w": ("U8", [len(weights)], weights)}))


def _inspect_log(path: Path) -> None:
    _importable(REPO / "tests" / "evidence")
    from test_inspect import (  # the layout inspect_ai writes, shared with its reader's tests
        HEADER,
        build_eval,
    )

    build_eval(path, HEADER)


def _copy(source: str) -> Callable[[Path], object]:
    return lambda path: shutil.copyfile(REPO / source, path)


FILES: dict[str, Callable[[Path], object]] = {
    # your model folder: safetensors weights and a config (32 + 16,464 bytes, as formats.md shows)
    "llama-7b": _model,
    "model": _model,
    # an lm-evaluation-harness results file of a WMDP run (three tasks)
    "results_wmdp.json": _copy("tests/evidence/data/lm_eval/results_2025-03-14T09-41-27.512843.json"),
    "results.json": _copy("tests/evidence/data/lm_eval/results_2025-03-14T09-41-27.512843.json"),
    # a UK AISI Inspect log (.eval zip) of inspect_evals/wmdp_bio
    "wmdp_bio.eval": _inspect_log,
    # any raw log of a run, to pin by digest
    "run-log.json": lambda path: path.write_text('{"run": "strongreject", "samples": 313}\n'),
    # a model signed with Sigstore keyless (public good): model-transparency's fixture, its model.sig in .attestations
    "demo-model": lambda path: _sigstore_model(path, REPO / "tests/vectors/model-transparency/v1.1.0-sigstore"),
}


def _sigstore_model(path: Path, fixture: Path) -> None:
    (path / ".attestations").mkdir(parents=True)
    for name in ("signme-1", "signme-2"):
        shutil.copyfile(fixture / name, path / name)
    shutil.copyfile(fixture / "model.sig", path / ".attestations" / "model.sig")


def prepare(guide: Guide, workdir: Path) -> None:
    for name in guide.files:
        if name not in FILES:
            raise KeyError(f"{guide.name}: docs-test files: {name!r} is not one of {sorted(FILES)}")
        FILES[name](workdir / name)


# --- running a guide ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    command: Command
    status: int
    output: str


def guide_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A user's shell: this checkout's `gate` first on PATH, a HOME of its own, nothing of the test run's GATE_*."""
    home = workdir.parent / (workdir.name + "-home")
    home.mkdir(exist_ok=True)
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("GATE_", "MLFLOW_", "HF_", "GIT_", "PYTEST_", "COV_")) and k != "PYTHONPATH"}
    return {
        **keep,
        "PATH": f"{Path(sys.executable).parent}:{keep.get('PATH', '/usr/bin:/bin')}",
        "PYTHONPATH": str(REPO),
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Docs Test", "GIT_AUTHOR_EMAIL": "docs@example.com",
        "GIT_COMMITTER_NAME": "Docs Test", "GIT_COMMITTER_EMAIL": "docs@example.com",
        "COLUMNS": "200",
        **(extra or {}),
    }


#: The ports the guides' servers listen on. Each run gets free ones instead, the same substitution in commands and
#: shown output, so that two runs of the docs test (or a port taken on the machine) do not collide.
GUIDE_PORTS = (5000, 8700, 8787, 8788)
_PORT = re.compile(r"(?:(?<=127\.0\.0\.1:)|(?<=--port ))(" + "|".join(map(str, GUIDE_PORTS)) + r")\b")


def free_ports() -> dict[str, str]:
    sockets = [socket.socket() for _ in GUIDE_PORTS]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return {str(port): str(sock.getsockname()[1]) for port, sock in zip(GUIDE_PORTS, sockets, strict=True)}
    finally:
        for sock in sockets:
            sock.close()


def with_ports(commands: list[Command], ports: dict[str, str]) -> list[Command]:
    def swap(text: str) -> str:
        return _PORT.sub(lambda match: ports[match.group(1)], text)

    return [replace(c, text=swap(c.text), shown=tuple(swap(line) for line in c.shown)) for c in commands]


def run_commands(commands: list[Command], workdir: Path, env: dict[str, str], timeout: float = 240) -> list[Result]:
    """Run the commands in order in one bash (so `export` and `cd` carry over), each one's output and status kept."""
    marks = workdir.parent / (workdir.name + "-marks")
    marks.mkdir(exist_ok=True)
    script = ["set +e"]
    for index, command in enumerate(commands):
        # Braces, not a subshell: what a command exports is seen by the next, as in a terminal.
        script.append(f"{{ {command.text}\n}} >'{marks}/{index}.out' 2>&1 </dev/null; echo $? >'{marks}/{index}.rc'")
    script.append("kill $(jobs -p) 2>/dev/null; wait")
    # A session of its own: whatever the guide started in the background (servers and their workers) is in its
    # process group, which is ended afterwards even if the shell did not get to stop it.
    process = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=workdir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    results = []
    for index, command in enumerate(commands):
        rc = marks / f"{index}.rc"
        if not rc.exists():
            raise AssertionError(f"command at line {command.line} did not run (bash: {stderr[-2000:]})")
        results.append(Result(command, int(rc.read_text()), (marks / f"{index}.out").read_text(errors="replace")))
    return results


def problems(guide: Guide, results: list[Result]) -> list[str]:
    found = []
    for result in results:
        command = result.command
        where = f"{guide.name}:{command.line}: $ {command.text}"
        if not command.expected_status_ok(result.status):
            wanted = command.expect if command.expect is not None else ("1 or 2" if command.fails else 0)
            found.append(f"{where}\n  exit {result.status}, the guide implies {wanted}\n"
                         f"  output: {result.output[-1500:]}")
            continue
        missing = shown_lines_missing(command.shown, result.output)
        if missing:
            found.append(f"{where}\n  shown but not printed: {missing}\n  printed: {result.output[-1500:]}")
    return found
