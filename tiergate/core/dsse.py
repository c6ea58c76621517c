"""DSSE envelopes (https://github.com/secure-systems-lab/dsse): PAE signing and threshold-free verification.

Parsing is strict: a malformed envelope gets one specific reason. Verification reports, per signature, which trusted
key (if any) made it; deciding what those signers are worth is the caller's job (:mod:`tiergate.core.verify`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Mapping

from tiergate.core.files import StrictJSONError, parse_json
from tiergate.core.keys import PublicKey, SigningKey
from tiergate.errors import VerificationError

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Envelopes larger than this are refused before parsing (an evaluation statement pinning a manifest of
#: tens of thousands of files stays well below it).
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
#: Signatures on one envelope at most: each is tried against trusted keys, so an envelope of thousands would make
#: one file cost seconds of the gate's time (co-signing needs a handful).
MAX_SIGNATURES = 32


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"malformed envelope: {what} is not a base64 string")
    text = value.strip()
    try:
        # DSSE allows standard or URL-safe base64, padded or not.
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise VerificationError(f"malformed envelope: {what} is not valid base64") from None


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode("ascii")}


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [s.to_dict() for s in self.signatures],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode("utf-8") + b"\n"

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        if not isinstance(data, Mapping):
            raise VerificationError("malformed envelope: expected a JSON object with payload, payloadType, signatures")
        for name in ("payload", "payloadType", "signatures"):
            if name not in data:
                raise VerificationError(f"malformed envelope: missing '{name}'")
        payload_type = data["payloadType"]
        if not isinstance(payload_type, str):
            raise VerificationError("malformed envelope: payloadType is not a string")
        raw_sigs = data["signatures"]
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise VerificationError("malformed envelope: 'signatures' must be a non-empty list")
        if len(raw_sigs) > MAX_SIGNATURES:
            raise VerificationError(f"malformed envelope: {len(raw_sigs)} signatures, "
                                    f"more than the {MAX_SIGNATURES} read")
        signatures = []
        for index, raw in enumerate(raw_sigs):
            if not isinstance(raw, Mapping) or "sig" not in raw:
                raise VerificationError(f"malformed envelope: signatures[{index}] has no 'sig'")
            keyid = raw.get("keyid", "")
            if not isinstance(keyid, str):
                raise VerificationError(f"malformed envelope: signatures[{index}].keyid is not a string")
            signatures.append(Signature(keyid=keyid, sig=_b64decode(raw["sig"], f"signatures[{index}].sig")))
        return cls(_b64decode(data["payload"], "payload"), payload_type, tuple(signatures))

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        if len(data) > MAX_ENVELOPE_BYTES:
            raise VerificationError(f"envelope is {len(data)} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit")
        try:
            parsed = parse_json(data)
        except StrictJSONError as exc:
            raise VerificationError(f"malformed JSON: the envelope {exc}") from None
        return cls.from_dict(parsed)

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def add_signature(self, key: SigningKey) -> Envelope:
        signature = Signature(keyid=key.key_id, sig=key.sign(self.pae()))
        return Envelope(self.payload, self.payload_type, self.signatures + (signature,))

    def signed_by(self, key: PublicKey) -> bool:
        """Whether one of the envelope's signatures is ``key``'s over its PAE."""
        message = self.pae()
        return any(key.verify(signature.sig, message) for signature in self.signatures)

    def verified_keys(self, keys: Iterable[PublicKey]) -> list[PublicKey]:
        """The distinct keys among ``keys`` that made a valid signature on this envelope.

        The ``keyid`` hint is unauthenticated: it only orders the search, every key is tried on a mismatch.
        """
        message = self.pae()
        candidates = {k.key_id: k for k in keys}
        found: dict[str, PublicKey] = {}
        for signature in self.signatures:
            hinted = candidates.get(signature.keyid)
            ordered = ([hinted] if hinted else []) + [k for k in candidates.values() if k is not hinted]
            for key in ordered:
                if key.key_id not in found and key.verify(signature.sig, message):
                    found[key.key_id] = key
                    break
        return list(found.values())


def sign(payload: bytes, payload_type: str, keys: Iterable[SigningKey]) -> Envelope:
    envelope = Envelope(payload, payload_type, ())
    for key in keys:
        envelope = envelope.add_signature(key)
    if not envelope.signatures:
        raise ValueError("an envelope needs at least one signing key")
    return envelope
