"""Making attestations: build the evaluation statement for a model and sign it into a DSSE envelope.

Who holds the key is not this module's business: anything with a key id and a ``sign`` (:class:`SigningKey`) signs,
a PEM key here or a key in an HSM or a KMS behind an adapter (:mod:`tiergate.runtime.signers`). Keyless signing
(Sigstore) signs :func:`evaluation_statement`'s statement itself, since Fulcio's short-lived key is made per signature.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence

from tiergate.core.attestation import (
    EvaluationPredicate, Evaluation, EvaluatorRef, EvidenceRef, Statement, build_statement,
)
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope, sign
from tiergate.core.keys import SigningKey
from tiergate.core.manifest import Manifest


def sign_statement(statement: Statement, keys: Sequence[SigningKey]) -> Envelope:
    """Raises ValueError when ``keys`` is empty (an envelope needs a signature), and whatever a key's ``sign`` raises
    (an adapter's GateError for a key that cannot sign)."""
    return sign(statement.to_json(), INTOTO_PAYLOAD_TYPE, keys)


def evaluation_statement(
    manifest: Manifest,
    subject_name: str,
    evaluation: Evaluation,
    evaluator: EvaluatorRef,
    attested_at: datetime,
    evidence: EvidenceRef | None = None,
) -> Statement:
    """The in-toto statement of one evaluation of the model ``manifest`` describes; the predicate pins the per-file
    manifest."""
    predicate = EvaluationPredicate(
        evaluation=evaluation, evaluator=evaluator, attested_at=attested_at, manifest=manifest, evidence=evidence
    )
    return build_statement(subject_name, manifest, predicate)


def attest_evaluation(
    manifest: Manifest,
    subject_name: str,
    evaluation: Evaluation,
    evaluator: EvaluatorRef,
    keys: Sequence[SigningKey],
    attested_at: datetime,
    evidence: EvidenceRef | None = None,
) -> Envelope:
    """Sign one evaluation of the model ``manifest`` describes (see :func:`sign_statement` for what it raises)."""
    statement = evaluation_statement(manifest, subject_name, evaluation, evaluator, attested_at, evidence)
    return sign_statement(statement, keys)
