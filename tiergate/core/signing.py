"""Making attestations: build the evaluation statement for a model and sign it into a DSSE envelope."""

from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence

from tiergate.core.attestation import (
    EvaluationPredicate, Evaluation, EvaluatorRef, EvidenceRef, Statement, build_statement,
)
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope, sign
from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import Manifest


def sign_statement(statement: Statement, keys: Sequence[PrivateKey]) -> Envelope:
    return sign(statement.to_json(), INTOTO_PAYLOAD_TYPE, keys)


def attest_evaluation(
    manifest: Manifest,
    subject_name: str,
    evaluation: Evaluation,
    evaluator: EvaluatorRef,
    keys: Sequence[PrivateKey],
    attested_at: datetime,
    evidence: EvidenceRef | None = None,
) -> Envelope:
    """Sign one evaluation of the model ``manifest`` describes; the predicate pins the per-file manifest."""
    predicate = EvaluationPredicate(
        evaluation=evaluation, evaluator=evaluator, attested_at=attested_at, manifest=manifest, evidence=evidence
    )
    return sign_statement(build_statement(subject_name, manifest, predicate), keys)
