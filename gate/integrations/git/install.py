"""Installing the pre-push hook into a repository (``gate hooks install``).

The hook is a two-line shell script that runs ``gate hooks pre-push`` with the interpreter release-gate is installed
in, so it works from GUIs and shells whose PATH does not have ``gate``. The repository's ``hooks/pre-push`` is the
same script for manual installs (it runs ``gate`` from PATH). git-lfs's own pre-push hook is replaced, since the
gate's hook runs ``git lfs pre-push`` itself after the check; any other hook is kept unless ``--force``.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

from gate.errors import UsageError
from gate.integrations.git.objects import GitRepo

MARKER = "release-gate pre-push hook"
HOOK = """#!/bin/sh
# {marker}: checks the weights a push publishes against the release policy, then runs `git lfs pre-push`.
# Installed by `gate hooks install`; configure the tier with `git config remote.<name>.releaseGateTier <tier>`.
exec {command} hooks pre-push "$@"
"""


def hook_script(python: str | None = None) -> str:
    command = f"{shlex.quote(python)} -m gate" if python else '"${RELEASE_GATE:-gate}"'
    return HOOK.format(marker=MARKER, command=command)


def _replaceable(text: str) -> bool:
    return MARKER in text or ("git lfs pre-push" in text and "git-lfs" in text and len(text) < 1024)


def hooks_dir(repo: GitRepo) -> Path:
    path = Path(repo.git("rev-parse", "--git-path", "hooks").strip())
    return path if path.is_absolute() else repo.path / path


def install_hook(repo_path: str | os.PathLike[str], *, force: bool = False, python: str | None = None) -> Path:
    """Write the pre-push hook into ``repo_path``'s hooks folder (respecting core.hooksPath); return its path."""
    repo = GitRepo(repo_path)
    if not (Path(repo_path) / ".git").exists() and repo.git("rev-parse", "--is-inside-work-tree", check=False).strip() != "true":
        raise UsageError(f"{repo_path}: not a git repository")
    target = hooks_dir(repo) / "pre-push"
    if target.exists():
        current = target.read_text(errors="replace")
        if not _replaceable(current):
            if not force:
                raise UsageError(f"{target} already exists and is not the release-gate or git-lfs hook; "
                                 "merge it by hand, or pass --force to keep it as pre-push.before-release-gate")
            target.replace(target.with_name("pre-push.before-release-gate"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(hook_script(python if python is not None else sys.executable))
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target
