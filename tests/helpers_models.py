"""Helpers for tests of model identity and OMS signatures: model folders, EC keys, the real model-signing package.

model-signing is imported lazily: it takes half a second to import and needs pyOpenSSL (its defect 1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def make_model(root: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` (POSIX relative path -> content) under ``root`` and return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_ec_keypair(directory: Path, name: str = "signer", curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    """An EC key pair as model-signing wants it: PKCS#8 PEM private key and SubjectPublicKeyInfo PEM public key."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private_path, public_path = directory / f"{name}.pem", directory / f"{name}.pub"
    private_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def ms_manifest(model: Path, **file_serialization: object):  # -> model_signing.manifest.Manifest
    from model_signing import hashing

    return hashing.Config().use_file_serialization(**file_serialization).hash(model)  # type: ignore[arg-type]


def ms_root_digest(model: Path, **file_serialization: object) -> str:
    """model-signing's subject digest: SHA-256 over its resource digests, in its (path-component) order.

    Its Manifest has no root-digest property; this is exactly what ``signing.Payload`` computes for the subject.
    """
    hasher = hashlib.sha256()
    for descriptor in ms_manifest(model, **file_serialization).resource_descriptors():
        hasher.update(descriptor.digest.digest_value)
    return hasher.hexdigest()


def ms_sign(
    model: Path,
    signature: Path,
    private_key: Path,
    ignore_paths: Iterable[str] = (),
    hashing_config: object | None = None,
) -> bytes:
    """Sign with model-signing's Python API, as ``model_signing sign key`` does; return the bundle bytes.

    ``ignore_paths`` are relative to the model and are written into the signature; ``hashing_config`` (a
    ``model_signing.hashing.Config``) replaces the default file/sha256 serialization.
    """
    from model_signing import hashing, signing

    config = signing.Config().use_elliptic_key_signer(private_key=private_key)
    if hashing_config is not None or ignore_paths:
        hashing_cfg = hashing_config if hashing_config is not None else hashing.Config()
        if ignore_paths:
            hashing_cfg.set_ignored_paths(paths=list(ignore_paths))  # type: ignore[attr-defined]
        config.set_hashing_config(hashing_cfg)  # type: ignore[arg-type]
    config.sign(model, signature)
    return signature.read_bytes()


def ms_verify(model: Path, signature: Path, public_key: Path) -> None:
    """Verify with model-signing itself (raises ValueError on failure)."""
    from model_signing import verifying

    verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(model, signature)
