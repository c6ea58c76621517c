"""``POST /v1/webhooks/huggingface``: contain what reached the Hub without clearing the gate, and log every step.

The Hub calls this for new commits (``repo.content``) and settings changes (``repo.config``). For an event that can
publish, the service, in order:

1. checks ``X-Webhook-Secret`` in constant time (:meth:`HfWebhook.authenticate`, called by the HTTP layer before
   the body is read): wrong or missing is a 401, before anything is read, logged or sent to the Hub;
2. logs a ``webhook`` entry (the event: repository, refs, what changed);
3. re-checks each revision concerned at the tier the repository's current visibility implies
   (:func:`tiergate.integrations.hf.containment.contain`), deciding with the attestations in the revision's
   ``.attestations/`` plus those the log holds for the model; each decision is a ``decision`` entry, as for
   ``POST /v1/decisions``;
4. on a deny, narrows access as the policy says (private, or gated with manual approval) and opens a discussion
   listing what is missing; then logs a ``containment`` entry per revision (outcome, actions, the decision's index).

Idempotency lives in :class:`tiergate.service.seen.DatabaseSeen` (a table next to the log), so a redelivered event does
nothing twice, across restarts and replicas, while a repository widened again after a containment is checked again.

The answer is bounded: every Hub request has a timeout, and when the whole check takes longer than
:data:`ANSWER_WITHIN` seconds the service answers 503 (the work goes on and is logged; the Hub's retry then finds it
done, or still running). Errors never surface as a 500: the failure is logged (a ``containment`` entry with outcome
``failed``) and answered 502 (the Hub failed) or 503 (the log failed), with a reason, so the Hub redelivers.
``huggingface_hub`` is imported when the first authenticated event that can publish arrives, not before.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from collections.abc import Mapping, Sequence

from tiergate.core.files import StrictJSONError, parse_json
from tiergate.core.log.entries import containment_entry, webhook_entry
from tiergate.core.log.store import StoreError, StoreIntegrityError
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.verify import AttestationInput
from tiergate.errors import GateError
from tiergate.runtime import Decider, Gate, RecordedDecision
from tiergate.service.responses import ApiError, Response

#: Seconds one request to the Hub may take (connect, and each read or write).
HUB_TIMEOUT = 10.0
#: Seconds before the endpoint answers 503 and lets the check finish in the background.
ANSWER_WITHIN = 20.0
#: Seconds the Hub is asked to wait before redelivering (Retry-After).
RETRY_AFTER = 60
DEFAULT_ENDPOINT = "https://huggingface.co"
_LOG_ERRORS = (StoreError, StoreIntegrityError)
_MAX_REASON = 500
#: The webhook entry lists at most this many of the refs an event moved (each is checked all the same), so that a
#: push of thousands of tags still fits an entry.
_MAX_REFS_LOGGED = 100
_MAX_REF = 200


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}"[:_MAX_REASON] if line else type(exc).__name__


class _LogFailed(Exception):
    """The log could not record a step: the answer is a 503 and the Hub redelivers."""


class _WebhookDecider:
    """The service's :class:`~tiergate.runtime.port.Decider` for one event: its context names the webhook entry it
    answers, and the log index of each decision is kept (by commit) for the containment entry."""

    def __init__(self, decider: Decider, webhook_index: int) -> None:
        self._decider = decider
        self.webhook_index = webhook_index
        self.decision_index: dict[str, int] = {}  # commit -> log index of its decision

    @property
    def policy(self) -> Policy:
        return self._decider.policy

    def decide(self, tier: str, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
               context: Mapping[str, Any] | None = None, now: datetime | None = None) -> RecordedDecision:
        context = {**(context or {}), "webhook_entry": self.webhook_index}
        try:
            recorded = self._decider.decide(tier, model, attestations, context, now)
        except _LOG_ERRORS as exc:
            raise _LogFailed(f"the log is unavailable: {exc}") from exc
        if recorded.log_index is not None:
            self.decision_index[str(context.get("commit"))] = recorded.log_index
        return recorded


@dataclass
class _Job:
    """One event being handled: filled in by the worker thread, read by the request thread when it is done."""

    payload: dict[str, Any]
    repo_type: str
    repo_id: str
    webhook_index: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    failure_logged: bool = False
    response: Response | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class HfWebhook:
    """The endpoint's behaviour, free of HTTP: :meth:`handle` takes the headers and body, returns the answer."""

    def __init__(self, service: Any, secret: str, seen: Any, *, endpoint: str = DEFAULT_ENDPOINT,
                 token: str | None = None, answer_within: float = ANSWER_WITHIN,
                 hub_timeout: float = HUB_TIMEOUT) -> None:
        if not secret:
            raise ValueError("the webhook needs a secret")
        self.service = service
        self.seen = seen
        self.endpoint = endpoint.rstrip("/")
        self.answer_within = answer_within
        self.hub_timeout = hub_timeout
        self._secret = secret
        self._token = token
        self._api: Any = None
        self._api_lock = threading.Lock()
        self._running: set[threading.Thread] = set()
        self._running_lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret or the token
        return f"HfWebhook(endpoint={self.endpoint!r})"

    # --- the request ---------------------------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> None:
        """Raise a 401 :class:`ApiError` unless ``headers`` (names in lower case) carry the webhook's secret."""
        from tiergate.integrations.hf.containment import SECRET_HEADER, secret_matches

        if not secret_matches(headers.get(SECRET_HEADER.lower()), self._secret):
            raise ApiError(401, f"wrong or missing {SECRET_HEADER}")

    def handle(self, headers: Mapping[str, str], body: bytes) -> Response:
        from tiergate.integrations.hf.containment import parse_event

        try:
            self.authenticate(headers)  # checked before the body was read, and again here for direct callers
        except ApiError as exc:
            return exc.response()
        try:
            payload = parse_json(body)  # strict: a lone surrogate or a duplicate key is a 400, not a 500 later
        except StrictJSONError as exc:
            if str(exc).startswith("nests more than"):
                return Response.json(400, {"error": "webhook payload is nested too deeply"})
            return Response.json(400, {"error": f"webhook payload {exc}"})
        if not isinstance(payload, dict):
            return Response.json(400, {"error": "webhook payload is not a JSON object"})
        event = parse_event(payload)
        if event is None:
            kind = payload.get("event")
            if not isinstance(kind, dict):
                kind = {}
            return Response.json(200, {"status": "ignored", "reason": (
                f"event {str(kind.get('scope'))[:60]}/{str(kind.get('action'))[:60]} cannot publish anything")})
        record = {
            "integration": "huggingface", "scope": event.scope, "action": event.action, "repo": event.repo_id,
            "repo_type": event.repo_type,
            "refs": [{"ref": (ref or "?")[:_MAX_REF], "sha": sha[:64]}
                     for ref, sha in event.updated_refs[:_MAX_REFS_LOGGED]],
            "updated_config": _config_change(payload.get("updatedConfig")),
            "hub_webhook_id": _hub_webhook_id(payload.get("webhook")),
        }
        try:
            index = self.service.store.append(webhook_entry(record, self.service.clock()))
        except _LOG_ERRORS as exc:
            return _unavailable(f"the log is unavailable, nothing was checked: {exc}")
        job = _Job(payload, event.repo_type, event.repo_id, index)
        worker = threading.Thread(target=self._work, args=(job,), name=f"hf-webhook-{index}", daemon=True)
        with self._running_lock:
            self._running.add(worker)
        worker.start()
        if not job.finished.wait(self.answer_within):
            return Response.json(503, {
                "error": f"still checking after {self.answer_within:g} s; the check goes on and is logged, "
                         "and a redelivery answers with its result", "webhook_entry": index},
                {"Retry-After": str(RETRY_AFTER)})
        assert job.response is not None
        return job.response

    # --- the work (in its own thread, so the answer can leave on time) -------------------------------------------

    def _work(self, job: _Job) -> None:
        try:
            job.response = self._contain(job)
        except BaseException as exc:  # noqa: BLE001 - the last line of defence: never a silent thread death
            sys.stderr.write(f"gate serve: webhook {job.webhook_index}: {traceback.format_exc()}")
            job.response = Response.json(503, {"error": f"internal error handling the webhook: {_reason(exc)}",
                                               "webhook_entry": job.webhook_index}, {"Retry-After": str(RETRY_AFTER)})
        finally:
            job.finished.set()
            with self._running_lock:
                self._running.discard(threading.current_thread())

    def _contain(self, job: _Job) -> Response:
        from tiergate.integrations.hf.containment import contain, seen_key

        decider: _WebhookDecider | None = None

        def on_result(result: Any, error: Exception | None) -> None:
            assert decider is not None
            self._log_result(job, decider, result, error)

        try:
            rules = self.service.rules()  # one version of the policy and trust store for the whole event
            decider = _WebhookDecider(self.service.decider(rules), job.webhook_index)
            gate = Gate.pinned(rules, decider)
            results = contain(self._hub(), job.payload, gate, seen=self.seen, on_result=on_result)
        except _LogFailed as exc:
            self._log_event_failure(job, exc)
            return _unavailable(str(exc), job.webhook_index)
        except _LOG_ERRORS as exc:
            self._log_event_failure(job, exc)
            return _unavailable(f"the log is unavailable: {exc}", job.webhook_index)
        except Exception as exc:  # noqa: BLE001 - sorted below: routine failures get one line, others a traceback
            # The Hub or the network failing is routine (one line); anything else gets its traceback.
            routine = isinstance(exc, (GateError, OSError)) or type(exc).__module__.startswith(
                ("huggingface_hub", "httpx"))
            sys.stderr.write(f"gate serve: webhook {job.webhook_index} for {job.repo_id}: containment failed: "
                             f"{_reason(exc)}\n" + ("" if routine else traceback.format_exc()))
            self._log_event_failure(job, exc)
            return Response.json(502, {"error": f"containment of {job.repo_id} failed: {_reason(exc)}; "
                                                "the failure is logged and a redelivery retries",
                                       "webhook_entry": job.webhook_index, "results": job.rows},
                                 {"Retry-After": str(RETRY_AFTER)})
        waiting = [r for r in results if r.skipped and
                   self.seen.state(seen_key(job.repo_type, r.repo_id, r.commit, r.tier, r.walked)) == "pending"]
        body = {"webhook_entry": job.webhook_index, "results": job.rows}
        if waiting:
            body["error"] = (f"{len(waiting)} revision(s) are being checked by another request or replica; "
                             "redeliver later for the result")
            return Response.json(503, body, {"Retry-After": str(RETRY_AFTER)})
        return Response.json(200, body)

    def _log_result(self, job: _Job, decider: _WebhookDecider, result: Any, error: Exception | None) -> None:
        decision = result.decision
        if error is not None:
            outcome = "failed"
        elif result.skipped:
            outcome = "skipped"
        elif decision is not None and decision.allowed:
            outcome = "allowed"
        else:
            outcome = "contained" if result.state_after else "denied"
        decision_index = decider.decision_index.get(result.commit) if decision is not None else None
        record = {
            "integration": "huggingface", "repo": result.repo_id, "repo_type": job.repo_type, "ref": result.ref or None,
            "commit": result.commit, "tier": result.tier, "state": result.state, "outcome": outcome,
            "decision_index": decision_index, "webhook_index": job.webhook_index,
            "missing": [r.id for r in decision.missing] if decision is not None and not decision.allowed else [],
            "actions": list(result.actions), "state_after": result.state_after,
            "error": _reason(error) if error is not None else None,
        }
        digest = decision.model_digest if decision_index is not None else None
        if error is not None:
            job.failure_logged = True
        try:
            index = self.service.store.append(containment_entry(record, self.service.clock(), digest),
                                              model_digest=digest)
        except _LOG_ERRORS as exc:
            if error is not None:  # the original error is the one to report; say this one where an operator looks
                sys.stderr.write(f"gate serve: webhook {job.webhook_index}: could not log the failure: {exc}\n")
                return
            raise _LogFailed(f"the log is unavailable after acting on {result.repo_id}: {exc}") from exc
        job.rows.append({**result.to_dict(), "outcome": outcome, "log_index": index,
                         "decision_index": decision_index})

    def _log_event_failure(self, job: _Job, exc: BaseException) -> None:
        """A failure no revision was logged for (reading the repository or its refs): one containment entry."""
        if job.failure_logged:
            return
        record: dict[str, Any] = {
            "integration": "huggingface", "repo": job.repo_id, "repo_type": job.repo_type, "ref": None,
            "commit": None, "tier": None, "state": None, "outcome": "failed", "decision_index": None,
            "webhook_index": job.webhook_index, "missing": [], "actions": [], "state_after": None,
            "error": _reason(exc),
        }
        try:
            self.service.store.append(containment_entry(record, self.service.clock()))
            job.failure_logged = True
        except _LOG_ERRORS as log_exc:
            sys.stderr.write(f"gate serve: webhook {job.webhook_index}: could not log the failure: {log_exc}\n")

    # --- the Hub -------------------------------------------------------------------------------------------------

    def _hub(self) -> Any:
        """The service's ``HfApi`` (imported and built on first use), every request bounded by :data:`HUB_TIMEOUT`."""
        with self._api_lock:
            if self._api is None:
                from huggingface_hub import HfApi
                from huggingface_hub.utils import _http, httpx, set_client_factory

                base = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory
                timeout = self.hub_timeout

                def bounded() -> Any:
                    client = base()
                    client.timeout = httpx.Timeout(timeout)
                    return client

                set_client_factory(bounded)  # huggingface_hub's default waits for ever
                from tiergate import __version__

                self._api = HfApi(endpoint=self.endpoint, token=self._token, library_name="tiergate",
                                  library_version=__version__)
            return self._api

    def close(self, wait: float = 5.0) -> None:
        """Give running checks up to ``wait`` seconds to finish (so they are logged before the log closes)."""
        deadline = time.monotonic() + wait
        with self._running_lock:
            running = list(self._running)
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))


def _config_change(value: Any) -> dict[str, Any] | None:
    """The access-related part of ``updatedConfig`` (scalars only): what the log needs to say what changed."""
    if not isinstance(value, dict):
        return None
    kept = {k: v for k, v in value.items() if k in ("private", "gated", "visibility")
            and (v is None or isinstance(v, (bool, str)))}
    return {k: (v[:100] if isinstance(v, str) else v) for k, v in kept.items()} or None


def _hub_webhook_id(value: Any) -> str | None:
    found = value.get("id") if isinstance(value, dict) else None
    return found[:200] if isinstance(found, str) and found else None


def _unavailable(message: str, webhook_index: int | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if webhook_index is not None:
        body["webhook_entry"] = webhook_index
    return Response.json(503, body, {"Retry-After": str(RETRY_AFTER)})
