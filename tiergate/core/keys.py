"""Signing keys: Ed25519 and ECDSA P-256 (SHA-256), PEM on disk, key id = hex SHA-256 of the DER SubjectPublicKeyInfo.

ECDSA signatures are DER-encoded, as securesystemslib, sigstore and model-signing write them; a fixed-size ``r || s``
signature (the DSSE reference implementation's) is read too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tiergate.errors import ConfigError, UsageError

Algorithm = Literal["ed25519", "ecdsa-p256"]
ALGORITHMS: tuple[str, ...] = ("ed25519", "ecdsa-p256")
MAX_KEY_FILE = 64 * 1024

_Public = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
_Private = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _algorithm_of(key: _Public) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ecdsa-{key.curve.name}"
    return type(key).__name__


@dataclass(frozen=True)
class PublicKey:
    """A verification key."""

    key: _Public

    @property
    def algorithm(self) -> str:
        return _algorithm_of(self.key)

    @cached_property
    def key_id(self) -> str:  # asked for at every owner lookup of every verification: computed once per key
        return key_id(self.key)

    def to_pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` is valid over ``data``; never raises for a bad signature."""
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, data)
                return True
            algorithm = ec.ECDSA(_hash_for_curve(self.key.curve))
            try:
                self.key.verify(signature, data, algorithm)
            except InvalidSignature:
                p1363 = _der_of_p1363(signature, self.key.curve)
                if p1363 is None:
                    raise
                self.key.verify(p1363, data, algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_pem(cls, data: bytes, source: str = "public key") -> PublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm, TypeError):
            raise ConfigError(f"{source}: not a PEM public key (expected -----BEGIN PUBLIC KEY-----)") from None
        if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
            raise ConfigError(f"{source}: {type(key).__name__} keys are not supported; use Ed25519 or ECDSA P-256")
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PublicKey:
        return cls.from_pem(_read_key_file(path), str(path))


class SigningKey(Protocol):
    """What signs a DSSE envelope: a :class:`PrivateKey` from a PEM file, or a key held elsewhere (a PKCS#11 token,
    a cloud KMS) behind an adapter. ``key_id`` is the id of its public key (:func:`key_id`), which verification
    matches against the trust store; ``sign`` returns the signature over ``data`` as verification expects it
    (Ed25519 raw, ECDSA DER)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class PrivateKey:
    """A signing key."""

    key: _Private

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(_hash_for_curve(self.key.curve)))

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    @classmethod
    def generate(cls, algorithm: str = "ed25519") -> PrivateKey:
        if algorithm == "ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if algorithm == "ecdsa-p256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise UsageError(f"unknown key algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")

    @classmethod
    def load(cls, path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKey:
        data = _read_key_file(path)
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError:
            if passphrase is None:
                raise ConfigError(f"{path}: the key is encrypted; "
                                  "give its passphrase with --passphrase-env VAR") from None
            raise ConfigError(f"{path}: the key is not encrypted, but a passphrase was given") from None
        except (ValueError, UnsupportedAlgorithm):
            hint = " or the passphrase is wrong" if passphrase else ""
            raise ConfigError(f"{path}: not a PEM private key{hint}") from None
        if not isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
            raise ConfigError(f"{path}: {type(key).__name__} keys are not supported; use Ed25519 or ECDSA P-256")
        return cls(key)


def _hash_for_curve(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    # The usual pairing (RFC 5656, model-signing): P-256/SHA-256, P-384/SHA-384, P-521/SHA-512.
    return {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(curve.name, hashes.SHA256())


def _der_of_p1363(signature: bytes, curve: ec.EllipticCurve) -> bytes | None:
    """A fixed-size ``r || s`` ECDSA signature (IEEE P1363, what the DSSE reference implementation writes) in DER,
    or None when ``signature`` is not that size. Either encoding proves the same key signed the same bytes."""
    size = (curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return None
    return encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))


def key_id(key: _Public) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _read_key_file(path: str | os.PathLike[str]) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_KEY_FILE:
            raise ConfigError(f"{p}: {p.stat().st_size} bytes is too large for a key file")
        return p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: key file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a key file") from None
    except PermissionError:
        raise ConfigError(f"{p}: permission denied reading the key file") from None


def write_keypair(key: PrivateKey, stem: str | os.PathLike[str], passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Write ``STEM.key`` (mode 0600, created exclusively) and ``STEM.pub``; refuse to overwrite."""
    private_path, public_path = Path(f"{stem}.key"), Path(f"{stem}.pub")
    for existing in (private_path, public_path):
        if existing.exists():
            raise UsageError(f"{existing} already exists; choose another name or remove it first")
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot create {private_path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem(passphrase))
    public_path.write_bytes(key.public.to_pem())
    return private_path, public_path
