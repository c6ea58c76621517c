"""Webhook containment: re-check what reached the Hub, and contain it when the gate says no.

The pre-push hook is advisory (``git push --no-verify``) and anyone with write access can flip a repository public in
the web UI, so the gate service also listens to the Hub's webhooks. For every event that can publish — new commits
(``repo.content``), a visibility or gating change (``repo.config``), a new repository (``repo`` / ``create``) — this
module re-checks each revision concerned at the tier the repository's *current* state implies, and on a deny:

1. narrows access to the least restrictive state the evidence supports, as the policy's ``targets.huggingface``
   says: gated with manual approval if the model satisfies that tier, else private;
2. opens a discussion on the repository listing what is missing and what was done.

The webhook service (not this module) owns the HTTP endpoint (``gate.service.webhook``: it calls :func:`contain` and
logs each result); :func:`handle_webhook` is the whole request for other hosts.
Work is idempotent by (repository, commit, tier): a redelivered event does nothing twice, while the same commit is
checked again when the repository's visibility changes. The Hub sends the secret verbatim in ``X-Webhook-Secret``
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
from gate.errors import GateError
from gate.integrations.hf import remote
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

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo_id, "ref": self.ref, "commit": self.commit, "tier": self.tier, "state": self.state,
                "decision": self.decision.decision if self.decision else None,
                "missing": [r.id for r in self.decision.missing] if self.decision else [],
                "actions": self.actions, "skipped": self.skipped, "state_after": self.state_after}


#: Called after each revision: with ``None`` when it was handled (or skipped), with the exception when handling it
#: failed (``actions`` then lists what was done before the error). The service logs each call.
ResultCallback = Callable[[Containment, "Exception | None"], None]


def _revisions(api: Any, event: WebhookEvent, token: Any) -> list[tuple[str, str]]:
    """New commits for a content event; every branch and tag head when visibility changed or the repo is new."""
    if event.is_content and event.updated_refs:
        return list(event.updated_refs)
    return remote.ref_heads(api, event.repo_id, event.repo_type, token)


def _discussion_text(result: Containment, decision: Decision | None, before: HubState, after: HubState | None,
                     unverifiable: str | None = None) -> str:
    from gate.cli.render import decision_markdown

    done = (f"Access was narrowed from **{before.describe()}** to **{after.describe()}** by the release gate."
            if after is not None else f"The repository stays **{before.describe()}**; nothing else was changed.")
    finding = decision_markdown(decision) if decision is not None else f"The revision {unverifiable}.\n"
    return (
        f"The release gate checked `{result.ref}` at `{result.commit}` for the tier `{result.tier}` that a "
        f"{before.describe()} repository requires, and **denied** it.\n\n{done}\n\n"
        f"{finding}\n"
        "To release it: add signed attestations from trusted evaluators that meet the missing requirements to "
        "`.attestations/` (or the gate service), then ask a platform admin to widen access again; the change is "
        "checked against the files of every branch and tag.\n"
    )


def contain(api: Any, payload: Mapping[str, Any], gate: Gate, *, seen: SeenStore | None = None,
            now: datetime | None = None, token: Any = None,
            on_result: ResultCallback | None = None) -> list[Containment]:
    """Re-check the revisions a webhook event concerns and contain the repository if the gate denies one.

    ``api`` is a plain ``HfApi`` with a token that may change the repository's settings and open discussions.
    Returns one :class:`Containment` per revision (empty for events that cannot publish). Errors propagate, with the
    revision forgotten by ``seen`` so that a redelivery retries it. ``on_result`` hears of every revision as soon as
    it is handled, or failed; ``seen`` hears that a revision is done only after that.
    """
    event = parse_event(payload)
    if event is None:
        return []
    seen = seen if seen is not None else MemorySeen()
    state = HubState.of(api.repo_info(event.repo_id, repo_type=event.repo_type, token=token))
    tier = tier_for(gate.policy, state)
    results: list[Containment] = []
    for ref, sha in _revisions(api, event, token):
        result = Containment(event.repo_id, ref, sha, tier, state.describe())
        key = seen_key(event.repo_type, event.repo_id, sha, tier)
        if not seen.add(key):
            result.skipped = "already checked at this tier"
            results.append(result)
            if on_result is not None:
                on_result(result, None)
            continue
        denied = False
        try:
            _check_one(api, gate, event, state, result, now, token)
            denied = result.decision is not None and not result.decision.allowed
            if denied:
                state = HubState.of(api.repo_info(event.repo_id, repo_type=event.repo_type, token=token))
            if on_result is not None:
                on_result(result, None)
        except BaseException as exc:
            seen.discard(key)
            if on_result is not None and isinstance(exc, Exception):
                on_result(result, exc)
            raise
        # Narrowed below this tier: if the repository is seen at this tier again, someone widened it again.
        done = getattr(seen, "done", None)
        if done is not None:
            done(key, reopen=denied and tier_for(gate.policy, state) != tier)
        results.append(result)
    return results


def _check_one(api: Any, gate: Gate, event: WebhookEvent, state: HubState, result: Containment,
               now: datetime | None, token: Any) -> None:
    try:
        rev = remote.read_revision(api, event.repo_id, revision=result.commit, repo_type=event.repo_type, token=token)
        manifest = remote.revision_manifest(api, rev, token)
        attestations = remote.revision_attestations(api, rev, token=token)
    except GateError as exc:
        # A revision the gate cannot read (a large file kept out of LFS, a bad attestation folder) is one it cannot
        # clear: contain it now. Retrying would fail the same way while the release stays out.
        result.actions.append(f"could not verify: {exc}")
        _narrow(api, gate, event, state, result, None, token, f"could not be verified: {exc}")
        return
    context = {"integration": "huggingface-webhook", "event": f"{event.scope}/{event.action}", "repo": event.repo_id,
               "repo_type": event.repo_type, "ref": result.ref, "commit": result.commit, "visibility": state.describe()}
    decision = gate.decide(result.tier, manifest, attestations, context, now=now)
    result.decision = decision
    if not decision.allowed:
        _narrow(api, gate, event, state, result, decision, token, None)


def _narrow(api: Any, gate: Gate, event: WebhookEvent, state: HubState, result: Containment,
            decision: Decision | None, token: Any, unverifiable: str | None) -> None:
    """Narrow access as far as the evidence requires and open a discussion that says why."""
    target = containment_state(gate.policy, state, decision.satisfied_tier if decision else None)
    changed: HubState | None = None
    if target.private and not state.private:
        api.update_repo_settings(event.repo_id, private=True, repo_type=event.repo_type, token=token)
        result.actions.append("made private")
        changed = target
    elif target.gated == "manual" and not state.private and state.gated != "manual":
        api.update_repo_settings(event.repo_id, gated="manual", repo_type=event.repo_type, token=token)
        result.actions.append("gated (manual approval)")
        changed = target
    if changed is not None:
        result.state_after = changed.describe()
    title = f"release-gate: {result.ref} at {result.commit[:12]} is not cleared for a {state.describe()} release"
    discussion = api.create_discussion(event.repo_id, title=title, repo_type=event.repo_type, token=token,
                                       description=_discussion_text(result, decision, state, changed, unverifiable))
    result.actions.append(f"opened discussion #{discussion.num}")


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
