"""A private CA made with ``cryptography`` for tests of X.509 identities: root -> intermediate -> leaf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support import NOW

SIGNER = "signer@evalco.example"
CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
#: The hash each curve signs with (as keys.py and model-signing use them).
CURVE_HASHES: dict[str, hashes.HashAlgorithm] = {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(),
                                                 "secp521r1": hashes.SHA512()}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EvalCo"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any, *, ca: bool,
                 eku: list[x509.ObjectIdentifier] | None = None, san: str | None = SIGNER,
                 not_before: datetime = NOW - timedelta(days=30), not_after: datetime = NOW + timedelta(days=365),
                 digital_signature: bool = True) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer else _name(subject)).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=digital_signature and not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san and not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(san)]), critical=False)
    return builder.sign(issuer_key, CURVE_HASHES[issuer_key.curve.name])


@dataclass
class CA:
    root: x509.Certificate
    root_key: Any
    intermediate: x509.Certificate
    intermediate_key: Any

    def leaf(self, curve: str = "P-256", **kwargs: Any) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(CURVES[curve])
        kwargs.setdefault("eku", [ExtendedKeyUsageOID.CODE_SIGNING])
        return key, _certificate("model signer", key, self.intermediate, self.intermediate_key, ca=False, **kwargs)

    def write(self, directory: Path) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        root, intermediate = directory / "root.pem", directory / "intermediate.pem"
        root.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))
        intermediate.write_bytes(self.intermediate.public_bytes(serialization.Encoding.PEM))
        return root, intermediate


def make_ca(curve: str) -> CA:
    """A root and an intermediate on ``curve`` (P-256 or P-384: what the Web PKI rules cryptography applies allow)."""
    root_key, intermediate_key = ec.generate_private_key(CURVES[curve]), ec.generate_private_key(CURVES[curve])
    root = _certificate("EvalCo Root CA", root_key, None, root_key, ca=True, not_before=NOW - timedelta(days=3650),
                        not_after=NOW + timedelta(days=3650))
    intermediate = _certificate("EvalCo Signing CA", intermediate_key, root, root_key, ca=True,
                                not_before=NOW - timedelta(days=365), not_after=NOW + timedelta(days=1825))
    return CA(root, root_key, intermediate, intermediate_key)
