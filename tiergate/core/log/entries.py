"""The entries of the decision log: canonical JSON bytes, one per accepted attestation and per decision.

An auditor holding only the log must be able to tell what every leaf says and re-check it, so an entry is
self-contained and has exactly one byte encoding:

- canonical JSON: keys sorted, compact separators (``,`` and ``:``), UTF-8, no insignificant whitespace. Parsing
  re-encodes and refuses bytes that differ, so two spellings of one entry can never both appear in a log;
- ``kind`` is ``"attestation"`` (the attestation's exact bytes, base64, with their SHA-256, so its signatures can be
  verified again and its digest matches what decisions cite) or ``"decision"`` (``Decision.to_dict()`` verbatim,
  plus the publish ``context`` the caller sent, e.g. who pushed what where);
- or, for the gate service's Hugging Face webhook, ``"webhook"`` (an authenticated Hub event that can publish: which
  repository, which refs, what changed) and ``"containment"`` (what was done about one revision of it: the decision
  it cites by log index, and the access narrowing and discussion that followed, or why nothing was done);
- ``model_digest`` (``sha256:<hex>``) and ``time`` (RFC 3339) sit at the top level of attestation and decision
  entries, so the store can index by model and a reader can sort without understanding the body. A webhook entry is
  about a repository, not a model: it has ``time`` only. A containment entry has ``model_digest`` exactly when it
  cites a decision.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

from tiergate.core.manifest import parse_digest
from tiergate.core.timeutil import format_time, parse_time
from tiergate.errors import InputError

if TYPE_CHECKING:  # only for the annotation: the log format does not depend on how decisions are made
    from tiergate.core.decision import Decision

ENTRY_SCHEMA = "https://tiergate.dev/log-entry/v1"
ATTESTATION, DECISION = "attestation", "decision"
WEBHOOK, CONTAINMENT = "webhook", "containment"
KINDS: tuple[str, ...] = (ATTESTATION, DECISION, WEBHOOK, CONTAINMENT)
#: What became of one revision named by a webhook: allowed (left as it is), contained (denied, access narrowed),
#: denied (denied, access already as narrow as the evidence allows: explained only), skipped (already handled at this
#: tier), failed (an error; ``error`` says which, ``actions`` what was done before it).
OUTCOMES: tuple[str, ...] = ("allowed", "contained", "denied", "skipped", "failed")
#: The webhook integrations that exist. Today: the Hugging Face Hub.
INTEGRATIONS: tuple[str, ...] = ("huggingface",)
#: The publish context is metadata (who, where, which event), not evidence: keep it small.
MAX_CONTEXT_BYTES = 64 * 1024
#: The decision recorded in a decision entry, encoded, at most (the context is bounded apart, so a decision entry is
#: at most about 128 KiB, far below the log's 1 MiB entry limit). Reasons are cut to MAX_RECORDED_TEXT first; what is
#: still larger (hundreds of rejected attestations) is refused with :class:`DecisionTooLarge`.
MAX_DECISION_BYTES = 64 * 1024
#: Characters of one rejection reason, source or requirement reason kept in a decision entry. Reasons quote what an
#: attestation claims (a predicateType, an evaluator id), which is the sender's to choose; the decision code bounds
#: them too (tiergate.core.verify.MAX_REASON_CHARS, also 400): this is the log's own backstop.
MAX_RECORDED_TEXT = 400

_ATTESTATION_FIELDS = {"attestation", "kind", "model_digest", "schema", "time"}
_DECISION_FIELDS = {"context", "decision", "kind", "model_digest", "schema", "time"}
_WEBHOOK_FIELDS = {"kind", "schema", "time", "webhook"}
_CONTAINMENT_FIELDS = {"containment", "kind", "schema", "time"}  # + model_digest when it cites a decision
#: key -> accepted types (None: JSON null). Exactly these keys, no others.
_WEBHOOK_RECORD: dict[str, tuple[type | None, ...]] = {
    "integration": (str,), "scope": (str,), "action": (str,), "repo": (str,), "repo_type": (str,), "refs": (list,),
    "updated_config": (dict, None), "hub_webhook_id": (str, None),
}
_CONTAINMENT_RECORD: dict[str, tuple[type | None, ...]] = {
    "integration": (str,), "repo": (str,), "repo_type": (str,), "ref": (str, None), "commit": (str, None),
    "tier": (str, None), "state": (str, None), "outcome": (str,), "decision_index": (int, None),
    "webhook_index": (int,), "missing": (list,), "actions": (list,), "state_after": (str, None), "error": (str, None),
}


class EntryFormatError(InputError):
    """A log entry is not a well-formed, canonical entry of a known kind. The message is the reason."""


class DecisionTooLarge(EntryFormatError):
    """The decision to record is over :data:`MAX_DECISION_BYTES` even with its texts cut (the gate service: a 413)."""


def canonical_json(value: Any) -> bytes:
    """The one encoding of ``value``: sorted keys, compact separators, UTF-8; NaN and infinities refused."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (TypeError, ValueError) as exc:
        raise EntryFormatError(f"not representable as canonical JSON: {exc}") from None


def _model_digest(value: str) -> str:
    return f"sha256:{parse_digest(value)}"


def check_context(context: Any) -> dict[str, Any]:
    """A publish context is a JSON object of at most :data:`MAX_CONTEXT_BYTES` once encoded."""
    if not isinstance(context, Mapping):
        raise EntryFormatError(f"context must be a JSON object, not {type(context).__name__}")
    if not all(isinstance(k, str) for k in context):
        raise EntryFormatError("context keys must be strings")
    size = len(canonical_json(dict(context)))
    if size > MAX_CONTEXT_BYTES:
        raise EntryFormatError(f"context is {size} bytes encoded; the limit is {MAX_CONTEXT_BYTES}")
    copy: dict[str, Any] = json.loads(canonical_json(dict(context)))  # a plain, JSON-only copy
    return copy


def attestation_entry(data: bytes, model_digest: str, time: datetime) -> bytes:
    """The entry recording that the attestation ``data`` (exact bytes) was accepted for ``model_digest`` at ``time``."""
    body = {
        "schema": ENTRY_SCHEMA,
        "kind": ATTESTATION,
        "model_digest": _model_digest(model_digest),
        "time": format_time(time),
        "attestation": {
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "data": base64.b64encode(data).decode("ascii"),
        },
    }
    return canonical_json(body)


#: The texts of a decision record that :func:`bounded_decision_record` cuts: (list field, keys of its rows).
_BOUNDED_TEXTS = (("rejected_attestations", ("reason", "source")), ("inputs", ("source",)),
                  ("requirements", ("reason",)))


def _cut(text: Any, limit: int = MAX_RECORDED_TEXT) -> Any:
    if isinstance(text, str) and len(text) > limit:
        return text[: limit - 1] + "\u2026"
    return text


def bounded_decision_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (``Decision.to_dict()``) with every rejection reason and source, input source and requirement reason
    cut to :data:`MAX_RECORDED_TEXT` characters (ending in an ellipsis); ``record`` itself when none is longer.

    A cut record is still a well-formed decision (``Decision.from_dict`` reads it back): the one that is logged.
    """
    def long(row: Any, key: str) -> bool:
        return isinstance(row, dict) and isinstance(row.get(key), str) and len(row[key]) > MAX_RECORDED_TEXT

    if not any(long(row, key) for name, keys in _BOUNDED_TEXTS for row in record.get(name) or () for key in keys):
        return record
    bounded = dict(record)
    for name, keys in _BOUNDED_TEXTS:
        rows = record.get(name)
        if isinstance(rows, list):
            bounded[name] = [{**row, **{k: _cut(row[k]) for k in keys if k in row}} if isinstance(row, dict) else row
                             for row in rows]
    return bounded


def decision_entry(decision: Decision, context: Mapping[str, Any] | None = None) -> bytes:
    """The entry recording ``decision`` (a :class:`~tiergate.core.decision.Decision`) and the publish ``context``.

    Long texts in the decision are cut (:func:`bounded_decision_record`); a decision still over
    :data:`MAX_DECISION_BYTES` raises :class:`DecisionTooLarge`.
    """
    record = bounded_decision_record(decision.to_dict())
    size = len(canonical_json(record))
    if size > MAX_DECISION_BYTES:
        raise DecisionTooLarge(f"the decision is {size} bytes encoded, over the {MAX_DECISION_BYTES}-byte limit of a "
                               f"decision entry ({len(record.get('inputs') or ())} attestations considered, "
                               f"{len(record.get('rejected_attestations') or ())} rejected)")
    body = {
        "schema": ENTRY_SCHEMA,
        "kind": DECISION,
        "model_digest": _model_digest(record["model_digest"]),
        "time": record["time"],
        "decision": record,
        "context": check_context(context or {}),
    }
    return canonical_json(body)


def webhook_entry(record: Mapping[str, Any], time: datetime) -> bytes:
    """The entry recording an authenticated webhook event that can publish (see :func:`check_webhook_record`)."""
    body = {"schema": ENTRY_SCHEMA, "kind": WEBHOOK, "time": format_time(time), "webhook": check_webhook_record(record)}
    return canonical_json(body)


def containment_entry(record: Mapping[str, Any], time: datetime, model_digest: str | None = None) -> bytes:
    """The entry recording what was done about one revision a webhook named (see :func:`check_containment_record`).

    ``model_digest`` is the model the cited decision was about; required exactly when ``decision_index`` is set.
    """
    checked = check_containment_record(record)
    if (model_digest is None) != (checked["decision_index"] is None):
        raise EntryFormatError("a containment entry has a model_digest exactly when it cites a decision")
    body: dict[str, Any] = {"schema": ENTRY_SCHEMA, "kind": CONTAINMENT, "time": format_time(time),
                            "containment": checked}
    if model_digest is not None:
        body["model_digest"] = _model_digest(model_digest)
    return canonical_json(body)


def _record(record: Any, shape: Mapping[str, tuple[type | None, ...]], what: str) -> dict[str, Any]:
    """A JSON-only copy of ``record`` with exactly the keys of ``shape``, each of an accepted type, small enough."""
    if not isinstance(record, Mapping):
        raise EntryFormatError(f"{what} must be a JSON object, not {type(record).__name__}")
    plain = check_context(record)  # an object of string keys, at most MAX_CONTEXT_BYTES once encoded
    missing = sorted(set(shape) - set(plain))
    extra = sorted(set(plain) - set(shape))
    if missing:
        raise EntryFormatError(f"{what} has no {missing[0]!r}")
    if extra:
        raise EntryFormatError(f"{what} has unknown field {extra[0]!r}")
    for key, types in shape.items():
        value = plain[key]
        if value is None and None in types:
            continue
        if isinstance(value, bool) or not isinstance(value, tuple(t for t in types if t is not None)):
            allowed = " or ".join("null" if t is None else {str: "a string", int: "an integer", list: "a list",
                                                            dict: "an object"}[t] for t in types)
            raise EntryFormatError(f"{what}.{key} must be {allowed}")
        if isinstance(value, str) and not value:
            raise EntryFormatError(f"{what}.{key} must not be empty")
    return plain


def _strings(value: list[Any], where: str) -> None:
    if not all(isinstance(item, str) and item for item in value):
        raise EntryFormatError(f"{where} must be a list of non-empty strings")


def check_webhook_record(record: Any) -> dict[str, Any]:
    """A webhook record: ``integration`` (huggingface), the event's ``scope`` and ``action``, the ``repo`` and its
    ``repo_type``, ``refs`` (``[{"ref", "sha"}]`` the event moved), ``updated_config`` (what a config event changed)
    and ``hub_webhook_id`` (which Hub webhook sent it)."""
    plain = _record(record, _WEBHOOK_RECORD, "webhook")
    if plain["integration"] not in INTEGRATIONS:
        raise EntryFormatError(f"webhook.integration {plain['integration']!r} is not one of {', '.join(INTEGRATIONS)}")
    for n, ref in enumerate(plain["refs"]):
        if not isinstance(ref, dict) or set(ref) != {"ref", "sha"} or not all(
                isinstance(v, str) and v for v in ref.values()):
            raise EntryFormatError(f"webhook.refs[{n}] must be an object with exactly non-empty 'ref' and 'sha'")
    return plain


def check_containment_record(record: Any) -> dict[str, Any]:
    """A containment record: which revision (``repo``, ``ref``, ``commit``) was checked at which ``tier`` for the
    repository's ``state``; the ``outcome`` (one of :data:`OUTCOMES`); the decision entry it cites
    (``decision_index``) and the webhook entry it answers (``webhook_index``); the requirements ``missing``; the
    ``actions`` taken on the Hub, in order (whatever the outcome: containment narrows access before a revision is
    verified, or found to need no decision, and restores it after); the ``state_after`` a narrowing; the ``error``
    of a failure."""
    plain = _record(record, _CONTAINMENT_RECORD, "containment")
    if plain["integration"] not in INTEGRATIONS:
        raise EntryFormatError(f"containment.integration {plain['integration']!r} is not one of "
                               f"{', '.join(INTEGRATIONS)}")
    outcome = plain["outcome"]
    if outcome not in OUTCOMES:
        raise EntryFormatError(f"containment.outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    _strings(plain["missing"], "containment.missing")
    _strings(plain["actions"], "containment.actions")
    for key in ("decision_index", "webhook_index"):
        if plain[key] is not None and plain[key] < 0:
            raise EntryFormatError(f"containment.{key} must not be negative")
    decided = outcome in ("allowed", "contained", "denied")
    if decided and (plain["decision_index"] is None or plain["commit"] is None or plain["tier"] is None):
        raise EntryFormatError(f"a containment {outcome!r} names the commit, the tier and the decision it follows")
    if outcome == "skipped" and plain["decision_index"] is not None:
        raise EntryFormatError("a skipped containment cites no decision")
    if outcome == "contained" and plain["state_after"] is None:
        raise EntryFormatError("a containment 'contained' says what access was narrowed to (state_after)")
    if (outcome == "failed") != (plain["error"] is not None):
        raise EntryFormatError("a containment has an error exactly when its outcome is 'failed'")
    return plain


# --- reading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestationRecord:
    """An attestation entry, decoded: the attestation's exact bytes and the model it was accepted for."""

    model_digest: str
    time: datetime
    data: bytes
    digest: str


@dataclass(frozen=True)
class DecisionRecord:
    """A decision entry, decoded: the decision as ``Decision.to_dict()`` gave it, and the publish context."""

    model_digest: str
    time: datetime
    decision: dict[str, Any]
    context: dict[str, Any]


@dataclass(frozen=True)
class WebhookRecord:
    """A webhook entry, decoded: the event as :func:`check_webhook_record` describes it. It is about no model."""

    time: datetime
    webhook: dict[str, Any]
    model_digest: None = None


@dataclass(frozen=True)
class ContainmentRecord:
    """A containment entry, decoded; ``model_digest`` is that of the decision it cites, if any."""

    model_digest: str | None
    time: datetime
    containment: dict[str, Any]


ParsedEntry = AttestationRecord | DecisionRecord | WebhookRecord | ContainmentRecord


def _load(data: bytes) -> dict[str, Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EntryFormatError(f"an entry is bytes, not {type(data).__name__}")
    raw = bytes(data)
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise EntryFormatError(f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise EntryFormatError(f"not JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise EntryFormatError("not JSON the gate writes: nested too deeply") from None
    except ValueError as exc:  # an integer past Python's digit limit, a NaN: not what the gate writes
        raise EntryFormatError(f"not JSON the gate writes: {exc}") from None
    if not isinstance(value, dict):
        raise EntryFormatError(f"an entry is a JSON object, not {type(value).__name__}")
    if canonical_json(value) != raw:
        raise EntryFormatError("not canonical JSON (keys unsorted, extra whitespace, duplicate keys or escapes differ)")
    return value


def _no_constant(name: str) -> float:
    raise EntryFormatError(f"JSON constant {name} is not allowed")


def _text(body: Mapping[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise EntryFormatError(f"{where}{key} must be a non-empty string")
    return value


def _time(body: Mapping[str, Any], key: str) -> datetime:
    try:
        return parse_time(_text(body, key))
    except ValueError as exc:
        raise EntryFormatError(f"{key}: {exc}") from None


def _fields(body: Mapping[str, Any], expected: set[str], kind: str) -> None:
    missing = sorted(expected - set(body))
    extra = sorted(set(body) - expected)
    if missing:
        raise EntryFormatError(f"{kind} entry has no {missing[0]!r}")
    if extra:
        raise EntryFormatError(f"{kind} entry has unknown field {extra[0]!r}")


def entry_kind(data: bytes) -> str:
    """The ``kind`` of an entry, checking only that it is canonical JSON with a known kind (cheap, for indexing)."""
    body = _load(data)
    kind = body.get("kind")
    if kind not in KINDS:
        raise EntryFormatError(f"unknown entry kind {kind!r} (expected one of {', '.join(KINDS)})")
    return str(kind)


def parse_entry(data: bytes) -> ParsedEntry:
    """Decode and check an entry's structure; raises :class:`EntryFormatError` with the first problem found.

    This checks the *format* only. Whether an attestation still verifies, or a decision follows from its inputs, is
    the auditor's next step (:mod:`tiergate.audit`).
    """
    body = _load(data)
    if body.get("schema") != ENTRY_SCHEMA:
        raise EntryFormatError(f"schema must be {ENTRY_SCHEMA!r}, found {body.get('schema')!r}")
    kind = body.get("kind")
    if kind == WEBHOOK:
        _fields(body, _WEBHOOK_FIELDS, kind)
        return WebhookRecord(_time(body, "time"), check_webhook_record(body["webhook"]))
    if kind == CONTAINMENT:
        _fields(body, _CONTAINMENT_FIELDS | ({"model_digest"} if "model_digest" in body else set()), kind)
        record = check_containment_record(body["containment"])
        digest = _entry_model_digest(body) if "model_digest" in body else None
        if (digest is None) != (record["decision_index"] is None):
            raise EntryFormatError("a containment entry has a model_digest exactly when it cites a decision")
        return ContainmentRecord(digest, _time(body, "time"), record)
    model_digest = _entry_model_digest(body)
    if kind == ATTESTATION:
        _fields(body, _ATTESTATION_FIELDS, kind)
        return _attestation(body, model_digest)
    if kind == DECISION:
        _fields(body, _DECISION_FIELDS, kind)
        return _decision(body, model_digest)
    raise EntryFormatError(f"unknown entry kind {kind!r} (expected one of {', '.join(KINDS)})")


def _entry_model_digest(body: Mapping[str, Any]) -> str:
    try:
        model_digest = _model_digest(_text(body, "model_digest"))
    except InputError as exc:
        raise EntryFormatError(f"model_digest: {exc}") from None
    if model_digest != body["model_digest"]:
        raise EntryFormatError(f"model_digest {body['model_digest']!r} is not written as sha256:<lowercase hex>")
    return model_digest


def _attestation(body: Mapping[str, Any], model_digest: str) -> AttestationRecord:
    item = body["attestation"]
    if not isinstance(item, dict) or set(item) != {"data", "digest"}:
        raise EntryFormatError("attestation must be an object with exactly 'data' and 'digest'")
    encoded = _text(item, "data", "attestation.")
    try:
        data = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise EntryFormatError("attestation.data is not standard base64") from None
    if base64.b64encode(data).decode("ascii") != encoded:
        raise EntryFormatError("attestation.data is not canonical base64")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if item["digest"] != digest:
        raise EntryFormatError(f"attestation.digest {item['digest']!r} is not the SHA-256 of its data ({digest})")
    return AttestationRecord(model_digest, _time(body, "time"), data, digest)


def _decision(body: Mapping[str, Any], model_digest: str) -> DecisionRecord:
    record, context = body["decision"], body["context"]
    if not isinstance(record, dict):
        raise EntryFormatError("decision must be an object (Decision.to_dict())")
    if not isinstance(context, dict):
        raise EntryFormatError("context must be an object")
    if record.get("model_digest") != model_digest:
        raise EntryFormatError(f"the decision is about {record.get('model_digest')!r}, the entry about {model_digest}")
    if record.get("time") != body["time"]:
        raise EntryFormatError(f"the decision's time {record.get('time')!r} differs from the entry's {body['time']!r}")
    return DecisionRecord(model_digest, _time(body, "time"), record, context)

