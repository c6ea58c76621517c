"""Verifying attestations against a trust store and a model.

:func:`verify_attestation` takes the raw bytes of one attestation file and either returns a
:class:`VerifiedAttestation` or raises :class:`~tiergate.errors.VerificationError` with a one-line reason. The order of
checks is chosen so the reason is the most useful one: shape, then signature, then what was signed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from tiergate.core import oms
from tiergate.core.bundle import SigstoreBundle, is_bundle, is_oms_signature, parse_bundle
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
from tiergate.core.identity import SigstoreIdentity, SigningTime, X509Identity, certificate_names
from tiergate.core.keys import PublicKey
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
    reason like any other bad attestation, instead of stopping the check of the others. ``recorded_at`` is when the
    gate's own log first recorded it (None when it was not read from the log): a time the signer could not choose,
    so an attestation the log holds is judged at it when nothing earlier (Rekor, a timestamp authority) vouches.
    """

    source: str
    data: bytes
    problem: str | None = None
    recorded_at: datetime | None = None

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
    #: The earliest signing time something other than the signer vouches for (Rekor, an RFC 3161 timestamp, the
    #: gate's log), or None; freshness counts from it when it is earlier than what the attestation claims.
    trusted_time: SigningTime | None = None


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
        return (f"bad signature: the signature claiming trusted key {hinted[0][:16]} does not verify "
                "(tampered or re-signed)")
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


@dataclass(frozen=True)
class _Evidence:
    """What an attestation file is: its DSSE envelope, the bundle around it (None for a plain envelope), and the
    time the gate's log first recorded it."""

    envelope: Envelope
    bundle: SigstoreBundle | None
    data: bytes
    recorded: SigningTime | None


def _evidence(item: AttestationInput, kind: str) -> _Evidence:
    recorded = SigningTime(item.recorded_at, "first recorded by the gate's log") if item.recorded_at else None
    if not is_bundle(item.data):
        return _Evidence(_remembered(item.data, Envelope.from_json), None, item.data, recorded)
    try:
        bundle = parse_bundle(item.data)
    except VerificationError as exc:
        raise VerificationError(f"{kind}: {exc}") from None
    return _Evidence(bundle.envelope, bundle, item.data, recorded)


#: Envelopes whose verified keys one trust store remembers, at most (then it starts afresh: a bound, not an LRU).
SIGNATURE_MEMO_SIZE = 1 << 17


def _verified_keys(envelope: Envelope, store: TrustStore) -> list[PublicKey]:
    """``envelope.verified_keys(store.keys())``, remembered by the store: which keys signed which bytes does not
    depend on the time, so only the signature checks are skipped, never the validity and scope checks after them."""
    hasher = hashlib.sha256(envelope.pae())
    for signature in envelope.signatures:  # length-prefixed, like the PAE: no two lists hash alike
        keyid = signature.keyid.encode("utf-8")
        hasher.update(len(keyid).to_bytes(8, "big") + keyid + len(signature.sig).to_bytes(8, "big") + signature.sig)
    memo = store.signature_memo
    found = memo.get(hasher.digest())
    if found is not None:
        return list(found)
    verified = envelope.verified_keys(store.keys())
    if len(memo) >= SIGNATURE_MEMO_SIZE:
        memo.clear()
    memo[hasher.digest()] = tuple(verified)
    return verified


def _key_signers(evidence: _Evidence, store: TrustStore) -> list[tuple[Evaluator, TrustedKey, SigningTime | None]]:
    verified = _verified_keys(evidence.envelope, store)
    if not verified:
        raise VerificationError(_signature_failure(evidence.envelope, store))
    owners = [store.owner(key.key_id) for key in verified]
    return [(owner[0], owner[1], evidence.recorded) for owner in owners if owner is not None]


def _certificate_signers(
    evidence: _Evidence, store: TrustStore, now: datetime, signed: Callable[[PublicKey], bool] | None = None
) -> list[tuple[Evaluator, TrustedKey, SigningTime | None]]:
    """The trust store's Sigstore and X.509 identities the bundle's certificate satisfies, each with the earliest
    trusted signing time its verification established (or the log's). Raises VerificationError when none does.

    An X.509 chain is checked at the log's time when there is one, else at the gate's clock, never at a time the
    signer wrote: a certificate that has expired since counts only for signatures something trusted dated."""
    assert evidence.bundle is not None
    assert evidence.bundle.leaf is not None
    found, problems = [], []
    for evaluator, trusted in store.certificate_identities():
        identity = trusted.identity
        try:
            if isinstance(identity, SigstoreIdentity):
                signer = identity.verify(evidence.bundle, evidence.data)
            else:
                assert isinstance(identity, X509Identity)  # certificate_identities holds these two kinds only
                signer = identity.verify(evidence.bundle, evidence.recorded.time if evidence.recorded else now, signed)
        except VerificationError as exc:
            problems.append(f"{exc} (evaluator {evaluator.id})")
            continue
        found.append((evaluator, trusted, signer.times[0] if signer.times else evidence.recorded))
    if found:
        return found
    if len(problems) == 1:
        raise VerificationError(problems[0])
    raise VerificationError(
        f"unknown signer: the certificate for {certificate_names(evidence.bundle.leaf)} matches none of the "
        f"{len(problems)} sigstore/x509 identities of the trust store {store.source}"
        + (f" (first: {problems[0]})" if problems else ""))


def _identified(evidence: _Evidence, store: TrustStore, now: datetime
                ) -> list[tuple[Evaluator, TrustedKey, SigningTime | None]]:
    """Which trusted identities made the signature, each with the trusted time that vouches for it, if any.
    Raises VerificationError when none did."""
    if evidence.bundle is not None and evidence.bundle.certificates:
        return _certificate_signers(evidence, store, now)
    return _key_signers(evidence, store)


def _accepted_signers(
    signers: Sequence[tuple[Evaluator, TrustedKey, SigningTime | None]], claimed: datetime | None, now: datetime
) -> list[tuple[Evaluator, TrustedKey, SigningTime]]:
    """The identities among ``signers`` valid at the time each is judged at (its trusted time, else the claimed
    one where its entry allows, else now), with that time. Raises VerificationError with the first reason when
    none is."""
    accepted, problems = [], []
    for evaluator, trusted, trusted_time in signers:
        when = trusted.signing_time(trusted_time, claimed, now)
        problem = trusted.problem_at(when, now)
        if problem is None and claimed is not None and when.time != claimed:
            # a claim outside the identity's window contradicts itself, even where it is not the time judged at
            problem = trusted.problem_at(SigningTime(claimed, "attestedAt, as the signer claims", vouched=False), now)
        if problem:
            problems.append(f"{problem} (evaluator {evaluator.id})")
        else:
            accepted.append((evaluator, trusted, when))
    if not accepted:
        raise VerificationError(problems[0])
    return sorted(accepted, key=lambda found: (found[0].id, found[1].key_id))


def _vouched(signers: Sequence[tuple[Evaluator, TrustedKey, SigningTime]]) -> SigningTime | None:
    """The earliest signing time among ``signers`` that neither the signer nor the gate's clock gave."""
    times = [t for _, _, t in signers if t.vouched]
    return min(times, key=lambda t: t.time) if times else None


#: Parsed envelopes and statements remembered by the SHA-256 of their bytes, at most (then it starts afresh): a stored
#: attestation is judged again by every decision about its model and by every audit, and parsing is most of that.
PARSE_MEMO_SIZE = 1 << 14
_parse_memo: dict[tuple[object, bytes], object] = {}
T = TypeVar("T")


def _remembered(data: bytes, parse: Callable[[bytes], T]) -> T:
    """``parse(data)``, remembered by content (a VerificationError too: raised afresh each time)."""
    key = (parse, hashlib.sha256(data).digest())
    found = _parse_memo.get(key)
    if found is None:
        try:
            found = parse(data)
        except VerificationError as exc:
            found = exc
        if len(_parse_memo) >= PARSE_MEMO_SIZE:
            _parse_memo.clear()
        _parse_memo[key] = found
    if isinstance(found, VerificationError):
        raise VerificationError(str(found))
    return found  # type: ignore[return-value]  # stored by this very parse


_Parts = tuple[Statement, "EvaluationPredicate | None", Evaluation, "datetime | None", "str | None"]


def _statement_parts(payload: bytes) -> _Parts:
    """The statement in an in-toto payload, its predicate and what it says was evaluated, when and by whom."""
    try:
        statement = Statement.from_json(payload)
    except AttestationFormatError as exc:
        raise VerificationError(f"malformed statement: {exc}") from None
    if statement.predicate_type not in PREDICATE_TYPES:
        raise VerificationError(
            f"unsupported predicateType {statement.predicate_type!r}: expected one of {', '.join(PREDICATE_TYPES)}"
        )
    try:
        if statement.predicate_type == EVALUATION_PREDICATE_TYPE:
            predicate = EvaluationPredicate.from_dict(statement.predicate)
            return statement, predicate, predicate.evaluation, predicate.attested_at, predicate.evaluator.id
        from_predicate = (evaluation_from_eval_result if statement.predicate_type == EVAL_RESULT_PREDICATE_TYPE
                          else evaluation_from_test_result)
        return statement, None, from_predicate(statement.predicate), None, None
    except AttestationFormatError as exc:
        raise VerificationError(f"malformed predicate: {exc}") from None


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
        return (f"evaluator {evaluator.id} is trusted only for {scope}, and benchmark {evaluation.benchmark!r} is not "
                "in the policy's benchmark catalogue, so it measures no risk domain the evaluator may attest")
    return (f"evaluator {evaluator.id} is not trusted for risk domain {evaluation.risk_domain}, which benchmark "
            f"{evaluation.benchmark!r} measures (its scope: {scope})")


def _verify_statement(
    item: AttestationInput, store: TrustStore, model: Manifest | str, now: datetime, skew: timedelta,
    catalogue: BenchmarkCatalogue,
) -> VerifiedAttestation:
    evidence = _evidence(item, "Sigstore bundle")
    if evidence.envelope.payload_type != INTOTO_PAYLOAD_TYPE:  # shape, then who signed, then what was signed
        raise VerificationError(
            f"wrong payloadType {evidence.envelope.payload_type!r}: expected {INTOTO_PAYLOAD_TYPE}")
    identified = _identified(evidence, store, now)
    statement, predicate, evaluation, signed_at, named = _remembered(evidence.envelope.payload, _statement_parts)
    accepted = _accepted_signers(identified, signed_at, now)
    evaluation = _measured(evaluation, catalogue)
    # Differences, not sums: a time near the end of the calendar plus the skew would overflow.
    if signed_at is not None and signed_at - now > skew:
        raise VerificationError(f"attestedAt {format_time(signed_at)} is in the future (gate clock {format_time(now)})")
    vouched = _vouched(accepted)
    if signed_at is not None and vouched is not None and signed_at - vouched.time > skew:
        raise VerificationError(
            f"attestedAt {format_time(signed_at)} is after the signature existed ({format_time(vouched.time)}, "
            f"{vouched.source}): a signer cannot sign before the time it writes")
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
    main = next((found for found in accepted if found[0].id == named), None)
    if main is None:
        signed_by = ", ".join(sorted({e.id for e, _, _ in accepted}))
        raise VerificationError(f"the predicate names evaluator {named!r}, but it is signed by {signed_by}")
    if not main[0].may_attest(evaluation.risk_domain):
        raise VerificationError(_scope_failure(main[0], evaluation))
    signers = tuple(_signer(store, e, k) for e, k, _ in accepted if e.may_attest(evaluation.risk_domain))
    return VerifiedAttestation(
        source=item.source,
        digest=item.digest,
        predicate_type=statement.predicate_type,
        evaluator=_signer(store, main[0], main[1]),
        signers=signers,
        evaluation=evaluation,
        attested_at=signed_at,
        trusted_time=vouched,
    )


def _verify_oms(item: AttestationInput, store: TrustStore, model: Manifest | str, now: datetime) -> VerifiedAttestation:
    """An OMS signature by any of model-signing's methods: a key (checked by :mod:`oms` itself, with its legacy
    quirks), or a certificate (the trust store's sigstore and x509 identities), then the files."""
    if not isinstance(model, Manifest):
        raise VerificationError("an OMS signature can only be checked against the model's files, not a bare digest")
    evidence = _evidence(item, "OMS signature")
    if evidence.bundle is not None and evidence.bundle.certificates:
        envelope = evidence.envelope
        # model-signing 0.2 signed a malformed PAE; accepted by the statement check for its legacy statements only.
        signers = _certificate_signers(evidence, store, now,
                                       lambda key: envelope.signed_by(key) or oms.signed_legacy(envelope, key))
        evaluator, trusted, when = _accepted_signers(signers, None, now)[0]
        accepted = [(evaluator, trusted, when)]
        key = PublicKey(evidence.bundle.leaf.public_key())  # type: ignore[arg-type, union-attr]
        oms.verify_oms_statement(envelope.payload, model, key, compat_pae=not envelope.signed_by(key),
                                 own_sha256=hashlib.sha256(item.data).hexdigest())
    else:
        result = oms.verify_oms_bundle(item.data, model, store.keys())
        owner = store.owner(result.key.key_id)
        assert owner is not None
        evaluator, trusted = owner
        when = trusted.signing_time(evidence.recorded, None, now)
        problem = trusted.problem_at(when, now)
        if problem:
            raise VerificationError(f"{problem} (evaluator {evaluator.id})")
        accepted = [(evaluator, trusted, when)]
    signer = _signer(store, evaluator, trusted)
    return VerifiedAttestation(item.source, item.digest, "oms", signer, (signer,), None, None, _vouched(accepted))


def verify_attestation(
    item: AttestationInput,
    store: TrustStore,
    model: Manifest | str,
    now: datetime,
    skew: timedelta = DEFAULT_SKEW,
    catalogue: BenchmarkCatalogue | None = None,
) -> VerifiedAttestation:
    """Verify one attestation (a DSSE envelope, plain or in a Sigstore bundle, or an OMS signature) for ``model`` (a
    manifest, or a bare hex root digest).

    ``catalogue`` (the policy's; default: the built-in one) says which risk domain each benchmark measures: the
    evaluation's risk domain, and so the signers' scope check, follow from it.

    Raises VerificationError with the reason it is not acceptable.
    """
    if item.problem is not None:
        raise VerificationError(item.problem)
    # By content, not by name: a bundle whose statement is model-signing's is a signature of the files; any other
    # statement, in a bundle or a plain envelope, is an attestation.
    if is_oms_signature(item.data):
        return _verify_oms(item, store, model, now)
    return _verify_statement(item, store, model, now, skew, catalogue or builtin_catalogue())


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
        except Exception as exc:  # noqa: BLE001 - each file is judged alone: a defect reading one rejects it only
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
