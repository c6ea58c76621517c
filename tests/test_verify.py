"""Verifying attestations: each rejection has its own one-line reason; the trust store names file and field."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from support import NOW, World, write_model
from tiergate.core.attestation import (
    TEST_RESULT_PREDICATE_TYPE, EvaluationPredicate, Statement, Subject,
)
from tiergate.core.dsse import Envelope, sign
from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import hash_model
from tiergate.core.signing import sign_statement
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import ConfigError, VerificationError


def reason(item: AttestationInput, world: World, model, now=NOW) -> str:
    with pytest.raises(VerificationError) as caught:
        verify_attestation(item, world.trust(), model, now)
    message = str(caught.value)
    assert "\n" not in message
    return message


def resign(item: AttestationInput, mutate, key: PrivateKey) -> AttestationInput:
    """Change the statement and sign it again with ``key``."""
    envelope = Envelope.from_json(item.data)
    statement = json.loads(envelope.payload)
    mutate(statement)
    return AttestationInput("edited.json", sign_statement(Statement.from_dict(statement), [key]).to_json())


def test_valid_attestation_verifies(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    verified = verify_attestation(item, world.trust(), manifest, NOW)
    assert verified.evaluator.evaluator_id == "evalco" and verified.evaluator.organization == "EvalCo"
    assert verified.evaluation.metrics == {"score": 0.05}
    assert verified.digest.startswith("sha256:")
    # A bare digest works too (the service decides by digest).
    assert verify_attestation(item, world.trust(), manifest.root_digest, NOW).evaluation is not None


def test_bad_signature(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    envelope = json.loads(item.data)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["results"]["metrics"]["score"] = 0.0
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    assert reason(AttestationInput("x", json.dumps(envelope).encode()), world, manifest).startswith("bad signature")


def test_unknown_key(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    stranger = resign(item, lambda s: None, PrivateKey.generate())
    assert reason(stranger, world, manifest).startswith("unknown key: signed by")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"revoked_at": "2026-10-01T00:00:00Z"}, "was revoked at 2026-10-01T00:00:00Z, before the signing time"),
        ({"valid_from": "2026-11-01T00:00:00Z"}, "is not yet valid"),
        ({"valid_until": "2026-10-01T00:00:00Z"}, "is no longer valid"),
    ],
)
def test_key_validity(world, manifest, fields, expected) -> None:
    world.evaluators["evalco"].key_fields = {**fields, "self_reported_time": True}  # judged at the claimed time
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, when=NOW - timedelta(days=1))
    assert expected in reason(item, world, manifest)


def test_subject_mismatch(world, manifest, tmp_path) -> None:
    other = hash_model(write_model(tmp_path / "other"))
    item = world.attest(other, "evalco", "strongreject", {"score": 0.05})
    assert reason(item, world, manifest).startswith("subject mismatch")


def test_changed_and_added_files_are_named(world, model_dir) -> None:
    manifest = hash_model(model_dir)
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    (model_dir / "config.json").write_text('{"changed": true}')
    assert "subject mismatch" in reason(item, world, hash_model(model_dir))
    # Same contents under a new path: the root digest can stay the same, the pinned manifest catches it.
    renamed = write_model(model_dir.parent / "renamed", {"a.safetensors": b"1", "b.json": b"2"})
    pinned = hash_model(renamed)
    item = world.attest(pinned, "evalco", "strongreject", {"score": 0.05})
    (renamed / "b.json").rename(renamed / "c.pkl")
    again = hash_model(renamed)
    assert again.root_digest == pinned.root_digest
    assert "file c.pkl is not in the attested manifest" in reason(item, world, again)


def test_wrong_payload_type(world, manifest) -> None:
    key = world.evaluators["evalco"].key
    envelope = sign(b"{}", "application/json", [key])
    assert reason(AttestationInput("x", envelope.to_json()), world, manifest).startswith("wrong payloadType")


def test_malformed_json_and_base64(world, manifest) -> None:
    assert reason(AttestationInput("x", b"{oops"), world, manifest).startswith("malformed JSON")
    bad = b'{"payload": "###", "payloadType": "application/vnd.in-toto+json", "signatures": [{"sig": "AA=="}]}'
    assert "not valid base64" in reason(AttestationInput("x", bad), world, manifest)


def test_unsupported_predicate_type(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    edited = resign(item, lambda s: s.update(predicateType="https://example.com/other/v1"),
                    world.evaluators["evalco"].key)
    assert reason(edited, world, manifest).startswith("unsupported predicateType")


def test_nan_score_is_malformed(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    envelope = Envelope.from_json(item.data)
    payload = envelope.payload.replace(b'"score":0.05', b'"score":NaN')
    forged = sign(payload, envelope.payload_type, [world.evaluators["evalco"].key])
    assert "has NaN, which is not a JSON number" in reason(AttestationInput("x", forged.to_json()), world, manifest)


def test_predicate_must_name_a_signer(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    edited = resign(item, lambda s: s["predicate"]["evaluator"].update(id="aisi"), world.evaluators["evalco"].key)
    assert reason(edited, world, manifest) == "the predicate names evaluator 'aisi', but it is signed by evalco"


def test_scope_limits_risk_domains(world, manifest) -> None:
    world.evaluators["evalco"].scope = ["cbrn"]
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, risk_domain="misuse")
    assert "not trusted for risk domain misuse" in reason(item, world, manifest)
    assert verify_attestation(world.attest(manifest, "evalco", "wmdp_bio", {"acc": 0.3}), world.trust(), manifest, NOW)


def test_future_signing_time(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, when=NOW + timedelta(hours=1))
    assert "is in the future" in reason(item, world, manifest)


def test_cosigners_are_all_listed(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, signers=["evalco", "aisi"])
    verified = verify_attestation(item, world.trust(), manifest, NOW)
    assert {s.evaluator_id for s in verified.signers} == {"evalco", "aisi"}


def test_in_toto_test_result_predicate_is_accepted(world, manifest) -> None:
    statement = Statement(
        (Subject("tiny", {"sha256": manifest.root_digest}),), TEST_RESULT_PREDICATE_TYPE,
        {"result": "PASSED", "configuration": [{"name": "strongreject", "digest": {"sha256": "0" * 64}}],
         "passedTests": ["a", "b"], "failedTests": []},
    )
    item = AttestationInput("tr.json", sign_statement(statement, [world.evaluators["evalco"].key]).to_json())
    verified = verify_attestation(item, world.trust(), manifest, NOW)
    assert verified.evaluation.benchmark == "strongreject" and verified.evaluation.metrics["result"] == 1.0


def test_evaluation_predicate_round_trips(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    predicate = json.loads(Envelope.from_json(item.data).payload)["predicate"]
    assert EvaluationPredicate.from_dict(predicate).to_dict() == predicate


# --- trust store -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d.update(version=3), "version", "expected 1"),
        (lambda d: d["evaluators"][0].update(kind="friend"), "evaluators[0].kind", "'friend' is not one of"),
        (lambda d: d["evaluators"][0].pop("organization"), "evaluators[0].organization", "required"),
        (lambda d: d["evaluators"][0]["keys"][0].update(pem="nope"), "evaluators[0].keys[0].pem",
         "not a PEM public key"),
        (lambda d: d["evaluators"][0]["keys"][0].update(valid_from="yesterday"), "valid_from", "not an RFC 3339 time"),
        (lambda d: d["evaluators"][0].update(scope=["weather"]), "evaluators[0].scope", "not a risk domain"),
        (lambda d: d["evaluators"][1].update(id=d["evaluators"][0]["id"]), "evaluators[1].id",
         "duplicate evaluator id"),
        (lambda d: d["evaluators"][0]["keys"][0].update(compromised=True), "revoked_at", "compromised key needs"),
        (lambda d: d["evaluators"][0]["keys"][0].update(path="missing.pub"), "evaluators[0].keys[0]", "exactly one of"),
    ],
)
def test_trust_store_errors_name_file_and_field(world, tmp_path: Path, mutate, field, words) -> None:
    data = world.trust_dict()
    mutate(data)
    path = tmp_path / "bad-trust.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        TrustStore.load(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and field in message and words in message, message


def test_trust_store_key_paths_are_relative_to_the_file(world, tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "e.pub").write_bytes(world.evaluators["evalco"].key.public.to_pem())
    path = tmp_path / "trust.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "evaluators": [
        {"id": "evalco", "organization": "EvalCo", "kind": "third_party", "keys": [{"path": "keys/e.pub"}]}]}))
    assert TrustStore.load(path).evaluators[0].keys[0].key_id == world.evaluators["evalco"].key.key_id
    (tmp_path / "keys" / "e.pub").unlink()
    with pytest.raises(ConfigError, match=r"evaluators\[0\].keys\[0\].path: .*key file not found"):
        TrustStore.load(path)


def test_evaluation_after_signing_is_refused(world, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    later = "2026-10-31T13:00:00Z"  # the attestation was signed at 2026-10-31T12:00:00Z
    edited = resign(item, lambda s: s["predicate"].update(evaluatedAt=later), world.evaluators["evalco"].key)
    assert "an evaluation cannot be signed before it ran" in reason(edited, world, manifest)


def test_rejection_reasons_are_bounded(world, manifest) -> None:
    from tiergate.core.verify import MAX_REASON_CHARS, verify_all

    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    edited = resign(item, lambda s: s.update(predicateType="https://x/" + "A" * 700_000),
                    world.evaluators["evalco"].key)
    report = verify_all([edited], world.trust(), manifest, NOW)
    reason = report.rejected[0].reason
    assert reason.startswith("unsupported predicateType") and len(reason) == MAX_REASON_CHARS
