"""A small client of the gate service (``gate serve``) that fails closed.

Every integration that asks a central gate service for a decision must treat "no clear answer" as "no": the service
unreachable, slow, answering with an HTTP error or with something that is not exactly a decision for the model that
was asked about. Each of those raises :class:`GateServiceError` (a :class:`~gate.errors.GateError`, exit code 1)
whose message names the service and, for decisions, says the publish is denied.

"Slow" is the whole exchange: ``timeout`` bounds connecting, sending, the headers and the body of the answer
together, however slowly a service trickles its bytes (each request runs in a helper thread the caller stops waiting
for at the deadline; the helper stops reading at the deadline too).

The log methods (checkpoint, entries, proofs) return raw material only; auditors verify it themselves
(:mod:`gate.audit`), never trusting the service.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import requests

from gate.core.decision import Decision
from gate.core.manifest import Manifest, parse_digest
from gate.core.verify import AttestationInput
from gate.errors import GateError, InputError
from gate.runtime import RecordedDecision

DENIED = "the publish is denied"
#: Answers larger than this are refused unread: no gate answer is that large (entry pages are capped by the server).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: Bytes read from the answer at a time (each read returns what has arrived, so the deadline is checked in between).
_CHUNK = 1 << 16


class GateServiceError(GateError):
    """The gate service could not give a usable answer. For a publish this means deny."""

    exit_code = 1


@dataclass(frozen=True)
class _Answer:
    """A fully read HTTP answer (read here, within :data:`MAX_ANSWER_BYTES`)."""

    status: int
    content: bytes
    log_index: int | None = None  # X-Gate-Log-Index of a decision


@dataclass(frozen=True)
class StoredAttestation:
    """An attestation the service holds for a model: its digest, log index and exact bytes."""

    digest: str
    index: int
    data: bytes


@dataclass(frozen=True)
class EntryPage:
    """A page of log entries ``[start, end)``, each ``(index, bytes)``."""

    start: int
    end: int
    entries: tuple[tuple[int, bytes], ...]


class GateClient:
    """Talks to one gate service. Thread-safe enough for one thread per client (one ``requests.Session`` each)."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0,
                 session: requests.Session | None = None) -> None:
        if not isinstance(server, str) or not server.startswith(("http://", "https://")):
            raise GateServiceError(f"gate service URL must start with http:// or https://, not {server!r}; {DENIED}")
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._session = session or requests.Session()
        self._policy_summary: dict[str, Any] | None = None

    # --- transport ---------------------------------------------------------------------------------------------

    def _fail(self, problem: str, publish: bool) -> GateServiceError:
        return GateServiceError(f"gate service at {self.server} {problem}" + (f"; {DENIED}" if publish else ""))

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 body: Any = None, auth: bool = False, publish: bool = False) -> _Answer:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        if auth:
            if not self.token:
                raise self._fail("needs a bearer token and none was given (set it with --token-env VAR)", publish)
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + self.timeout
        outcome: list[Any] = []

        def exchange() -> None:
            try:
                response = self._session.request(method, self.server + path, params=params, data=data,
                                                 headers=headers, timeout=self.timeout, stream=True,
                                                 allow_redirects=False)
                with response:
                    content = _read_limited(response, deadline)
                    outcome.append((_Answer(response.status_code, content, _log_index(response.headers)),
                                    response.reason))
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)

        helper = threading.Thread(target=exchange, name=f"gate-client {method} {path}", daemon=True)
        helper.start()
        helper.join(max(0.0, deadline - time.monotonic()))
        if not outcome:  # still connecting, sending or reading: the helper gives up at its next read
            raise self._fail(f"did not answer within {self.timeout:g} s", publish)
        result = outcome[0]
        if isinstance(result, (requests.Timeout, _Late)):
            raise self._fail(f"did not answer within {self.timeout:g} s", publish) from None
        if isinstance(result, requests.ConnectionError):
            raise self._fail(f"unreachable: {_reason(result)}", publish) from None
        if isinstance(result, requests.RequestException):
            raise self._fail(f"request failed: {_reason(result)}", publish) from None
        if isinstance(result, BaseException):
            raise result
        answer, reason = result
        if answer.status >= 300:
            raise self._fail(f"answered HTTP {answer.status}: {_error_text(answer.content, reason)}", publish)
        return answer

    def _json(self, answer: _Answer, publish: bool = False) -> Any:
        try:
            return json.loads(answer.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise self._fail("sent an answer that is not JSON", publish) from None

    def _field(self, data: Any, key: str, kind: type | tuple[type, ...], publish: bool = False) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise self._fail(f"sent a malformed answer (no valid {key!r})", publish)
        return data[key]

    # --- attestations and decisions ----------------------------------------------------------------------------

    def submit_attestation(self, data: bytes, model: str | None = None) -> dict[str, Any]:
        """Submit one attestation (its exact bytes); the service verifies and logs it. Returns the service's receipt."""
        body: dict[str, Any] = {"attestation": base64.b64encode(data).decode("ascii")}
        if model is not None:
            body["model"] = f"sha256:{parse_digest(model)}"
        answer = self._json(self._request("POST", "/v1/attestations", body=body, auth=True))
        self._field(answer, "digest", str)
        self._field(answer, "index", int)
        return answer

    def attestations(self, model: str) -> list[StoredAttestation]:
        """The attestations the service holds for ``model`` (not verified here; verify before relying on them)."""
        digest = f"sha256:{parse_digest(model)}"
        answer = self._json(self._request("GET", "/v1/attestations", params={"model": digest}))
        items = []
        for raw in self._field(answer, "attestations", list):
            items.append(StoredAttestation(self._field(raw, "digest", str), self._field(raw, "index", int),
                                           self._b64(self._field(raw, "data", str), "attestation data")))
        return items

    def decide(self, *, tier: str | None = None, model: Manifest | str, attestations: Sequence[AttestationInput] = (),
               context: Mapping[str, Any] | None = None, target: str | None = None) -> Decision:
        """Ask the service to decide; see :meth:`decide_recorded`."""
        return self.decide_recorded(tier=tier, model=model, attestations=attestations, context=context,
                                    target=target).decision

    def decide_recorded(self, *, tier: str | None = None, model: Manifest | str,
                        attestations: Sequence[AttestationInput] = (), context: Mapping[str, Any] | None = None,
                        target: str | None = None) -> RecordedDecision:
        """Ask the service to decide (and log) a release of ``model`` (a manifest or a digest) at ``tier``/``target``.

        Any failure raises :class:`GateServiceError` saying the publish is denied. The answer must be a well-formed
        decision about this very model (and tier, when one was asked), or it is refused.
        """
        if (tier is None) == (target is None):
            raise InputError("give exactly one of tier and target")
        if isinstance(model, Manifest):
            wanted = model.digest
            model_body: dict[str, Any] = {"manifest": model.to_dict(content=True)}  # the service cannot see the files
        else:
            wanted = f"sha256:{parse_digest(model)}"
            model_body = {"digest": wanted}
        body: dict[str, Any] = {
            "model": model_body,
            "attestations": [base64.b64encode(item.data).decode("ascii") for item in attestations],
            "context": dict(context or {}),
        }
        body.update({"tier": tier} if tier is not None else {"target": target})
        raw = self._request("POST", "/v1/decisions", body=body, auth=True, publish=True)
        answer = self._json(raw, publish=True)
        try:
            decision = Decision.from_dict(answer)
        except InputError as exc:
            raise self._fail(f"sent something that is not a decision ({exc})", True) from None
        if decision.model_digest != wanted:
            raise self._fail(f"answered about {decision.model_digest}, not {wanted}", True)
        if tier is not None and decision.requested_tier != tier:
            raise self._fail(f"answered for tier {decision.requested_tier!r}, not {tier!r}", True)
        if target is not None:
            expected = self._target_tier(target, decision.policy_digest)
            if decision.requested_tier != expected:
                raise self._fail(f"answered for tier {decision.requested_tier!r}, but its policy "
                                 f"({decision.policy_digest[:19]}...) requires tier {expected!r} for {target}", True)
        return RecordedDecision(decision, raw.log_index)

    def policy(self, publish: bool = False) -> dict[str, Any]:
        """The service's ``GET /v1/policy``: its policy's uri, digest, tiers and publish targets (unverified)."""
        answer = self._json(self._request("GET", "/v1/policy", publish=publish), publish=publish)
        self._field(answer, "digest", str, publish=publish)
        tiers = self._field(answer, "tiers", list, publish=publish)
        if not tiers or not all(isinstance(t, str) for t in tiers):
            raise self._fail("sent a malformed policy (no valid 'tiers')", publish)
        self._field(answer, "targets", dict, publish=publish)
        return answer

    def _target_tier(self, target: str, policy_digest: str) -> str:
        """The tier the service's policy ``policy_digest`` requires for ``target``, resolved here from what the service
        reports of that policy (``GET /v1/policy``, kept while the digest stays the same).

        A decision asked for by target names the tier it was decided at and the policy it was decided with; this
        checks the two agree, so an answer for a lower tier (a mix-up, a replayed answer, a server resolving the
        target wrongly) is a deny. The service reports its policy itself, so this does not protect against a service
        that lies consistently; only a policy held by the caller could.
        """
        summary = self._policy_summary
        if summary is None or summary.get("digest") != policy_digest:
            summary = self._policy_summary = self.policy(publish=True)  # first use, or it changed (restart, replica)
        if summary["digest"] != policy_digest:
            raise self._fail(f"decided with policy {policy_digest[:19]}... but reports policy "
                             f"{str(summary['digest'])[:19]}...", True)
        from gate.service.targets import UnknownTarget, tier_for_target

        try:
            targets = summary["targets"]
            hf, ml = targets["huggingface"], targets["mlflow"]
            view = SimpleNamespace(
                huggingface=SimpleNamespace(**{k: str(hf[k]) for k in ("private", "gated_manual", "gated_auto",
                                                                         "public")}),
                mlflow=SimpleNamespace(registration=str(ml["registration"]), aliases=dict(ml["aliases"]),
                                       stages=dict(ml["stages"]), tags={str(k): dict(v) for k, v in ml["tags"].items()}))
            expected = tier_for_target(view, target)  # type: ignore[arg-type]
        except UnknownTarget as exc:
            raise self._fail(f"decided on a target its policy does not know: {exc}", True) from None
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._fail("sent a malformed policy (no valid 'targets')", True) from None
        if not isinstance(expected, str) or expected not in summary["tiers"]:
            raise self._fail(f"reports target {target} needing tier {expected!r}, which is not one of its policy's "
                             "tiers", True)
        return expected

    # --- the log -----------------------------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The service's current signed checkpoint (a C2SP signed note), unverified."""
        return self._request("GET", "/v1/log/checkpoint").content

    def entries(self, start: int, end: int) -> EntryPage:
        """Entries ``[start, end)``; the service may return fewer (a page is bounded), never other indices."""
        answer = self._json(self._request("GET", "/v1/log/entries", params={"start": start, "end": end}))
        rows = []
        for raw in self._field(answer, "entries", list):
            rows.append((self._field(raw, "index", int), self._b64(self._field(raw, "data", str), "entry data")))
        page = EntryPage(self._field(answer, "start", int), self._field(answer, "end", int), tuple(rows))
        if page.start != start or not start <= page.end <= end or any(not start <= i < page.end for i, _ in rows):
            raise self._fail(f"sent entries outside the range [{start}, {end}) that was asked for", False)
        return page

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        answer = self._json(self._request("GET", "/v1/log/proof/inclusion", params={"index": index, "size": size}))
        return self._hashes(answer)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        answer = self._json(self._request("GET", "/v1/log/proof/consistency", params={"old": old, "new": new}))
        return self._hashes(answer)

    def find(self, model: str, start: int = 0, limit: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Log entries about ``model``: ``([{index, kind}, ...], next start or None)``."""
        params: dict[str, Any] = {"model": f"sha256:{parse_digest(model)}", "start": start}
        if limit is not None:
            params["limit"] = limit
        answer = self._json(self._request("GET", "/v1/log/find", params=params))
        found = self._field(answer, "entries", list)
        for raw in found:
            self._field(raw, "index", int)
            self._field(raw, "kind", str)
        following = answer.get("next")
        if following is not None and (not isinstance(following, int) or isinstance(following, bool)):
            raise self._fail("sent a malformed answer (no valid 'next')", False)
        return found, following

    def health(self) -> dict[str, Any]:
        answer = self._json(self._request("GET", "/v1/healthz"))
        if not isinstance(answer, dict):
            raise self._fail("sent a malformed health answer", False)
        return answer

    def _hashes(self, answer: Any) -> list[bytes]:
        return [self._b64(h, "proof hash") for h in self._field(answer, "hashes", list)]

    def _b64(self, value: Any, what: str) -> bytes:
        try:
            if not isinstance(value, str):
                raise ValueError
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise self._fail(f"sent {what} that is not base64", False) from None


class _Late(Exception):
    """The answer was still arriving at the deadline."""


def _read_limited(response: requests.Response, deadline: float) -> bytes:
    """The body of ``response``, at most :data:`MAX_ANSWER_BYTES`, all of it by ``deadline`` (or :class:`_Late`)."""
    chunks, total = [], 0
    raw = response.raw
    while True:
        if time.monotonic() > deadline:
            response.close()
            raise _Late()
        chunk = raw.read1(_CHUNK, decode_content=True)  # returns what one read brings, not a full chunk
        if not chunk:
            break
        total += len(chunk)
        if total > MAX_ANSWER_BYTES:
            response.close()
            raise requests.RequestException(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: Exception) -> str:
    """The innermost useful reason of a requests error, without the object reprs urllib3 puts in."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Connection reset", "Temporary failure in name resolution", "Remote end closed connection"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _error_text(content: bytes, reason: str | None) -> str:
    """The service's ``{"error": ...}`` message, or the HTTP reason phrase when the answer is not one."""
    try:
        data = json.loads(content)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"][:500]
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return (reason or "error").strip()[:200]


def _log_index(headers: Mapping[str, str]) -> int | None:
    """X-Gate-Log-Index when it is a log index (ASCII digits: ``"²".isdigit()`` is true, ``int("²")`` fails)."""
    value = headers.get("X-Gate-Log-Index")
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    return int(value)
