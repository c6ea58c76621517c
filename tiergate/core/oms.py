"""Verifying OpenSSF Model Signing (OMS) signatures made with a key (``model_signing sign key``).

Such a signature is a Sigstore bundle (v0.3 JSON) around a DSSE envelope whose payload is an in-toto Statement v1:
``subject[0].digest.sha256`` is the SHA-256 of the concatenated raw resource digests (in listed order) and
``predicate.resources`` lists every file with its own digest. model-signing 1.1.1 signs the standard DSSE PAE of the
raw (pretty-printed) payload with ECDSA (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512) and stores the DER signature
base64-encoded; the bundle's ``publicKey.hint`` (SHA-256 of the PEM public key) is an unauthenticated hint.

The gate is stricter than model-signing 1.1.1 in one way that matters: a file on disk that the signature does not
list is a failure, even when it lies under a path the signature says it ignores (model-signing defect 4 lets an
``evil.pkl`` dropped into an ignored folder verify). The model on disk is the caller's :class:`Manifest`, computed
with the gate's default ignores (``.git`` and friends, and ``.attestations/`` where signatures are kept).

A single-file signature (model-signing run on one file: one resource named ``.``) verifies against a model
directory holding exactly that one file (the signature itself aside).

Not supported, each with an explicit "unsupported" reason: shard serialization, hashes other than SHA-256.
Certificate and Sigstore keyless signatures verify against the trust store's identities instead of a key: this
module verifies key signatures itself; a bundle signed with a certificate (model-signing's ``certificate`` and
``sigstore`` methods) is verified by :mod:`tiergate.core.identity`, and its statement then checked here
(:func:`verify_oms_statement`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NoReturn
from collections.abc import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tiergate.core.bundle import MAX_BUNDLE_BYTES, SigstoreBundle, is_oms_signature, parse_bundle
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope
from tiergate.core.files import StrictJSONError, parse_json
from tiergate.core.keys import PublicKey
from tiergate.core.manifest import FileDigest, Manifest, check_relative_path
from tiergate.errors import VerificationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: Written by model-signing 0.2 (one subject per file, no root digest); verify-only.
LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"

_HEX = frozenset("0123456789abcdef")
#: The resource name model-signing gives the only file of a single-file signature.
_SINGLE_FILE = "."


@dataclass(frozen=True)
class OmsSignature:
    """What a verified OMS signature says, after the model on disk was found to match it exactly.

    ``root_digest`` is the signed subject digest (hex): the SHA-256 over ``files`` in the signature's order, which
    for model-signing 1.1.1 is path-component order (see :func:`tiergate.core.manifest.model_signing_order`), so it can
    differ from the gate's own ``Manifest.root_digest``. ``files`` carry the sizes found on disk (the signature has
    none). For a legacy (v0.1) signature ``subject_name`` is empty and ``root_digest`` is computed, not signed.
    """

    key: PublicKey
    subject_name: str
    root_digest: str
    files: tuple[FileDigest, ...]
    ignore_paths: tuple[str, ...]
    hash_type: str


@dataclass(frozen=True)
class _Signed:
    """The model as the verified statement describes it, before comparison with the disk."""

    subject_name: str
    root_digest: str
    files: tuple[tuple[str, str], ...]  # (path, sha256 hex) in the signature's order
    ignore_paths: tuple[str, ...]


def _fail(reason: str) -> NoReturn:
    raise VerificationError(f"OMS signature: {reason}")


def _parse_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse JSON with the core's strict reader: two readers must never see two different documents."""
    try:
        parsed = parse_json(data)
    except StrictJSONError as exc:
        _fail(f"malformed JSON: the {what} {exc}")
    if not isinstance(parsed, dict):
        _fail(f"malformed {what}: expected a JSON object")
    return parsed


def _field(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind):
        names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
        expected = names.get(kind, kind.__name__)
        _fail(f"malformed {where}: '{name}' is missing or not {expected}")
    return value


def _hex_digest(value: Any, where: str) -> str:
    """Lower-case the hex: it is the raw bytes that are hashed and compared, and other signers may use upper case."""
    text = value.lower() if isinstance(value, str) else ""
    if len(text) != 64 or not set(text) <= _HEX:
        _fail(f"malformed {where}: not a hex SHA-256 digest: {value!r}")
    return text


# --- the bundle ------------------------------------------------------------------------------------------------


def is_oms_bundle(data: bytes) -> bool:
    """Whether ``data`` is a Sigstore bundle holding an OMS signature (not an attestation in a bundle): see
    :func:`tiergate.core.bundle.is_oms_signature`."""
    return is_oms_signature(data)


def _parse(data: bytes) -> SigstoreBundle:
    try:
        return parse_bundle(data)
    except VerificationError as exc:
        _fail(str(exc))


def _pem_hint(key: PublicKey) -> str:
    return hashlib.sha256(key.to_pem()).hexdigest()


def _pae_compat(payload: bytes) -> bytes:
    """The PAE model-signing 0.2 signed by mistake (``DSSEV1 ... b'<repr>'``); accepted for legacy payloads only."""
    return f"DSSEV1 {len(INTOTO_PAYLOAD_TYPE)} {INTOTO_PAYLOAD_TYPE} {len(payload)} {payload!r}".encode()


def signed_legacy(envelope: Envelope, key: PublicKey) -> bool:
    """Whether ``key`` signed model-signing 0.2's malformed PAE of the envelope (legacy statements only: the caller
    passes the result to :func:`verify_oms_statement` as ``compat_pae``, which refuses any other statement)."""
    if not isinstance(key.key, ec.EllipticCurvePublicKey):
        return False
    compat = _pae_compat(envelope.payload)
    for signature in envelope.signatures:
        try:
            # model-signing 0.2 hashed with SHA-256 whatever the curve (its certificate fixture signs with P-384).
            key.key.verify(signature.sig, compat, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def _verify_signature(envelope: Envelope, hint: str | None, keys: Sequence[PublicKey]) -> tuple[PublicKey, bool]:
    """The trusted key that signed the envelope, and whether it signed the 0.2 compat PAE instead of the real one."""
    if not keys:
        _fail("no trusted keys given to verify it with")
    verified = envelope.verified_keys(keys)
    if verified:
        hinted = [k for k in verified if _pem_hint(k) == hint]
        return (hinted or verified)[0], False
    for key in keys:
        if signed_legacy(envelope, key):
            return key, True
    named = [k for k in keys if _pem_hint(k) == hint]
    if named:
        _fail(
            f"bad signature: it names trusted key {named[0].key_id[:16]}, but the signature does not verify with it "
            "(the payload or the signature was altered)"
        )
    if hint:
        _fail(f"no trusted key: signed by a key with hint {hint[:16]}..., "
              f"which is none of the {len(keys)} trusted keys")
    _fail(f"no trusted key: the signature verifies with none of the {len(keys)} trusted keys")


# --- the statement ---------------------------------------------------------------------------------------------


def _resource_path(name: Any, where: str) -> str:
    if name == _SINGLE_FILE:
        _fail(f"malformed {where}: '.' names the file of a single-file signature, which lists nothing else")
    if not isinstance(name, str):
        _fail(f"malformed {where}: 'name' is missing or not a string")
    try:
        return check_relative_path(name)
    except ValueError as exc:
        _fail(f"malformed {where}: {exc}")


def _check_unique(files: Sequence[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for path, _ in files:
        if path in seen:
            _fail(f"malformed statement: {path!r} is listed twice")
        seen.add(path)


def _computed_root(files: Sequence[tuple[str, str]]) -> str:
    hasher = hashlib.sha256()
    for _, digest in files:
        hasher.update(bytes.fromhex(digest))
    return hasher.hexdigest()


def _parse_serialization(predicate: Mapping[str, Any]) -> tuple[str, ...]:
    """Check the serialization is one the gate can compare file by file; return its ignore paths."""
    serialization = _field(predicate, "serialization", dict, "predicate")
    method = serialization.get("method")
    if method != "files":
        _fail(
            f"unsupported serialization method {method!r}; the gate verifies per-file signatures "
            "(model-signing's default 'files'), re-sign without shards"
        )
    hash_type = serialization.get("hash_type")
    if hash_type != "sha256":
        _fail(f"unsupported hash_type {hash_type!r}; the gate verifies sha256 signatures only")
    ignores = serialization.get("ignore_paths", [])
    if not isinstance(ignores, list) or not all(isinstance(i, str) for i in ignores):
        _fail("malformed serialization: 'ignore_paths' must be a list of strings")
    return tuple(ignores)


def _parse_v1(statement: Mapping[str, Any]) -> _Signed:
    subjects = _field(statement, "subject", list, "statement")
    if len(subjects) != 1 or not isinstance(subjects[0], dict):
        _fail(f"malformed statement: expected exactly one subject, got {len(subjects)}")
    subject = subjects[0]
    name = _field(subject, "name", str, "subject")
    stated = _hex_digest(_field(subject, "digest", dict, "subject").get("sha256"), "subject digest")
    predicate = _field(statement, "predicate", dict, "statement")
    ignores = _parse_serialization(predicate)
    files = []
    resources = _field(predicate, "resources", list, "predicate")
    if not resources:
        _fail("malformed predicate: 'resources' is empty; OMS v1.0 §5.2.1 requires at least one file")
    for index, resource in enumerate(resources):
        where = f"resources[{index}]"
        if not isinstance(resource, dict):
            _fail(f"malformed {where}: expected an object")
        single = resource.get("name") == _SINGLE_FILE and len(resources) == 1
        path = _SINGLE_FILE if single else _resource_path(resource.get("name"), where)
        if resource.get("algorithm") != "sha256":
            _fail(f"unsupported: {where} ({path}) uses algorithm {resource.get('algorithm')!r}, not sha256")
        files.append((path, _hex_digest(resource.get("digest"), where)))
    _check_unique(files)
    computed = _computed_root(files)
    if computed != stated:
        _fail(
            f"inconsistent statement: subject digest {stated[:16]}... is not the SHA-256 of the listed resource "
            f"digests ({computed[:16]}...)"
        )
    return _Signed(name, stated, tuple(files), ignores)


def _parse_legacy(statement: Mapping[str, Any]) -> _Signed:
    files = []
    for index, subject in enumerate(_field(statement, "subject", list, "statement")):
        where = f"subject[{index}]"
        if not isinstance(subject, dict):
            _fail(f"malformed {where}: expected an object")
        path = _resource_path(subject.get("name"), where)
        annotations = subject.get("annotations") or {}
        algorithm = annotations.get("actual_hash_algorithm", "file-sha256") if isinstance(annotations, dict) else None
        if algorithm != "file-sha256":
            _fail(f"unsupported: {where} ({path}) was hashed as {algorithm!r}, the gate verifies file-sha256 only")
        digest = subject.get("digest")
        files.append((path, _hex_digest(digest.get("sha256") if isinstance(digest, dict) else None, where)))
    _check_unique(files)
    return _Signed("", _computed_root(files), tuple(files), ())


def _parse_statement(payload: bytes, compat_pae: bool) -> _Signed:
    statement = _parse_object(payload, "signed payload")
    if statement.get("_type") != STATEMENT_TYPE:
        _fail(f"statement _type is {statement.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    predicate_type = statement.get("predicateType")
    if compat_pae and predicate_type != LEGACY_PREDICATE_TYPE:
        # Only model-signing 0.2 signed the buggy PAE, and it only wrote legacy statements.
        _fail("bad signature: it verifies only over model-signing 0.2's malformed PAE, which is accepted for "
              f"{LEGACY_PREDICATE_TYPE} statements only")
    if predicate_type == PREDICATE_TYPE:
        return _parse_v1(statement)
    if predicate_type == LEGACY_PREDICATE_TYPE:
        return _parse_legacy(statement)
    _fail(f"unsupported predicateType {predicate_type!r}; expected {PREDICATE_TYPE!r}")


# --- comparing with the disk -----------------------------------------------------------------------------------


def _under(path: str, prefixes: Iterable[str]) -> str | None:
    for prefix in prefixes:
        clean = prefix.rstrip("/")
        if path == clean or path.startswith(clean + "/"):
            return prefix
    return None


def _differences(signed: _Signed, manifest: Manifest, own_sha256: str) -> list[str]:
    """Every way the model on disk differs from the signature, most serious first, each one line.

    A file on disk whose bytes are the bundle being verified (``own_sha256``) is the signature itself, which OMS
    v1.0 §6.2 excludes at verify time wherever it lies (model-signing writes ``model.sig`` at the model root).
    """
    on_disk = {path: f for path, f in manifest.by_path().items() if f.sha256 != own_sha256}
    listed = dict(signed.files)
    changed, unlisted, missing, gate_ignored = [], [], [], []
    for path, digest in signed.files:
        ignore = _under(path, manifest.ignore_paths)
        if ignore is not None:
            gate_ignored.append(
                f"signed file {path} lies under '{ignore}', which the gate leaves out of the model identity; "
                "re-sign without it"
            )
        elif path not in on_disk:
            missing.append(f"file missing: {path} is signed but not in the model directory")
        elif on_disk[path].sha256 != digest:
            changed.append(
                f"file changed: {path} has sha256 {on_disk[path].sha256[:16]}... on disk, the signature says "
                f"{digest[:16]}..."
            )
    for path in on_disk:
        if path not in listed:
            unlisted.append(_unlisted(path, signed.ignore_paths))
    return changed + unlisted + missing + gate_ignored


def _unlisted(path: str, signed_ignores: Sequence[str]) -> str:
    ignore = _under(path, signed_ignores)
    reason = f"unlisted file: {path} is in the model but not in the signature"
    if ignore is None:
        return reason
    return f"{reason} (the signature ignores '{ignore}', but every published file must be signed)"


def _single_file(signed: _Signed, manifest: Manifest, own_sha256: str) -> _Signed:
    """A single-file signature ('.') as a signature of the one file in the model directory; others unchanged."""
    if [path for path, _ in signed.files] != [_SINGLE_FILE]:
        return signed
    found = [f.path for f in manifest.files if f.sha256 != own_sha256]
    if len(found) != 1:
        _fail(f"the signature is for a single file ('.'), but the model directory holds {len(found)} files; "
              "verify that file alone in a directory of its own, or re-sign the directory")
    return _Signed(signed.subject_name, signed.root_digest, ((found[0], signed.files[0][1]),), signed.ignore_paths)


def _check_model(signed: _Signed, manifest: Manifest, own_sha256: str) -> None:
    problems = _differences(signed, manifest, own_sha256)
    if problems:
        more = (f" (and {len(problems) - 1} more difference{'s' if len(problems) > 2 else ''})"
                if len(problems) > 1 else "")
        _fail(problems[0] + more)


# --- the entry point -------------------------------------------------------------------------------------------


def verify_oms_bundle(data: bytes, manifest: Manifest, keys: Iterable[PublicKey]) -> OmsSignature:
    """Verify an OMS key signature and that the model on disk (``manifest``) is exactly the signed model.

    Order: size, strict parse, DSSE signature by one of ``keys`` (the bundle's key hint only names a key), the
    statement (in-toto v1, OMS predicate, sha256 file serialization, subject digest consistent with the resources),
    then the files: every signed file present with the signed digest and every file on disk signed (except the
    signature itself, found by its bytes: OMS v1.0 §6.2).
    Raises :class:`VerificationError` with a one-line reason on any failure. Certificate and Sigstore keyless
    signatures are verified by :mod:`tiergate.core.identity`, then checked with :func:`verify_oms_statement`.
    """
    bundle = _parse(data)
    if bundle.certificates:
        _fail("signed with a certificate: verify it against the trust store's x509 or sigstore identities")
    key, compat = _verify_signature(bundle.envelope, bundle.key_hint, list(keys))
    return verify_oms_statement(bundle.envelope.payload, manifest, key, compat, hashlib.sha256(data).hexdigest())


def verify_oms_statement(
    payload: bytes, manifest: Manifest, key: PublicKey, compat_pae: bool = False, own_sha256: str = ""
) -> OmsSignature:
    """Check an OMS statement whose signature by ``key`` was already verified against the model on disk.

    ``own_sha256`` is the SHA-256 of the bundle the statement came from: a file with those bytes is the signature
    itself, left out of the comparison (OMS v1.0 §6.2).
    Raises :class:`VerificationError` with a one-line reason when the statement is malformed or unsupported, or the
    files differ from the signed ones.
    """
    signed = _single_file(_parse_statement(payload, compat_pae), manifest, own_sha256)
    _check_model(signed, manifest, own_sha256)
    on_disk = manifest.by_path()
    return OmsSignature(
        key=key,
        subject_name=signed.subject_name,
        root_digest=signed.root_digest,
        files=tuple(FileDigest(path, on_disk[path].size, digest) for path, digest in signed.files),
        ignore_paths=signed.ignore_paths,
        hash_type="sha256",
    )


__all__ = [
    "LEGACY_PREDICATE_TYPE",
    "MAX_BUNDLE_BYTES",
    "PREDICATE_TYPE",
    "OmsSignature",
    "is_oms_bundle",
    "verify_oms_bundle",
]
