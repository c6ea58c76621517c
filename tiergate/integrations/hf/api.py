"""``GatedHfApi``: an ``HfApi`` whose publishing calls ask the gate first and send nothing when it says no.

Publishing calls and what the gate checks before any byte of weights or any visibility change leaves the process:

==========================  ===========================================================================
``create_commit``           the revision the commit will create (base revision + operations), at the
(and ``upload_file``,       tier the repo's current visibility implies; the commit is pinned to the
``upload_folder``)          checked base (``parent_commit``) and the backstop holds it to the checked bytes
``update_repo_settings``    a change that widens access (private -> gated/public, manual -> auto gating,
                            un-gating) is checked against every commit reachable from a branch, tag or
                            pull request (history included: any commit is downloadable by its sha);
                            refused when the repository's state cannot be read
``create_repo``             a new repository that is not private is checked as a publish of its (empty)
                            content; :meth:`GatedHfApi.publish` checks the files first, then creates.
                            An existing repository wider than asked for (``private=True`` into a public
                            one, also when created meanwhile: ``exist_ok`` hides the Hub's 409) is refused
``duplicate_repo``          every commit reachable from the source's refs (the Hub copies the whole
                            history), at the tier of the copy's visibility
``create_branch``,          the commits the new ref reaches that no branch or tag reached, at the
``create_tag``,             repository's tier (history is the unit: never just the head)
``merge_pull_request``
==========================  ===========================================================================

``upload_folder`` here always makes one commit (huggingface_hub would split a large folder into "part N" commits
when hf_xet is installed, publishing partial models on the way): the decision is for the whole folder.

What a commit uploads is read through :class:`~tiergate.integrations.hf.plan.CheckedSource`: exactly the bytes the check
read (a file changed since is refused before its changed block is sent), uploaded by LFS through huggingface_hub's
Python HTTP client, where the backstop sees it, even with hf_xet installed.

The tier comes from the policy's ``targets.huggingface`` (:mod:`.tiers`); the evidence from the ``.attestations/``
folder being uploaded, the one already in the repository, the ``attestations`` given here, and the gate service when
one is configured (:class:`tiergate.runtime.Gate` asks it).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.utils import (DEFAULT_IGNORE_PATTERNS, GatedRepoError, RepositoryNotFoundError,
                                   RevisionNotFoundError, filter_repo_objects)

from tiergate.core.decision import Decision
from tiergate.core.manifest import Manifest
from tiergate.core.verify import AttestationInput
from tiergate.errors import UsageError
from tiergate.integrations.hf import backstop as backstop_module, plan as planning, remote
from tiergate.integrations.hf.errors import BackstopRefused, GateDenied, Unverifiable
from tiergate.integrations.hf.remote import RemoteRevision
from tiergate.integrations.hf.tiers import HubState, requested_state, tier_for, widens
from tiergate.runtime import Gate

_CREATE_HINT = ("Create the repository private (private=True) and make it public once its files pass the gate, or use "
                "GatedHfApi.publish / `gate hf upload`, which check the files before creating the repository.")


class GatedHfApi(HfApi):
    """``HfApi`` with a release gate in front of every call that publishes weights or widens who can read them.

    Args:
        gate: a loaded :class:`~tiergate.runtime.Gate` (default: ``Gate.load()`` from ``GATE_*`` / ``GATE_CONFIG``).
        attestations: extra attestations to present with every decision (besides ``.attestations/`` folders).
        clock: the gate's clock (for replaying decisions; default: now).
        backstop: install the commit backstop (:mod:`.backstop`) in huggingface_hub's HTTP client. Leave it on.
        max_commits: the most commits reachable from a repository's refs that a widening of access is checked
            against; past it the change is refused (default: ``$GATE_HF_MAX_COMMITS``, else 1000).
        **kwargs: anything ``HfApi`` takes (``endpoint``, ``token``, ...).

    ``last_decision`` holds the most recent decision, allowed or not.
    """

    def __init__(self, gate: Gate | None = None, *, attestations: Sequence[AttestationInput] = (),
                 clock: Callable[[], datetime] | None = None, backstop: bool = True, max_commits: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_commits = max_commits
        self.gate = gate if gate is not None else Gate.load()
        self.attestations = tuple(attestations)
        self.clock = clock
        self.use_backstop = backstop
        self.last_decision: Decision | None = None
        self._inside = threading.local()
        if backstop:
            backstop_module.install()

    # --- plumbing ------------------------------------------------------------------------------------------------

    @contextmanager
    def _approved(self, repo_id: str) -> Iterator[None]:
        """Within a gated call, the nested HfApi calls it makes for the same repo are already covered."""
        held = getattr(self._inside, "repos", None)
        if held is None:
            held = self._inside.repos = set()
        added = repo_id not in held
        held.add(repo_id)
        try:
            yield
        finally:
            if added:
                held.discard(repo_id)

    def _covered(self, repo_id: str) -> bool:
        return repo_id in (getattr(self._inside, "repos", None) or ())

    def _decision(self, tier: str, model: Manifest, attestations: Sequence[AttestationInput],
                  context: Mapping[str, Any]) -> Decision:
        """One gate decision (recorded as ``last_decision``), whatever it says."""
        now = self.clock() if self.clock else None
        decision = self.gate.decide(tier, model, list(attestations) + list(self.attestations),
                                    {"integration": "huggingface", "endpoint": self.endpoint, **context}, now=now)
        self.last_decision = decision
        return decision

    def _decide(self, target: str, tier: str, model: Manifest, attestations: Sequence[AttestationInput],
                context: Mapping[str, Any], hint: str = "") -> Decision:
        """One gate decision; raise GateDenied (after recording it) unless the publish may go ahead."""
        decision = self._decision(tier, model, attestations, context)
        if not decision.allowed:
            raise GateDenied(target, decision, hint)
        return decision

    def _state(self, repo_id: str, repo_type: str | None, token: Any) -> HubState | None:
        try:
            return HubState.of(self.repo_info(repo_id, repo_type=repo_type, token=token))
        except RepositoryNotFoundError:
            return None

    def _current_state(self, repo_id: str, repo_type: str | None, token: Any, change: str) -> HubState | None:
        """The state a settings change starts from; None only when the repository does not exist.

        Anything else that keeps the gate from reading it refuses the change (fail closed): a gated repository this
        token may not read (``GatedRepoError`` is a ``RepositoryNotFoundError`` too, but the repository exists), a
        "not found" the Hub does not confirm as such, the Hub failing or unreachable.
        """
        refusal = (f"{repo_id}: cannot read the repository's current visibility, so {change} is refused (it could "
                   "widen access to files the gate has not checked); nothing was sent")
        try:
            return HubState.of(self.repo_info(repo_id, repo_type=repo_type, token=token))
        except GatedRepoError:
            raise Unverifiable(f"{refusal}. The repository is gated and this token is not on its access list: use a "
                               "token of a member of the repository's organization") from None
        except RepositoryNotFoundError as exc:
            if _does_not_exist(exc):
                return None
            raise Unverifiable(f"{refusal}. The Hub answered {_first_line(exc)}") from None
        except Exception as exc:  # whatever it is, the change is not made unchecked
            raise Unverifiable(f"{refusal}. {type(exc).__name__}: {_first_line(exc)}") from exc

    def _base(self, repo_id: str, repo_type: str | None, revision: str | None, token: Any) -> RemoteRevision:
        try:
            return remote.read_revision(self, repo_id, revision=revision, repo_type=repo_type, token=token)
        except RepositoryNotFoundError:
            return RemoteRevision.missing(repo_id, repo_type or "model")
        except RevisionNotFoundError:
            # A branch that does not exist yet is created from the default branch: that is its base.
            return remote.read_revision(self, repo_id, revision=None, repo_type=repo_type, token=token)

    def check_commit(self, repo_id: str, operations: Sequence[Any], *, repo_type: str | None = None,
                     revision: str | None = None, state: HubState | None = None, token: Any = None,
                     base: RemoteRevision | None = None,
                     action: str = "commit") -> tuple[planning.CommitPlan, Decision]:
        """Decide on a commit without sending it: hash the operations, build the resulting tree, ask the gate.

        ``state`` overrides the repo's current visibility (for a repository about to be created or changed).
        Raises GateDenied; returns the plan (for the backstop) and the decision.
        """
        base = base if base is not None else self._base(repo_id, repo_type, revision, token)
        if state is None:
            if not base.exists:
                raise UsageError(f"{repo_id}: repository not found on {self.endpoint}; create it first "
                                 "(or use `gate hf upload`, which creates it after the check)")
            state = base.state
        commit_plan = planning.plan_commit(self, operations, base, token)
        manifest, attestations = planning.resulting_model(self, base, commit_plan, token)
        tier = tier_for(self.gate.policy, state)
        context = {"action": action, "repo": repo_id, "repo_type": base.repo_type, "revision": revision or "main",
                   "base_commit": base.sha or None, "visibility": state.describe(), "files": len(commit_plan.writes)}
        decision = self._decide(f"{action} to {repo_id} ({state.describe()})", tier, manifest, attestations, context)
        return commit_plan, decision

    # --- commits -------------------------------------------------------------------------------------------------

    def create_commit(self, repo_id: str, operations: Iterable[Any], *, commit_message: str,
                      commit_description: str | None = None, token: Any = None, repo_type: str | None = None,
                      revision: str | None = None, create_pr: bool | None = None, num_threads: int = 5,
                      parent_commit: str | None = None, run_as_future: bool = False, **kwargs: Any) -> Any:
        """``HfApi.create_commit``, after the gate allowed the revision it creates (see the module docstring)."""
        args = dict(commit_message=commit_message, commit_description=commit_description, token=token,
                    repo_type=repo_type, revision=revision, create_pr=create_pr, num_threads=num_threads,
                    parent_commit=parent_commit, **kwargs)
        if run_as_future:
            return self.run_as_future(self.create_commit, repo_id, list(operations), **args)
        operations = list(operations)
        if self._covered(repo_id):
            return super().create_commit(repo_id, operations, **args)
        base = self._base(repo_id, repo_type, parent_commit or revision, token)
        if create_pr and parent_commit:
            # a pull request based on an older commit makes that commit's history reachable from refs/pr/N
            self._check_new_ref(repo_id, "refs/pr/(new)", parent_commit, repo_type=repo_type, token=token,
                                action="opening a pull request")
        commit_plan, _ = self.check_commit(repo_id, operations, repo_type=repo_type, revision=revision, token=token,
                                           base=base, action="pull request" if create_pr else "commit")
        return self._send_checked(repo_id, operations, commit_plan, args)

    def _send_checked(self, repo_id: str, operations: list[Any], commit_plan: planning.CommitPlan,
                      args: dict[str, Any]) -> Any:
        base = commit_plan.base
        if base is not None and base.exists and args.get("parent_commit") is None:
            # The decision was about base + operations: if the branch moves meanwhile, the Hub must refuse.
            args = {**args, "parent_commit": base.sha}
        if self.use_backstop:
            backstop_module.install()
        with backstop_module.APPROVALS.approve(commit_plan), self._approved(repo_id):
            # What huggingface_hub uploads is read through CheckedSource: exactly the checked bytes, and through its
            # Python HTTP client (LFS) even with hf_xet installed, where the backstop sees it.
            sending = [planning.checked_operation(op, commit_plan) if isinstance(op, CommitOperationAdd) else op
                       for op in operations]
            try:
                return super().create_commit(repo_id, sending, **args)
            except BackstopRefused:
                raise
            except Exception as exc:
                refused = _refusal_in(exc)
                if refused is not None:  # huggingface_hub wraps upload errors: say why it stopped
                    raise refused from None
                raise
            finally:
                for op in sending:
                    if isinstance(op, CommitOperationAdd) and isinstance(op.path_or_fileobj, planning.CheckedSource):
                        op.path_or_fileobj.close()

    def preupload_lfs_files(self, repo_id: str, additions: Iterable[Any], **kwargs: Any) -> None:
        """Uploading LFS content ahead of a commit sends weights: only within a checked commit."""
        if not self._covered(repo_id):
            raise UsageError("preupload_lfs_files sends weights before any commit is checked; with GatedHfApi, "
                             "pass the operations to create_commit, which checks them first")
        super().preupload_lfs_files(repo_id, additions, **kwargs)

    def upload_folder(self, *, repo_id: str, folder_path: str | Path, path_in_repo: str | None = None,
                      commit_message: str | None = None, commit_description: str | None = None, token: Any = None,
                      repo_type: str | None = None, revision: str | None = None, create_pr: bool | None = None,
                      parent_commit: str | None = None, allow_patterns: list[str] | str | None = None,
                      ignore_patterns: list[str] | str | None = None, delete_patterns: list[str] | str | None = None,
                      run_as_future: bool = False) -> Any:
        """``HfApi.upload_folder`` as one checked commit: the gate decides for the whole folder first."""
        kwargs = dict(repo_id=repo_id, folder_path=folder_path, path_in_repo=path_in_repo,
                      commit_message=commit_message, commit_description=commit_description, token=token,
                      repo_type=repo_type, revision=revision, create_pr=create_pr, parent_commit=parent_commit,
                      allow_patterns=allow_patterns, ignore_patterns=ignore_patterns, delete_patterns=delete_patterns)
        if run_as_future:
            return self.run_as_future(self.upload_folder, **kwargs)
        base = self._base(repo_id, repo_type, parent_commit or ("main" if create_pr else revision), token)
        operations = folder_operations(folder_path, path_in_repo, allow_patterns, ignore_patterns, delete_patterns,
                                       base)
        if self._covered(repo_id):
            plan_args = None
        else:
            plan_args = self.check_commit(repo_id, operations, repo_type=repo_type, revision=revision, token=token,
                                          base=base, action="upload")
        args = dict(commit_message=commit_message or "Upload folder using huggingface_hub",
                    commit_description=commit_description, token=token, repo_type=repo_type, revision=revision,
                    create_pr=create_pr, parent_commit=parent_commit)
        if plan_args is None:
            return super().create_commit(repo_id, operations, **args)
        return self._send_checked(repo_id, operations, plan_args[0], args)

    # --- visibility ----------------------------------------------------------------------------------------------

    def check_exposure(self, repo_id: str, state: HubState, *, repo_type: str | None = None, token: Any = None,
                       action: str = "settings") -> list[Decision]:
        """Decide on every commit reachable from a branch, tag or pull request of ``repo_id`` being readable in
        ``state``; raise GateDenied naming every commit that is not cleared.

        Widening access publishes everything already in the repository at once: every ref's head, and every commit
        in their history, since any commit can be downloaded by its sha. Commits that hold nothing of a model (the
        Hub's initial commit) are not decided. More than ``max_commits`` commits: refused (TooManyCommits), as is
        a commit the gate cannot read.
        """
        heads = remote.ref_heads(self, repo_id, repo_type, token)
        return self.check_reachable(repo_id, heads, state, repo_type=repo_type, token=token, action=action,
                                    what=f"making {repo_id} {state.describe()}")

    def check_reachable(self, repo_id: str, heads: Sequence[tuple[str, str]], state: HubState, *,
                        repo_type: str | None = None, token: Any = None, action: str, what: str,
                        known: frozenset[str] = frozenset()) -> list[Decision]:
        """Decide on every commit reachable from ``heads`` ((ref, sha) of ``repo_id``) except ``known`` ones (already
        reachable where they are going), at the tier of ``state``: what an operation makes readable there is a
        history, never just a head. Nothing to decide at the lowest tier.

        Raises GateDenied naming every commit not cleared, Unverifiable for one the gate cannot read, TooManyCommits
        past ``max_commits``.
        """
        tier = tier_for(self.gate.policy, state)
        if self.gate.policy.rank(tier) == 0:
            return []
        commits, _ = remote.reachable_commits(self, repo_id, heads, repo_type=repo_type, token=token,
                                              limit=self.max_commits, known=known)
        reader = remote.CommitReader(self, repo_id, repo_type, token)
        reader.prefetch(commit.sha for commit in commits)
        decisions: list[Decision] = []
        denied: list[tuple[remote.ReachableCommit, Decision]] = []
        for check in reader.checks(commits):
            commit = check.commit
            if check.error is not None or check.manifest is None:
                raise Unverifiable(f"{what}: {commit.where} cannot be verified, so it is not done: {check.error}")
            context = {"action": action, "repo": repo_id, "repo_type": repo_type or "model", "ref": commit.ref,
                       "commit": commit.sha, "history": not commit.head, "visibility": state.describe()}
            decision = self._decision(tier, check.manifest, check.attestations, context)
            decisions.append(decision)
            if not decision.allowed:
                denied.append((commit, decision))
        if denied:
            first, decision = denied[0]
            self.last_decision = decision
            named = "; ".join(c.where for c, _ in denied[:10]) + (f"; and {len(denied) - 10} more" if len(denied) > 10
                                                                  else "")
            hint = (f"Not cleared for tier '{tier}': {len(denied)} of the {len(decisions)} commit(s) checked: "
                    f"{named}. Every commit reachable from a branch, tag or pull request is downloadable, not only "
                    "the heads. Attest them, or take them out of reach (HfApi.super_squash_history, delete the "
                    "branch or tag) or publish from a fresh repository.")
            raise GateDenied(f"{what} ({first.where})", decision, hint)
        return decisions

    def _published_commits(self, repo_id: str, repo_type: str | None, token: Any) -> frozenset[str]:
        """The commits the repository's branches and tags already reach (pull-request refs do not count: a pull
        request is contained on itself, so merging or branching from it publishes its commits anew)."""
        refs = [(ref, sha) for ref, sha in remote.ref_heads(self, repo_id, repo_type, token)
                if not ref.startswith("refs/pr/")]
        _, reach = remote.reachable_commits(self, repo_id, refs, repo_type=repo_type, token=token,
                                            limit=self.max_commits)
        return frozenset().union(*reach.values()) if reach else frozenset()

    def _check_new_ref(self, repo_id: str, ref: str, revision: str | None, *, repo_type: str | None, token: Any,
                       action: str) -> None:
        """A branch or tag made at ``revision`` (or a pull request merged) publishes the commits it reaches that
        no branch or tag reached: check them at the repository's tier."""
        state = self._current_state(repo_id, repo_type, token, action)
        if state is None or self.gate.policy.rank(tier_for(self.gate.policy, state)) == 0:
            return
        head = remote.read_revision(self, repo_id, revision=revision, repo_type=repo_type, token=token).sha
        self.check_reachable(repo_id, [(ref, head)], state, repo_type=repo_type, token=token, action=action,
                             what=f"{action} in {repo_id} ({state.describe()})",
                             known=self._published_commits(repo_id, repo_type, token))

    def create_branch(self, repo_id: str, *, branch: str, revision: str | None = None,
                      token: Any = None, repo_type: str | None = None, exist_ok: bool = False) -> None:
        """``HfApi.create_branch``; the commits the branch makes reachable are checked first (see check_reachable)."""
        if not self._covered(repo_id):
            self._check_new_ref(repo_id, f"refs/heads/{branch}", revision, repo_type=repo_type, token=token,
                                action=f"creating branch {branch}")
        return super().create_branch(repo_id, branch=branch, revision=revision, token=token, repo_type=repo_type,
                                     exist_ok=exist_ok)

    def create_tag(self, repo_id: str, *, tag: str, tag_message: str | None = None,
                   revision: str | None = None, token: Any = None, repo_type: str | None = None,
                   exist_ok: bool = False) -> None:
        """``HfApi.create_tag``; the commits the tag makes reachable are checked first."""
        if not self._covered(repo_id):
            self._check_new_ref(repo_id, f"refs/tags/{tag}", revision, repo_type=repo_type, token=token,
                                action=f"creating tag {tag}")
        return super().create_tag(repo_id, tag=tag, tag_message=tag_message, revision=revision, token=token,
                                  repo_type=repo_type, exist_ok=exist_ok)

    def merge_pull_request(self, repo_id: str, discussion_num: int, *, token: Any = None,
                           comment: str | None = None, repo_type: str | None = None) -> Any:
        """``HfApi.merge_pull_request``; the pull request's commits (its head and history) are checked at the
        repository's tier first: merging publishes them as the repository's."""
        if not self._covered(repo_id):
            self._check_new_ref(repo_id, f"refs/pr/{int(discussion_num)}", f"refs/pr/{int(discussion_num)}",
                                repo_type=repo_type, token=token, action=f"merging pull request #{discussion_num}")
        return super().merge_pull_request(repo_id, discussion_num, token=token, comment=comment, repo_type=repo_type)

    def update_repo_settings(self, repo_id: str, *, gated: Any = None, private: bool | None = None,
                             visibility: str | None = None, token: Any = None, repo_type: str | None = None) -> None:
        """``HfApi.update_repo_settings``; a change that widens access is checked against the files first."""
        args = dict(gated=gated, private=private, visibility=visibility, token=token, repo_type=repo_type)
        if self._covered(repo_id):
            return super().update_repo_settings(repo_id, **args)
        before = self._current_state(repo_id, repo_type, token, "changing its settings")
        if before is not None:
            after = requested_state(before, private=private, gated=gated, visibility=visibility)
            if widens(self.gate.policy, before, after):
                self.check_exposure(repo_id, after, repo_type=repo_type, token=token)
        with self._approved(repo_id):
            return super().update_repo_settings(repo_id, **args)

    def update_repo_visibility(self, repo_id: str, private: bool = False, *, token: Any = None,
                               repo_type: str | None = None) -> Any:
        """Older spelling of a visibility change: gated like ``update_repo_settings``."""
        return self.update_repo_settings(repo_id, private=private, token=token, repo_type=repo_type)

    def create_repo(self, repo_id: str, *, token: Any = None, private: bool | None = None,
                    visibility: str | None = None, repo_type: str | None = None, exist_ok: bool = False,
                    **kwargs: Any) -> Any:
        """``HfApi.create_repo``; creating a repository that is not private is a publish (see the module docstring)."""
        args = dict(token=token, private=private, visibility=visibility, repo_type=repo_type, exist_ok=exist_ok,
                    **kwargs)
        if self._covered(repo_id):
            return super().create_repo(repo_id, **args)
        existing = self._state(repo_id, repo_type, token)
        if existing is not None:
            # The Hub ignores visibility for an existing repository: joining one wider than asked for publishes there.
            self._refuse_wider(repo_id, existing, private, visibility)
            return super().create_repo(repo_id, **args)
        after = requested_state(None, private=private, visibility=visibility)
        tier = tier_for(self.gate.policy, after)
        if self.gate.policy.rank(tier) > 0:
            self._decide(f"creating {repo_id} ({after.describe()})", tier, Manifest(files=()), [],
                         {"action": "create_repo", "repo": repo_id, "visibility": after.describe()}, _CREATE_HINT)
        with self._approved(repo_id):
            url = super().create_repo(repo_id, **args)
        if exist_ok:  # created meanwhile by someone else (the Hub answered 409, which exist_ok hides)?
            self._refuse_wider(repo_id, self._current_state(repo_id, repo_type, token, "joining it"), private,
                               visibility)
        return url

    def _refuse_wider(self, repo_id: str, existing: HubState | None, private: bool | None,
                      visibility: str | None) -> None:
        """Raise Unverifiable if the repository exists in a state that needs a higher tier than the one asked for
        (what the gate checks a publish against): joining it silently would publish at a tier nobody checked."""
        if existing is None or (private is None and visibility is None):
            return
        asked = requested_state(existing, private=private, visibility=visibility)
        if widens(self.gate.policy, asked, existing):
            raise Unverifiable(
                f"{repo_id} already exists and is {existing.describe()}, not {asked.describe()} as asked: the gate "
                f"does not publish into it at the tier '{tier_for(self.gate.policy, asked)}' it would have checked. "
                "Nothing was sent. Choose another name, or check and publish at the repository's own tier "
                "(without private=/visibility=).")

    def duplicate_repo(self, from_id: str, to_id: str | None = None, *, repo_type: str | None = None,
                       private: bool | None = None, visibility: str | None = None, token: Any = None,
                       **kwargs: Any) -> Any:
        """``HfApi.duplicate_repo``: the Hub copies the source's whole history, so every commit reachable from its
        branches, tags and pull requests is checked at the tier of the copy's visibility (public when not given:
        the Hub may default to the source's, and the gate assumes the wider)."""
        after = requested_state(None, private=private, visibility=visibility)
        if kwargs.get("exist_ok") and to_id is not None:
            self._refuse_wider(to_id, self._current_state(to_id, repo_type, token, "duplicating into it"), private,
                               visibility)
        heads = remote.ref_heads(self, from_id, repo_type, token)
        self.check_reachable(from_id, heads, after, repo_type=repo_type, token=token, action="duplicate_repo",
                             what=f"duplicating {from_id} as {after.describe()}{f' ({to_id})' if to_id else ''}")
        return super().duplicate_repo(from_id, to_id, repo_type=repo_type, private=private,
                                      visibility=visibility, token=token, **kwargs)  # type: ignore[arg-type]

    def batch_bucket_files(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError("tiergate does not gate bucket uploads; publish weights to a model repository")

    def sync_bucket(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError("tiergate does not gate bucket uploads; publish weights to a model repository")

    # --- `hf upload` ---------------------------------------------------------------------------------------------

    def publish(self, repo_id: str, local_path: str | Path, path_in_repo: str | None = None, *,
                repo_type: str | None = None, revision: str | None = None, private: bool | None = None,
                include: list[str] | None = None, exclude: list[str] | None = None, delete: list[str] | None = None,
                commit_message: str | None = None, commit_description: str | None = None, create_pr: bool = False,
                token: Any = None) -> Any:
        """What ``hf upload`` does — create the repo if needed, create the branch if needed, upload a file or a
        folder — with one decision for all of it, made before the first request that changes anything."""
        local = Path(local_path)
        if not local.exists():
            raise UsageError(f"{local}: no such file or directory")
        is_file = local.is_file()
        target = path_in_repo if path_in_repo not in (None, ".") else (local.name if is_file else None)
        base = self._base(repo_id, repo_type, None if create_pr else revision, token)
        if base.exists:
            self._refuse_wider(repo_id, base.state, private, None)
        state = base.state if base.exists else requested_state(None, private=private)
        if is_file:
            operations: list[Any] = [CommitOperationAdd(path_or_fileobj=str(local), path_in_repo=str(target))]
        else:
            operations = folder_operations(local, target, include, exclude, delete, base)
        commit_plan, _ = self.check_commit(repo_id, operations, repo_type=repo_type, revision=revision, token=token,
                                           state=state, base=base, action="upload")
        with self._approved(repo_id):
            if not base.exists:
                super().create_repo(repo_id, token=token, private=private, repo_type=repo_type, exist_ok=True)
                # exist_ok hides a repository someone else created meanwhile: it must not be wider than checked
                self._refuse_wider(repo_id, self._current_state(repo_id, repo_type, token, "uploading to it"),
                                   True if state.private else None, None)
            if revision is not None and not create_pr:
                try:
                    self.repo_info(repo_id, repo_type=repo_type, revision=revision, token=token)
                except RevisionNotFoundError:
                    self.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True, token=token)
        default_message = f"Upload {target} with tiergate" if is_file else "Upload folder with tiergate"
        args = dict(commit_message=commit_message or default_message, commit_description=commit_description,
                    token=token, repo_type=repo_type, revision=revision, create_pr=create_pr)
        if not base.exists:
            base_after = self._base(repo_id, repo_type, None, token)  # the commit the Hub created the repo with
            commit_plan = planning.rebase_on_new_repo(self, commit_plan, base_after, token)
        return self._send_checked(repo_id, operations, commit_plan, args)


def _does_not_exist(exc: RepositoryNotFoundError) -> bool:
    """Whether the Hub said the repository does not exist (``X-Error-Code: RepoNotFound``), not just that this token
    may not read it (``GatedRepoError``, a bare 401)."""
    if isinstance(exc, GatedRepoError):
        return False
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("X-Error-Code") == "RepoNotFound"


def _refusal_in(exc: BaseException) -> BackstopRefused | None:
    """The BackstopRefused an exception was raised from (huggingface_hub re-raises upload errors), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BackstopRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "(no message)"


def folder_operations(folder: str | Path, path_in_repo: str | None, allow: Any, ignore: Any, delete: Any,
                      base: RemoteRevision) -> list[Any]:
    """The operations ``HfApi.upload_folder`` would make, computed here so the gate checks exactly those."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"{folder}: not a directory")
    ignore_list = [ignore] if isinstance(ignore, str) else list(ignore or [])
    ignore_list += list(DEFAULT_IGNORE_PATTERNS)
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.glob("**/*")) if p.is_file()}
    prefix = f"{path_in_repo.strip('/')}/" if path_in_repo and path_in_repo.strip("/") not in ("", ".") else ""
    adds = [CommitOperationAdd(path_or_fileobj=str(files[rel]), path_in_repo=prefix + rel)
            for rel in filter_repo_objects(files.keys(), allow_patterns=allow, ignore_patterns=ignore_list)]
    if not adds and not delete:
        raise UsageError(f"{folder}: no file to upload")
    deletes: list[Any] = []
    if delete:
        added = {op.path_in_repo for op in adds}
        existing = {p[len(prefix):]: p for p in base.files if p.startswith(prefix)}
        deletes = [CommitOperationDelete(path_in_repo=existing[rel], is_folder=False)
                   for rel in filter_repo_objects(existing.keys(), allow_patterns=delete)
                   if existing[rel] != ".gitattributes" and existing[rel] not in added]
    return deletes + adds

