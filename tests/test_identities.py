"""Signer identities beside keys (issue 12): X.509 CAs, Sigstore keyless, and the trusted signing time.

X.509 material is made here with ``cryptography`` (root -> intermediate -> leaf with codeSigning, P-256, P-384 and
P-521); OMS signatures by model-signing's certificate method are made with the real model-signing package. Sigstore
keyless signatures are real public-good bundles from sigstore/model-transparency (tests/vectors/README.md), checked
offline against the trusted root the installed sigstore package ships.
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from helpers_pki import CA, CURVE_HASHES, SIGNER, make_ca
from support import NOW, write_model
from tiergate.core.attestation import Evaluation, EvaluationPredicate, EvaluatorRef, build_statement
from tiergate.core.bundle import is_oms_signature, parse_bundle
from tiergate.core.decision import _age_start
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope, Signature, pae
from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, VerifiedAttestation, verify_attestation
from tiergate.errors import ConfigError, VerificationError

VECTORS = Path(__file__).parent / "vectors" / "model-transparency"
MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(scope="module", params=["P-256", "P-384"])
def ca(request: pytest.FixtureRequest) -> CA:
    return make_ca(request.param)


# --- attestations in bundles ---------------------------------------------------------------------------------------


def statement_bytes(manifest: Manifest, evaluator: str = "evalco", when: datetime = NOW - timedelta(days=1)) -> bytes:
    evaluation = Evaluation(name="strongreject", benchmark="strongreject", risk_domain="misuse",
                            metrics={"score": 0.05}, sample_size=5000, evaluated_at=when)
    predicate = EvaluationPredicate(evaluation=evaluation, evaluator=EvaluatorRef(evaluator), attested_at=when,
                                    manifest=manifest)
    return build_statement("tiny", manifest, predicate).to_json()


def certificate_bundle(payload: bytes, key: Any, chain: list[x509.Certificate]) -> bytes:
    """A Sigstore bundle v0.3 as model-signing's certificate method writes it: the DSSE envelope, signed with the
    leaf's key (ECDSA with the curve's hash), and the chain leaf first."""
    signature = key.sign(pae(INTOTO_PAYLOAD_TYPE, payload), ec.ECDSA(CURVE_HASHES[key.curve.name]))
    envelope = Envelope(payload, INTOTO_PAYLOAD_TYPE, (Signature("", signature),)).to_dict()
    certificates = [{"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()} for c in chain]
    return json.dumps({"mediaType": MEDIA_TYPE, "verificationMaterial": {"x509CertificateChain": {
        "certificates": certificates}}, "dsseEnvelope": envelope}).encode()


def key_bundle(payload: bytes, key: PrivateKey) -> bytes:
    """A Sigstore bundle v0.3 around a DSSE envelope signed with a key (as model-signing's key method writes it)."""
    envelope = Envelope(payload, INTOTO_PAYLOAD_TYPE, ()).add_signature(key).to_dict()
    return json.dumps({"mediaType": MEDIA_TYPE, "verificationMaterial": {"publicKey": {"hint": key.key_id}},
                       "dsseEnvelope": envelope}).encode()


def store_of(tmp: Path, *identities: dict[str, Any], evaluator: str = "evalco") -> TrustStore:
    path = tmp / "trust.yaml"
    entry = {"id": evaluator, "organization": "EvalCo", "kind": "third_party", "keys": list(identities)}
    path.write_text(yaml.safe_dump({"version": 1, "evaluators": [entry]}))
    return TrustStore.load(path)


def x509_entry(ca: CA, tmp: Path, **fields: Any) -> dict[str, Any]:
    root, _intermediate = ca.write(tmp / "pki")
    spec: dict[str, Any] = {"roots": [str(root.relative_to(tmp))], "san": SIGNER}
    spec.update(fields)
    return {"x509": spec}


def refusal(item: AttestationInput, store: TrustStore, model: Manifest | str, now: datetime = NOW) -> str:
    with pytest.raises(VerificationError) as caught:
        verify_attestation(item, store, model, now)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def model(tmp_path: Path) -> Manifest:
    return hash_model(write_model(tmp_path / "model"))


# --- X.509 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("leaf_curve", ["P-256", "P-384", "P-521"])
def test_attestation_signed_with_a_ca_certificate_verifies(ca: CA, leaf_curve: str, model: Manifest,
                                                           tmp_path: Path) -> None:
    key, leaf = ca.leaf(leaf_curve)
    data = certificate_bundle(statement_bytes(model), key, [leaf, ca.intermediate])
    assert not is_oms_signature(data)  # an attestation in a bundle is an attestation, whatever the file is called
    verified = verify_attestation(AttestationInput("eval.sigstore.json", data),
                                  store_of(tmp_path, x509_entry(ca, tmp_path)), model, NOW)
    assert verified.evaluator.evaluator_id == "evalco" and verified.evaluator.key_id.startswith("x509:")
    assert verified.evaluation is not None and verified.evaluation.metrics == {"score": 0.05}
    assert verified.trusted_time is None  # nothing but the signer dates a certificate signature without a log


def test_intermediates_may_come_from_the_trust_store(ca: CA, model: Manifest, tmp_path: Path) -> None:
    key, leaf = ca.leaf()
    data = certificate_bundle(statement_bytes(model), key, [leaf])  # the bundle carries the leaf only
    entry = x509_entry(ca, tmp_path)
    assert "does not chain to a trusted root" in refusal(AttestationInput("a", data), store_of(tmp_path, entry), model)
    entry["x509"]["intermediates"] = ["pki/intermediate.pem"]
    assert verify_attestation(AttestationInput("a", data), store_of(tmp_path, entry), model, NOW).signers


@pytest.mark.parametrize(("leaf_fields", "entry_fields", "expected"), [
    ({"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, {}, "lacks extended key usage codeSigning"),
    ({"eku": None}, {}, "lacks extended key usage codeSigning"),
    ({"digital_signature": False}, {}, "key usage lacks digitalSignature"),
    ({"not_before": NOW - timedelta(days=60), "not_after": NOW - timedelta(days=1)}, {},
     "does not chain to a trusted root at"),
    ({"san": "someone@else.example"}, {}, f"does not name {SIGNER} in its SAN"),
    ({}, {"san": None, "san_pattern": r".*@evalco\.example"}, None),
    ({"san": "signer@evalco.example.evil"}, {"san": None, "san_pattern": r".*@evalco\.example"},
     "has no SAN matching"),  # anchored: a suffix does not make a match
    ({}, {"subject": "CN=model signer,O=EvalCo"}, None),
    ({}, {"subject": "CN=someone else,O=EvalCo"}, "has subject"),
    ({}, {"extended_key_usage": ["codeSigning", "emailProtection"]}, "lacks extended key usage emailProtection"),
])
def test_certificate_must_be_the_one_the_entry_names(ca: CA, model: Manifest, tmp_path: Path,
                                                    leaf_fields: dict[str, Any], entry_fields: dict[str, Any],
                                                    expected: str | None) -> None:
    key, leaf = ca.leaf(**leaf_fields)
    entry = x509_entry(ca, tmp_path)
    entry["x509"].update(entry_fields)
    entry["x509"] = {k: v for k, v in entry["x509"].items() if v is not None}
    item = AttestationInput("a", certificate_bundle(statement_bytes(model), key, [leaf, ca.intermediate]))
    store = store_of(tmp_path, entry)
    if expected is None:
        assert verify_attestation(item, store, model, NOW).signers
    else:
        assert expected in refusal(item, store, model)


def test_unknown_root_and_tampered_payload_are_refused(ca: CA, model: Manifest, tmp_path: Path) -> None:
    other = make_ca("P-256")
    key, leaf = other.leaf()
    item = AttestationInput("a", certificate_bundle(statement_bytes(model), key, [leaf, other.intermediate]))
    store = store_of(tmp_path, x509_entry(ca, tmp_path))
    assert "does not chain to a trusted root" in refusal(item, store, model)
    key, leaf = ca.leaf()
    bundle = json.loads(certificate_bundle(statement_bytes(model), key, [leaf, ca.intermediate]))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(statement_bytes(model, when=NOW)).decode()
    assert "bad signature" in refusal(AttestationInput("a", json.dumps(bundle).encode()), store, model)


def test_certificate_identities_share_windows_revocation_and_scope(ca: CA, model: Manifest, tmp_path: Path) -> None:
    key, leaf = ca.leaf()
    item = AttestationInput("a", certificate_bundle(statement_bytes(model), key, [leaf, ca.intermediate]))
    for fields, expected in [
        ({"revoked_at": "2026-01-01T00:00:00Z", "compromised": True}, "was revoked as compromised"),
        ({"valid_until": format_day(NOW - timedelta(days=2))}, "is no longer valid at"),
    ]:
        assert expected in refusal(item, store_of(tmp_path, {**x509_entry(ca, tmp_path), **fields}), model)
    path = tmp_path / "trust.yaml"
    data = yaml.safe_load(path.read_text())
    data["evaluators"][0]["keys"] = [x509_entry(ca, tmp_path)]
    data["evaluators"][0]["scope"] = ["cbrn"]
    path.write_text(yaml.safe_dump(data))
    assert "is not trusted for risk domain misuse" in refusal(item, TrustStore.load(path), model)


def format_day(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_x509_entry_judges_at_the_gate_clock_unless_it_allows_self_reported_time(ca: CA, model: Manifest,
                                                                                   tmp_path: Path) -> None:
    key, leaf = ca.leaf()
    item = AttestationInput("a", certificate_bundle(statement_bytes(model, when=NOW - timedelta(days=10)), key,
                                                    [leaf, ca.intermediate]))
    window = {"valid_until": format_day(NOW - timedelta(days=5))}
    assert "no longer valid at" in refusal(item, store_of(tmp_path, {**x509_entry(ca, tmp_path), **window}), model)
    allowed = {**x509_entry(ca, tmp_path), **window, "self_reported_time": True}
    assert verify_attestation(item, store_of(tmp_path, allowed), model, NOW).signers


def test_model_signing_certificate_method_verifies(ca: CA, tmp_path: Path) -> None:
    """An OMS signature made by model-signing's own certificate signer counts as identity evidence."""
    from model_signing import signing

    key, leaf = ca.leaf("P-384" if ca.root.signature_hash_algorithm.name == "sha384" else "P-256")
    pki = tmp_path / "signer"
    pki.mkdir()
    (pki / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    (pki / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (pki / "chain.pem").write_bytes(ca.intermediate.public_bytes(serialization.Encoding.PEM))
    model_dir = write_model(tmp_path / "model")
    signature = tmp_path / "model.sig"
    signing.Config().use_certificate_signer(private_key=pki / "key.pem", signing_certificate=pki / "leaf.pem",
                                            certificate_chain=[pki / "chain.pem"]).sign(model_dir, signature)
    data = signature.read_bytes()
    assert is_oms_signature(data)
    store = store_of(tmp_path, x509_entry(ca, tmp_path))
    verified = verify_attestation(AttestationInput("model.sig", data), store, hash_model(model_dir), NOW)
    assert verified.predicate_type == "oms" and verified.evaluator.key_id.startswith("x509:")
    (model_dir / "extra.bin").write_bytes(b"x")
    assert "unlisted file: extra.bin" in refusal(AttestationInput("model.sig", data), store, hash_model(model_dir))


CERTIFICATE_FIXTURES = sorted(p.name for p in VECTORS.glob("v*-certificate"))


@pytest.mark.parametrize("version", CERTIFICATE_FIXTURES)
def test_model_transparency_certificate_fixtures_verify(tmp_path: Path, version: str) -> None:
    """model-transparency's certificate fixtures (model-signing 0.2 to 1.1), as their verify scripts check them
    (``--certificate_chain ca-cert.pem``): the signing certificate is marked cA=TRUE but cannot sign certificates
    (no keyCertSign); 0.2's signature is over its malformed PAE, accepted for its legacy statement only."""
    keys = VECTORS / "keys" / "certificate"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("signme-1", "signme-2"):
        shutil.copy(VECTORS / version / name, model_dir / name)
    shutil.copy(keys / "ca-cert.pem", tmp_path / "root.pem")
    subject = x509.load_pem_x509_certificate((keys / "signing-key-cert.pem").read_bytes()).subject.rfc4514_string()
    store = store_of(tmp_path, {"x509": {"roots": ["root.pem"], "subject": subject}})
    item = AttestationInput("model.sig", (VECTORS / version / "model.sig").read_bytes())
    assert verify_attestation(item, store, hash_model(model_dir), NOW).predicate_type == "oms"
    (model_dir / "signme-1").write_bytes(b"changed")
    assert "file changed: signme-1" in refusal(item, store, hash_model(model_dir))


def test_a_certificate_that_can_sign_certificates_is_not_a_signer(ca: CA, model: Manifest, tmp_path: Path) -> None:
    """The intermediate's own key signing an attestation: it chains, but it is a CA, not a signing certificate."""
    item = AttestationInput("a", certificate_bundle(statement_bytes(model), ca.intermediate_key, [ca.intermediate]))
    entry = x509_entry(ca, tmp_path, san=None, subject="CN=EvalCo Signing CA,O=EvalCo")
    entry["x509"] = {k: v for k, v in entry["x509"].items() if v is not None}
    assert "keyCertSign" in refusal(item, store_of(tmp_path, entry), model)


# --- bundles by key -------------------------------------------------------------------------------------------------


def test_gate_attestation_in_a_key_bundle_is_an_attestation(model: Manifest, tmp_path: Path) -> None:
    key = PrivateKey.generate("ecdsa-p256")
    data = key_bundle(statement_bytes(model), key)
    assert not is_oms_signature(data)
    store = store_of(tmp_path, {"pem": key.public.to_pem().decode()})
    verified = verify_attestation(AttestationInput("eval.sigstore.json", data), store, model, NOW)
    assert verified.predicate_type.startswith("https://tiergate.dev/evaluation/")
    stranger = key_bundle(statement_bytes(model), PrivateKey.generate("ecdsa-p256"))
    assert refusal(AttestationInput("x", stranger), store, model).startswith("unknown key")


# --- Sigstore keyless: real public-good bundles -------------------------------------------------------------------

IBM_ISSUER = "https://sigstore.verify.ibm.com/oauth2"
IBM_IDENTITY = "stefanb@us.ibm.com"


def sigstore_model(tmp_path: Path, version: str) -> Manifest:
    """The fixture's signed files, in a model directory of their own (the signature and the file the signature
    ignores stay out: the gate wants every published file signed)."""
    model_dir = tmp_path / version
    model_dir.mkdir()
    for name in ("signme-1", "signme-2"):
        shutil.copy(VECTORS / version / name, model_dir / name)
    return hash_model(model_dir)


def sigstore_item(version: str) -> AttestationInput:
    return AttestationInput(f"{version}/model.sig", (VECTORS / version / "model.sig").read_bytes())


@pytest.mark.parametrize("version", sorted(p.name for p in VECTORS.glob("v*-sigstore")))
def test_public_good_sigstore_signatures_verify(tmp_path: Path, version: str) -> None:
    """Every sigstore fixture of model-transparency, with the identity and issuer its verify script gives; the
    signing time is the one Rekor (or a timestamp authority) vouches for, which lies in the certificate's window."""
    store = store_of(tmp_path, {"sigstore": {"issuer": IBM_ISSUER, "identity": IBM_IDENTITY}})
    verified = verify_attestation(sigstore_item(version), store, sigstore_model(tmp_path, version), NOW)
    assert verified.predicate_type == "oms" and verified.evaluator.key_id.startswith("sigstore:")
    bundle = parse_bundle(sigstore_item(version).data)
    assert bundle.leaf is not None and verified.trusted_time is not None
    assert bundle.leaf.not_valid_before_utc <= verified.trusted_time.time <= bundle.leaf.not_valid_after_utc
    assert verified.trusted_time.source in ("Rekor integrated time", "RFC 3161 timestamp")


def test_the_earliest_vouched_time_is_the_signing_time(tmp_path: Path) -> None:
    store = store_of(tmp_path, {"sigstore": {"issuer": IBM_ISSUER, "identity": IBM_IDENTITY}})
    verified = verify_attestation(sigstore_item("v1.1.0-sigstore"), store, sigstore_model(tmp_path, "v1.1.0-sigstore"),
                                  NOW)
    assert verified.trusted_time is not None  # Rekor and the TSA agree to the second here
    assert verified.trusted_time.time == datetime(2025, 10, 10, 2, 12, 20, tzinfo=timezone.utc)


@pytest.mark.parametrize(("identity", "expected"), [
    ({"issuer": "https://accounts.google.com", "identity": IBM_IDENTITY},
     f"OIDCIssuerV2 does not match (got {IBM_ISSUER}"),
    ({"issuer": IBM_ISSUER, "identity": "someone@us.ibm.com"}, "SANs do not match someone@us.ibm.com"),
    ({"issuer": IBM_ISSUER, "identity_pattern": "stefanb"}, "does not match /stefanb/"),  # anchored
    ({"issuer": IBM_ISSUER, "identity_pattern": r".*@example\.com"}, "does not match"),
    ({"issuer": IBM_ISSUER, "identity_pattern": r"[a-z]+@us\.ibm\.com"}, None),
])
def test_sigstore_identity_must_match(tmp_path: Path, identity: dict[str, str], expected: str | None) -> None:
    store = store_of(tmp_path, {"sigstore": identity})
    item, model = sigstore_item("v1.1.0-sigstore"), sigstore_model(tmp_path, "v1.1.0-sigstore")
    if expected is None:
        assert verify_attestation(item, store, model, NOW).signers
    else:
        assert expected in refusal(item, store, model)


def test_a_private_instance_root_does_not_trust_public_good(tmp_path: Path) -> None:
    """``trusted_root`` names another instance's root (here: the staging instance's, as sigstore ships it); the
    public-good Fulcio chain does not verify under it."""
    import sigstore

    staging = (Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev"
               / "trusted_root.json")
    shutil.copy(staging, tmp_path / "private-root.json")
    store = store_of(tmp_path, {"sigstore": {"issuer": IBM_ISSUER, "identity": IBM_IDENTITY,
                                             "trusted_root": "private-root.json"}})
    assert IBM_IDENTITY in refusal(sigstore_item("v1.1.0-sigstore"), store, sigstore_model(tmp_path, "v1.1.0-sigstore"))
    assert tmp_path / "private-root.json" in store.files  # reloaders watch it, the digest covers it


# --- trusted signing time -----------------------------------------------------------------------------------------


def test_sigstore_windows_are_judged_at_the_rekor_time(tmp_path: Path) -> None:
    identity = {"sigstore": {"issuer": IBM_ISSUER, "identity": IBM_IDENTITY}}
    item, model = sigstore_item("v1.0.1-sigstore"), sigstore_model(tmp_path, "v1.0.1-sigstore")
    retired = {**identity, "revoked_at": "2025-10-01T00:00:00Z"}
    assert ("was revoked at 2025-10-01T00:00:00Z, before the signing time 2025-10-07T15:33:48Z (Rekor integrated time)"
            in refusal(item, store_of(tmp_path, retired), model))
    # Retired after it signed: still good, long after (the gate's clock is a year later).
    later = {**identity, "revoked_at": "2025-11-01T00:00:00Z"}
    assert verify_attestation(item, store_of(tmp_path, later), model, NOW).signers


def test_retired_key_backdated_into_its_window_is_refused_when_a_trusted_time_says_otherwise(
    model: Manifest, tmp_path: Path
) -> None:
    key = PrivateKey.generate()
    revoked = NOW - timedelta(days=30)
    entry = {"pem": key.public.to_pem().decode(), "revoked_at": format_day(revoked)}
    # Signed after retirement, attestedAt backdated to before it.
    envelope = Envelope(statement_bytes(model, when=revoked - timedelta(days=10)), INTOTO_PAYLOAD_TYPE, ())
    data = envelope.add_signature(key).to_json()
    # By default nothing but a trusted time dates a signature: alone, it is judged at the gate's clock (refused).
    strict = store_of(tmp_path, entry)
    assert "(the gate's clock)" in refusal(AttestationInput("a", data), strict, model)
    # An entry that explicitly accepts the signer's word takes the backdated attestedAt...
    lenient = store_of(tmp_path, {**entry, "self_reported_time": True})
    assert verify_attestation(AttestationInput("a", data), lenient, model, NOW).signers
    # ...unless something the signer could not choose says when it was signed: the gate's log first saw it later.
    logged = AttestationInput("log entry 7", data, recorded_at=revoked + timedelta(days=1))
    assert ("before the signing time " + format_day(revoked + timedelta(days=1)) + " (first recorded by the gate's log)"
            in refusal(logged, lenient, model))
    # Logged before retirement, it keeps counting after (that is what retiring, not compromising, means).
    early = AttestationInput("log entry 3", data, recorded_at=revoked - timedelta(days=5))
    assert verify_attestation(early, strict, model, NOW).trusted_time is not None


def test_an_attested_time_after_the_log_saw_the_signature_is_refused(model: Manifest, tmp_path: Path) -> None:
    key = PrivateKey.generate()
    data = Envelope(statement_bytes(model, when=NOW - timedelta(days=1)), INTOTO_PAYLOAD_TYPE, ()).add_signature(key)
    store = store_of(tmp_path, {"pem": key.public.to_pem().decode()})
    logged = AttestationInput("log entry 1", data.to_json(), recorded_at=NOW - timedelta(days=3))
    assert "is after the signature existed" in refusal(logged, store, model)
    in_time = AttestationInput("log entry 1", data.to_json(), recorded_at=NOW - timedelta(hours=20))
    assert verify_attestation(in_time, store, model, NOW).trusted_time is not None


def test_freshness_counts_from_the_trusted_time_when_it_is_earlier() -> None:
    from tiergate.core.identity import SigningTime
    from tiergate.core.verify import Signer

    signer = Signer("evalco", "EvalCo", "third_party", "k", True)
    claimed = NOW - timedelta(days=1)
    item = VerifiedAttestation("a", "sha256:00", "p", signer, (signer,), None, claimed,
                               SigningTime(NOW - timedelta(days=90), "first recorded by the gate's log"))
    assert _age_start(item) == NOW - timedelta(days=90)  # a fresh attestedAt does not make old evidence new


# --- the trust store file -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("identity", "expected"), [
    ({"sigstore": {"issuer": IBM_ISSUER}}, "exactly one of 'identity'"),
    ({"sigstore": {"issuer": IBM_ISSUER, "identity": "a", "identity_pattern": "b"}}, "exactly one of 'identity'"),
    ({"sigstore": {"issuer": IBM_ISSUER, "identity_pattern": "("}}, "not a valid regular expression"),
    ({"sigstore": {"identity": "a"}}, "issuer: required"),
    ({"sigstore": {"issuer": IBM_ISSUER, "identity": "a", "trusted_root": "trust.yaml"}},
     "not a Sigstore trusted root"),
    ({"sigstore": {"issuer": IBM_ISSUER, "identity": "a", "extra": 1}}, "unknown field"),
    ({"x509": {"roots": ["pki/root.pem"]}}, "name whose certificates count"),
    ({"x509": {"roots": [], "san": "a"}}, "must list PEM certificate files"),
    ({"x509": {"roots": ["trust.yaml"], "san": "a"}}, "holds no PEM certificate"),
    ({"x509": {"roots": ["pki/root.pem"], "san": "a", "extended_key_usage": ["signing"]}},
     "is not an extended key usage"),
    ({"x509": {"roots": ["pki/root.pem"], "subject": "not a name"}}, "not an RFC 4514 name"),
    ({"x509": {"roots": ["pki/root.pem"], "san": "a"}, "pem": "x"}, "exactly one of 'pem' or 'path'"),
    ({"x509": {"roots": ["pki/root.pem"], "san": "a"}, "self_reported_time": "yes"}, "must be true or false"),
])
def test_trust_store_refuses_malformed_identities(tmp_path: Path, identity: dict[str, Any], expected: str) -> None:
    make_ca("P-256").write(tmp_path / "pki")
    with pytest.raises(ConfigError) as caught:
        store_of(tmp_path, identity)
    assert expected in str(caught.value) and "trust.yaml: evaluators[0].keys[0]" in str(caught.value)


def test_trust_digest_covers_certificate_files(tmp_path: Path) -> None:
    ca = make_ca("P-256")
    store = store_of(tmp_path, x509_entry(ca, tmp_path))
    assert tmp_path / "pki" / "root.pem" in store.files
    make_ca("P-256").write(tmp_path / "pki")  # another root under the same name
    assert TrustStore.load(tmp_path / "trust.yaml").digest != store.digest


def test_one_identity_is_listed_once(ca: CA, tmp_path: Path) -> None:
    entry = x509_entry(ca, tmp_path)
    with pytest.raises(ConfigError, match="is already listed"):
        store_of(tmp_path, entry, entry)


def test_every_identity_kind_reads_from_the_schema_documented_file(tmp_path: Path) -> None:
    """The packaged JSON schema accepts the three kinds as the loader does."""
    import jsonschema
    from importlib import resources

    schema = json.loads((resources.files("tiergate") / "data" / "schemas" / "trust-store.schema.json").read_text())
    document = {"version": 1, "evaluators": [{"id": "e", "organization": "E", "kind": "third_party", "keys": [
        {"path": "e.pub", "self_reported_time": False},
        {"sigstore": {"issuer": IBM_ISSUER, "identity_pattern": ".*"}, "valid_until": "2027-01-01T00:00:00Z"},
        {"x509": {"roots": ["root.pem"], "san": SIGNER, "extended_key_usage": ["codeSigning"]}},
    ]}]}
    jsonschema.validate(document, schema)
    document["evaluators"][0]["keys"][1]["sigstore"]["identity"] = "x"  # both
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)



def test_gate_verify_reads_a_bundle_in_the_attestations_folder(ca: CA, tmp_path: Path) -> None:
    """End to end through the CLI: an evaluation attestation signed with a CA certificate, kept as
    ``.attestations/*.sigstore.json``, is VALID and names its evaluator."""
    from support import run_gate

    model_dir = write_model(tmp_path / "model")
    key, leaf = ca.leaf("P-384")
    bundle = certificate_bundle(statement_bytes(hash_model(model_dir)), key, [leaf, ca.intermediate])
    (model_dir / ".attestations").mkdir()
    (model_dir / ".attestations" / "strongreject.sigstore.json").write_bytes(bundle)
    store_of(tmp_path, x509_entry(ca, tmp_path))
    result = run_gate("verify", str(model_dir), "--trust", str(tmp_path / "trust.yaml"), "--json",
                      "--now", "2026-11-01T12:00:00Z")
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = json.loads(result.stdout)["attestations"]
    assert (row["valid"], row["evaluator"], row["evaluation"], row["trusted_time"]) == (True, "evalco", "strongreject",
                                                                                      None)
