"""Signer identities a trust store names beside raw keys, and checking a bundle's certificate against them.

- :class:`SigstoreIdentity`: Sigstore keyless. An OIDC issuer and an identity (exact, or a regular expression
  matched against the whole identity, as ``cosign verify --certificate-identity-regexp`` does) in a short-lived
  Fulcio certificate, checked offline by the maintained ``sigstore`` package's :class:`~sigstore.verify.Verifier`
  against a trusted root: the certificate chain, its SCT, the Rekor inclusion proof or promise and any RFC 3161
  timestamps. The verified times (Rekor integrated time, TSA times) are the signing time.
- :class:`X509Identity`: a certificate chain of an organisation's own CA (model-signing's ``certificate`` method).
  The chain is built and checked by ``cryptography.x509.verification`` (RFC 5280 path validation, the CA's
  constraints) at the signing time; the leaf must carry the configured subject or SAN, key usage
  ``digitalSignature`` and the extended key usage (``codeSigning`` by default), and its key must be ECDSA
  P-256, P-384 or P-521.

A raw key (:class:`tiergate.core.keys.PublicKey`) is the third kind. What the trust store adds to any of them
(validity window, revocation, scope, organisation) lives in :mod:`tiergate.core.trust`, once for all three.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from tiergate.core.bundle import SigstoreBundle
from tiergate.core.keys import PublicKey
from tiergate.core.timeutil import format_time
from tiergate.errors import ConfigError, VerificationError

#: Extended key usages a trust store may require by name (any other is written as a dotted OID).
EKU_NAMES: dict[str, ObjectIdentifier] = {
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
}
#: Curves a certificate's signing key may use (model-signing signs with these; keys.py verifies them).
CURVES: tuple[str, ...] = ("secp256r1", "secp384r1", "secp521r1")


@dataclass(frozen=True)
class SigningTime:
    """When a signature counts as made, and what says so (for messages). ``vouched``: by something other than the
    signer or the gate's clock (a transparency log, a timestamp authority, the gate's own log)."""

    time: datetime
    source: str
    vouched: bool = True


@dataclass(frozen=True)
class CertificateSigner:
    """A bundle whose certificate an identity accepted: the leaf's key, which made the DSSE signature, and the
    signing times the verification established (earliest first; empty when nothing but the signer vouches)."""

    key: PublicKey
    times: tuple[SigningTime, ...]


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A pattern as cosign's ``--certificate-identity-regexp`` reads it (RE2/Go syntax, which Python's ``re`` reads
    alike for what identities need), but anchored: it must match the whole identity, so ``.*@example.com`` does
    not accept ``x@example.com.evil``. Raises ValueError for an invalid expression."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


def _sans(certificate: x509.Certificate) -> set[str]:
    """Emails, URIs, DNS names and Sigstore's "other name" identities in the certificate's SAN."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    found: set[str] = set(extension.get_values_for_type(x509.RFC822Name))
    found.update(extension.get_values_for_type(x509.UniformResourceIdentifier))
    found.update(extension.get_values_for_type(x509.DNSName))
    for other in extension.get_values_for_type(x509.OtherName):
        if other.type_id.dotted_string == "1.3.6.1.4.1.57264.1.7":  # Sigstore's username identity (UTF8String)
            found.add(other.value[2:].decode("utf-8", "replace"))
    return found


def certificate_names(certificate: x509.Certificate) -> str:
    """Who a certificate names, for messages: its SANs, or its subject when it has none."""
    sans = sorted(_sans(certificate))
    return ", ".join(sans) if sans else certificate.subject.rfc4514_string() or "<no name>"


@dataclass(frozen=True)
class SigstoreIdentity:
    """A Sigstore keyless signer: OIDC ``issuer`` plus ``identity`` (exact) or ``identity_pattern`` (anchored).

    ``trusted_root`` is the trusted root JSON (a ``trusted_root.json`` or a ``ClientTrustConfig`` holding one);
    ``root_name`` says where it came from (a path, or the public-good root shipped with ``sigstore``).
    """

    issuer: str
    identity: str | None
    identity_pattern: str | None
    trusted_root: bytes = field(repr=False)
    root_name: str = "sigstore public-good"
    _verifier: list[Any] = field(default_factory=list, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def key_id(self) -> str:
        root = hashlib.sha256(self.trusted_root).hexdigest()
        return "sigstore:" + _fingerprint(self.issuer, self.identity or "", self.identity_pattern or "", root)

    @property
    def label(self) -> str:
        who = self.identity if self.identity is not None else f"/{self.identity_pattern}/"
        return f"Sigstore identity {who} of {self.issuer}"

    def _sigstore_verifier(self) -> Any:
        """The sigstore Verifier for this root, built once (parsing a trusted root takes milliseconds)."""
        with self._lock:
            if not self._verifier:
                self._verifier.append(_verifier(self.trusted_root, self.root_name))
            return self._verifier[0]

    def _policy(self) -> Any:
        from sigstore.verify import policy

        issuer = _Issuer(self.issuer)
        if self.identity is not None:
            return policy.AllOf([issuer, policy.Identity(identity=self.identity)])
        return policy.AllOf([issuer, _IdentityPattern(compile_pattern(self.identity_pattern or ""))])

    def verify(self, bundle: SigstoreBundle, raw: bytes) -> CertificateSigner:
        """Verify ``bundle`` (``raw``, its exact bytes) offline as sigstore does, with this identity as the policy.

        Raises VerificationError naming what did not hold (issuer, identity, chain, log entry, timestamps)."""
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle

        policy = self._policy()
        try:
            # The identity first, on the leaf alone: a trust store lists many identities and a bundle names one, so
            # the others are told apart for the cost of reading two extensions, not of a full verification.
            if bundle.leaf is not None:
                policy.verify(bundle.leaf)
            verifier = self._sigstore_verifier()
            parsed = Bundle.from_json(raw)
            verifier.verify_dsse(parsed, policy)
            # The times verify_dsse checked the chain and the log entry at; re-established the same way (it keeps
            # no result), so they are the verifier's, not the bundle's say-so.
            established = verifier._establish_time(parsed)
        except SigstoreError as exc:
            raise VerificationError(f"{self.label}: {_one_line(exc)}") from None
        except ValueError as exc:  # malformed protobuf JSON in a bundle that parsed as JSON
            raise VerificationError(f"{self.label}: the bundle is not a valid Sigstore bundle "
                                    f"({_one_line(exc)})") from None
        times = sorted((SigningTime(t.time, _TIME_SOURCES.get(t.source.name, t.source.name)) for t in established),
                       key=lambda t: t.time)
        return CertificateSigner(_leaf_key(parsed.signing_certificate), tuple(times))


_TIME_SOURCES = {"TRANSPARENCY_SERVICE": "Rekor integrated time", "TIMESTAMP_AUTHORITY": "RFC 3161 timestamp"}


class _Issuer:
    """A sigstore VerificationPolicy: the certificate's OIDC issuer, as Fulcio writes it today (the v2 extension,
    DER) or did before (v1, raw), is ``issuer``."""

    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.verify import policy

        v2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
        if any(extension.oid == v2 for extension in cert.extensions):
            policy.OIDCIssuerV2(self._issuer).verify(cert)
        else:
            policy.OIDCIssuer(self._issuer).verify(cert)


class _IdentityPattern:
    """A sigstore VerificationPolicy: some SAN identity matches the pattern, whole."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self._pattern = pattern

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        found = _sans(cert)
        if not any(self._pattern.fullmatch(name) for name in found):
            raise SigstoreVerificationError(
                f"certificate identity {', '.join(sorted(found)) or '<none>'} does not match /{self._pattern.pattern}/")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _verifier(root_json: bytes, name: str) -> Any:
    """A sigstore Verifier for a trusted root or a client trust config (JSON). Raises ConfigError."""
    try:
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import ClientTrustConfig, TrustedRoot
        from sigstore.verify import Verifier
        from sigstore_models.trustroot import v1 as trustroot_v1  # sigstore's own protobuf models (a dependency)
    except ImportError:
        from tiergate.errors import extra_missing

        raise extra_missing("sigstore", "the sigstore package") from None
    try:
        text = root_json.decode("utf-8")
        if "clienttrustconfig" in str(json.loads(text).get("mediaType", "")).lower():
            root = ClientTrustConfig.from_json(text).trusted_root
        else:
            root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(text))
        return Verifier(trusted_root=root)
    except (SigstoreError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{name}: not a Sigstore trusted root or client trust config ({_one_line(exc)})") from None


def public_good_root() -> tuple[bytes, str]:
    """The public-good instance's trusted root as the installed ``sigstore`` package ships it (read offline: the
    gate never refreshes it over the network; upgrade sigstore, or name a root file, to change it). Raises
    ConfigError when sigstore is not installed."""
    try:
        import sigstore
    except ImportError:
        from tiergate.errors import extra_missing

        raise extra_missing("sigstore", "the sigstore package") from None
    from importlib import resources

    shipped = resources.files(sigstore) / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
    return shipped.read_bytes(), f"sigstore {sigstore.__version__} public-good root"


def check_trusted_root(root_json: bytes, name: str) -> None:
    """Raise ConfigError unless ``root_json`` is a trusted root sigstore can verify with."""
    _verifier(root_json, name)


def _leaf_key(certificate: x509.Certificate) -> PublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in CURVES:
        raise VerificationError(
            f"certificate for {certificate_names(certificate)} has a {type(key).__name__} "
            f"{getattr(getattr(key, 'curve', None), 'name', '')} key; signing certificates must be ECDSA P-256, P-384 "
            "or P-521")
    return PublicKey(key)


@dataclass(frozen=True)
class X509Identity:
    """Certificates issued under ``roots`` (through ``intermediates`` or those the bundle carries) to a subject or
    SAN, with key usage ``digitalSignature`` and every extended key usage of ``extended_key_usages``."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    subject: str | None = None  # RFC 4514 string of the leaf's subject, compared exactly
    san: str | None = None  # an email, URI or DNS name the leaf's SAN must hold
    san_pattern: str | None = None  # or a regular expression one of them must match whole
    extended_key_usages: tuple[str, ...] = ("codeSigning",)

    @property
    def key_id(self) -> str:
        roots = sorted(c.fingerprint(hashes.SHA256()).hex() for c in self.roots)
        return "x509:" + _fingerprint(*roots, self.subject or "", self.san or "", self.san_pattern or "",
                                      *self.extended_key_usages)

    @property
    def label(self) -> str:
        who = self.san or (f"/{self.san_pattern}/" if self.san_pattern else None) or self.subject
        return f"X.509 identity {who} under {self.roots[0].subject.rfc4514_string()}"

    def verify(self, bundle: SigstoreBundle, at: datetime,
               signed: Callable[[PublicKey], bool] | None = None) -> CertificateSigner:
        """Check the bundle's certificate chains to a root at ``at`` and names this identity, and that its key made
        the DSSE signature (``signed``, given the leaf's key; default: a signature over the envelope's PAE).
        Raises VerificationError with what did not hold."""
        from cryptography.x509.verification import (
            Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError as ChainError,
        )

        leaf = bundle.leaf
        if leaf is None:
            raise VerificationError(f"{self.label}: the bundle carries no certificate")
        # Web PKI defaults for everything but what a signing certificate does differently: the EKU (checked below,
        # code signing rather than TLS client auth), the SAN (an organisation may name signers in the subject) and
        # basicConstraints (model-signing's own test PKI signs with a cA=TRUE certificate; one that may sign
        # certificates is refused below, so it cannot be a working CA).
        ee = (ExtensionPolicy.webpki_defaults_ee()
              .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
              .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
              .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, None))
        ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
        verifier = (PolicyBuilder().store(Store(list(self.roots))).time(at)
                    .extension_policies(ca_policy=ca, ee_policy=ee).build_client_verifier())
        try:
            verifier.verify(leaf, [*bundle.certificates[1:], *self.intermediates])
        except (ChainError, ValueError) as exc:
            raise VerificationError(
                f"{self.label}: certificate for {certificate_names(leaf)} does not chain to a trusted root at "
                f"{format_time(at)} ({_one_line(exc)})") from None
        problem = self._leaf_problem(leaf)
        if problem:
            raise VerificationError(f"{self.label}: certificate for {certificate_names(leaf)} {problem}")
        key = _leaf_key(leaf)
        if not (signed or bundle.envelope.signed_by)(key):
            raise VerificationError(f"{self.label}: bad signature: the envelope does not verify with the key of the "
                                    f"certificate for {certificate_names(leaf)} (tampered or re-signed)")
        return CertificateSigner(key, ())

    def _leaf_problem(self, leaf: x509.Certificate) -> str | None:
        if self.subject is not None and leaf.subject.rfc4514_string() != self.subject:
            return f"has subject {leaf.subject.rfc4514_string()!r}, not {self.subject!r}"
        names = _sans(leaf)
        if self.san is not None and self.san not in names:
            return f"does not name {self.san} in its SAN"
        if self.san_pattern is not None and not any(compile_pattern(self.san_pattern).fullmatch(n) for n in names):
            return f"has no SAN matching /{self.san_pattern}/"
        try:
            usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return "has no key usage extension (digitalSignature is required)"
        if not usage.digital_signature:
            return "is not for digital signatures (key usage lacks digitalSignature)"
        if usage.key_cert_sign:
            return "is a CA certificate (key usage keyCertSign), not a signing certificate"
        try:
            extended = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            extended = set()
        for name in self.extended_key_usages:
            if eku_oid(name) not in extended:
                return f"lacks extended key usage {name}"
        return None


def eku_oid(name: str) -> ObjectIdentifier:
    """The OID of an extended key usage named as in :data:`EKU_NAMES` or dotted. Raises ValueError."""
    if name in EKU_NAMES:
        return EKU_NAMES[name]
    if re.fullmatch(r"[0-2](\.[0-9]+)+", name):
        return ObjectIdentifier(name)
    raise ValueError(f"{name!r} is not an extended key usage ({', '.join(EKU_NAMES)}, or a dotted OID)")


#: What a trust store entry can trust: a raw key, a Sigstore keyless identity, or an X.509 CA's certificates.
Identity = PublicKey | SigstoreIdentity | X509Identity


def identity_label(identity: Identity) -> str:
    """How messages name an identity: ``key 0123abcd...`` or the certificate identity's label."""
    if isinstance(identity, PublicKey):
        return f"key {identity.key_id[:16]}"
    return identity.label
