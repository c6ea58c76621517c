"""Verifying attestations against a trust store and a model.

:func:`verify_attestation` takes the raw bytes of one attestation file and either returns a
:class:`VerifiedAttestation` or raises :class:`~tiergate.errors.VerificationError` with a one-line reason. The order of
checks is chosen so the reason is the most useful one: shape, then signature, then what was signed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from tiergate.core import oms
from tiergate.core.attestation import (
    EVAL_RESULT_PREDICATE_TYPE,
    EVALUATION_PREDICATE_TYPE,
    PREDICATE_TYPES,
    AttestationFormatError,
    Evaluation,
    EvaluationPredicate,
    Statement,
    evaluation_from_eval_result,
    evaluation_from_test_result,
)
from tiergate.core.benchmarks import BenchmarkCatalogue, builtin_catalogue
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope
from tiergate.core.manifest import Manifest
from tiergate.core.timeutil import format_time
from tiergate.core.trust import Evaluator, TrustedKey, TrustStore
from tiergate.errors import GateError, VerificationError

DEFAULT_SKEW = timedelta(minutes=5)
#: Reasons quote what an attestation claims (its predicateType, an evaluator id ...); a claim is the sender's to
#: choose, so a reason is cut to this length before it is printed, returned or logged.
MAX_REASON_CHARS = 400


def bounded(reason: str, limit: int = MAX_REASON_CHARS) -> str:
    return reason if len(reason) <= limit else reason[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class AttestationInput:
    """One attestation as read from somewhere: where from (a path or URI, for messages) and its raw bytes.

    ``problem`` says why a file could not be read at all (too large, unreadable): it is then rejected with that
    reason like any other bad attestation, instead of stopping the check of the others.
    """

    source: str
    data: bytes
    problem: str | None = None

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Signer:
    evaluator_id: str
    organization: str
    kind: str
    key_id: str
    independent: bool


@dataclass(frozen=True)
class VerifiedAttestation:
    source: str
    digest: str  # sha256:<hex> of the attestation file's bytes
    predicate_type: str
    evaluator: Signer  # the evaluator the predicate names (or the first signer of a test-result)
    signers: tuple[Signer, ...]  # every trusted, valid signer
    evaluation: Evaluation | None  # None for an OMS signature, which attests identity, not safety
    attested_at: datetime | None


@dataclass(frozen=True)
class Rejection:
    source: str
    digest: str
    reason: str


@dataclass(frozen=True)
class VerificationReport:
    accepted: tuple[VerifiedAttestation, ...]
    rejected: tuple[Rejection, ...]


def _signer(store: TrustStore, evaluator: Evaluator, trusted: TrustedKey) -> Signer:
    return Signer(evaluator.id, evaluator.organization, evaluator.kind, trusted.key_id, store.is_independent(evaluator))


def _signature_failure(envelope: Envelope, store: TrustStore) -> str:
    hinted = [s.keyid for s in envelope.signatures if store.owner(s.keyid)]
    if hinted:
        return f"bad signature: the signature claiming trusted key {hinted[0][:16]} does not verify (tampered or re-signed)"
    ids = ", ".join(s.keyid[:16] or "<no keyid>" for s in envelope.signatures)
    return f"unknown key: signed by {ids}, which is not in the trust store {store.source}"


def _check_subject(statement: Statement, model: Manifest | str) -> None:
    root = model.root_digest if isinstance(model, Manifest) else model
    digests = statement.digests("sha256")
    if root not in digests:
        found = ", ".join(f"sha256:{d[:16]}..." for d in sorted(digests)) or "no sha256 subject"
        raise VerificationError(
            f"subject mismatch: attestation is for {found}, the model is sha256:{root[:16]}... "
            "(these weights are not the ones evaluated)"
        )


def _check_pinned_manifest(pinned: Manifest, model: Manifest) -> None:
    """The subject digest covers file contents, the pinned manifest also the paths: compare both, name the file."""
    signed, actual = pinned.by_path(), model.by_path()
    for path, entry in actual.items():
        if path not in signed:
            raise VerificationError(f"file {path} is not in the attested manifest (added or renamed after evaluation)")
        if signed[path].sha256 != entry.sha256:
            raise VerificationError(f"file {path} changed after evaluation (digest differs from the attested one)")
    missing = sorted(set(signed) - set(actual))
    if missing:
        raise VerificationError(f"file {missing[0]} was evaluated but is missing from the model")


def _accepted_signers(
    envelope: Envelope, store: TrustStore, signed_at: datetime | None, now: datetime
) -> list[tuple[Evaluator, TrustedKey]]:
    verified = envelope.verified_keys(store.keys())
    if not verified:
        raise VerificationError(_signature_failure(envelope, store))
    accepted, problems = [], []
    for key in verified:
        owner = store.owner(key.key_id)
        assert owner is not None  # verified_keys only returns keys from the store
        problem = owner[1].problem_at(signed_at, now)
        if problem:
            problems.append(f"{problem} (evaluator {owner[0].id})")
        else:
            accepted.append(owner)
    if not accepted:
        raise VerificationError(problems[0])
    return sorted(accepted, key=lambda pair: (pair[0].id, pair[1].key_id))


def _parse_statement(envelope: Envelope) -> Statement:
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(f"wrong payloadType {envelope.payload_type!r}: expected {INTOTO_PAYLOAD_TYPE}")
    try:
        statement = Statement.from_json(envelope.payload)
    except AttestationFormatError as exc:
        raise VerificationError(f"malformed statement: {exc}") from None
    if statement.predicate_type not in PREDICATE_TYPES:
        raise VerificationError(
            f"unsupported predicateType {statement.predicate_type!r}: expected one of {', '.join(PREDICATE_TYPES)}"
        )
    return statement


def _measured(evaluation: Evaluation, catalogue: BenchmarkCatalogue) -> Evaluation:
    """``evaluation`` with the risk domain its benchmark measures (None for a benchmark the catalogue does not
    list). A declared ``riskDomain`` must say the same; it is a label the signer chose, so it never decides.

    Raises VerificationError when the label contradicts the catalogue or labels a benchmark it does not list."""
    measured = catalogue.domain_of(evaluation.benchmark)
    declared = evaluation.risk_domain
    if declared is not None and declared != measured:
        if measured is None:
            raise VerificationError(
                f"riskDomain {declared} cannot be confirmed: benchmark {evaluation.benchmark!r} is not in the policy's "
                "benchmark catalogue, so it has no risk domain (add it to the policy's 'benchmarks')"
            )
        raise VerificationError(
            f"riskDomain {declared} contradicts benchmark {evaluation.benchmark!r}, which measures {measured} "
            "(the risk domain comes from the benchmark, not the label)"
        )
    return replace(evaluation, risk_domain=measured)


def _scope_failure(evaluator: Evaluator, evaluation: Evaluation) -> str:
    scope = ", ".join(sorted(evaluator.scope or ())) or "nothing"
    if evaluation.risk_domain is None:
        return (f"evaluator {evaluator.id} is trusted only for {scope}, and benchmark {evaluation.benchmark!r} is not in "
                "the policy's benchmark catalogue, so it measures no risk domain the evaluator may attest")
    return (f"evaluator {evaluator.id} is not trusted for risk domain {evaluation.risk_domain}, which benchmark "
            f"{evaluation.benchmark!r} measures (its scope: {scope})")


def _verify_dsse(
    item: AttestationInput, store: TrustStore, model: Manifest | str, now: datetime, skew: timedelta,
    catalogue: BenchmarkCatalogue,
) -> VerifiedAttestation:
    envelope = Envelope.from_json(item.data)
    statement = _parse_statement(envelope)
    try:
        if statement.predicate_type == EVALUATION_PREDICATE_TYPE:
            predicate = EvaluationPredicate.from_dict(statement.predicate)
            evaluation, signed_at, named = predicate.evaluation, predicate.attested_at, predicate.evaluator.id
        else:
            predicate, named, signed_at = None, None, None
            from_predicate = (evaluation_from_eval_result if statement.predicate_type == EVAL_RESULT_PREDICATE_TYPE
                              else evaluation_from_test_result)
            evaluation = from_predicate(statement.predicate)
    except AttestationFormatError as exc:
        raise VerificationError(f"malformed predicate: {exc}") from None
    accepted = _accepted_signers(envelope, store, signed_at, now)
    evaluation = _measured(evaluation, catalogue)
    # Differences, not sums: a time near the end of the calendar plus the skew would overflow.
    if signed_at is not None and signed_at - now > skew:
        raise VerificationError(f"attestedAt {format_time(signed_at)} is in the future (gate clock {format_time(now)})")
    evaluated_at = evaluation.evaluated_at
    if evaluated_at is not None and signed_at is not None and evaluated_at - signed_at > skew:
        raise VerificationError(
            f"evaluatedAt {format_time(evaluated_at)} is after attestedAt {format_time(signed_at)}: "
            "an evaluation cannot be signed before it ran"
        )
    _check_subject(statement, model)
    if predicate is not None and predicate.manifest is not None and isinstance(model, Manifest):
        _check_pinned_manifest(predicate.manifest, model)
    if named is None:
        named = accepted[0][0].id
    main = next((pair for pair in accepted if pair[0].id == named), None)
    if main is None:
        signed_by = ", ".join(sorted({e.id for e, _ in accepted}))
        raise VerificationError(f"the predicate names evaluator {named!r}, but it is signed by {signed_by}")
    if not main[0].may_attest(evaluation.risk_domain):
        raise VerificationError(_scope_failure(main[0], evaluation))
    signers = tuple(_signer(store, e, k) for e, k in accepted if e.may_attest(evaluation.risk_domain))
    return VerifiedAttestation(
        source=item.source,
        digest=item.digest,
        predicate_type=statement.predicate_type,
        evaluator=_signer(store, *main),
        signers=signers,
        evaluation=evaluation,
        attested_at=signed_at,
    )


def _verify_oms(item: AttestationInput, store: TrustStore, model: Manifest | str, now: datetime) -> VerifiedAttestation:
    if not isinstance(model, Manifest):
        raise VerificationError("an OMS signature can only be checked against the model's files, not a bare digest")
    result = oms.verify_oms_bundle(item.data, model, store.keys())
    owner = store.owner(result.key.key_id)
    assert owner is not None
    problem = owner[1].problem_at(None, now)
    if problem:
        raise VerificationError(f"{problem} (evaluator {owner[0].id})")
    signer = _signer(store, *owner)
    return VerifiedAttestation(item.source, item.digest, "oms", signer, (signer,), None, None)


def verify_attestation(
    item: AttestationInput,
    store: TrustStore,
    model: Manifest | str,
    now: datetime,
    skew: timedelta = DEFAULT_SKEW,
    catalogue: BenchmarkCatalogue | None = None,
) -> VerifiedAttestation:
    """Verify one attestation (DSSE envelope or OMS bundle) for ``model`` (a manifest, or a bare hex root digest).

    ``catalogue`` (the policy's; default: the built-in one) says which risk domain each benchmark measures: the
    evaluation's risk domain, and so the signers' scope check, follow from it.

    Raises VerificationError with the reason it is not acceptable.
    """
    if item.problem is not None:
        raise VerificationError(item.problem)
    if oms.is_oms_bundle(item.data):
        return _verify_oms(item, store, model, now)
    return _verify_dsse(item, store, model, now, skew, catalogue or builtin_catalogue())


def verify_all(
    items: Iterable[AttestationInput],
    store: TrustStore,
    model: Manifest | str,
    now: datetime,
    skew: timedelta = DEFAULT_SKEW,
    catalogue: BenchmarkCatalogue | None = None,
) -> VerificationReport:
    """Verify every attestation; a failure is recorded as a Rejection with its reason, never raised."""
    accepted: list[VerifiedAttestation] = []
    rejected: list[Rejection] = []
    for item in items:
        try:
            accepted.append(verify_attestation(item, store, model, now, skew, catalogue))
        except GateError as exc:
            rejected.append(Rejection(item.source, item.digest, bounded(str(exc))))
        except Exception as exc:  # each file is judged alone: a defect in reading one rejects it, not the check
            rejected.append(Rejection(item.source, item.digest, bounded(
                f"could not be judged ({type(exc).__name__}: {exc}); rejected. Please report it")))
    return VerificationReport(tuple(accepted), tuple(rejected))


def unique_inputs(items: Sequence[AttestationInput]) -> list[AttestationInput]:
    """Drop byte-identical duplicates (the same attestation found in two places counts once)."""
    seen: set[object] = set()
    out = []
    for item in items:
        key = item.digest if item.problem is None else (item.source, item.problem)  # unread files are not alike
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
