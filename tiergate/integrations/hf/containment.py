"""Webhook containment: contain what reached the Hub at once, then verify it, then restore what verification clears.

The pre-push hook is advisory (``git push --no-verify``) and anyone with write access can flip a repository public in
the web UI, so the gate service also listens to the Hub's webhooks. For every event that can publish — new commits
(``repo.content``), a visibility or gating change (``repo.config``), a new repository (``repo`` / ``create``) — at
the tier the repository's *current* state implies:

1. **contain first**: if the repository is readable beyond its members and a branch or tag head of the event has not
   been cleared at this tier, access is narrowed to private at once, before any history is read (a few Hub requests:
   the state, the refs); a pull request (``refs/pr/N``: anyone may open one, bots do) is never a reason to narrow the
   repository: it is closed while it is checked;
2. **verify**: every commit the event makes reachable is decided — for a repository not private, the history of each
   head, not only the head (any commit is downloadable by its sha), minus the commits already cleared at this tier
   (the history of the heads the event moved from, and of heads already checked); for a private one, the heads;
3. **restore what verification clears**: all cleared — access goes back to what it was (unless someone changed it
   meanwhile; and what was pushed while it was narrowed is verified first); a commit not cleared — access stays as
   narrow as the policy's ``targets.huggingface`` says for the weakest evidence (gated with manual approval if the
   model satisfies that tier, else private) and one discussion lists the commits, what is missing and what was done;
   a pull request not cleared stays closed with a comment saying why, one cleared is reopened.

Each step is an action on the revisions it concerns (``Containment.actions``, in order), which the service logs.
The webhook service (not this module) owns the HTTP endpoint (``tiergate.service.webhook``: it calls :func:`contain` and
logs each result); :func:`handle_webhook` is the whole request for other hosts.
Work is idempotent by (repository, commit, tier, whether its history was checked): a redelivered event does nothing
twice — nor does the event a restore itself causes —, while the same commit is checked again when the repository's
visibility changes. A head's history key covers the history checked with it (a commit's history never changes); a
head-only key (a private repository) never stands in for a history walk. The Hub sends the secret verbatim in
``X-Webhook-Secret`` (it is not an HMAC), so it is compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from collections.abc import Callable, Mapping

from tiergate.core.decision import Decision
from tiergate.integrations.hf import remote
from tiergate.integrations.hf.errors import TooManyCommits
from tiergate.integrations.hf.tiers import HubState, containment_state, tier_for
from tiergate.runtime import Gate

SECRET_HEADER = "X-Webhook-Secret"  # noqa: S105 - the name of the header, not a secret
_ZERO = "0" * 40


def secret_matches(received: str | None, expected: str | None) -> bool:
    """Whether the webhook's ``X-Webhook-Secret`` is the configured secret. No configured secret matches nothing."""
    if not expected or received is None:
        return False
    return hmac.compare_digest(received.encode("utf-8"), expected.encode("utf-8"))


class SeenStore(Protocol):
    """Remembers which (repo, commit, tier) were handled. The service may back it with its database."""

    def add(self, key: tuple[str, ...]) -> bool:
        """Record ``key``; False if it was already there (then the caller does nothing)."""

    def discard(self, key: tuple[str, ...]) -> None:
        """Forget ``key`` (handling failed; a redelivery should try again)."""

    def done(self, key: tuple[str, ...], *, reopen: bool = False) -> None:
        """Handling ``key`` finished. ``reopen``: the revision (or history checked with it) was not cleared, so meeting
        it at this tier again (access widened again, a branch or tag moved onto a denied pull request's head) means
        it must be checked again then; it never counts as cleared."""


def seen_key(repo_type: str, repo_id: str, commit: str, tier: str, walked: bool = True) -> tuple[str, ...]:
    """The idempotency key of checking ``commit`` of a repository at ``tier``, with its history (``walked``) or
    alone. A head-only check never stands in for a history walk: they are different keys."""
    return (repo_type, repo_id, commit, tier, "history" if walked else "head")


class MemorySeen:
    """In-process SeenStore, bounded (oldest forgotten first): enough for one process.

    It never reopens a key: a repository widened again after a containment is not re-checked at the same tier. The
    gate service uses a database-backed store instead (``tiergate.service.seen``), which does, survives restarts and is
    shared by replicas.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._keys: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            self._keys[key] = "pending"
            while len(self._keys) > self._limit:
                self._keys.popitem(last=False)
            return True

    def discard(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def done(self, key: tuple[str, ...], *, reopen: bool = False) -> None:
        with self._lock:
            if key in self._keys:
                self._keys[key] = "reopen" if reopen else "done"

    def state(self, key: tuple[str, ...]) -> str | None:
        """``pending``, ``done``, ``reopen`` or None, as :class:`tiergate.service.seen.DatabaseSeen` says it."""
        with self._lock:
            return self._keys.get(key)


def _cleared(seen: SeenStore, key: tuple[str, ...]) -> bool:
    """Whether ``key`` was handled and cleared (``done``): its history need not be read again at this tier."""
    state = getattr(seen, "state", None)
    return state is not None and state(key) == "done"


@dataclass(frozen=True)
class WebhookEvent:
    """The parts of a Hub webhook payload containment acts on."""

    scope: str
    action: str
    repo_id: str
    repo_type: str
    updated_refs: tuple[tuple[str, str], ...]  # (ref, new sha) for refs that now point somewhere
    previous: tuple[tuple[str, str], ...] = ()  # (ref, old sha) for updated refs that pointed somewhere before

    @property
    def is_content(self) -> bool:
        return self.scope == "repo.content"


def parse_event(payload: Mapping[str, Any]) -> WebhookEvent | None:
    """The event if it can publish something (content, visibility, creation), else None.

    Reads ``updatedRefs[].newSha`` from the raw JSON: huggingface_hub's ``WebhookPayloadRepo.head_sha`` never parses
    the Hub's ``headSha``.
    """
    event = payload.get("event") or {}
    repo = payload.get("repo") or {}
    scope, action = str(event.get("scope", "")), str(event.get("action", ""))
    name, repo_type = repo.get("name"), str(repo.get("type") or "model")
    if not isinstance(name, str) or not name:
        return None
    publishing = (scope == "repo.content" and action in ("create", "update")) or \
                 (scope == "repo.config" and action == "update") or (scope == "repo" and action in ("create", "update"))
    if not publishing:
        return None
    refs, previous = [], []
    for entry in payload.get("updatedRefs") or []:
        item = entry if isinstance(entry, dict) else {}
        sha, old = item.get("newSha"), item.get("oldSha")
        if isinstance(sha, str) and sha and sha != _ZERO:
            refs.append((str(item.get("ref", "")), sha))
        if isinstance(old, str) and old and old != _ZERO:
            previous.append((str(item.get("ref", "")), old))
    return WebhookEvent(scope, action, name, repo_type, tuple(refs), tuple(previous))


def pull_request_number(ref: str) -> int | None:
    """N for ``refs/pr/N``, else None."""
    if ref.startswith("refs/pr/") and ref[8:].isdigit():
        return int(ref[8:])
    return None


@dataclass
class Containment:
    """What was done about one revision."""

    repo_id: str
    ref: str
    commit: str
    tier: str
    state: str
    decision: Decision | None = None
    actions: list[str] = field(default_factory=list)
    skipped: str | None = None
    state_after: str | None = None  # what access was narrowed to, if it was
    history: bool = False  # the commit is in the history of ``ref``, not its head
    walked: bool = False  # a head checked with its history (its key covers the history)
    pull_request: int | None = None  # reachable only from this pull request: contained on it, not on the repository

    @property
    def where(self) -> str:
        """The revision in words, for the discussion: `ref` at `sha`, or `sha` in the history of `ref`."""
        if self.history:
            return f"commit `{self.commit}` in the history of `{self.ref}`"
        return f"`{self.ref}` at `{self.commit}`"

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo_id, "ref": self.ref, "commit": self.commit, "tier": self.tier, "state": self.state,
                "decision": self.decision.decision if self.decision else None,
                "missing": [r.id for r in self.decision.missing] if self.decision else [],
                "actions": self.actions, "skipped": self.skipped, "state_after": self.state_after,
                "history": self.history, "pull_request": self.pull_request}


#: Called after each revision: with ``None`` when it was handled (or skipped), with the exception when handling it
#: failed (``actions`` then lists what was done before the error). The service logs each call.
ResultCallback = Callable[[Containment, "Exception | None"], None]

#: A discussion details this many denied commits (decision tables) and lists up to _LISTED of them.
_DETAILED, _LISTED = 5, 50


def _discussion_title(bad: list[Containment], before: HubState) -> str:
    first = bad[0]
    label = f"{first.commit[:12]} in {first.ref}" if first.history else f"{first.ref} at {first.commit[:12]}"
    verb = f" and {len(bad) - 1} more commit(s) are" if len(bad) > 1 else " is"
    return f"tiergate: {label}{verb} not cleared for a {before.describe()} release"


def _discussion_text(bad: list[Containment], before: HubState, after: HubState | None,
                     unverifiable: Mapping[int, str]) -> str:
    from tiergate.core.render import decision_markdown

    tier = bad[0].tier
    done = (f"Access was narrowed from **{before.describe()}** to **{after.describe()}** by the release gate."
            if after is not None else f"The repository stays **{before.describe()}**; nothing else was changed.")
    if len(bad) == 1:
        opening = (f"The release gate checked {bad[0].where} for the tier `{tier}` that a {before.describe()} "
                   "repository requires, and **denied** it.")
    else:
        listed = "\n".join(f"- {r.where}" for r in bad[:_LISTED])
        if len(bad) > _LISTED:
            listed += f"\n- and {len(bad) - _LISTED} more"
        opening = (f"The release gate checked the commits a {before.describe()} repository publishes for the tier "
                   f"`{tier}` it requires, and **denied** {len(bad)} of them:\n\n{listed}")
    findings = []
    for result in bad[:_DETAILED]:
        reason = unverifiable.get(id(result))
        finding = decision_markdown(result.decision) if result.decision is not None else \
            f"The revision could not be verified: {reason}.\n"
        findings.append(finding if len(bad) == 1 else f"#### {result.where}\n\n{finding}")
    if len(bad) > _DETAILED:
        findings.append(f"({len(bad) - _DETAILED} more not detailed here; the gate's log has every decision.)\n")
    return (
        f"{opening}\n\n{done}\n\n" + "\n".join(findings) + "\n"
        "Every commit reachable from a branch, tag or pull request is downloadable by its sha once access is wider "
        "than private, not only the heads. To release: add signed attestations from trusted evaluators that meet the "
        "missing requirements to `.attestations/` (or the gate service), or take the commits out of reach (squash the "
        "history, delete the branch or tag, or publish from a fresh repository), then ask a platform admin to widen "
        "access again; the change is checked against every reachable commit.\n"
    )


def contain(api: Any, payload: Mapping[str, Any], gate: Gate, *, seen: SeenStore | None = None,
            now: datetime | None = None, token: Any = None, on_result: ResultCallback | None = None,
            max_commits: int | None = None) -> list[Containment]:
    """Contain what a webhook event may have published, verify it, restore what verification clears.

    A push (``repo.content`` with updated refs) concerns the pushed heads; any other event that can publish
    (visibility or gating changed, a repository created) every branch, tag and pull-request head. When the repository
    is readable beyond its members, access is narrowed at once if a branch or tag head is new at this tier (a pull
    request is closed instead), then every commit reachable from those heads and not already cleared at this tier is
    decided (more than ``max_commits``, default ``$GATE_HF_MAX_COMMITS``, else 1000: not checked, contained), then
    access is restored if all are cleared, or left as narrow as the weakest evidence requires with one discussion
    naming them; pull requests not cleared stay closed with a comment, the others are reopened.

    ``api`` is a plain ``HfApi`` with a token that may change the repository's settings and open, comment on and
    close discussions. Returns one :class:`Containment` per revision decided or skipped (history commits that hold
    nothing of a model are not listed). Errors propagate, with the heads forgotten by ``seen`` so that a redelivery
    retries them (what was done before the error is in each revision's ``actions``). ``on_result`` hears of every
    revision as soon as it is settled, or failed; ``seen`` hears that a head (and the history checked with it) is
    done only after that.
    """
    event = parse_event(payload)
    if event is None:
        return []
    seen = seen if seen is not None else MemorySeen()
    limit = remote.max_reachable_commits(max_commits)
    state = HubState.of(api.repo_info(event.repo_id, repo_type=event.repo_type, token=token))
    tier = tier_for(gate.policy, state)
    # A private repository publishes nothing beyond its members: its heads are checked, not their history.
    walk = not state.private
    pushed = event.is_content and bool(event.updated_refs)
    heads = list(event.updated_refs) if pushed else remote.ref_heads(api, event.repo_id, event.repo_type, token)
    heads.sort(key=lambda pair: pull_request_number(pair[0]) is not None)  # branches and tags name history first
    results: list[Containment] = []
    claimed: list[tuple[tuple[str, ...], Containment]] = []
    cleared: list[str] = []  # heads whose history is cleared at this tier: what it reaches is not read again
    for ref, sha in heads:
        result = Containment(event.repo_id, ref, sha, tier, state.describe(), walked=walk,
                             pull_request=pull_request_number(ref))
        results.append(result)
        key = seen_key(event.repo_type, event.repo_id, sha, tier, walk)
        if seen.add(key):
            claimed.append((key, result))
            continue
        result.skipped = "already checked at this tier"
        if walk and _cleared(seen, key):
            cleared.append(sha)
        if on_result is not None:
            on_result(result, None)
    if not claimed:
        return results
    run = _Run(api, gate, event, state, tier, now, token, on_result, seen, limit)
    run.claimed = claimed
    try:
        heads_claimed = [result for _, result in claimed]
        run.contain_first(heads_claimed, walk=walk)
        if walk and pushed:
            # What the push moved from, and the other refs, if cleared at this tier: their history is not read again
            others = [sha for _, sha in remote.ref_heads(api, event.repo_id, event.repo_type, token)]
            cleared += [sha for sha in [old for _, old in event.previous] + others
                        if sha not in cleared and _cleared(seen, seen_key(event.repo_type, event.repo_id, sha, tier))]
        run.check(heads_claimed, walk=walk, cleared=cleared)
        run.settle()
    except BaseException as exc:
        for key, _ in run.claimed:
            seen.discard(key)
        run.failed(exc)
        raise
    done = getattr(seen, "done", None)
    if done is not None:
        for key, result in run.claimed:
            # Narrowed below this tier: if the repository is seen at this tier again, someone widened it again.
            done(key, reopen=run.reopen(result.commit))
    return results + run.arrived + run.history


#: Before restoring access, the refs are read again: heads that moved while the run verified (a push to the narrowed
#: repository, checked at the private tier only) are verified too, this many times at most; then access stays narrow.
_RECHECK_ROUNDS = 3


def _narrowest(policy: Any, states: list[HubState]) -> HubState:
    return min(states, key=lambda st: policy.rank(tier_for(policy, st)))


class _Run:
    """The commits of one event: contain at once, decide each, then restore what is cleared and explain the rest."""

    def __init__(self, api: Any, gate: Gate, event: WebhookEvent, state: HubState, tier: str, now: datetime | None,
                 token: Any, on_result: ResultCallback | None, seen: SeenStore, limit: int) -> None:
        self.api, self.gate, self.event, self.state, self.tier = api, gate, event, state, tier
        self.now, self.token, self.on_result, self.seen, self.limit = now, token, on_result, seen, limit
        self.claimed: list[tuple[tuple[str, ...], Containment]] = []  # keys this run holds, finished by contain()
        self.arrived: list[Containment] = []  # heads that moved while the run verified, verified too
        self.ok: set[str] = set()  # commits cleared at this tier (decided, or reachable from a cleared head)
        self.current = state  # as set by this run so far
        self.final = state  # as read back at the end
        self.narrowed: list[Containment] = []  # the heads access was narrowed for, before verifying
        self.held: dict[int, Containment] = {}  # pull requests closed while they are checked
        self.history: list[Containment] = []
        self.bad: list[Containment] = []
        self.satisfied: dict[int, str | None] = {}  # id(result) -> the highest tier its evidence satisfies
        self.unverifiable: dict[int, str] = {}
        self.reach: dict[str, frozenset[str]] = {}
        self.pending: list[Containment] = []  # not yet passed to on_result

    # --- 1. contain first ----------------------------------------------------------------------------------------

    def contain_first(self, heads: list[Containment], *, walk: bool) -> None:
        """Narrow access to private for new branch or tag heads, close new pull requests: before reading history."""
        self.pending = list(heads)
        event = self.event
        branches = [r for r in heads if r.pull_request is None]
        if walk and branches and not self.state.private:
            self.api.update_repo_settings(event.repo_id, private=True, repo_type=event.repo_type, token=self.token)
            self.current = HubState(private=True, gated=self.state.gated)
            for result in branches:
                result.actions.append("made private")
            self.narrowed = branches
        if not walk:
            return
        for result in heads:
            num = result.pull_request
            if num is None or num in self.held:
                continue
            self.api.change_discussion_status(
                event.repo_id, num, "closed", repo_type=event.repo_type, token=self.token,
                comment=f"tiergate: closed while `{result.commit}` is checked for the tier `{self.tier}` a "
                        f"{self.state.describe()} repository requires; it is reopened if it is cleared.")
            result.actions.append(f"closed pull request #{num}")
            self.held[num] = result

    # --- 2. verify -----------------------------------------------------------------------------------------------

    def check(self, heads: list[Containment], *, walk: bool, cleared: list[str]) -> None:
        event = self.event
        by_sha = {result.commit: result for result in heads}
        limit = self.limit
        if walk:
            try:
                known = frozenset(self.ok)
                if cleared:
                    _, covered = remote.reachable_commits(self.api, event.repo_id, [("", sha) for sha in cleared],
                                                          repo_type=event.repo_type, token=self.token, limit=limit)
                    known |= frozenset().union(*covered.values())
                commits, reach = remote.reachable_commits(
                    self.api, event.repo_id, [(r.ref, r.commit) for r in heads], repo_type=event.repo_type,
                    token=self.token, limit=limit, known=known)
            except TooManyCommits as exc:
                for head in heads:
                    self._unverifiable(head, exc)
                return
            self.ok |= known
        else:
            commits = [remote.ReachableCommit(r.ref, r.commit, True) for r in heads]
            reach = {r.commit: frozenset({r.commit}) for r in heads}
        self.reach.update(reach)
        published = frozenset().union(*(reach.get(r.commit, frozenset()) for r in heads if r.pull_request is None))
        listed = {commit.sha for commit in commits}
        for head in heads:
            if head.commit not in listed:  # reachable from a head already cleared at this tier
                head.skipped = "in the history of a head already checked at this tier"
        reader = remote.CommitReader(self.api, event.repo_id, event.repo_type, self.token)
        reader.prefetch(commit.sha for commit in commits)  # access is already narrowed: this sets how long for
        for check in reader.checks(commits):
            result = by_sha.get(check.commit.sha)
            if result is None:
                result = Containment(event.repo_id, check.commit.ref, check.commit.sha, self.tier,
                                     self.state.describe(), history=True,
                                     pull_request=None if check.commit.sha in published else self._pull_request_of(
                                         check.commit.sha, heads))
                self.history.append(result)
                self.pending.append(result)
            if check.error is not None or check.manifest is None:
                # A revision the gate cannot read (a large file kept out of LFS, a placeholder digest, a bad
                # attestation folder) is one it cannot clear. Retrying would fail the same way.
                self._unverifiable(result, check.error)
                continue
            if not result.history and remote.holds_nothing(reader.revision(result.commit)):
                # e.g. the Hub's initial commit of a repository just created: it publishes nothing of a model
                result.skipped = "holds nothing of a model"
                self.ok.add(result.commit)
                continue
            context = {"integration": "huggingface-webhook", "event": f"{event.scope}/{event.action}",
                       "repo": event.repo_id, "repo_type": event.repo_type, "ref": result.ref,
                       "commit": result.commit, "history": result.history, "visibility": self.state.describe()}
            decision = self.gate.decide(self.tier, check.manifest, check.attestations, context, now=self.now)
            result.decision = decision
            if decision.allowed:
                self.ok.add(result.commit)
            else:
                self.bad.append(result)
                self.satisfied[id(result)] = decision.satisfied_tier
        # commits the reader left out hold nothing of a model (history only): cleared as well
        self.ok |= {commit.sha for commit in commits if not commit.head} - {r.commit for r in self.bad}

    def _pull_request_of(self, sha: str, heads: list[Containment]) -> int | None:
        return next((r.pull_request for r in heads if r.pull_request is not None
                     and sha in self.reach.get(r.commit, frozenset())), None)

    def _unverifiable(self, result: Containment, exc: BaseException | None) -> None:
        result.actions.append(f"could not verify: {exc}")
        self.unverifiable[id(result)] = str(exc)
        self.satisfied[id(result)] = None
        self.bad.append(result)

    # --- 3. restore what is cleared, explain the rest ------------------------------------------------------------

    def _moved(self) -> list[tuple[str, str]]:
        """Branch and tag heads (pull requests aside) now pointing at a commit this run did not clear."""
        return [(ref, sha) for ref, sha in remote.ref_heads(self.api, self.event.repo_id, self.event.repo_type,
                                                            self.token)
                if pull_request_number(ref) is None and sha not in self.ok]

    def _verify_arrivals(self) -> bool:
        """Before restoring: verify what was pushed meanwhile (it was checked at the private tier only). False when
        the refs keep moving or another run holds one of them: then access stays narrow."""
        event = self.event
        for _ in range(_RECHECK_ROUNDS):
            moved = self._moved()
            if not moved:
                return True
            arrived = []
            for ref, sha in moved:
                key = seen_key(event.repo_type, event.repo_id, sha, self.tier, True)
                if not self.seen.add(key):
                    if not _cleared(self.seen, key):
                        return False  # being checked elsewhere, or contained: not this run's to clear
                    self.ok.add(sha)
                    continue
                result = Containment(event.repo_id, ref, sha, self.tier, self.state.describe(), walked=True)
                result.actions.append("arrived while access was narrowed: verified before restoring")
                self.claimed.append((key, result))
                self.arrived.append(result)
                self.pending.append(result)
                arrived.append(result)
            if arrived:
                self.check(arrived, walk=True, cleared=[])
            if self.bad:
                return True  # settled as a containment
        return not self._moved()

    def settle(self) -> None:
        steady = True
        if self.narrowed and not [r for r in self.bad if r.pull_request is None]:
            steady = self._verify_arrivals()
        repository = [r for r in self.bad if r.pull_request is None]
        target = self.state
        if repository:
            target = _narrowest(self.gate.policy, [containment_state(self.gate.policy, self.state,
                                                                     self.satisfied.get(id(r))) for r in repository])
        if self.narrowed and not steady and not repository:
            for result in self.narrowed:
                result.actions.append("left private: the refs kept moving while verifying; widening access again "
                                      "has them checked")
        elif ((self.narrowed and target != self.current)
              or (repository and not self.narrowed and target != self.current)):
            self._set(target, repository)
        for result in repository:
            if self.current != self.state:
                result.state_after = self.current.describe()
        if repository:
            self._explain(repository)
        self._settle_pull_requests()
        self.final = HubState.of(self.api.repo_info(self.event.repo_id, repo_type=self.event.repo_type,
                                                    token=self.token))
        for result in list(self.pending):
            self._report(result)

    def _set(self, target: HubState, repository: list[Containment]) -> None:
        """Move access from what this run set to ``target`` — unless someone changed it meanwhile."""
        event = self.event
        found = HubState.of(self.api.repo_info(event.repo_id, repo_type=event.repo_type, token=self.token))
        concerned = self.narrowed or repository
        if found != self.current:
            for result in concerned:
                result.actions.append(f"left {found.describe()}: access was changed by someone else meanwhile")
            self.current = found
            return
        if target.private:
            self.api.update_repo_settings(event.repo_id, private=True, repo_type=event.repo_type, token=self.token)
            action = "made private"
        else:
            self.api.update_repo_settings(event.repo_id, private=False, gated=target.gated or False,
                                          repo_type=event.repo_type, token=self.token)
            action = "gated (manual approval)" if target != self.state else f"restored to {target.describe()}"
        self.current = target
        for result in (concerned if target == self.state else repository):
            if action not in result.actions:
                result.actions.append(action)

    def _explain(self, repository: list[Containment]) -> None:
        """One discussion for every revision of the repository not cleared."""
        event = self.event
        after = self.current if self.current != self.state else None
        discussion = self.api.create_discussion(
            event.repo_id, title=_discussion_title(repository, self.state), repo_type=event.repo_type,
            token=self.token, description=_discussion_text(repository, self.state, after, self.unverifiable))
        for result in repository:
            result.actions.append(f"opened discussion #{discussion.num}")

    def _settle_pull_requests(self) -> None:
        """A pull request not cleared stays closed with the reasons; a cleared one is reopened."""
        event = self.event
        bad: dict[int, list[Containment]] = {}
        for result in self.bad:
            if result.pull_request is not None:
                bad.setdefault(result.pull_request, []).append(result)
        for num in sorted(set(self.held) | set(bad)):
            results = bad.get(num)
            head = self.held.get(num)
            if results:
                self.api.comment_discussion(event.repo_id, num,
                                            _pull_request_text(results, self.state, self.unverifiable),
                                            repo_type=event.repo_type, token=self.token)
                if head is None:  # a pull request the event did not move (closed for its history)
                    self.api.change_discussion_status(event.repo_id, num, "closed", repo_type=event.repo_type,
                                                      token=self.token)
                for result in results:
                    result.actions.append(f"kept pull request #{num} closed: not cleared")
            elif head is not None:
                self.api.change_discussion_status(
                    event.repo_id, num, "open", repo_type=event.repo_type, token=self.token,
                    comment=f"tiergate: cleared for the tier `{self.tier}`; reopened.")
                head.actions.append(f"reopened pull request #{num}")

    def _report(self, result: Containment) -> None:
        if self.on_result is not None:
            self.on_result(result, None)  # if this raises, the result stays pending and is reported as failed
        self.pending = [r for r in self.pending if r is not result]

    def failed(self, exc: BaseException) -> None:
        """Handling stopped: every revision not yet reported failed (``actions`` say what was done before)."""
        if self.on_result is None or not isinstance(exc, Exception):
            return
        pending, self.pending = self.pending, []
        for result in pending:
            self.on_result(result, exc)

    def reopen(self, head: str) -> bool:
        """Whether the key of ``head`` must be checked again when met at this tier: a commit reachable from it was not
        cleared. Whether access was narrowed does not matter: a pull request not cleared is contained on the pull
        request only, and its head's key is the one a branch or tag moved onto that commit gets, so a ``done`` there
        would let ``main`` be fast-forwarded onto the denied commit unchecked (and count it as cleared history)."""
        bad = {result.commit for result in self.bad}
        return bool(self.reach.get(head, frozenset({head})) & bad)


def _pull_request_text(bad: list[Containment], state: HubState, unverifiable: Mapping[int, str]) -> str:
    from tiergate.core.render import decision_markdown

    listed = "\n".join(f"- {r.where}" for r in bad[:_LISTED])
    findings = []
    for result in bad[:_DETAILED]:
        reason = unverifiable.get(id(result))
        findings.append(f"#### {result.where}\n\n" + (decision_markdown(result.decision) if result.decision is not None
                                                      else f"The revision could not be verified: {reason}.\n"))
    return (f"tiergate: this pull request is **not cleared** for the tier `{bad[0].tier}` a {state.describe()} "
            f"repository requires, so it stays closed (the repository itself is unchanged):\n\n{listed}\n\n"
            + "\n".join(findings) + "\nAdd signed attestations that meet the missing requirements to "
            "`.attestations/` in this pull request, then reopen it; merging it is checked again.\n")


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]


def handle_webhook(headers: Mapping[str, str], body: bytes, secret: str | None, api: Any, gate: Gate, *,
                   seen: SeenStore | None = None, now: datetime | None = None) -> WebhookResponse:
    """A webhook request, start to end, for the service to mount: secret, payload, containment.

    401 for a wrong or missing secret (nothing is read), 400 for a payload that is not JSON, 200 with one entry per
    revision otherwise. Exceptions from the Hub or the gate propagate (the service answers 5xx, the Hub redelivers).
    """
    received = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER.lower()), None)
    if not secret_matches(received, secret):
        return WebhookResponse(401, {"error": f"wrong or missing {SECRET_HEADER}"})
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's limit
        return WebhookResponse(400, {"error": "webhook payload is not JSON"})
    if not isinstance(payload, dict):
        return WebhookResponse(400, {"error": "webhook payload is not a JSON object"})
    results = contain(api, payload, gate, seen=seen, now=now)
    return WebhookResponse(200, {"results": [r.to_dict() for r in results]})
