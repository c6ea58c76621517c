"""Sigstore bundles (v0.3 JSON) around a DSSE envelope: strict structure, and what the envelope is.

Every method of model-signing writes one (key, certificate, Sigstore keyless), and so do Sigstore clients that sign
an in-toto attestation (``cosign attest``, sigstore-python ``sign --dsse``). This module reads the structure only
(media type, envelope, the key hint or the certificates); who signed is decided against the trust store's
identities (:mod:`tiergate.core.identity`), and what the payload means by the caller.

What a bundle *is* is decided by its content, never by its file name: an in-toto statement whose predicateType is
one of model-signing's is an OMS signature (:func:`is_oms_signature`); any other statement is an attestation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from cryptography import x509

from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope
from tiergate.core.files import StrictJSONError, parse_json
from tiergate.core.keys import PublicKey
from tiergate.errors import ConfigError, VerificationError

#: Bundles larger than this are refused before parsing. A signature listing 100 000 files is about 20 MB.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
BUNDLE_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"
#: The bundle media types model-signing writes (the first) and the equivalent v0.3 spelling.
SUPPORTED_BUNDLE_MEDIA_TYPES: tuple[str, ...] = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)
#: The predicate types model-signing writes: v1.0, and model-signing 0.2's (verify-only).
OMS_PREDICATE_TYPES: tuple[str, ...] = ("https://model_signing/signature/v1.0", "https://model_signing/Digests/v0.1")
#: Certificates a bundle may carry at most (leaf and intermediates; a real chain has two or three).
MAX_CERTIFICATES = 10

_SNIFF_BYTES = 64 * 1024
_SNIFF = re.compile(rb'^\s*\{.*?"mediaType"\s*:\s*"application/vnd\.dev\.sigstore\.bundle', re.DOTALL)
_PREDICATE_TYPE = re.compile(rb'"predicateType"\s*:\s*"([^"]{1,512})"')


@dataclass(frozen=True)
class SigstoreBundle:
    """A parsed bundle. ``certificates`` is empty for a key signature (then ``key_hint`` may name the key: the hex
    SHA-256 of its PEM, unauthenticated); otherwise the leaf comes first, then any intermediates the signer sent."""

    data: Mapping[str, Any]
    envelope: Envelope
    key_hint: str | None
    certificates: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.certificates[0] if self.certificates else None


def is_bundle(data: bytes) -> bool:
    """Cheap sniff: is this a JSON object whose ``mediaType`` is a Sigstore bundle?

    Only the first 64 KiB are looked at (Sigstore writers put ``mediaType`` first), so that routing a file costs
    nothing; a truncated or broken bundle still sniffs as one and then fails :func:`parse_bundle` with a reason.
    """
    return bool(_SNIFF.match(bytes(data[:_SNIFF_BYTES])))


def is_oms_signature(data: bytes) -> bool:
    """Whether ``data`` is a bundle holding an OMS (model-signing) signature rather than an attestation.

    Decided by the signed statement's predicateType. A bundle that cannot be read counts as an OMS signature when it
    says nothing else (model-signing is what writes most bundles), so it fails with the OMS verifier's reason."""
    if not is_bundle(data):
        return False
    try:
        envelope = parse_bundle(data).envelope
    except VerificationError:
        found = _PREDICATE_TYPE.search(bytes(data[:_SNIFF_BYTES]))
        return found is None or found.group(1).decode("utf-8", "replace") in OMS_PREDICATE_TYPES
    return predicate_type(envelope) in OMS_PREDICATE_TYPES or envelope.payload_type != INTOTO_PAYLOAD_TYPE


def predicate_type(envelope: Envelope) -> str | None:
    """The predicateType of the in-toto statement an envelope carries, or None when it carries none."""
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        return None
    try:
        statement = parse_json(envelope.payload)
    except StrictJSONError:
        return None
    value = statement.get("predicateType") if isinstance(statement, dict) else None
    return value if isinstance(value, str) else None


_EXPECTED: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def _field(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind):
        expected = _EXPECTED.get(kind, kind.__name__)
        raise VerificationError(f"malformed {where}: '{name}' is missing or not {expected}")
    return value


def _certificate(raw: Any, where: str) -> x509.Certificate:
    if not isinstance(raw, dict) or not isinstance(raw.get("rawBytes"), str):
        raise VerificationError(f"malformed {where}: expected an object with base64 'rawBytes'")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(raw["rawBytes"], validate=True))
    except (binascii.Error, ValueError):
        raise VerificationError(f"malformed {where}: not a DER X.509 certificate") from None


def _certificates(material: Mapping[str, Any]) -> tuple[x509.Certificate, ...]:
    """The certificates of ``verificationMaterial``: ``certificate`` (Sigstore keyless, v0.3) or
    ``x509CertificateChain`` (model-signing's certificate method, and older keyless bundles), leaf first."""
    if "certificate" in material:
        return (_certificate(material["certificate"], "verificationMaterial.certificate"),)
    chain = _field(_field(material, "x509CertificateChain", dict, "verificationMaterial"), "certificates", list,
                   "x509CertificateChain")
    if not chain:
        raise VerificationError("malformed x509CertificateChain: no certificates")
    if len(chain) > MAX_CERTIFICATES:
        raise VerificationError(f"malformed x509CertificateChain: {len(chain)} certificates, "
                                f"more than {MAX_CERTIFICATES}")
    return tuple(_certificate(c, f"x509CertificateChain.certificates[{i}]") for i, c in enumerate(chain))


def _key_hint(material: Mapping[str, Any]) -> str | None:
    """The signer's key as the bundle names it: hex SHA-256 of its PEM (v1.x) or of the PEM it embeds (v0.3)."""
    public_key = material.get("publicKey")
    if not isinstance(public_key, dict):
        return None
    hint = public_key.get("hint")
    if isinstance(hint, str) and hint:
        return hint.lower()
    raw = public_key.get("rawBytes")
    if isinstance(raw, str):
        try:
            pem = PublicKey.from_pem(base64.b64decode(raw, validate=True), "bundle public key").to_pem()
        except (ConfigError, binascii.Error, ValueError):
            return None
        return hashlib.sha256(pem).hexdigest()
    return None


def parse_bundle(data: bytes) -> SigstoreBundle:
    """Parse a Sigstore bundle v0.3 holding a DSSE envelope (signatures are not checked here).

    Raises VerificationError (the message without a prefix; callers say what they were reading) when it is too
    large, not strict JSON, of another media type, or holds no DSSE envelope or malformed certificates."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise VerificationError(f"bundle is {len(data)} bytes, over the {MAX_BUNDLE_BYTES}-byte limit")
    try:
        bundle = parse_json(bytes(data))
    except StrictJSONError as exc:
        raise VerificationError(f"malformed JSON: the bundle {exc}") from None
    if not isinstance(bundle, dict):
        raise VerificationError("malformed bundle: expected a JSON object")
    media_type = bundle.get("mediaType")
    if not isinstance(media_type, str) or not media_type.startswith(BUNDLE_MEDIA_TYPE_PREFIX):
        raise VerificationError(f"not a Sigstore bundle (mediaType {media_type!r})")
    if media_type not in SUPPORTED_BUNDLE_MEDIA_TYPES:
        raise VerificationError(
            f"unsupported bundle media type {media_type!r}; model-signing writes {SUPPORTED_BUNDLE_MEDIA_TYPES[0]}")
    material = _field(bundle, "verificationMaterial", dict, "bundle")
    if "dsseEnvelope" not in bundle:
        kind = "a message signature" if "messageSignature" in bundle else "no DSSE envelope"
        raise VerificationError(f"unsupported: the bundle holds {kind}; OMS signatures and attestations are DSSE "
                                "envelopes")
    raw = dict(_field(bundle, "dsseEnvelope", dict, "bundle"))
    signatures = raw.get("signatures")
    if isinstance(signatures, list):
        # model-signing 0.x wrote "keyid": null, Sigstore clients often omit it; the keyid is only a hint either way.
        raw["signatures"] = [{**s, "keyid": s.get("keyid") or ""} if isinstance(s, dict) else s for s in signatures]
    envelope = Envelope.from_dict(raw)
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(f"wrong payloadType {envelope.payload_type!r}, expected {INTOTO_PAYLOAD_TYPE!r}")
    has_certificates = "certificate" in material or "x509CertificateChain" in material
    certificates = _certificates(material) if has_certificates else ()
    return SigstoreBundle(bundle, envelope, None if has_certificates else _key_hint(material), certificates)
