"""Installing the pre-push hook (``gate hooks install``) and telling whether git will run it (``gate hooks status``).

The hook is a short shell script that runs ``gate hooks pre-push`` with the interpreter tiergate is installed
in, so it works from GUIs and shells whose PATH does not have ``gate``. The repository's ``hooks/pre-push`` is the
same script for manual installs (it runs ``gate`` from PATH).

git runs hooks from one folder: ``core.hooksPath`` when set (husky, lefthook and pre-commit set it or write there),
else ``.git/hooks``. The hook goes where git will run it. A pre-push hook already there is kept, as
``pre-push.before-tiergate``, and run by the gate's hook after the check (so a hook that uploads, like git-lfs's,
never runs before it); git-lfs's own hook is replaced instead, since the gate's hook runs ``git lfs pre-push`` itself.
A ``core.hooksPath`` from the global or system config is refused: the hook would then run for every repository that
uses that folder.

A hook can be installed and still not run: ``core.hooksPath`` set later (``npx husky init``), a hook manager that
rewrote the file, a lost executable bit, an interpreter that no longer exists. :func:`hook_status` finds each.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tiergate.errors import UsageError
from tiergate.integrations.git.objects import GitRepo

MARKER = "tiergate pre-push hook"
CHAINED = "pre-push.before-tiergate"
#: Set while the kept hook runs: a tiergate hook it runs in turn (a hook manager's copy of ours) returns at once.
KEPT_HOOK_ENV = "TIERGATE_KEPT_HOOK"
HOOK = """#!/bin/sh
# {marker}: checks the weights a push publishes against the release policy, then runs
# the hook it replaced ({chained}, if any) and `git lfs pre-push`.
# Installed by `gate hooks install`; `gate hooks status` says whether git runs it.
# Configure the tier with `git config remote.<name>.tiergateTier <tier>`.
exec {command} hooks pre-push --hook "$0" "$@"
"""
#: Shells whose scripts may be sourced, so that a kept hook sees its own name as $0 (husky's stub finds its script
#: by the name it was called as).
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})


def hook_script(python: str | None = None) -> str:
    command = f"{shlex.quote(python)} -m tiergate" if python else '"${TIERGATE:-gate}"'
    return HOOK.format(marker=MARKER, chained=CHAINED, command=command)


def _is_lfs_hook(text: str) -> bool:
    return "git lfs pre-push" in text and "git-lfs" in text and len(text) < 1024


@dataclass(frozen=True)
class HooksPath:
    """Where git runs this repository's hooks from, and why."""

    folder: Path
    setting: str | None  # core.hooksPath's value, if set
    scope: str | None  # the config it comes from


def hooks_path(repo: GitRepo) -> HooksPath:
    folder = Path(repo.git("rev-parse", "--git-path", "hooks").strip())
    folder = folder if folder.is_absolute() else repo.path / folder
    line = repo.git("config", "--show-scope", "--get", "core.hooksPath", check=False).strip()
    scope, _, value = line.partition("\t")
    return HooksPath(folder, value or None, scope or None)


def default_hooks_folder(repo: GitRepo) -> Path:
    common = Path(repo.git("rev-parse", "--git-common-dir").strip())
    return (common if common.is_absolute() else repo.path / common) / "hooks"


def _open_repo(repo_path: str | os.PathLike[str]) -> GitRepo:
    repo = GitRepo(repo_path)
    if repo.git("rev-parse", "--is-inside-work-tree", check=False).strip() != "true":
        raise UsageError(f"{repo_path}: not a git work tree")
    return repo


def install_hook(repo_path: str | os.PathLike[str], *, force: bool = False, python: str | None = None) -> Path:
    """Write the pre-push hook where git runs ``repo_path``'s hooks from; return its path.

    An existing foreign pre-push is kept as ``pre-push.before-tiergate`` and chained. Raises UsageError for a
    global ``core.hooksPath``, or when a different hook is already kept under that name (``force`` replaces it).
    """
    repo = _open_repo(repo_path)
    where = hooks_path(repo)
    if where.setting and where.scope not in ("local", "worktree"):
        raise UsageError(
            f"core.hooksPath = {where.setting} comes from the {where.scope} config: a hook installed there runs for "
            "every repository that uses it. Give this repository its own with `git config core.hooksPath <folder>` "
            "(copying the hooks it should keep there) and install again")
    target = where.folder / "pre-push"
    if target.exists() or target.is_symlink():
        current = target.read_text(errors="replace") if target.is_file() else ""
        if MARKER not in current and not _is_lfs_hook(current):
            kept = target.with_name(CHAINED)
            if kept.exists() and kept.read_bytes() != target.read_bytes() and not force:
                raise UsageError(f"{target} is another hook, and {kept} already holds a different one that the "
                                 "tiergate hook runs; merge them by hand, or pass --force to keep the new one")
            target.replace(kept)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(hook_script(python if python is not None else sys.executable))
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


def tracked_hook(repo_path: str | os.PathLike[str]) -> Path | None:
    """The pre-push hook git runs, if it is a file git tracks (a team's ``.githooks/`` in the work tree): installing
    changes it in this clone only, and committing that change would hand every clone this machine's interpreter."""
    repo = _open_repo(repo_path)
    target = hooks_path(repo).folder / "pre-push"
    listed = repo.git("ls-files", "--error-unmatch", "--", str(target.resolve()), check=False)
    return target if listed.strip() else None


# --- running the kept hook -------------------------------------------------------------------------------------


def chained_hook(hook: str | os.PathLike[str]) -> Path | None:
    """The hook the gate's hook at ``hook`` replaced and must run, if any (git skips a non-executable hook; so do
    we)."""
    kept = Path(hook).with_name(CHAINED)
    return kept if kept.is_file() and os.access(kept, os.X_OK) else None


def run_chained(hook: str | os.PathLike[str], args: list[str], stdin: bytes, cwd: Path) -> int:
    """Run the kept hook as git would have run it in place of ours: same arguments, same stdin, and, for a shell
    script, ``$0`` still the hook's own path (husky's stub finds its script by it). Returns its exit status."""
    kept = chained_hook(hook)
    if kept is None:
        return 0
    with open(kept, "rb") as handle:
        first = handle.readline(256)
    words = first[2:].decode("utf-8", "replace").split() if first.startswith(b"#!") else []
    if words and Path(words[0]).name == "env" and len(words) > 1:
        words = words[1:]
    if words and Path(words[0]).name in _SHELLS and shutil.which(words[0]):
        command = [words[0], "-c", f'. "${KEPT_HOOK_ENV}"', str(hook), *args]
    else:
        command = [str(kept), *args]
    env = {**os.environ, KEPT_HOOK_ENV: str(kept)}
    return subprocess.run(command, cwd=cwd, input=stdin, env=env, check=False).returncode


# --- status ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookStatus:
    """Whether git will run the tiergate hook on the next push, and each thing found on the way."""

    runs: bool
    lines: tuple[str, ...]


_EXEC = re.compile(r"^exec (.+?) hooks pre-push", re.MULTILINE)


def _interpreter_problem(text: str) -> str | None:
    match = _EXEC.search(text)
    if match is None:
        return "it does not run `gate hooks pre-push`"
    words = shlex.split(match.group(1))
    program = words[0] if words else ""
    if program == "${TIERGATE:-gate}":
        program = os.environ.get("TIERGATE", "gate")
    ok = os.access(program, os.X_OK) if os.sep in program else shutil.which(program) is not None
    return None if ok else f"it runs {program}, which is not there (reinstall: `gate hooks install`)"


_HAND_WIRED = re.compile(r"(^|[\s/\"'])(?:tier)?gate[\"']?\s+hooks\s+pre-push\b", re.MULTILINE)


def is_husky(where: HooksPath) -> bool:
    return where.setting is not None and Path(where.setting).parts[-2:] in ((".husky", "_"), (".husky",))


def _wired_by_hand(target: Path, text: str, where: HooksPath) -> Path | None:
    """The script that calls ``gate hooks pre-push`` itself, if not the installed hook: the hook git runs, or, with
    husky, the ``.husky/pre-push`` script its stub runs."""
    if MARKER in text:
        return None
    candidates = [(target, text)]
    if is_husky(where):
        script = where.folder.parent / "pre-push" if where.folder.name == "_" else where.folder / "pre-push"
        if script.is_file() and script != target:
            candidates.append((script, script.read_text(errors="replace")))
    for path, content in candidates:
        if _HAND_WIRED.search(content) and (path != target or os.access(target, os.X_OK)):
            return path
    return None


def hook_status(repo_path: str | os.PathLike[str]) -> HookStatus:
    """Find where git runs pre-push from and whether the tiergate hook is there and can run."""
    repo = _open_repo(repo_path)
    where = hooks_path(repo)
    lines: list[str] = []
    if where.setting:
        lines.append(f"core.hooksPath = {where.setting} ({where.scope} config): git runs hooks from {where.folder}")
    else:
        lines.append(f"git runs hooks from {where.folder}")
    target = where.folder / "pre-push"
    text = target.read_text(errors="replace") if target.is_file() else ""
    runs = False
    wired = _wired_by_hand(target, text, where)
    if wired is not None:
        runs = True
        lines.append(f"runs: {wired} calls `gate hooks pre-push` (wired by hand: `gate hooks status` cannot tell "
                     "whether it runs first, or at all on every path of that script)")
    elif not target.exists():
        lines.append(f"NOT RUN: there is no {target}")
    elif MARKER not in text:
        lines.append(f"NOT RUN: {target} is another hook (a hook manager may have rewritten it); "
                     "`gate hooks install` puts the tiergate hook there and runs this one after its check")
    elif not os.access(target, os.X_OK):
        lines.append(f"NOT RUN: {target} is not executable, so git skips it: `chmod +x {target}`")
    elif (problem := _interpreter_problem(text)) is not None:
        lines.append(f"FAILS: {target}: {problem}; every push is refused until then")
    else:
        runs = True
        lines.append(f"runs: {target}")
        kept = target.with_name(CHAINED)
        if kept.exists():
            lines.append(f"then runs the hook it replaced: {kept}" if chained_hook(target) else
                         f"{kept} is not executable, so it is not run (as git would not run it)")
    default = default_hooks_folder(repo) / "pre-push"
    if where.setting and default.resolve() != target.resolve() and default.is_file() \
            and MARKER in default.read_text(errors="replace"):
        lines.append(f"NOT RUN: {default} is a tiergate hook, but git does not look there while core.hooksPath "
                     "is set; `gate hooks install` installs where git looks")
    for name in ("pre-push.old", "pre-push.bak"):  # lefthook / hand-made copies of a replaced hook
        moved = where.folder / name
        if moved.is_file() and MARKER in moved.read_text(errors="replace"):
            lines.append(f"{moved} is a tiergate hook another tool moved aside: it runs only if that tool runs it")
    if is_husky(where) and wired is None:
        lines.append("husky rewrites its hooks folder on install; to keep the gate, put `gate hooks pre-push \"$@\"` "
                     "first in .husky/pre-push, or run `gate hooks install` after each husky install")
    return HookStatus(runs, tuple(lines))
