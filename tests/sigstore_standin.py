"""A private Sigstore instance in one process, for signing keyless without the network.

Fulcio and Rekor are Go services that no package registry here ships, so this module stands in for them on
127.0.0.1 with just what a client exercises: a CA (Fulcio's ``/api/v2/signingCert``) that checks the CSR's proof of
possession and issues a ten-minute certificate for the token's subject and issuer, with an SCT of its own CT log
embedded (RFC 6962 precertificate entry), and a transparency log (Rekor v1's ``/api/v1/log/entries``) that records a
``dsse`` entry and answers with its signed entry timestamp, inclusion proof and signed checkpoint. The trusted root
naming their keys is written as a ClientTrustConfig (``--sigstore-trust-config``) and as a TrustedRoot (what a
trust store or sigstore's Verifier reads).

It checks nothing the real services would and a client relies on (the token's signature, the log's consistency
over time): it exists so that the client side, ``gate attest --sigstore``, runs to the end, and so that the bundle it
writes is checked by sigstore's own Verifier, not by this module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from tiergate.core.log.merkle import inclusion_proof, leaf_hash, root_from_leaf_hashes

OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # Fulcio: the issuer as raw bytes
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # Fulcio: the issuer as a DER UTF8String
SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")  # RFC 6962 embedded SCTs
START = "2020-01-01T00:00:00Z"


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _der_octets(data: bytes) -> bytes:
    if len(data) < 128:
        return b"\x04" + bytes([len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return b"\x04" + bytes([0x80 | len(size)]) + size + data


def _der_utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    assert len(raw) < 128
    return b"\x0c" + bytes([len(raw)]) + raw


def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


class Instance:
    """The CA, the CT log and the transparency log, with their keys; :meth:`start` serves Fulcio and Rekor."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tiergate-test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "stand-in fulcio")])
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.entries: list[bytes] = []
        self._lock = threading.Lock()
        self.issued: list[x509.Certificate] = []
        self._servers: list[ThreadingHTTPServer] = []
        self.fulcio_url = self.rekor_url = ""

    # -- the documents a client or verifier is given ------------------------------------------------------------

    def _log(self, key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
        return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": _b64(_spki(key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": {"start": START}},
                "logId": {"keyId": _b64(hashlib.sha256(_spki(key)).digest())}}

    def trusted_root(self) -> dict[str, Any]:
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [self._log(self.rekor_key, self.rekor_url)],
            "certificateAuthorities": [{
                "subject": {"organization": "tiergate-test", "commonName": "stand-in fulcio"},
                "uri": self.fulcio_url,
                "certChain": {"certificates": [
                    {"rawBytes": _b64(self.ca_cert.public_bytes(serialization.Encoding.DER))}]},
                "validFor": {"start": START},
            }],
            "ctlogs": [self._log(self.ct_key, self.fulcio_url + "/ct")],
            "timestampAuthorities": [],
        }

    def trust_config(self) -> dict[str, Any]:
        service = {"majorApiVersion": 1, "validFor": {"start": START}, "operator": "tiergate-test"}
        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.trusted_root(),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [{"url": self.fulcio_url, **service}],
                "rekorTlogUrls": [{"url": self.rekor_url, **service}],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write ``trust-config.json`` (for signing) and ``trusted_root.json`` (for verifying) into ``folder``."""
        config, root = folder / "trust-config.json", folder / "trusted_root.json"
        config.write_text(json.dumps(self.trust_config()))
        root.write_text(json.dumps(self.trusted_root()))
        return config, root

    # -- Fulcio ---------------------------------------------------------------------------------------------------

    def _sct(self, tbs_precert: bytes) -> bytes:
        """One SCT by the CT log over the precertificate entry (RFC 6962 §3.2), as a SignedCertificateTimestampList."""
        millis = int(time.time() * 1000)
        issuer_key_hash = hashlib.sha256(_spki(self.ca_key)).digest()
        signed = (struct.pack("!BBQH", 0, 0, millis, 1) + issuer_key_hash
                  + len(tbs_precert).to_bytes(3, "big") + tbs_precert + struct.pack("!H", 0))
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (struct.pack("!B", 0) + hashlib.sha256(_spki(self.ct_key)).digest() + struct.pack("!QH", millis, 0)
               + struct.pack("!BBH", 4, 3, len(signature)) + signature)
        listed = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(listed)) + listed

    def issue(self, csr: x509.CertificateSigningRequest, token: str) -> x509.Certificate:
        if not csr.is_signature_valid:
            raise ValueError("the CSR's proof of possession does not verify")
        claims = _claims(token)
        now = datetime.now(timezone.utc)
        public = csr.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        serial = x509.random_serial_number()

        def builder() -> x509.CertificateBuilder:
            return (
                x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.ca_cert.subject)
                .public_key(public).serial_number(serial)
                .not_valid_before(now - timedelta(seconds=5)).not_valid_after(now + timedelta(minutes=10))
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                               critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(claims["sub"])]),
                               critical=True)
                .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V1, claims["iss"].encode()), critical=False)
                .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2, _der_utf8(claims["iss"])), critical=False)
            )

        # The SCT signs the certificate as it is without the SCT (the "precertificate"), so issue that first; the
        # same builder with the SCT appended last gives a certificate whose tbs_precertificate_bytes are its TBS.
        precert = builder().sign(self.ca_key, hashes.SHA256())
        sct = self._sct(precert.tbs_certificate_bytes)
        cert = builder().add_extension(x509.UnrecognizedExtension(SCT_LIST, _der_octets(sct)), critical=False) \
            .sign(self.ca_key, hashes.SHA256())
        assert cert.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        self.issued.append(cert)
        return cert

    # -- Rekor ----------------------------------------------------------------------------------------------------

    def log_dsse(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """Record a proposed ``dsse`` entry; answer as Rekor v1 does (entry, signed entry timestamp, inclusion proof
        in the tree as it now is, signed checkpoint)."""
        content = proposed["spec"]["proposedContent"]
        envelope = json.loads(content["envelope"])
        body = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256",
                             "value": hashlib.sha256(content["envelope"].encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256",
                            "value": hashlib.sha256(base64.b64decode(envelope["payload"])).hexdigest()},
            "signatures": [{"signature": s["sig"], "verifier": content["verifiers"][0]}
                           for s in envelope["signatures"]],
        }}
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        with self._lock:
            self.entries.append(raw)
            leaves = [leaf_hash(e) for e in self.entries]
        index, size, integrated = len(leaves) - 1, len(leaves), int(time.time())
        proof = inclusion_proof(leaves, index, size)  # RFC 6962, by the gate's own log code
        root = root_from_leaf_hashes(leaves)
        log_id = hashlib.sha256(_spki(self.rekor_key)).digest()
        canonical = json.dumps({"body": _b64(raw), "integratedTime": integrated, "logID": log_id.hex(),
                                "logIndex": index}, sort_keys=True, separators=(",", ":")).encode()
        note = f"stand-in rekor - 1\n{size}\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 stand-in-rekor {_b64(log_id[:4] + note_sig)}\n"
        entry = {"body": _b64(raw), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": index,
                 "verification": {
                     "signedEntryTimestamp": _b64(self.rekor_key.sign(canonical, ec.ECDSA(hashes.SHA256()))),
                     "inclusionProof": {"logIndex": index, "treeSize": size, "rootHash": root.hex(),
                                        "hashes": [h.hex() for h in proof],
                                        "checkpoint": checkpoint}}}
        return {hashlib.sha256(raw).hexdigest(): entry}

    # -- serving --------------------------------------------------------------------------------------------------

    def start(self) -> Instance:
        instance = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                try:
                    if self.path == "/api/v2/signingCert":
                        token = self.headers["Authorization"].removeprefix("Bearer ")
                        csr = x509.load_pem_x509_csr(base64.b64decode(data["certificateSigningRequest"]))
                        cert = instance.issue(csr, token)
                        chain = [c.public_bytes(serialization.Encoding.PEM).decode() for c in (cert, instance.ca_cert)]
                        status, answer = 200, {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}
                    elif self.path == "/api/v1/log/entries":
                        status, answer = 201, instance.log_dsse(data)
                    else:
                        status, answer = 404, {"message": f"no {self.path} here"}
                except (KeyError, ValueError) as exc:
                    status, answer = 400, {"message": str(exc)}
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        for attr in ("fulcio_url", "rekor_url"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
            setattr(self, attr, f"http://127.0.0.1:{server.server_port}")
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
