"""OMS signatures from code nobody here wrote: every vector verifies or is refused exactly as its suite says.

- ``model-transparency/``: model-signing's cross-version fixtures. Each ``test-verify-<version>-<method>.sh`` runs
  ``python -m model_signing verify <method> ...`` and fails unless that succeeds; the method, signature, model path,
  trust material and ``--ignore-paths`` are read from the script itself, not re-typed here.
- ``oms-spec/test-vectors/v1.0/``: the OMS v1.0 test vectors; the directory says the outcome (``valid/`` MUST pass,
  ``invalid/`` and ``invalid-payload/`` MUST be rejected: ``test-vectors/validate.sh``). The valid key vector is
  signed with model-transparency's signing key over its ``v1.1.0-elliptic-key`` model, so the gate verifies it in
  full; the others are checked by the published JSON schemas (``oms-spec/schemas/v1.0``) the way the suite's own
  ``oms_schemas.validate_bundle`` does, and refused by the gate.

Certificate and Sigstore keyless fixtures are verified against trust-store identities (``x509``: the CA the script
passes as ``--certificate_chain``; ``sigstore``: its ``--identity`` and ``--identity_provider``), offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tiergate.core import oms
from tiergate.core.dsse import Envelope
from tiergate.core.keys import PublicKey
from tiergate.core.manifest import DEFAULT_IGNORES, attestation_file_problem, hash_model
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import VerificationError

from support import run_gate

HERE = Path(__file__).parent
MT = HERE / "model-transparency"
SPEC = HERE / "oms-spec"
SPEC_VECTORS = SPEC / "test-vectors" / "v1.0"
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


# --- model-transparency's fixtures, as its scripts verify them -------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One ``python -m model_signing verify`` call of a suite script, and whether the script requires success."""

    script: str
    method: str
    options: dict[str, list[str]]
    model: Path
    must_pass: bool

    def one(self, name: str) -> str:
        (value,) = self.options[name]
        return value

    def path(self, name: str) -> Path:
        return MT / self.one(name)

    @property
    def model_root(self) -> Path:
        """The directory the gate hashes: the model path, or for a single-file model the folder holding it."""
        return self.model if self.model.is_dir() else self.model.parent

    @property
    def ignore_paths(self) -> tuple[str, ...]:
        """The verifier's ``--ignore-paths``, relative to the model root (the script names them from its cwd)."""
        root = self.model_root.resolve()
        return tuple(str((MT / p).resolve().relative_to(root)) for p in self.options.get("--ignore-paths", []))


_CALL = re.compile(r"if\s+(!\s+)?python -m model_signing\s+verify\s+(.*?);\s*then", re.DOTALL)


def _invocations() -> list[Invocation]:
    found = []
    for script in sorted(MT.glob("test-verify-*.sh")):
        text = script.read_text().replace("\\\n", " ")
        match = _CALL.search(text)  # the first call; a second one repeats it from inside the model directory
        assert match, f"{script.name}: no model_signing verify call"
        words = shlex.split(match.group(2))
        method = words[0]
        options: dict[str, list[str]] = {}
        positional: list[str] = []
        rest = iter(words[1:])
        for word in rest:
            if word.startswith("--"):
                options.setdefault(word, []).append(next(rest))
            else:
                positional.append(word)
        (model,) = positional
        found.append(Invocation(script.name, method, options, MT / model, must_pass=bool(match.group(1))))
    return found


INVOCATIONS = _invocations()


def test_every_fixture_is_covered() -> None:
    # Guard against a script the regular expression misses: one invocation per fixture directory.
    fixtures = {p.name for p in MT.iterdir() if p.is_dir() and p.name.startswith("v")}
    assert {i.model_root.name for i in INVOCATIONS} == fixtures
    assert len(INVOCATIONS) == 13 and all(i.must_pass for i in INVOCATIONS)


def _key_store(public_key: Path) -> TrustStore:
    entry = {"id": "model-transparency", "organization": "sigstore", "kind": "developer",
             "keys": [{"pem": public_key.read_text()}]}
    return TrustStore.from_dict({"version": 1, "evaluators": [entry]}, source="vectors")


def _leaf_subject(signature: Path) -> str:
    """The signing certificate's subject (RFC 4514) as the bundle carries it."""
    from cryptography import x509

    chain = json.loads(signature.read_bytes())["verificationMaterial"]["x509CertificateChain"]["certificates"]
    return x509.load_der_x509_certificate(base64.b64decode(chain[0]["rawBytes"])).subject.rfc4514_string()


def _identity_store(case: Invocation) -> TrustStore:
    """The trust-store entry for what the script trusts: its CA (``--certificate_chain``) for the
    certificate method, with the leaf's subject (the gate requires a name, model-signing any leaf of the CA); its
    OIDC identity and issuer for Sigstore."""
    if case.method == "certificate":
        root = str(case.path("--certificate_chain").relative_to(MT))
        identity: dict[str, Any] = {"x509": {"roots": [root], "subject": _leaf_subject(case.path("--signature"))}}
    else:
        identity = {"sigstore": {"identity": case.one("--identity"), "issuer": case.one("--identity_provider")}}
    entry = {"id": "model-transparency", "organization": "sigstore", "kind": "developer", "keys": [identity]}
    return TrustStore.from_dict({"version": 1, "evaluators": [entry]}, source="vectors", base_dir=MT)


def _case_params() -> list[Any]:
    return [
        pytest.param(case, id=case.script)
        for case in INVOCATIONS
    ]


@pytest.mark.parametrize("case", _case_params())
def test_model_transparency_fixture(case: Invocation) -> None:
    signature = case.path("--signature")
    store = _key_store(case.path("--public_key")) if case.method == "key" else _identity_store(case)
    manifest = hash_model(case.model_root, ignore_paths=(*DEFAULT_IGNORES, *case.ignore_paths))
    item = AttestationInput(str(signature), signature.read_bytes())
    if case.must_pass:
        assert verify_attestation(item, store, manifest, NOW).evaluator.evaluator_id == "model-transparency"
    else:
        with pytest.raises(VerificationError):
            verify_attestation(item, store, manifest, NOW)


def test_gate_verify_accepts_the_key_fixtures(tmp_path: Path) -> None:
    # As a user would: `gate verify MODEL_DIR MODEL_DIR/model.sig` in a real process. The gate has no verifier-side
    # ignore list (every published file is part of the model), so the files the script ignores are not published.
    trust = tmp_path / "trust.yaml"
    trust.write_text(json.dumps({"version": 1, "evaluators": [{
        "id": "model-transparency", "organization": "sigstore", "kind": "developer",
        "keys": [{"path": str(MT / "keys/certificate/signing-key-pub.pem")}]}]}))
    for case in (c for c in INVOCATIONS if c.method == "key"):
        model = tmp_path / case.model_root.name
        model.mkdir()
        for file in case.model_root.iterdir():
            if file.name not in case.ignore_paths:
                (model / file.name).write_bytes(file.read_bytes())
        result = run_gate("verify", str(model), str(model / "model.sig"), "--trust", str(trust), "-q")
        assert result.returncode == 0, (case.script, result.stdout, result.stderr)
        assert "VALID" in result.stdout and "model-transparency" in result.stdout


def test_a_changed_fixture_model_is_refused(tmp_path: Path) -> None:
    # The same fixtures prove nothing if everything verifies: change one signed byte and each key case fails.
    for case in (c for c in INVOCATIONS if c.method == "key"):
        model = tmp_path / case.model_root.name
        model.mkdir()
        for file in case.model_root.iterdir():
            (model / file.name).write_bytes(file.read_bytes())
        (model / "signme-1").write_bytes(b"changed\n")
        manifest = hash_model(model, ignore_paths=(*DEFAULT_IGNORES, *case.ignore_paths))
        key, bundle = PublicKey.load(case.path("--public_key")), (model / "model.sig").read_bytes()
        with pytest.raises(VerificationError, match="file changed: signme-1"):
            oms.verify_oms_bundle(bundle, manifest, [key])


def test_keyid_spellings_of_the_fixtures() -> None:
    # OMS §4.1 / §11.1: null (pre-1.1), "" (Python 1.1) and absent (Go, the spec's sigstore vector) all occur here.
    spellings = set()
    for bundle in [*MT.glob("v*/model.sig"), *SPEC_VECTORS.glob("valid/*.json")]:
        for signature in json.loads(bundle.read_bytes())["dsseEnvelope"]["signatures"]:
            spellings.add(repr(signature.get("keyid", "absent")))
    assert spellings == {"None", "''", "'absent'"}


def test_public_key_hint_and_raw_bytes() -> None:
    # §4.1: v1.1 names the key by 'hint' (hex SHA-256 of its PEM), earlier versions embed it as 'rawBytes' (the
    # PEM, base64); both name the trusted key here, and both kinds of fixture verify above.
    key = PublicKey.load(MT / "keys/certificate/signing-key-pub.pem")
    assert key.algorithm == "ecdsa-secp384r1"  # a P-384 key: signatures over SHA-384
    materials = {p.parent.name: json.loads(p.read_bytes())["verificationMaterial"]["publicKey"]
                 for p in MT.glob("v*-elliptic-key/model.sig")}
    assert materials["v1.1.0-elliptic-key"] == {"hint": hashlib.sha256(key.to_pem()).hexdigest()}
    for name in ("v0.3.1-elliptic-key", "v1.0.0-elliptic-key", "v1.0.1-elliptic-key"):
        assert "hint" not in materials[name]
        assert PublicKey.from_pem(base64.b64decode(materials[name]["rawBytes"])) == key


def test_model_signing_0_2_compat_signature_uses_sha256_even_for_p384() -> None:
    # model-signing 0.2 signed a malformed PAE and hashed it with SHA-256 whatever the curve (its verifier hardcodes
    # this); the v0.2.0 fixture is signed by a P-384 certificate key, so SHA-384 alone would refuse it.
    from cryptography import x509

    bundle = json.loads((MT / "v0.2.0-certificate/model.sig").read_bytes())
    leaf = x509.load_der_x509_certificate(
        base64.b64decode(bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"]))
    key = PublicKey(leaf.public_key())  # type: ignore[arg-type]
    assert key.algorithm == "ecdsa-secp384r1"
    envelope = Envelope.from_dict({**bundle["dsseEnvelope"], "signatures": [
        {"sig": s["sig"]} for s in bundle["dsseEnvelope"]["signatures"]]})
    assert oms._verify_signature(envelope, None, [key]) == (key, True)


# --- the OMS v1.0 test vectors -----------------------------------------------------------------------------------


def _spec_validators() -> tuple[jsonschema.Draft202012Validator, jsonschema.Draft202012Validator]:
    """The suite's two-level check (``oms_schemas._init_validators``): bundle schema, then statement schema."""
    schemas = {p.name: json.loads(p.read_text()) for p in (SPEC / "schemas/v1.0").glob("*.json")}
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012)) for s in schemas.values())
    return (jsonschema.Draft202012Validator(schemas["bundle.schema.json"], registry=registry),
            jsonschema.Draft202012Validator(schemas["statement.schema.json"], registry=registry))


BUNDLE_SCHEMA, STATEMENT_SCHEMA = _spec_validators()


def spec_problem(data: bytes) -> str | None:
    """What the suite's ``validate_bundle`` says about a bundle (None: valid), without its deprecated-type warning."""
    try:
        bundle = json.loads(data)
        BUNDLE_SCHEMA.validate(bundle)
        payload = bundle["dsseEnvelope"]["payload"]
        statement = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
        if statement.get("predicateType") != oms.LEGACY_PREDICATE_TYPE:
            STATEMENT_SCHEMA.validate(statement)
    except (ValueError, jsonschema.ValidationError) as exc:
        return str(exc).splitlines()[0]
    return None


SPEC_CASES = sorted(SPEC_VECTORS.glob("*/*.json"))


def _spec_params() -> list[Any]:
    return [pytest.param(path, id=f"{path.parent.name}/{path.name}") for path in SPEC_CASES]


@pytest.mark.parametrize("path", SPEC_CASES, ids=[f"{p.parent.name}/{p.name}" for p in SPEC_CASES])
def test_spec_vector_against_published_schemas(path: Path) -> None:
    problem = spec_problem(path.read_bytes())
    assert (problem is None) == (path.parent.name == "valid"), problem


def _spec_model(tmp_path: Path, fixture: str = "v1.1.0-elliptic-key") -> Path:
    # The spec's vectors sign signme-1/signme-2 of model-transparency's v1.1.0 fixtures (same digests); the fixture's
    # own model.sig is another file (its bytes differ from the vector's) and ignore-me is not signed.
    model = tmp_path / "model"
    model.mkdir()
    for name in ("signme-1", "signme-2"):
        (model / name).write_bytes((MT / fixture / name).read_bytes())
    return model


@pytest.mark.parametrize("path", _spec_params())
def test_spec_vector_with_the_gate(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    manifest = hash_model(_spec_model(tmp_path))
    key = PublicKey.load(MT / "keys/certificate/signing-key-pub.pem")
    method = path.name.split(".")[0]
    if path.parent.name == "valid" and method != "key":
        # Signed like model-transparency's v1.1.0 fixture of the same method: trust what its script trusts.
        (case,) = [c for c in INVOCATIONS if c.script == f"test-verify-v1.1.0-{method}.sh"]
        if method == "sigstore":
            (tmp_path / "sigstore").mkdir()
            manifest = hash_model(_spec_model(tmp_path / "sigstore", case.model_root.name))
        assert verify_attestation(AttestationInput(path.name, data), _identity_store(case), manifest, NOW)
    elif path.parent.name == "valid":
        # Structure first (what an upload to .attestations/ is checked for), then the full verification.
        assert attestation_file_problem(data, lines=False) is None
        assert oms.verify_oms_bundle(data, manifest, [key]).subject_name == "model"
    else:
        with pytest.raises(VerificationError):
            oms.verify_oms_bundle(data, manifest, [key])


@pytest.mark.parametrize("method", ["elliptic-key", "certificate", "sigstore"])
def test_current_fixtures_match_the_published_schemas(method: str) -> None:
    # The schemas describe the current format (v1.1.0+, OMS §11): model-signing 1.1's bundles must pass them.
    assert spec_problem((MT / f"v1.1.0-{method}" / "model.sig").read_bytes()) is None
