"""The in-toto eval-result v0.1 predicate (``in-toto-attestation/eval-result.md``) as evidence.

The draft's own example statement is read from the copied spec; it binds a *receipt*, so the gate refuses it with
that reason, and the same statement about the model (profile ``public-model``) is evidence. Each claim is a bound on
its metric: it can meet a policy requirement only from the side it bounds (``score <= 0.05`` held meets
``score <= 0.10``; ``score >= 0.5`` held, or ``score <= 0.05`` failed, says nothing of it).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from support import NOW, World, run_gate
from tiergate.core.attestation import (
    EVAL_RESULT_PREDICATE_TYPE,
    AttestationFormatError,
    Statement,
    evaluation_from_eval_result,
)
from tiergate.core.decision import MET, NOT_MET, evaluate_tier
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, sign
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import VerificationError

SPEC = Path(__file__).parent / "in-toto-attestation" / "eval-result.md"


def spec_example() -> dict[str, Any]:
    """The first JSON example of the draft (its ``## Examples`` section), placeholders as they are."""
    examples = SPEC.read_text().split("## Examples", 1)[1]
    block = re.search(r"```json\n(.*?)```", examples, re.DOTALL)
    assert block
    document: dict[str, Any] = json.loads(block.group(1))
    assert document["predicateType"] == EVAL_RESULT_PREDICATE_TYPE
    return document


def about_model(manifest: Manifest, **changes: Any) -> dict[str, Any]:
    """The draft's example, as a statement about ``manifest`` measured with StrongREJECT."""
    document = copy.deepcopy(spec_example())
    document["subject"] = [{"name": "tiny", "digest": {"sha256": manifest.root_digest}}]
    predicate = document["predicate"]
    predicate.update(subjectProfile="public-model", evaluatedAt="2026-10-31T12:00:00Z", sampleSize=313)
    predicate["suite"] = {"name": "strong_reject", "version": "1.0.0"}
    predicate["claims"] = [{"metric": "score", "comparator": "<=", "threshold": "0.05", "passed": True}]
    predicate.update(changes)
    return document


def signed(world: World, evaluator: str, document: dict[str, Any]) -> AttestationInput:
    statement = Statement.from_dict(document)
    envelope = sign(statement.to_json(), INTOTO_PAYLOAD_TYPE, [world.evaluators[evaluator].key])
    return AttestationInput(f"{evaluator}-eval-result.json", envelope.to_json())


def test_the_drafts_example_binds_a_receipt_not_the_model(world: World, manifest: Manifest) -> None:
    document = spec_example()
    document["subject"][0]["digest"]["sha256"] = manifest.root_digest  # the placeholder "…" is no digest
    with pytest.raises(VerificationError, match="subjectProfile is 'receipt'"):
        verify_attestation(signed(world, "evalco", document), world.trust(), manifest, NOW)


def test_eval_result_is_evidence(world: World, manifest: Manifest) -> None:
    verified = verify_attestation(signed(world, "evalco", about_model(manifest)), world.trust(), manifest, NOW)
    assert verified.predicate_type == EVAL_RESULT_PREDICATE_TYPE
    evaluation = verified.evaluation
    assert evaluation is not None
    # The catalogue, not the signer, gives the risk domain (strong_reject is an alias of strongreject).
    assert (evaluation.benchmark, evaluation.risk_domain, evaluation.sample_size) == ("strong_reject", "misuse", 313)
    assert dict(evaluation.metrics) == {"score": 0.05} and dict(evaluation.bounds) == {"score": "<="}


REPORTS_NOTHING = "no valid attestation reports"
PROVEN_FALSE = "does not satisfy"


@pytest.mark.parametrize(
    ("claim", "status", "why"),
    [
        ({"comparator": "<=", "threshold": "0.05", "passed": True}, MET, "0.05"),  # score <= 0.05 <= 0.10
        ({"comparator": "<", "threshold": "0.10", "passed": True}, MET, "0.1"),  # score < 0.10
        ({"comparator": ">", "threshold": "0.08", "passed": False}, MET, "0.08"),  # not above 0.08: score <= 0.08
        ({"comparator": "<=", "threshold": "0.20", "passed": True}, NOT_MET, REPORTS_NOTHING),  # maybe above 0.10
        ({"comparator": ">=", "threshold": "0.01", "passed": True}, NOT_MET, REPORTS_NOTHING),  # says nothing here
        ({"comparator": ">=", "threshold": "0.10", "passed": True}, NOT_MET, REPORTS_NOTHING),  # 0.10 still possible
        ({"comparator": "<=", "threshold": "0.05", "passed": False}, NOT_MET, REPORTS_NOTHING),  # > 0.05: unknown
        ({"comparator": "<=", "threshold": "0.10", "passed": False}, NOT_MET, PROVEN_FALSE),  # score > 0.10
        ({"comparator": ">", "threshold": "0.30", "passed": True}, NOT_MET, PROVEN_FALSE),  # score > 0.30
    ],
)
def test_a_claim_counts_only_for_what_it_proves(
    world: World, manifest: Manifest, claim: dict[str, Any], status: str, why: str
) -> None:
    document = about_model(manifest, claims=[{"metric": "score", **claim}])
    verified = verify_attestation(signed(world, "evalco", document), world.trust(), manifest, NOW)
    row = {r.id: r for r in evaluate_tier(Policy.load(), "hosted", [verified], manifest, NOW)}["strongreject-hosted"]
    assert row.status == status and why in row.reason, row.reason


def test_worst_of_holds_for_claims(world: World, manifest: Manifest) -> None:
    # A measured 0.04 meets the requirement; a claim proving the score above 0.10 holds it down (worst of), a loose
    # claim that proves nothing does not.
    measured = verify_attestation(world.attest(manifest, "redteam", "strongreject", {"score": 0.04}, sample_size=313),
                                  world.trust(), manifest, NOW)

    def row(claim: dict[str, Any]) -> Any:
        document = about_model(manifest, claims=[{"metric": "score", **claim}])
        verified = verify_attestation(signed(world, "evalco", document), world.trust(), manifest, NOW)
        rows = evaluate_tier(Policy.load(), "hosted", [measured, verified], manifest, NOW)
        return {r.id: r for r in rows}["strongreject-hosted"]

    assert row({"comparator": "<=", "threshold": "0.10", "passed": False}).status == NOT_MET
    assert row({"comparator": "<=", "threshold": "0.50", "passed": True}).status == MET


def test_too_few_samples_do_not_count(world: World, manifest: Manifest) -> None:
    verified = verify_attestation(
        signed(world, "evalco", about_model(manifest, sampleSize=20)), world.trust(), manifest, NOW)
    row = {r.id: r for r in evaluate_tier(Policy.load(), "hosted", [verified], manifest, NOW)}["strongreject-hosted"]
    assert row.status == NOT_MET and "sample size 20" in row.reason


def test_unknown_suite_has_no_risk_domain(world: World, manifest: Manifest) -> None:
    # As for the other predicates: a suite the catalogue does not list measures nothing a scoped evaluator may attest.
    world.evaluators["evalco"].scope = ["misuse"]
    document = about_model(manifest, suite={"name": "safety-refusals", "version": "1.2.0"})
    with pytest.raises(VerificationError, match="not in the policy's benchmark catalogue"):
        verify_attestation(signed(world, "evalco", document), world.trust(), manifest, NOW)


def test_other_subject_is_refused(world: World, manifest: Manifest) -> None:
    document = about_model(manifest)
    document["subject"][0]["digest"]["sha256"] = "0" * 64
    with pytest.raises(VerificationError):
        verify_attestation(signed(world, "evalco", document), world.trust(), manifest, NOW)


def _predicate(**changes: Any) -> dict[str, Any]:
    predicate = about_model(Manifest(files=()))["predicate"]
    for key, value in changes.items():
        if value is None:
            predicate.pop(key)
        else:
            predicate[key] = value
    return predicate


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"claims": [{"metric": "score", "comparator": "<=", "threshold": 0.05, "passed": True}]}, "decimal string"),
        ({"claims": [{"metric": "score", "comparator": "<=", "threshold": "5e-2", "passed": True}]}, "decimal string"),
        ({"claims": [{"metric": "score", "comparator": "==", "threshold": "0.05", "passed": True}]}, "comparator"),
        ({"claims": [{"metric": "score", "comparator": "<=", "threshold": "0.05", "passed": "yes"}]}, "passed"),
        ({"claims": [{"metric": "score", "comparator": "<=", "threshold": "0.05", "passed": True}] * 2}, "repeats"),
        ({"claims": []}, "at least one claim"),
        ({"sampleSize": None}, "sampleSize"),
        ({"sampleSize": True}, "sampleSize"),
        ({"suite": None}, "predicate.suite"),
        ({"verifier": None}, "predicate.verifier"),
        ({"commitments": None}, "predicate.commitments"),
        ({"assuranceLevel": None}, "assuranceLevel"),
        ({"evaluatedAt": None}, "evaluatedAt"),
        ({"subjectProfile": "receipt"}, "receipt"),
    ],
)
def test_malformed_predicates_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(AttestationFormatError, match=reason):
        evaluation_from_eval_result(_predicate(**changes))


def test_unknown_fields_are_ignored() -> None:
    # The draft's parsing rule (forward compatibility); they change nothing the gate reads.
    plain = evaluation_from_eval_result(_predicate())
    assert evaluation_from_eval_result(_predicate(anchors=[{"x": 1}], receipt={"schema": "s"})) == plain


def test_the_evaluator_guides_example_is_accepted() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "evaluator.md").read_text()
    section = guide.split("### Already signing in-toto eval-result attestations", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert block
    document = json.loads(block.group(1))
    assert Statement.from_dict(document).predicate_type == EVAL_RESULT_PREDICATE_TYPE
    evaluation = evaluation_from_eval_result(document["predicate"])
    assert (evaluation.benchmark, dict(evaluation.bounds)) == ("strong_reject", {"score": "<="})


def test_gate_verify_shows_claims_as_bounds(world: World, model_dir: Path, manifest: Manifest) -> None:
    attestation = model_dir.parent / "evalco-eval-result.json"
    attestation.write_bytes(signed(world, "evalco", about_model(manifest)).data)
    result = run_gate("verify", str(model_dir), str(attestation), "--trust", str(world.trust_path()), "--json", "-q",
                      "--now", "2026-11-01T12:00:00Z")
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = json.loads(result.stdout)["attestations"]
    assert row["type"] == EVAL_RESULT_PREDICATE_TYPE
    assert (row["metrics"], row["bounds"]) == ({"score": 0.05}, {"score": "<="})
