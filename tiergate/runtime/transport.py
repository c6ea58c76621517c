"""Talking HTTP to a gate service, failing closed: one exchange, bounded in time and size, or an error that says so.

Every caller that asks a gate service for something must treat "no clear answer" as "no": the service unreachable,
slow, answering with an HTTP error or with something that is not what was asked for. Each of those raises
:class:`GateServiceError` (a :class:`~tiergate.errors.GateError`, exit code 1) whose message names the service and, for
a publish, says it is denied.

"Slow" is the whole exchange: ``timeout`` bounds connecting, sending, the headers and the body of the answer
together, however slowly a service trickles its bytes (each request runs in a helper thread the caller stops waiting
for at the deadline; the helper stops reading at the deadline too).

What the answers mean is the business of :mod:`tiergate.runtime.client` (the service's API) and
:mod:`tiergate.runtime.remote` (decisions); this module only moves bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

import requests

from tiergate.core.answer import ANSWER_HEADER
from tiergate.core.files import StrictJSONError, parse_json
from tiergate.errors import GateError

DENIED = "the publish is denied"
#: Answers larger than this are refused unread: no gate answer is that large (entry pages are capped by the server).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: Seconds to wait before asking again when a read is refused with 429 (what the service's Retry-After says).
_RETRY_AFTER = 1.0
#: Bytes read from the answer at a time (each read returns what has arrived, so the deadline is checked in between).
_CHUNK = 1 << 16


class GateServiceError(GateError):
    """The gate service could not give a usable answer. For a publish this means deny."""

    exit_code = 1


@dataclass(frozen=True)
class Answer:
    """A fully read HTTP answer (read here, within :data:`MAX_ANSWER_BYTES`)."""

    status: int
    content: bytes
    log_index: int | None = None  # X-Gate-Log-Index of a decision
    signed: str | None = None  # X-Gate-Answer of a decision: the signed answer (tiergate.core.answer)


class Transport:
    """Exchanges with one gate service. One ``requests.Session`` each: use one transport per thread."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0,
                 session: requests.Session | None = None) -> None:
        if not isinstance(server, str) or not server.startswith(("http://", "https://")):
            raise GateServiceError(f"gate service URL must start with http:// or https://, not {server!r}; {DENIED}")
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._session = session or requests.Session()

    def fail(self, problem: str, publish: bool) -> GateServiceError:
        """The error for ``problem`` with this service; for a publish it says the publish is denied."""
        return GateServiceError(f"gate service at {self.server} {problem}" + (f"; {DENIED}" if publish else ""))

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Any = None, auth: bool = False, publish: bool = False, _until: float | None = None) -> Answer:
        """One exchange, the whole of it within ``timeout``; raises :class:`GateServiceError` for anything but a
        2xx answer read in full. A read refused with 429 (the service's public reads yield to its decisions) is
        asked again after a second, within the same ``timeout``."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        if auth:
            if not self.token:
                raise self.fail("needs a bearer token and none was given (set it with --token-env VAR)", publish)
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + self.timeout if _until is None else _until
        outcome: list[tuple[Answer, str | None] | BaseException] = []

        def exchange() -> None:
            try:
                response = self._session.request(method, self.server + path, params=params, data=data,
                                                 headers=headers, timeout=self.timeout, stream=True,
                                                 allow_redirects=False)
                with response:
                    content = _read_limited(response, deadline)
                    outcome.append((Answer(response.status_code, content, _log_index(response.headers),
                                           response.headers.get(ANSWER_HEADER)), response.reason))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome.append(exc)

        helper = threading.Thread(target=exchange, name=f"gate-client {method} {path}", daemon=True)
        helper.start()
        helper.join(max(0.0, deadline - time.monotonic()))
        if not outcome:  # still connecting, sending or reading: the helper gives up at its next read
            raise self.fail(f"did not answer within {self.timeout:g} s", publish)
        result = outcome[0]
        if isinstance(result, (requests.Timeout, _Late)):
            raise self.fail(f"did not answer within {self.timeout:g} s", publish) from None
        if isinstance(result, requests.ConnectionError):
            raise self.fail(f"unreachable: {_reason(result)}", publish) from None
        if isinstance(result, requests.RequestException):
            raise self.fail(f"request failed: {_reason(result)}", publish) from None
        if isinstance(result, BaseException):
            raise result
        answer, reason = result
        if answer.status == 429 and method == "GET" and time.monotonic() + _RETRY_AFTER < deadline:
            time.sleep(_RETRY_AFTER)
            return self.request(method, path, params=params, body=body, auth=auth, publish=publish, _until=deadline)
        if answer.status >= 300:
            raise self.fail(f"answered HTTP {answer.status}: {_error_text(answer.content, reason)}", publish)
        return answer

    def json(self, answer: Answer, publish: bool = False) -> Any:
        """The answer's JSON, read strictly; raises :class:`GateServiceError` when it is not JSON or is ambiguous."""
        try:
            return parse_json(answer.content)  # strict: a decision two readers could read differently is no decision
        except StrictJSONError as exc:
            raise self.fail(f"sent an answer that {exc}, so it is not JSON", publish) from None

    def field(self, data: Any, key: str, kind: type | tuple[type, ...], publish: bool = False) -> Any:
        """``data[key]`` when ``data`` is an object and that is a ``kind`` (never a bool); raises otherwise."""
        if not isinstance(data, dict) or not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise self.fail(f"sent a malformed answer (no valid {key!r})", publish)
        return data[key]

    def b64(self, value: Any, what: str) -> bytes:
        """Decoded strict base64; raises :class:`GateServiceError` for anything else."""
        try:
            if not isinstance(value, str):
                raise ValueError
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise self.fail(f"sent {what} that is not base64", False) from None


class _Late(Exception):
    """The answer was still arriving at the deadline."""


def _read_limited(response: requests.Response, deadline: float) -> bytes:
    """The body of ``response``, at most :data:`MAX_ANSWER_BYTES`, all of it by ``deadline`` (or :class:`_Late`)."""
    chunks, total = [], 0
    raw = response.raw
    while True:
        if time.monotonic() > deadline:
            response.close()
            raise _Late
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
        message = data.get("error") if isinstance(data, dict) else None
        if isinstance(message, str):
            return message[:500]
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return (reason or "error").strip()[:200]


def _log_index(headers: Mapping[str, str]) -> int | None:
    """X-Gate-Log-Index when it is a log index (ASCII digits: ``"²".isdigit()`` is true, ``int("²")`` fails)."""
    value = headers.get("X-Gate-Log-Index")
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    return int(value)
