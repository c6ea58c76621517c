"""Request bodies: parsed into typed values, or refused with a 400 that says what is wrong.

Attestations travel either as base64 of their exact bytes (recommended: the digest the gate computes and logs is then
the SHA-256 of the file the evaluator signed) or as a DSSE envelope JSON object, which is stored in its canonical
JSON form (sorted keys, compact separators).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from tiergate.core.answer import nonce_problem
from tiergate.core.files import StrictJSONError, parse_json
from tiergate.core.log.entries import EntryFormatError, canonical_json, check_context
from tiergate.core.manifest import Manifest, parse_digest
from tiergate.errors import InputError
from tiergate.service.responses import bad_request

#: Attestations sent along with one decision request, at most.
MAX_ATTESTATIONS = 256
#: Arrays and objects nested in a request body at most (a manifest or an envelope needs a handful).
MAX_DEPTH = 64
#: Context keys the service writes itself; a caller setting them could pass its decision off as another's (who asked
#: for it; which webhook event it answers), so a request that does is refused.
RESERVED_CONTEXT_KEYS = ("requested_by", "webhook_entry")


@dataclass(frozen=True)
class AttestationSubmission:
    """``POST /v1/attestations``: the attestation's bytes and, if the caller said, the model (hex digest)."""

    data: bytes
    model: str | None


@dataclass(frozen=True)
class DecisionRequest:
    """``POST /v1/decisions``: a tier or a target, the model (manifest or hex digest), attestations, context, nonce."""

    tier: str | None
    target: str | None
    model: Manifest | str
    attestations: tuple[bytes, ...]
    context: dict[str, Any]
    #: The client's nonce, signed back in the answer (:mod:`tiergate.core.answer`); None: the client sent none.
    nonce: str | None = None


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, read strictly (:func:`~tiergate.core.files.parse_json`): a duplicate key, a lone
    surrogate or NaN is as much a 400 as broken JSON, since two readers of the body (this service, a proxy, the log's
    auditor) could read it differently."""
    try:
        value = parse_json(body, max_depth=MAX_DEPTH)
    except StrictJSONError as exc:
        text = str(exc)
        if text.startswith("nests more than"):
            raise bad_request(f"request body is nested too deeply (at most {MAX_DEPTH} levels)") from None
        if text.startswith("is not valid JSON"):
            raise bad_request(f"request body is not JSON: {text.removeprefix('is not valid JSON: ')}") from None
        raise bad_request(f"request body {text}") from None
    if not isinstance(value, dict):
        raise bad_request(f"request body must be a JSON object, not {type(value).__name__}")
    return value


def _fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} (expected {', '.join(sorted(allowed))})")


def model_digest(value: Any, where: str = "model") -> str:
    """A ``sha256:<hex>`` or bare hex digest as hex, or a 400."""
    if not isinstance(value, str):
        raise bad_request(f"{where} must be a digest string like sha256:<64 hex digits>")
    try:
        return parse_digest(value)
    except InputError as exc:
        raise bad_request(f"{where}: {exc}") from None


def attestation_bytes(value: Any, where: str) -> bytes:
    """One attestation as sent: base64 of its bytes, or an envelope object (stored canonically)."""
    if isinstance(value, str):
        try:
            data = base64.b64decode(value.strip().encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise bad_request(f"{where} is not standard base64 "
                              "(send the attestation file's bytes, base64-encoded)") from None
        if not data:
            raise bad_request(f"{where} is empty")
        return data
    if isinstance(value, dict):
        try:
            return canonical_json(value)
        except EntryFormatError as exc:
            raise bad_request(f"{where}: {exc}") from None
    raise bad_request(f"{where} must be base64 text or a DSSE envelope object")


def parse_submission(body: bytes) -> AttestationSubmission:
    """Either ``{"attestation": ..., "model": ...}`` or a bare DSSE envelope (then its exact bytes are stored)."""
    data = _json_object(body)
    if "attestation" not in data and {"payload", "payloadType", "signatures"} <= set(data):
        return AttestationSubmission(body, None)
    _fields(data, {"attestation", "model"})
    if "attestation" not in data:
        raise bad_request("missing 'attestation' (base64 of the attestation file, or the DSSE envelope itself)")
    model = model_digest(data["model"]) if data.get("model") is not None else None
    return AttestationSubmission(attestation_bytes(data["attestation"], "attestation"), model)


def _model(value: Any) -> Manifest | str:
    if not isinstance(value, dict) or len(value) != 1 or not ({"digest", "manifest"} & set(value)):
        raise bad_request("model must be {\"digest\": \"sha256:...\"} or {\"manifest\": <manifest object>}")
    if "digest" in value:
        return model_digest(value["digest"], "model.digest")
    try:
        return Manifest.from_dict(value["manifest"])
    except (ValueError, TypeError, KeyError) as exc:
        raise bad_request(f"model.manifest: {exc}") from None


def parse_decision_request(body: bytes) -> DecisionRequest:
    data = _json_object(body)
    _fields(data, {"tier", "target", "model", "attestations", "context", "nonce"})
    nonce = data.get("nonce")
    if nonce is not None and nonce_problem(nonce):
        raise bad_request(f"nonce {nonce_problem(nonce)} (a fresh random value per request, e.g. 32 random bytes "
                          "in URL-safe base64)")
    tier, target = data.get("tier"), data.get("target")
    if (tier is None) == (target is None):
        raise bad_request("give exactly one of 'tier' (e.g. \"hosted\") and 'target' (e.g. \"huggingface:public\")")
    for name, value in (("tier", tier), ("target", target)):
        if value is not None and (not isinstance(value, str) or not value):
            raise bad_request(f"{name} must be a non-empty string")
    if "model" not in data:
        raise bad_request("missing 'model'")
    raw = data.get("attestations") or []
    if not isinstance(raw, list):
        raise bad_request("attestations must be a list")
    if len(raw) > MAX_ATTESTATIONS:
        raise bad_request(f"{len(raw)} attestations sent; at most {MAX_ATTESTATIONS} per request")
    attestations = tuple(attestation_bytes(item, f"attestations[{i}]") for i, item in enumerate(raw))
    try:
        context = check_context({} if data.get("context") is None else data["context"])
    except EntryFormatError as exc:
        raise bad_request(str(exc)) from None
    reserved = sorted(set(RESERVED_CONTEXT_KEYS) & set(context))
    if reserved:
        raise bad_request(f"context key {reserved[0]!r} is set by the service, not the caller "
                          f"(reserved: {', '.join(RESERVED_CONTEXT_KEYS)})")
    return DecisionRequest(tier, target, _model(data["model"]), attestations, context, nonce)
