"""OMS signatures (tiergate.core.oms) against the real model-signing 1.1.1 package.

Bundles are produced by model-signing's own Python API (``signing.Config().use_elliptic_key_signer(...).sign``);
statements model-signing would never write are signed with the gate's DSSE code in the same format, and one of
those is checked to verify with model-signing too, so the crafted format is the real one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tiergate.core import bundle as bundle_module
from tiergate.core.dsse import Envelope
from tiergate.core.keys import PrivateKey, PublicKey
from tiergate.core.manifest import DEFAULT_IGNORES, Manifest, hash_model, model_signing_order, root_digest
from tiergate.core.oms import LEGACY_PREDICATE_TYPE, PREDICATE_TYPE, is_oms_bundle, verify_oms_bundle
from tiergate.errors import VerificationError
from helpers_models import make_model, ms_root_digest, ms_sign, ms_verify, sha256_hex, write_ec_keypair

FILES = {
    "model.safetensors": b"weights" * 1000,
    "config.json": b'{"hidden_size": 16}',
    "vae/diffusion_pytorch_model.safetensors": b"vae",
    "vae.safetensors": b"vae-single",  # with vae/ this makes model-signing's order differ from code-point order
}
MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    private, public = write_ec_keypair(directory, "signer")
    other_private, other_public = write_ec_keypair(directory, "other")
    return {"private": private, "public": public, "other_private": other_private, "other_public": other_public}


@pytest.fixture
def signer(keys: dict[str, Path]) -> PublicKey:
    return PublicKey.load(keys["public"])


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "tiny-model", FILES)


def sign(model: Path, keys: dict[str, Path], **kwargs: Any) -> tuple[Path, bytes]:
    signature = model.parent / "model.sig"
    return signature, ms_sign(model, signature, keys["private"], **kwargs)


def reason(data: bytes, model: Path, trusted: list[PublicKey]) -> str:
    with pytest.raises(VerificationError) as caught:
        verify_oms_bundle(data, hash_model(model), trusted)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- interop with real model-signing bundles -------------------------------------------------------------------


def test_valid_signature_verifies(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    signature, bundle = sign(model, keys)
    ms_verify(model, signature, keys["public"])
    manifest = hash_model(model)
    result = verify_oms_bundle(bundle, manifest, [signer])
    assert result.key == signer
    assert result.subject_name == "tiny-model"
    assert result.hash_type == "sha256"
    assert set(result.ignore_paths) == {".git", ".github", ".gitignore", ".gitattributes"}
    # The signed root is model-signing's (component order); the files are exactly the model's.
    assert result.root_digest == ms_root_digest(model) == root_digest(result.files)
    assert result.root_digest == root_digest(model_signing_order(manifest.files)) != manifest.root_digest
    assert Manifest(files=result.files) == manifest


def test_p384_key_verifies(model: Path, tmp_path: Path) -> None:
    private, public = write_ec_keypair(tmp_path, "p384", ec.SECP384R1())
    bundle = ms_sign(model, tmp_path / "p384.sig", private)
    assert verify_oms_bundle(bundle, hash_model(model), [PublicKey.load(public)]).subject_name == "tiny-model"


def test_is_oms_bundle(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    _, bundle = sign(model, keys)
    assert is_oms_bundle(bundle)
    envelope = Envelope(b"{}", "application/vnd.in-toto+json", ()).to_dict()
    for other in (json.dumps(envelope).encode(), b"", b"[]", b"not json", b'{"mediaType": "application/json"}'):
        assert not is_oms_bundle(other)
    assert is_oms_bundle(b'  {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsse')  # truncated


def test_wrong_key_fails(model: Path, keys: dict[str, Path]) -> None:
    _, bundle = sign(model, keys)
    message = reason(bundle, model, [PublicKey.load(keys["other_public"])])
    assert message.startswith("OMS signature: no trusted key: signed by a key with hint ")
    assert "none of the 1 trusted keys" in message
    assert "no trusted keys given" in reason(bundle, model, [])


def test_right_key_among_others_and_lying_hint(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    _, bundle = sign(model, keys)
    other = PublicKey.load(keys["other_public"])
    assert verify_oms_bundle(bundle, hash_model(model), [other, signer]).key == signer
    # The hint is unauthenticated: pointing it at another key changes nothing.
    data = json.loads(bundle)
    data["verificationMaterial"]["publicKey"]["hint"] = hashlib.sha256(other.to_pem()).hexdigest()
    assert verify_oms_bundle(json.dumps(data).encode(), hash_model(model), [other, signer]).key == signer


def test_modified_file_fails(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    signature, bundle = sign(model, keys)
    (model / "config.json").write_bytes(b'{"hidden_size": 17}')
    with pytest.raises(ValueError):
        ms_verify(model, signature, keys["public"])
    message = reason(bundle, model, [signer])
    assert message.startswith("OMS signature: file changed: config.json has sha256 ")


def test_removed_file_fails(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    _, bundle = sign(model, keys)
    (model / "vae.safetensors").unlink()
    assert reason(bundle, model, [signer]) == (
        "OMS signature: file missing: vae.safetensors is signed but not in the model directory"
    )


def test_added_file_fails(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    _, bundle = sign(model, keys)
    (model / "extra.bin").write_bytes(b"x")
    (model / "config.json").write_bytes(b"{}")
    message = reason(bundle, model, [signer])
    # The most serious difference comes first; the rest are counted.
    assert message.startswith("OMS signature: file changed: config.json")
    assert message.endswith("(and 1 more difference)")
    (model / "config.json").write_bytes(FILES["config.json"])
    assert reason(bundle, model, [signer]) == (
        "OMS signature: unlisted file: extra.bin is in the model but not in the signature"
    )


def test_extra_file_under_signed_ignore_path_is_rejected(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    """model-signing 1.1.1 defect 4: it verifies a model with an unsigned evil.pkl in an ignored folder."""
    make_model(model, {"extras/readme.txt": b"notes"})
    signature, bundle = sign(model, keys, ignore_paths=["extras"])
    (model / "extras/evil.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    ms_verify(model, signature, keys["public"])  # model-signing accepts it
    message = reason(bundle, model, [signer])  # the gate does not
    assert message.startswith("OMS signature: unlisted file: extras/evil.pkl is in the model but not in the signature")
    assert "the signature ignores 'extras'" in message
    assert "(and 1 more difference)" in message  # extras/readme.txt is unsigned too


def test_signature_inside_the_model(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    # Where the CLI would put it: OMS v1.0 §6.2 excludes the signature file itself at verify time.
    in_root = model / "model.sig"
    bundle = ms_sign(model, in_root, keys["private"], ignore_paths=["model.sig"])
    ms_verify(model, in_root, keys["public"])
    assert verify_oms_bundle(bundle, hash_model(model), [signer]).key == signer
    # Only the bundle being verified is excluded (found by its bytes): another file under that name is unsigned.
    in_root.write_bytes(bundle.replace(b"{", b"{ ", 1))
    assert reason(bundle, model, [signer]).startswith("OMS signature: unlisted file: model.sig is in the model")
    in_root.unlink()
    # Where the gate keeps signatures: excluded from the model identity, so it verifies.
    (model / ".attestations").mkdir()
    kept = model / ".attestations" / "model.sig"
    bundle = ms_sign(model, kept, keys["private"], ignore_paths=[".attestations"])
    ms_verify(model, kept, keys["public"])
    assert verify_oms_bundle(bundle, hash_model(model), [signer]).key == signer


def test_unsupported_serializations(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    from model_signing import hashing

    _, shards = sign(model, keys, hashing_config=hashing.Config().use_shard_serialization())
    assert "unsupported serialization method 'shards'" in reason(shards, model, [signer])
    _, blake2 = sign(model, keys, hashing_config=hashing.Config().use_file_serialization(hashing_algorithm="blake2"))
    assert "unsupported hash_type 'blake2b'" in reason(blake2, model, [signer])


# --- tampered bundles ------------------------------------------------------------------------------------------


def edit(bundle: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    data = json.loads(bundle)
    change(data)
    return json.dumps(data).encode()


def edit_payload(bundle: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    def apply(data: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
        change(statement)
        data["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    return edit(bundle, apply)


def flip_signature(data: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(data["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    data["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def swap_resource_digest(statement: dict[str, Any]) -> None:
    """Point a resource at other content and fix the subject digest, as an attacker would."""
    resources = statement["predicate"]["resources"]
    resources[0]["digest"] = sha256_hex(b"malicious")
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    statement["subject"][0]["digest"]["sha256"] = root


TAMPERING = [
    ("payload", lambda b: edit_payload(b, swap_resource_digest), "bad signature: it names trusted key "),
    ("signature", lambda b: edit(b, flip_signature), "bad signature: it names trusted key "),
    ("truncated", lambda b: b[: len(b) // 2], "malformed JSON: the bundle is not valid JSON"),
    ("not utf-8", lambda b: b"\xff" + b, "malformed JSON: the bundle is not UTF-8"),
    ("duplicate key", lambda b: b'{"mediaType": "x", ' + b[1:], "has the key 'mediaType' twice"),
    ("array", lambda b: b"[]", "malformed bundle: expected a JSON object"),
    ("NaN", lambda b: b'{"mediaType": NaN}', "has NaN, which is not a JSON number"),
    ("deep nesting", lambda b: b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nests more than 64 levels deep"),
    (
        "payload base64",
        lambda b: edit(b, lambda d: d["dsseEnvelope"].update(payload="%%%")),
        "malformed envelope: payload is not valid base64",
    ),
    (
        "sig base64",
        lambda b: edit(b, lambda d: d["dsseEnvelope"]["signatures"][0].update(sig="not base64!")),
        "malformed envelope: signatures[0].sig is not valid base64",
    ),
    (
        "payloadType",
        lambda b: edit(b, lambda d: d["dsseEnvelope"].update(payloadType="application/json")),
        "wrong payloadType 'application/json'",
    ),
    (
        "no signatures",
        lambda b: edit(b, lambda d: d["dsseEnvelope"].update(signatures=[])),
        "'signatures' must be a non-empty list",
    ),
    ("no envelope", lambda b: edit(b, lambda d: d.pop("dsseEnvelope")), "unsupported: the bundle holds no DSSE"),
    (
        "message signature",
        lambda b: edit(b, lambda d: d.update(messageSignature={}) or d.pop("dsseEnvelope")),
        "unsupported: the bundle holds a message signature",
    ),
    ("mediaType", lambda b: edit(b, lambda d: d.update(mediaType="application/json")), "not a Sigstore bundle"),
    (
        "old bundle",
        lambda b: edit(b, lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1")),
        "unsupported bundle media type",
    ),
    (
        "certificate",
        lambda b: edit(b, lambda d: d["verificationMaterial"].update(x509CertificateChain={"certificates": []})),
        "malformed x509CertificateChain: no certificates",
    ),
    (
        "no material",
        lambda b: edit(b, lambda d: d.pop("verificationMaterial")),
        "'verificationMaterial' is missing or not an object",
    ),
]


@pytest.mark.parametrize(("name", "tamper", "expected"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampered_bundle_fails_with_a_specific_reason(
    name: str, tamper: Callable[[bytes], bytes], expected: str, model: Path, keys: dict[str, Path], signer: PublicKey
) -> None:
    _, bundle = sign(model, keys)
    message = reason(tamper(bundle), model, [signer])
    assert message.startswith("OMS signature: ")
    assert expected in message


def test_oversized_bundle_is_refused_before_parsing(
    model: Path, keys: dict[str, Path], signer: PublicKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, bundle = sign(model, keys)
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", len(bundle) - 1)
    assert f"over the {len(bundle) - 1}-byte limit" in reason(bundle, model, [signer])


# --- statements model-signing would not write, signed in its format --------------------------------------------


def v1_statement(model: Path, **serialization: Any) -> dict[str, Any]:
    resources = [
        {"name": f.path, "algorithm": "sha256", "digest": f.sha256}
        for f in model_signing_order(hash_model(model).files)
    ]
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": model.name, "digest": {"sha256": root_from(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False, **serialization},
            "resources": resources,
        },
    }


def root_from(resources: list[dict[str, Any]]) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()


def compat_pae(payload: bytes) -> bytes:
    """model-signing 0.2's PAE: a bytes repr inside a str (its sign_sigstore_pb.pae_compat)."""
    return f"DSSEV1 28 application/vnd.in-toto+json {len(payload)} {payload}".encode()


def bundle_for(statement: dict[str, Any], private: Path, *, legacy: bool = False) -> bytes:
    """A bundle as model-signing 1.1 writes it (legacy=False) or as 0.2 did (compat PAE, rawBytes, keyid null)."""
    key = PrivateKey.load(private)
    payload = json.dumps(statement, indent=2).encode()
    if legacy:
        assert isinstance(key.key, ec.EllipticCurvePrivateKey)
        envelope = {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64.b64encode(key.sign(compat_pae(payload))).decode(), "keyid": None}],
        }
        material: dict[str, Any] = {"publicKey": {"rawBytes": base64.b64encode(key.public.to_pem()).decode(),
                                                  "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}
    else:
        signed = Envelope(payload, "application/vnd.in-toto+json", ()).add_signature(key)
        envelope = {**signed.to_dict(), "signatures": [{**signed.to_dict()["signatures"][0], "keyid": ""}]}
        material = {"publicKey": {"hint": hashlib.sha256(key.public.to_pem()).hexdigest()}, "tlogEntries": []}
    return json.dumps({"mediaType": MEDIA_TYPE, "verificationMaterial": material, "dsseEnvelope": envelope}).encode()


def test_crafted_bundle_is_the_real_format(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    signature = model.parent / "crafted.sig"
    signature.write_bytes(bundle_for(v1_statement(model, ignore_paths=list(DEFAULT_IGNORES[:4])), keys["private"]))
    ms_verify(model, signature, keys["public"])
    assert verify_oms_bundle(signature.read_bytes(), hash_model(model), [signer]).subject_name == "tiny-model"


def mutate_statement(model: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    statement = v1_statement(model)
    change(statement)
    return statement


def first_resource(statement: dict[str, Any]) -> dict[str, Any]:
    return statement["predicate"]["resources"][0]


def fix_root(statement: dict[str, Any]) -> None:
    statement["subject"][0]["digest"]["sha256"] = root_from(statement["predicate"]["resources"])


STATEMENT_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("subject digest", lambda s: s["subject"][0]["digest"].update(sha256="0" * 64), "inconsistent statement: subject"),
    ("_type", lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "statement _type is "),
    ("predicateType", lambda s: s.update(predicateType="https://slsa.dev/provenance/v1"), "unsupported predicateType"),
    ("two subjects", lambda s: s["subject"].append(s["subject"][0]), "expected exactly one subject, got 2"),
    ("no predicate", lambda s: s.pop("predicate"), "'predicate' is missing or not an object"),
    ("algorithm", lambda s: first_resource(s).update(algorithm="blake3"), "uses algorithm 'blake3', not sha256"),
    ("digest", lambda s: first_resource(s).update(digest="abc"), "not a hex SHA-256 digest: 'abc'"),
    ("escaping name", lambda s: (first_resource(s).update(name="../x"), fix_root(s)), "'..' component"),
    ("'.' among others", lambda s: first_resource(s).update(name="."), "'.' names the file of a single-file signature"),
    ("no resources", lambda s: (s["predicate"].update(resources=[]), fix_root(s)), "'resources' is empty"),
    ("duplicate", lambda s: (s["predicate"]["resources"].append(first_resource(s)), fix_root(s)), "listed twice"),
    ("ignore_paths", lambda s: s["predicate"]["serialization"].update(ignore_paths="x"), "list of strings"),
    (
        "gate-ignored file",
        lambda s: (s["predicate"]["resources"].append(
            {"name": ".gitattributes", "algorithm": "sha256", "digest": sha256_hex(b"")}), fix_root(s)),
        "signed file .gitattributes lies under '.gitattributes', which the gate leaves out",
    ),
]


@pytest.mark.parametrize(("name", "change", "expected"), STATEMENT_CASES, ids=[c[0] for c in STATEMENT_CASES])
def test_signed_statement_problems(
    name: str, change: Callable[[dict[str, Any]], None], expected: str, model: Path, keys: dict[str, Path],
    signer: PublicKey,
) -> None:
    bundle = bundle_for(mutate_statement(model, change), keys["private"])
    assert expected in reason(bundle, model, [signer])


def test_single_file_signature(tmp_path: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    # model_signing sign key <file>: one resource named '.', verified against a directory holding just that file.
    model = make_model(tmp_path / "one", {"model.safetensors": b"weights"})
    bundle = ms_sign(model / "model.safetensors", tmp_path / "one.sig", keys["private"])
    assert json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))["predicate"]["resources"][0][
        "name"] == "."
    result = verify_oms_bundle(bundle, hash_model(model), [signer])
    assert [f.path for f in result.files] == ["model.safetensors"]
    (model / "model.sig").write_bytes(bundle)  # the signature itself is not a second file (OMS §6.2)
    assert verify_oms_bundle(bundle, hash_model(model), [signer]).key == signer
    (model / "config.json").write_bytes(b"{}")
    assert "single file ('.'), but the model directory holds 2 files" in reason(bundle, model, [signer])
    (model / "config.json").unlink()
    (model / "model.safetensors").write_bytes(b"other")
    assert "file changed: model.safetensors" in reason(bundle, model, [signer])


def test_uppercase_hex_from_other_signers_is_accepted(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    statement = v1_statement(model)
    for resource in statement["predicate"]["resources"]:
        resource["digest"] = resource["digest"].upper()
    assert verify_oms_bundle(bundle_for(statement, keys["private"]), hash_model(model), [signer])


# --- legacy v0.1 signatures (model-signing 0.2) ----------------------------------------------------------------


def legacy_statement(model: Path, algorithm: str = "file-sha256") -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": f.path, "digest": {"sha256": f.sha256}, "annotations": {"actual_hash_algorithm": algorithm}}
            for f in hash_model(model).files
        ],
        "predicateType": LEGACY_PREDICATE_TYPE,
        "predicate": {"unused": "Unused, just passed due to API requirements"},
    }


def test_legacy_signature_verifies(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    signature = model.parent / "legacy.sig"
    signature.write_bytes(bundle_for(legacy_statement(model), keys["private"], legacy=True))
    ms_verify(model, signature, keys["public"])  # model-signing 1.1.1 accepts this 0.2-format bundle too
    result = verify_oms_bundle(signature.read_bytes(), hash_model(model), [signer])
    assert result.subject_name == ""
    assert result.root_digest == hash_model(model).root_digest  # computed over the listed (code-point) order
    assert result.ignore_paths == ()
    wrong = PublicKey.load(keys["other_public"])
    assert "no trusted key: signed by a key with hint" in reason(signature.read_bytes(), model, [wrong])


def test_legacy_problems(model: Path, keys: dict[str, Path], signer: PublicKey) -> None:
    blake = bundle_for(legacy_statement(model, "file-blake2"), keys["private"], legacy=True)
    assert "hashed as 'file-blake2', the gate verifies file-sha256 only" in reason(blake, model, [signer])
    (model / "new.bin").write_bytes(b"new")
    stale = bundle_for(legacy_statement(model), keys["private"], legacy=True)
    (model / "new.bin").unlink()
    assert "file missing: new.bin" in reason(stale, model, [signer])


def test_compat_pae_is_accepted_for_legacy_statements_only(
    model: Path, keys: dict[str, Path], signer: PublicKey
) -> None:
    modern = json.loads(bundle_for(v1_statement(model), keys["private"]))
    legacy = json.loads(bundle_for(v1_statement(model), keys["private"], legacy=True))
    modern["dsseEnvelope"] = legacy["dsseEnvelope"]  # a v1.0 statement signed over the buggy PAE
    message = reason(json.dumps(modern).encode(), model, [signer])
    assert "bad signature: it verifies only over model-signing 0.2's malformed PAE" in message


@pytest.mark.parametrize("keyid", ["absent", None, "", "not-a-key-id"])
def test_keyid_absent_empty_or_null(model: Path, keys: dict[str, Path], signer: PublicKey, keyid: Any) -> None:
    # OMS v1.0 §4.1: verifiers MUST accept keyid absent, "" or null; it is never used to pick the key.
    _, bundle = sign(model, keys)
    data = json.loads(bundle)
    for signature in data["dsseEnvelope"]["signatures"]:
        if keyid == "absent":
            signature.pop("keyid", None)
        else:
            signature["keyid"] = keyid
    assert verify_oms_bundle(json.dumps(data).encode(), hash_model(model), [signer]).key == signer
