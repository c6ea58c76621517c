"""The pre-push hook's logic: decide on every tree a push publishes, then hand over to git-lfs.

git runs ``pre-push <remote-name> <remote-url>`` with one line per ref on stdin:
``<local-ref> <local-sha> <remote-ref> <remote-sha>`` (all-zero sha for a new remote ref or a deletion). For each
ref that is created or updated:

1. the pushed commit's tree is turned into a manifest (LFS pointers give the weights' sha256; regular blobs are
   hashed) and decided at the tier configured for that remote, with the attestations in its ``.attestations/``
   (and the gate service's, when one is configured);
2. every *other* commit the push sends that adds weight files which are not in that tree is decided too: history
   is downloadable from the remote, so weights there are published as well.

Any deny aborts the push (exit 1) before git-lfs uploads a single object, since git-lfs uploads from its own
pre-push hook, which this hook runs last, replaying the same stdin.

The tier comes from git config: ``remote.<name>.releaseGateTier``, else ``release-gate.tier``. No tier configured
means the push is refused with the command that configures one: a hook that guessed would either block everything
or publish anything. The hook is advisory (``git push --no-verify`` skips it); the Hub webhook is the backstop.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gate.core.decision import Decision
from gate.core.manifest import weight_format
from gate.errors import UsageError
from gate.integrations.git.objects import ZERO_SHA, GitRepo, PushedTree, introduced_blobs, new_commits, pushed_tree

TIER_KEY = "remote.{remote}.releaseGateTier"
DEFAULT_TIER_KEY = "release-gate.tier"


@dataclass(frozen=True)
class RefUpdate:
    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str

    @property
    def is_delete(self) -> bool:
        return self.local_sha == ZERO_SHA or self.local_ref == "(delete)"


def parse_updates(text: str) -> list[RefUpdate]:
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise UsageError(f"pre-push: unexpected line on stdin: {line!r}")
        updates.append(RefUpdate(*parts))
    return updates


def configured_tier(repo: GitRepo, remote: str) -> str | None:
    return repo.config(TIER_KEY.format(remote=remote)) or repo.config(DEFAULT_TIER_KEY)


@dataclass
class PushCheck:
    """One decision the hook made: which ref, which commit, and why that commit was checked."""

    ref: str
    commit: str
    reason: str  # "pushed tree" | "history"
    decision: Decision


Decide = Callable[[str, Any, Sequence[Any], dict[str, Any]], Decision]


def check_push(repo: GitRepo, remote: str, url: str, updates: Sequence[RefUpdate], tier: str,
               decide: Decide) -> list[PushCheck]:
    """Decide on every tree the push publishes; stops at the first deny (its check is the last one returned)."""
    checks: list[PushCheck] = []
    trees: dict[str, PushedTree] = {}

    def tree(sha: str) -> PushedTree:
        if sha not in trees:
            trees[sha] = pushed_tree(repo, sha)
        return trees[sha]

    def run(ref: str, sha: str, reason: str) -> bool:
        pushed = tree(sha)
        context = {"integration": "git-pre-push", "remote": remote, "url": url, "ref": ref, "commit": sha,
                   "reason": reason}
        decision = decide(tier, pushed.manifest, list(pushed.attestations), context)
        checks.append(PushCheck(ref, sha, reason, decision))
        return decision.allowed

    decided: set[str] = set()
    for update in updates:
        if update.is_delete:
            continue
        if update.local_sha not in decided:
            decided.add(update.local_sha)
            if not run(update.remote_ref, update.local_sha, "pushed tree"):
                return checks
        tip = {f.sha256 for f in tree(update.local_sha).manifest.files}
        commits = [c for c in new_commits(repo, update.local_sha, update.remote_sha, remote) if c != update.local_sha]
        for commit, changes in introduced_blobs(repo, commits).items():
            if commit in decided:
                continue
            foreign = [path for path, oid in changes
                       if weight_format(path) and repo.blob_digest(oid).sha256 not in tip]
            if foreign:
                decided.add(commit)
                if not run(update.remote_ref, commit, f"history: adds {', '.join(sorted(foreign)[:3])}"):
                    return checks
    return checks


def lfs_available() -> bool:
    return shutil.which("git-lfs") is not None


def chain_to_lfs(repo: GitRepo, remote: str, url: str, stdin: bytes) -> int:
    """Run git-lfs's own pre-push (it uploads the LFS objects) with the same arguments and stdin."""
    return subprocess.run(["git", "lfs", "pre-push", remote, url], cwd=repo.path, input=stdin).returncode


def uses_lfs(repo: GitRepo, updates: Sequence[RefUpdate]) -> bool:
    """Whether a pushed commit tracks files with git-lfs (so git-lfs must upload their objects)."""
    for update in updates:
        if not update.is_delete and "filter=lfs" in repo.git("show", f"{update.local_sha}:.gitattributes", check=False):
            return True
    return False


def describe_check(check: PushCheck) -> str:
    verdict = "allowed" if check.decision.decision == "allow" else "DENIED"
    return (f"release-gate: {check.ref} {check.commit[:12]} ({check.reason}) at tier "
            f"'{check.decision.requested_tier}': {verdict}")

