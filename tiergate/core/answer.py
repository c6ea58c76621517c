"""Signed answers: a gate service's decision bound to the request it answers (replay protection for clients).

A client asking a service to decide sends a fresh random nonce. The service answers with the decision (the body, as
``gate check --json`` prints it) and a DSSE envelope, signed with its log key, over an in-toto Statement whose
subject is the model and whose predicate (:data:`ANSWER_PREDICATE_TYPE`) names the nonce, the request (model, tier or
target), the outcome and tier decided, the SHA-256 of the body, the decision's log index and the time of the answer.
The client accepts the decision only if the envelope is signed by the key it was configured with (not one the answer
brings), the nonce is the one it just sent, the request is the one it made, the body is the one signed and the time
is within a maximum age of its own clock. A captured answer replayed later (another nonce), an answer to another
request, one signed by a revoked key, a tampered field and an unsigned answer all fail here, with a one-line reason.

Why DSSE and in-toto: the project already signs and verifies them (:mod:`tiergate.core.dsse`), the payload type
``application/vnd.in-toto+json`` plus the predicate type separate an answer from any other document the key signs
(the log key otherwise signs only C2SP checkpoint notes, a different encoding altogether), and an answer is then a
statement auditors' tools can read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tiergate.core.attestation import AttestationFormatError, Statement, Subject
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope, sign
from tiergate.core.files import read_limited
from tiergate.core.keys import PrivateKey, PublicKey
from tiergate.core.log.checkpoint import NoteVerifier
from tiergate.core.timeutil import format_time, parse_time
from tiergate.errors import ConfigError, VerificationError

ANSWER_PREDICATE_TYPE = "https://tiergate.dev/answer/v1"
#: Seconds an answer's time may differ from the client's clock (either way): a few minutes of clock skew. The nonce
#: already proves freshness; the age bounds what a service with a wrong clock, or a slow delivery, can pass off.
DEFAULT_MAX_AGE = 300.0
#: A signed answer travels in this HTTP header (base64 of the envelope's JSON), so the body stays the decision.
ANSWER_HEADER = "X-Gate-Answer"
#: An envelope larger than this is refused unread (an answer's is about 1.5 KB).
MAX_ANSWER_ENVELOPE = 16 * 1024
#: A nonce is 16 to 128 characters of URL-safe base64 (what :func:`new_nonce` makes has 43).
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_PREDICATE_FIELDS = {"nonce", "request", "decision", "tier", "decision_digest", "log", "time"}
_REQUEST_FIELDS = {"model", "tier", "target"}


class AnswerError(VerificationError):
    """A service's answer is not a signed answer to this very request. The message is the one-line reason."""


def new_nonce() -> str:
    """A fresh nonce: 256 random bits, URL-safe base64."""
    return secrets.token_urlsafe(32)


def nonce_problem(value: object) -> str | None:
    """Why ``value`` cannot be a nonce, or None if it can."""
    if not isinstance(value, str) or not _NONCE.fullmatch(value):
        return "must be 16 to 128 characters of A-Z, a-z, 0-9, '-' and '_'"
    return None


@dataclass(frozen=True)
class AnswerRequest:
    """What a client asked: its nonce (None: the client sent none), the model (``sha256:<hex>``), tier or target."""

    nonce: str | None
    model: str
    tier: str | None
    target: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "tier": self.tier, "target": self.target}


@dataclass(frozen=True)
class SignedAnswer:
    """The signed statement of one answer: the request, what was decided, where it is logged and when."""

    request: AnswerRequest
    decision: str  # "allow" or "deny"
    tier: str  # the tier decided at (a target's is the one the service's policy gives it)
    decision_digest: str  # "sha256:<hex>" of the answer's body
    origin: str  # the log's origin
    log_index: int
    time: datetime

    def statement(self) -> Statement:
        return Statement(
            subjects=(Subject(self.request.model, {"sha256": self.request.model.removeprefix("sha256:")}),),
            predicate_type=ANSWER_PREDICATE_TYPE,
            predicate={
                "nonce": self.request.nonce, "request": self.request.to_dict(), "decision": self.decision,
                "tier": self.tier, "decision_digest": self.decision_digest,
                "log": {"origin": self.origin, "index": self.log_index}, "time": format_time(self.time),
            },
        )

    def sign(self, key: PrivateKey) -> str:
        """The header value: base64 of the compact JSON of a DSSE envelope signed by ``key``."""
        envelope = sign(self.statement().to_json(), INTOTO_PAYLOAD_TYPE, [key])
        text = json.dumps(envelope.to_dict(), separators=(",", ":")).encode("utf-8")
        return base64.b64encode(text).decode("ascii")


def load_answer_key(path: str | os.PathLike[str]) -> PublicKey:
    """The service key a client checks answers with, from a file holding the log's verifier key (the vkey line
    ``gate serve`` prints and ``/v1/healthz`` reports) or its PEM public key; raises ConfigError."""
    data = read_limited(path, "gate service key file", 64 * 1024)
    if data.lstrip().startswith(b"-----BEGIN"):
        return PublicKey.from_pem(data, str(path))
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: a gate service key is a vkey line or a PEM public key, not binary data") from None
    return NoteVerifier.from_vkey(text, str(path)).public_key


def body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def verify_answer(header: str | None, key: PublicKey, asked: AnswerRequest, body: bytes, now: datetime,
                  max_age: float = DEFAULT_MAX_AGE) -> SignedAnswer:
    """The signed answer in ``header`` if it answers ``asked`` with ``body``, signed by ``key``, within ``max_age``
    seconds of ``now``; raises :class:`AnswerError` with the first reason it does not."""
    if not header:
        raise AnswerError(f"sent no signed answer ({ANSWER_HEADER}); a decision that is not bound to its request "
                          "could be a replay")
    if len(header) > MAX_ANSWER_ENVELOPE * 2:
        raise AnswerError(f"sent a signed answer over {MAX_ANSWER_ENVELOPE} bytes")
    try:
        envelope = Envelope.from_json(base64.b64decode(header.encode("ascii"), validate=True))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise AnswerError(f"sent a {ANSWER_HEADER} that is not base64") from None
    except VerificationError as exc:
        raise AnswerError(f"sent a signed answer that is not a DSSE envelope: {exc}") from None
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise AnswerError(f"sent a signed answer of payload type {envelope.payload_type[:80]!r}, not "
                          f"{INTOTO_PAYLOAD_TYPE}")
    if not envelope.verified_keys([key]):
        raise AnswerError(f"sent an answer not signed by the configured service key {key.key_id[:16]} (a forged "
                          "answer, or one signed by a key since replaced)")
    try:
        statement = Statement.from_json(envelope.payload)
    except AttestationFormatError as exc:
        raise AnswerError(f"signed an answer that is not an in-toto statement: {exc}") from None
    if statement.predicate_type != ANSWER_PREDICATE_TYPE:
        raise AnswerError(f"signed a {statement.predicate_type[:80]!r} statement, not an answer "
                          f"({ANSWER_PREDICATE_TYPE})")
    answer = _read_predicate(statement.predicate)
    if answer.request.nonce != asked.nonce:
        raise AnswerError("answered another request (its nonce is not the one sent): a replayed answer")
    if answer.request != asked:
        raise AnswerError(f"signed an answer to another request ({_shown(answer.request)}, not {_shown(asked)})")
    if statement.digests("sha256") != {asked.model.removeprefix("sha256:")}:
        raise AnswerError("signed an answer whose subject is not the model asked about")
    if answer.decision_digest != body_digest(body):
        raise AnswerError("sent a decision that is not the one it signed (the body was changed)")
    age = (now - answer.time).total_seconds()
    if abs(age) > max_age:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise AnswerError(f"signed its answer at {format_time(answer.time)}, {when} by this clock; at most "
                          f"{max_age:g} s is accepted (check both clocks)")
    return answer


def _read_predicate(predicate: Mapping[str, Any]) -> SignedAnswer:
    """The predicate's fields, all present, of the right types and no others; raises :class:`AnswerError`."""
    if set(predicate) != _PREDICATE_FIELDS:
        raise AnswerError(f"signed an answer with fields {sorted(predicate)}, not {sorted(_PREDICATE_FIELDS)}")
    request, log = predicate["request"], predicate["log"]
    if not isinstance(request, dict) or set(request) != _REQUEST_FIELDS:
        raise AnswerError(f"signed an answer whose request is not an object of {sorted(_REQUEST_FIELDS)}")
    if not isinstance(log, dict) or set(log) != {"origin", "index"}:
        raise AnswerError("signed an answer whose log is not an object of origin and index")
    nonce = predicate["nonce"]
    texts = {"request.model": request["model"], "decision": predicate["decision"], "tier": predicate["tier"],
             "decision_digest": predicate["decision_digest"], "log.origin": log["origin"], "time": predicate["time"]}
    optional = {"nonce": nonce, "request.tier": request["tier"], "request.target": request["target"]}
    for name, value in list(texts.items()) + list(optional.items()):
        if not isinstance(value, str) and not (name in optional and value is None):
            raise AnswerError(f"signed an answer whose {name} is not text")
    index = log["index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise AnswerError("signed an answer whose log index is not a non-negative integer")
    if predicate["decision"] not in ("allow", "deny"):
        raise AnswerError(f"signed an answer whose decision is {str(predicate['decision'])[:20]!r}")
    for name in ("request.model", "decision_digest"):
        if not _DIGEST.fullmatch(texts[name]):
            raise AnswerError(f"signed an answer whose {name} is not sha256:<64 hex digits>")
    try:
        when = parse_time(predicate["time"])
    except ValueError as exc:
        raise AnswerError(f"signed an answer whose time is not RFC 3339: {exc}") from None
    return SignedAnswer(AnswerRequest(nonce, request["model"], request["tier"], request["target"]),
                        predicate["decision"], predicate["tier"], predicate["decision_digest"], log["origin"], index,
                        when)


def _shown(request: AnswerRequest) -> str:
    asked = f"tier {request.tier!r}" if request.tier is not None else f"target {request.target!r}"
    return f"{request.model[:19]}... at {asked}"
