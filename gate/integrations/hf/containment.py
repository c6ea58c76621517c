"""Webhook containment: re-check what reached the Hub, and contain it when the gate says no.

The pre-push hook is advisory (``git push --no-verify``) and anyone with write access can flip a repository public in
the web UI, so the gate service also listens to the Hub's webhooks. For every event that can publish — new commits
(``repo.content``), a visibility or gating change (``repo.config``), a new repository (``repo`` / ``create``) — this
module re-checks each revision concerned at the tier the repository's *current* state implies — the pushed commits
for a push; for any other event, when the repository is not private, every commit reachable from a branch, tag or
pull request, since all of them are downloadable by sha — and on a deny:

1. narrows access to the least restrictive state the evidence supports, as the policy's ``targets.huggingface``
   says: gated with manual approval if the model satisfies that tier, else private;
2. opens one discussion on the repository listing the revisions not cleared, what is missing and what was done.

The webhook service (not this module) owns the HTTP endpoint (``gate.service.webhook``: it calls :func:`contain` and
logs each result); :func:`handle_webhook` is the whole request for other hosts.
Work is idempotent by (repository, commit, tier): a redelivered event does nothing twice, while the same commit is
checked again when the repository's visibility changes. A head's key covers the history checked with it (a commit's
history never changes). The Hub sends the secret verbatim in ``X-Webhook-Secret``
(it is not an HMAC), so it is compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Protocol

from gate.core.decision import Decision
from gate.integrations.hf import remote
from gate.integrations.hf.errors import TooManyCommits
from gate.integrations.hf.tiers import HubState, containment_state, tier_for
from gate.runtime import Gate

SECRET_HEADER = "X-Webhook-Secret"
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
        """Handling ``key`` finished. ``reopen``: the revision was denied and access was narrowed below this tier, so
        meeting it at this tier again means someone widened access again, and it must be checked again then."""


def seen_key(repo_type: str, repo_id: str, commit: str, tier: str) -> tuple[str, ...]:
    """The idempotency key of checking ``commit`` of a repository at ``tier``."""
    return (repo_type, repo_id, commit, tier)


class MemorySeen:
    """In-process SeenStore, bounded (oldest forgotten first): enough for one process.

    It never reopens a key: a repository widened again after a containment is not re-checked at the same tier. The
    gate service uses a database-backed store instead (``gate.service.seen``), which does, survives restarts and is
    shared by replicas.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._keys: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            self._keys[key] = None
            while len(self._keys) > self._limit:
                self._keys.popitem(last=False)
            return True

    def discard(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def done(self, key: tuple[str, ...], *, reopen: bool = False) -> None:
        pass


@dataclass(frozen=True)
class WebhookEvent:
    """The parts of a Hub webhook payload containment acts on."""

    scope: str
    action: str
    repo_id: str
    repo_type: str
    updated_refs: tuple[tuple[str, str], ...]  # (ref, new sha) for refs that now point somewhere

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
    refs = []
    for item in payload.get("updatedRefs") or []:
        sha = (item or {}).get("newSha")
        if isinstance(sha, str) and sha and sha != _ZERO:
            refs.append((str(item.get("ref", "")), sha))
    return WebhookEvent(scope, action, name, repo_type, tuple(refs))


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
                "history": self.history}


#: Called after each revision: with ``None`` when it was handled (or skipped), with the exception when handling it
#: failed (``actions`` then lists what was done before the error). The service logs each call.
ResultCallback = Callable[[Containment, "Exception | None"], None]

#: A discussion details this many denied commits (decision tables) and lists up to _LISTED of them.
_DETAILED, _LISTED = 5, 50


def _discussion_title(bad: list[Containment], before: HubState) -> str:
    first = bad[0]
    label = f"{first.commit[:12]} in {first.ref}" if first.history else f"{first.ref} at {first.commit[:12]}"
    verb = f" and {len(bad) - 1} more commit(s) are" if len(bad) > 1 else " is"
    return f"release-gate: {label}{verb} not cleared for a {before.describe()} release"


def _discussion_text(bad: list[Containment], before: HubState, after: HubState | None,
                     unverifiable: Mapping[int, str]) -> str:
    from gate.core.render import decision_markdown

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
    """Re-check the revisions a webhook event concerns and contain the repository if the gate denies one.

    A push (``repo.content`` with updated refs) is checked at the pushed commits. Any other event that can publish
    (visibility or gating changed, a repository created) is checked, when the repository is not private, at every
    commit reachable from a branch, tag or pull request: all of them became downloadable. More than
    ``max_commits`` (default ``$GATE_HF_MAX_COMMITS``, else 1000) is not checked but contained. Any commit not
    cleared narrows access (once, as far as the weakest evidence requires) and one discussion names them all.

    ``api`` is a plain ``HfApi`` with a token that may change the repository's settings and open discussions.
    Returns one :class:`Containment` per revision decided or skipped (history commits that hold nothing of a model
    are not listed). Errors propagate, with the heads forgotten by ``seen`` so that a redelivery retries them.
    ``on_result`` hears of every revision as soon as it is handled, or failed; ``seen`` hears that a head (and the
    history checked with it) is done only after that.
    """
    event = parse_event(payload)
    if event is None:
        return []
    seen = seen if seen is not None else MemorySeen()
    limit = remote.max_reachable_commits(max_commits)
    state = HubState.of(api.repo_info(event.repo_id, repo_type=event.repo_type, token=token))
    tier = tier_for(gate.policy, state)
    pushed = event.is_content and bool(event.updated_refs)
    heads = list(event.updated_refs) if pushed else remote.ref_heads(api, event.repo_id, event.repo_type, token)
    results: list[Containment] = []
    claimed: list[tuple[tuple[str, ...], Containment]] = []
    for ref, sha in heads:
        result = Containment(event.repo_id, ref, sha, tier, state.describe())
        results.append(result)
        key = seen_key(event.repo_type, event.repo_id, sha, tier)
        if seen.add(key):
            claimed.append((key, result))
            continue
        result.skipped = "already checked at this tier"
        if on_result is not None:
            on_result(result, None)
    if not claimed:
        return results
    run = _Run(api, gate, event, state, tier, now, token, on_result)
    try:
        # A private repository publishes nothing beyond its members: its heads are checked, as pushes are.
        run.check([result for _, result in claimed], walk=not pushed and not state.private, limit=limit)
    except BaseException as exc:
        for key, _ in claimed:
            seen.discard(key)
        run.failed(exc)
        raise
    done = getattr(seen, "done", None)
    if done is not None:
        for key, result in claimed:
            # Narrowed below this tier: if the repository is seen at this tier again, someone widened it again.
            done(key, reopen=run.reopen(result.commit))
    return results + run.history


class _Run:
    """The commits of one event: decide each, narrow access as soon as one is not cleared, explain once."""

    def __init__(self, api: Any, gate: Gate, event: WebhookEvent, state: HubState, tier: str, now: datetime | None,
                 token: Any, on_result: ResultCallback | None) -> None:
        self.api, self.gate, self.event, self.state, self.tier = api, gate, event, state, tier
        self.now, self.token, self.on_result = now, token, on_result
        self.current = state  # as narrowed so far
        self.final = state  # as read back after containing
        self.history: list[Containment] = []
        self.bad: list[Containment] = []
        self.unverifiable: dict[int, str] = {}
        self.reach: dict[str, frozenset[str]] = {}
        self.pending: list[Containment] = []  # not yet passed to on_result

    def check(self, heads: list[Containment], *, walk: bool, limit: int) -> None:
        event = self.event
        self.pending = list(heads)
        by_sha = {result.commit: result for result in heads}
        if walk:
            try:
                commits, self.reach = remote.reachable_commits(
                    self.api, event.repo_id, [(r.ref, r.commit) for r in heads], repo_type=event.repo_type,
                    token=self.token, limit=limit)
            except TooManyCommits as exc:
                for result in heads:
                    self._unverifiable(result, exc)
                self._explain()
                return
        else:
            commits = [remote.ReachableCommit(r.ref, r.commit, True) for r in heads]
            self.reach = {r.commit: frozenset({r.commit}) for r in heads}
        reader = remote.CommitReader(self.api, event.repo_id, event.repo_type, self.token)
        for check in reader.checks(commits):
            result = by_sha.get(check.commit.sha)
            if result is None:
                result = Containment(event.repo_id, check.commit.ref, check.commit.sha, self.tier,
                                     self.state.describe(), history=True)
                self.history.append(result)
                self.pending.append(result)
            if check.error is not None or check.manifest is None:
                # A revision the gate cannot read (a large file kept out of LFS, a bad attestation folder) is one it
                # cannot clear: contain it now. Retrying would fail the same way while the release stays out.
                self._unverifiable(result, check.error)
                continue
            context = {"integration": "huggingface-webhook", "event": f"{event.scope}/{event.action}",
                       "repo": event.repo_id, "repo_type": event.repo_type, "ref": result.ref,
                       "commit": result.commit, "history": result.history, "visibility": self.state.describe()}
            decision = self.gate.decide(self.tier, check.manifest, check.attestations, context, now=self.now)
            result.decision = decision
            if decision.allowed:
                self._report(result)
            else:
                self._not_cleared(result, decision.satisfied_tier)
        self._explain()

    def _unverifiable(self, result: Containment, exc: BaseException | None) -> None:
        result.actions.append(f"could not verify: {exc}")
        self.unverifiable[id(result)] = str(exc)
        self._not_cleared(result, None)

    def _not_cleared(self, result: Containment, satisfied_tier: str | None) -> None:
        """Narrow access now, as far as this revision's evidence requires (the explanation comes at the end)."""
        target = containment_state(self.gate.policy, self.state, satisfied_tier)
        current, event = self.current, self.event
        if target.private and not current.private:
            self.api.update_repo_settings(event.repo_id, private=True, repo_type=event.repo_type, token=self.token)
            result.actions.append("made private")
            self.current = HubState(private=True, gated=current.gated)
            result.state_after = target.describe()
        elif target.gated == "manual" and not current.private and current.gated != "manual":
            self.api.update_repo_settings(event.repo_id, gated="manual", repo_type=event.repo_type, token=self.token)
            result.actions.append("gated (manual approval)")
            self.current = HubState(private=False, gated="manual")
            result.state_after = target.describe()
        self.bad.append(result)

    def _explain(self) -> None:
        """One discussion for every revision not cleared, then report them."""
        if not self.bad:
            return
        event = self.event
        after = self.current if self.current != self.state else None
        discussion = self.api.create_discussion(
            event.repo_id, title=_discussion_title(self.bad, self.state), repo_type=event.repo_type, token=self.token,
            description=_discussion_text(self.bad, self.state, after, self.unverifiable))
        for result in self.bad:
            result.actions.append(f"opened discussion #{discussion.num}")
        self.final = HubState.of(self.api.repo_info(event.repo_id, repo_type=event.repo_type, token=self.token))
        for result in list(self.bad):
            self._report(result)

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
        """Whether the key of ``head`` must be checked again at this tier: a commit reachable from it was not cleared
        and access was narrowed below the tier (meeting the tier again means someone widened access again)."""
        bad = {result.commit for result in self.bad}
        return bool(self.reach.get(head, frozenset({head})) & bad) and tier_for(self.gate.policy, self.final) != self.tier


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
    except ValueError:
        return WebhookResponse(400, {"error": "webhook payload is not JSON"})
    if not isinstance(payload, dict):
        return WebhookResponse(400, {"error": "webhook payload is not a JSON object"})
    results = contain(api, payload, gate, seen=seen, now=now)
    return WebhookResponse(200, {"results": [r.to_dict() for r in results]})
