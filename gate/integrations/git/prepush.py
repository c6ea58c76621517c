"""The pre-push hook's logic: decide on every tree a push publishes, then hand over to git-lfs.

git runs ``pre-push <remote-name> <remote-url>`` with one line per ref on stdin:
``<local-ref> <local-sha> <remote-ref> <remote-sha>`` (all-zero sha for a new remote ref or a deletion). For each
ref that is created or updated:

1. the pushed commit's tree is turned into a manifest (LFS pointers give the weights' sha256; regular blobs are
   hashed) and decided at the tier configured for that remote, with the attestations in its ``.attestations/``
   (and the gate service's, when one is configured);
2. every *other* commit the push sends that adds or changes a file whose content is not in that tree is decided
   too, whatever the file's name: history is downloadable from the remote, so what is there is published as well.
   The commits a push sends are those reachable from the pushed sha and from none of the remote sha values on
   stdin (the remote's own tips, as the remote reported them for this push): remote-tracking refs are not
   trusted, since they come from the fetch url and may be stale. A new ref therefore has its whole history checked,
   apart from what the other refs of the same push already have on the remote.

Any deny aborts the push (exit 1) before git-lfs uploads a single object, since git-lfs uploads from its own
pre-push hook, which this hook runs last, replaying the same stdin. Before that, every local LFS object a pushed
pointer refers to is hashed (:func:`verify_lfs_objects`): git-lfs uploads ``lfs/objects/<oid>`` as it is, so an
object changed after the commit would otherwise go out under a digest that was decided on but is not its own.

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
from gate.errors import ModelError, UsageError
from gate.integrations.git.objects import (MAX_SYMLINK_BYTES, SUBMODULE, SYMLINK, ZERO_SHA, Change, GitRepo, LfsPointer,
                                           PushedTree, check_changes, new_commits, pushed_tree)
from gate.integrations.git.treemanifest import is_ignored

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


def remote_tips(repo: GitRepo, updates: Sequence[RefUpdate]) -> list[str]:
    """The remote sha values on stdin that name commits this repository has: history known to be on the remote.

    These are what the remote advertised to this very push, unlike remote-tracking refs. A remote sha that is not
    here (someone else pushed it) cannot be excluded, so more is checked, never less.
    """
    tips: list[str] = []
    for update in updates:
        sha = update.remote_sha
        if sha != ZERO_SHA and sha not in tips and repo.has_commit(sha):
            tips.append(sha)
    return tips


def pushed_commits(repo: GitRepo, updates: Sequence[RefUpdate]) -> dict[str, list[str]]:
    """For each pushed sha (deletions left out), the commits the push sends with it, that sha included."""
    on_remote = remote_tips(repo, updates)
    out: dict[str, list[str]] = {}
    for update in updates:
        if not update.is_delete and update.local_sha not in out:
            out[update.local_sha] = new_commits(repo, update.local_sha, on_remote)
    return out


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
    commits_of = pushed_commits(repo, updates)
    for update in updates:
        if update.is_delete:
            continue
        if update.local_sha not in decided:
            decided.add(update.local_sha)
            if not run(update.remote_ref, update.local_sha, "pushed tree"):
                return checks
        tip = {f.sha256 for f in tree(update.local_sha).manifest.files}
        repo.load_changes(commits_of[update.local_sha])
        for commit in commits_of[update.local_sha]:
            if commit in decided:
                continue
            changes = repo.changes(commit)
            check_changes(repo, commit, changes)  # the identity rule: excluded paths judged by their bytes
            foreign = sorted(c.path for c in changes if _not_in(repo, c, tip))
            if foreign:
                decided.add(commit)
                more = f" (+{len(foreign) - 3} more)" if len(foreign) > 3 else ""
                if not run(update.remote_ref, commit, f"history: adds {', '.join(foreign[:3])}{more}"):
                    return checks
    return checks


def _not_in(repo: GitRepo, change: Change, tip: set[str]) -> bool:
    """Whether a file a commit adds carries content the pushed tree does not (so that commit must be decided).

    Judged by content, not by name: TF's ``variables.data-00000-of-00001``, ONNX external data or a renamed
    checkpoint are weights without a weight suffix. Excluded paths are judged by their bytes instead (check_changes);
    submodules carry no content; a symlink is its target's path (the target is a change of its own), unless its blob
    is too large to be one.
    """
    if is_ignored(change.path) or change.mode == SUBMODULE:
        return False
    if change.mode == SYMLINK:
        return repo.blob_size(change.oid) > MAX_SYMLINK_BYTES
    return repo.blob_digest(change.oid).sha256 not in tip


def pushed_lfs_pointers(repo: GitRepo, updates: Sequence[RefUpdate]) -> dict[str, tuple[str, str, LfsPointer]]:
    """The LFS pointers a push sends, by oid: (commit, path, pointer) where each is first added.

    Those are the pointers among the files the pushed commits add or change, ignored paths included (git-lfs
    uploads their objects too); a pointer already in the remote's trees names an object the remote has.
    """
    pointers: dict[str, tuple[str, str, LfsPointer]] = {}
    for commits in pushed_commits(repo, updates).values():
        repo.load_changes(commits)
        for commit in commits:
            for change in repo.changes(commit):
                if change.mode in (SYMLINK, SUBMODULE):
                    continue
                pointer = repo.pointer(change.oid)
                if pointer is not None and pointer.oid not in pointers:
                    pointers[pointer.oid] = (commit, change.path, pointer)
    return pointers


def verify_lfs_objects(repo: GitRepo, updates: Sequence[RefUpdate]) -> int:
    """Hash the local LFS object of every pointer the push sends; refuse (ModelError) one that is missing or wrong.

    Run after the decisions and before git-lfs's pre-push, which uploads the objects without hashing them. Returns
    the number of objects checked.
    """
    pointers = pushed_lfs_pointers(repo, updates)
    problems = []
    for oid, (commit, path, pointer) in pointers.items():
        problem = repo.lfs_object_problem(pointer)
        if problem is not None:
            problems.append(f"{path} in commit {commit[:12]}: its LFS object sha256:{oid} {problem}")
    if problems:
        more = f" [{len(problems) - 1} more LFS object(s) like it]" if len(problems) > 1 else ""
        raise ModelError(f"push not sent: {problems[0]}{more}")
    return len(pointers)


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

