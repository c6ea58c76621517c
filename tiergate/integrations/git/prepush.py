"""The pre-push hook's logic: decide on every tree a push publishes, then hand over to git-lfs.

git runs ``pre-push <remote-name> <remote-url>`` with one line per ref on stdin:
``<local-ref> <local-sha> <remote-ref> <remote-sha>`` (all-zero sha for a new remote ref or a deletion). For each
ref that is created or updated:

1. the pushed commit's tree is turned into a manifest (LFS pointers give the weights' sha256; regular blobs are
   hashed) and decided at the push's tier, with the attestations in its ``.attestations/`` (and the gate service's,
   when one is configured);
2. so is every *other* commit the push sends (history is the unit: anyone can fetch a file at any commit the remote
   has), whatever it changes, except commits that hold nothing of a model (only ``.gitattributes``,
   ``.gitignore`` and attestation files). Evidence kept in any pushed commit counts for every commit whose model it
   names, and a model already decided with the same evidence is not decided again, so "weights, then their
   attestations" is two commits and one decision. The commits a push sends are those reachable from the pushed sha
   and from none of the remote sha values on stdin (the remote's own tips, as the remote reported them for this
   push): remote-tracking refs are not trusted, since they come from the fetch url and may be stale. A new ref
   therefore has its whole history checked, apart from what the other refs of the same push already have on the
   remote. Past :data:`MAX_PUSHED_COMMITS` the push is refused, not checked in part.

Every tree read is policed as a folder is (:func:`tiergate.integrations.git.objects.pushed_tree`); a submodule anywhere,
``.github/`` included, is refused, because ``git push --recurse-submodules`` pushes its commits (after this hook, to
another repository) unchecked.

Any deny aborts the push (exit 1) before git-lfs uploads a single object, since git-lfs uploads from its own
pre-push hook, which this hook runs last, replaying the same stdin. Before that, every local LFS object a pushed
pointer refers to is hashed (:func:`verify_lfs_objects`): git-lfs uploads ``lfs/objects/<oid>`` as it is, so an
object changed after the commit would otherwise go out under a digest that was decided on but is not its own.

The tier comes from git config, by the remote's name and by the url pushed to (:mod:`tiergate.integrations.git.tiers`).
No tier configured means the push is refused with the command that configures one: a hook that guessed would either
block everything or publish anything. The hook is advisory (``git push --no-verify`` skips it); the Hub webhook is
the backstop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from tiergate.core.decision import Decision
from tiergate.core.history import EvidencePool, holds_nothing
from tiergate.errors import InputError, ModelError, UsageError
from tiergate.integrations.git.objects import (SUBMODULE, SYMLINK, ZERO_SHA, Change, GitRepo, LfsPointer, new_commits,
                                           pushed_tree)
from tiergate.integrations.git.treemanifest import is_ignored


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
    """For each pushed sha (deletions left out), the commits the push sends with it, that sha included.

    Raises ModelError for a ref that names a blob or a tree (``git tag t <blob>``): the remote would serve that
    object through the ref, outside any commit, so outside any model the gate can decide on.
    """
    on_remote = remote_tips(repo, updates)
    out: dict[str, list[str]] = {}
    for update in updates:
        if not update.is_delete and update.local_sha not in out:
            kind = repo.git("cat-file", "-t", f"{update.local_sha}^{{}}", check=False).strip() or "missing object"
            if kind != "commit":
                raise ModelError(f"{update.remote_ref} names a {kind} ({update.local_sha[:12]}), not a commit: the "
                                 "remote would serve it outside any model the gate can check; point it at a commit")
            out[update.local_sha] = new_commits(repo, update.local_sha, on_remote)
    return out


#: A push sends every commit it makes reachable, each a model state to decide; past this many the push is refused
#: rather than checked in part (fail closed, as the Hub's visibility checks are). ``GATE_GIT_MAX_COMMITS`` overrides.
MAX_PUSHED_COMMITS = 1000
MAX_COMMITS_ENV = "GATE_GIT_MAX_COMMITS"


def max_pushed_commits(environ: Mapping[str, str] | None = None) -> int:
    """The most commits one push may send (UsageError for a bad ``GATE_GIT_MAX_COMMITS``)."""
    raw = (os.environ if environ is None else environ).get(MAX_COMMITS_ENV, "").strip()
    if not raw:
        return MAX_PUSHED_COMMITS
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"{MAX_COMMITS_ENV}={raw!r}: expected a whole number of commits, at least 1")
    return int(raw)


@dataclass
class PushCheck:
    """One decision the hook made: which ref, which commit, and why that commit was checked."""

    ref: str
    commit: str
    reason: str  # "pushed tree" | "history: ..."
    decision: Decision


Decide = Callable[[str, Any, Sequence[Any], dict[str, Any]], Decision]


def check_push(repo: GitRepo, remote: str, url: str, updates: Sequence[RefUpdate], tier: str,
               decide: Decide, max_commits: int = MAX_PUSHED_COMMITS) -> list[PushCheck]:
    """Decide on every commit the push makes reachable at ``tier``; stops at the first deny (the last check returned).

    Each pushed ref's tip is decided, then every other commit the push sends (old..new, whatever its content), except
    those that hold nothing of a model (:func:`tiergate.core.history.holds_nothing`). A commit's evidence is its own
    ``.attestations/`` plus any attestation in the pushed commits that names its model; one model with one set of
    evidence is decided once. Raises ModelError for a tree that cannot be given an identity (weights under an
    ignored path, a submodule, ...) and InputError for a push of more than ``max_commits`` commits.
    """
    commits_of = pushed_commits(repo, updates)
    todo: dict[str, tuple[str, str]] = {}  # commit -> (ref, the pushed tip it is sent with), tips first
    live = [u for u in updates if not u.is_delete]
    for update in live:
        todo.setdefault(update.local_sha, (update.remote_ref, update.local_sha))
    for update in live:
        for commit in commits_of[update.local_sha]:
            todo.setdefault(commit, (update.remote_ref, update.local_sha))
    if len(todo) > max_commits:
        raise InputError(f"push not sent: it sends {len(todo)} commits, each a model state the gate must check, and "
                         f"at most {max_commits} are checked in one push ({MAX_COMMITS_ENV}); push the older history "
                         "first in parts (`git push <remote> <commit>:<ref>`) or squash it")
    trees = {commit: pushed_tree(repo, commit) for commit in todo}  # every tree is policed, held nothing or not
    pool = EvidencePool()
    for pushed in trees.values():
        pool.add(pushed.attestations)
    repo.load_changes([c for c, (_, tip) in todo.items() if c != tip])
    checks: list[PushCheck] = []
    decided: dict[tuple[str, frozenset[str]], Decision] = {}
    tip_content: dict[str, set[str]] = {}
    for commit, (ref, tip) in todo.items():
        pushed = trees[commit]
        if commit != tip and holds_nothing(pushed.paths):
            continue
        evidence = pool.for_model(pushed.manifest.root_digest, pushed.attestations)
        key = (pushed.manifest.root_digest, frozenset(item.digest for item in evidence))
        if key in decided:
            continue
        if commit == tip:
            reason = "pushed tree"
        else:
            if tip not in tip_content:
                tip_content[tip] = {f.sha256 for f in trees[tip].manifest.files}
            reason = "history: " + _describe_changes(repo, repo.changes(commit), tip_content[tip])
        context = {"integration": "git-pre-push", "remote": remote, "url": url, "ref": ref, "commit": commit,
                   "reason": reason}
        decision = decided[key] = decide(tier, pushed.manifest, evidence, context)
        checks.append(PushCheck(ref, commit, reason, decision))
        if not decision.allowed:
            break
    return checks


def _describe_changes(repo: GitRepo, changes: Sequence[Change], tip: set[str]) -> str:
    """What a history commit adds, for the user: first the files whose content the pushed tip does not have."""
    files = [c for c in changes if not is_ignored(c.path) and c.mode != SUBMODULE]
    foreign = sorted(c.path for c in files if c.mode != SYMLINK and repo.blob_digest(c.oid).sha256 not in tip)
    shown = foreign or sorted(c.path for c in files)
    if not shown:
        return "a model state of its own"
    more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
    if foreign:
        return f"adds {', '.join(shown[:3])}{more}"
    return f"{', '.join(shown[:3])}{more}: a model state no pushed tip has"


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
    return subprocess.run(["git", "lfs", "pre-push", remote, url], cwd=repo.path, input=stdin, check=False).returncode


def uses_lfs(repo: GitRepo, updates: Sequence[RefUpdate]) -> bool:
    """Whether a pushed commit tracks files with git-lfs (so git-lfs must upload their objects)."""
    for update in updates:
        if not update.is_delete and "filter=lfs" in repo.git("show", f"{update.local_sha}:.gitattributes", check=False):
            return True
    return False


def describe_check(check: PushCheck) -> str:
    verdict = "allowed" if check.decision.decision == "allow" else "DENIED"
    return (f"tiergate: {check.ref} {check.commit[:12]} ({check.reason}) at tier "
            f"'{check.decision.requested_tier}': {verdict}")


#: Past this many allowed history decisions, the hook says how many instead of one line each.
SHOWN_HISTORY = 5


def describe_checks(checks: Sequence[PushCheck]) -> list[str]:
    """One line per pushed tip and per deny; allowed history commits one line each, or counted when many."""
    history = [c for c in checks if c.reason != "pushed tree" and c.decision.allowed]
    lines = [describe_check(c) for c in checks if len(history) <= SHOWN_HISTORY or c not in history]
    if len(history) > SHOWN_HISTORY:
        lines.insert(-1 if checks and not checks[-1].decision.allowed else len(lines),
                     f"tiergate: {len(history)} other model states in the pushed history at tier "
                     f"'{history[0].decision.requested_tier}': allowed")
    return lines

