"""Evaluation attestations: an in-toto Statement v1 whose predicate binds evaluation scores to a model's manifest.

Three predicate types are understood:

- :data:`EVALUATION_PREDICATE_TYPE`, the gate's scored-evaluation predicate (JSON Schema in
  ``tiergate/data/schemas/evaluation-predicate.schema.json``): which evaluation, which scores, who evaluated, when, the
  digest of the raw eval log, and the full per-file manifest of the evaluated weights.
- in-toto test-result v0.1, which carries a PASSED/WARNED/FAILED result and test counts but no scores.
- in-toto eval-result v0.1 (proposed in in-toto/attestation#565, not yet merged there), which carries threshold
  claims ``{metric, comparator, threshold, passed}`` instead of scores: each claim is a bound on its metric
  (see :meth:`Evaluation.metrics_for`).

Both are normalised to an :class:`Evaluation`, the one thing the policy reads.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from collections.abc import Mapping

from tiergate.core.files import StrictJSONError, parse_json
from tiergate.core.manifest import Manifest
from tiergate.core.timeutil import format_time, parse_time

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
EVALUATION_PREDICATE_TYPE = "https://tiergate.dev/evaluation/v0.1"
TEST_RESULT_PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
EVAL_RESULT_PREDICATE_TYPE = "https://in-toto.io/attestation/eval-result/v0.1"
PREDICATE_TYPES = (EVALUATION_PREDICATE_TYPE, TEST_RESULT_PREDICATE_TYPE, EVAL_RESULT_PREDICATE_TYPE)

#: Risk domains an evaluation can speak to; trust-store scopes and policy requirements name these.
RISK_DOMAINS: tuple[str, ...] = (
    "cbrn",  # chemical, biological, radiological, nuclear uplift (e.g. WMDP bio/chem)
    "cyber",  # offensive cyber capability (WMDP cyber, Cybench)
    "misuse",  # refusal of harmful requests (StrongREJECT, HarmBench)
    "tamper",  # resistance of safeguards to fine-tuning attacks (TAR-style)
    "capability",  # general capability retained (MMLU)
    "autonomy",  # autonomous AI R&D / self-improvement
    "manipulation",  # harmful manipulation
    "governance",  # risk assessments and regulatory documentation
)

_TEST_RESULT_SCORES = {"PASSED": 1.0, "WARNED": 0.5, "FAILED": 0.0}
#: What an eval-result claim ``metric comparator threshold`` proves of the metric when it held (True) or did not
#: (False): ``metric <relation> threshold``.
_CLAIM_RELATIONS = {
    ("<=", True): "<=", ("<", True): "<", (">=", True): ">=", (">", True): ">",
    ("<=", False): ">", ("<", False): ">=", (">=", False): "<", (">", False): "<=",
}
_HOLDS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_UPPER = ("<=", "<")
#: eval-result subject profiles that name the artifact itself (a "receipt" subject is the receipt, not the model).
EVAL_RESULT_PROFILES = ("public-model", "release-gate")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


class AttestationFormatError(ValueError):
    """A statement or predicate does not have the documented shape; the message names the field."""


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AttestationFormatError(f"{where} must be a finite number, found {value!r}")
    return float(value)


def _text(data: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise AttestationFormatError(f"{where}.{key} must be a non-empty string")
    return value


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise AttestationFormatError(f"{where} must be an object")
    return data


def _time(data: Mapping[str, Any], key: str, where: str, required: bool = True) -> datetime | None:
    value = data.get(key)
    if value is None and not required:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise AttestationFormatError(f"{where}.{key}: {exc}") from None


@dataclass(frozen=True)
class Subject:
    name: str
    digest: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": dict(self.digest)}


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1. ``predicate`` stays a plain mapping; typed access goes through the predicate classes."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_dict() for s in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    def digests(self, algorithm: str = "sha256") -> set[str]:
        return {s.digest[algorithm].lower() for s in self.subjects if algorithm in s.digest}

    @classmethod
    def from_dict(cls, data: Any) -> Statement:
        data = _object(data, "statement")
        if data.get("_type") != STATEMENT_TYPE:
            raise AttestationFormatError(f"statement _type is {data.get('_type')!r}, expected {STATEMENT_TYPE}")
        raw_subjects = data.get("subject")
        if not isinstance(raw_subjects, list) or not raw_subjects:
            raise AttestationFormatError("statement.subject must be a non-empty list")
        subjects = []
        for index, entry in enumerate(raw_subjects):
            raw = _object(entry, f"subject[{index}]")
            digest = _object(raw.get("digest"), f"subject[{index}].digest")
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in digest.items()):
                raise AttestationFormatError(f"subject[{index}].digest must map algorithm names to hex strings")
            subjects.append(Subject(name=str(raw.get("name", "")), digest=dict(digest)))
        predicate_type = _text(data, "predicateType", "statement")
        predicate = _object(data.get("predicate", {}), "statement.predicate")
        return cls(tuple(subjects), predicate_type or "", predicate)

    @classmethod
    def from_json(cls, payload: bytes) -> Statement:
        try:
            data = parse_json(payload)
        except StrictJSONError as exc:
            raise AttestationFormatError(f"the payload {exc}") from None
        return cls.from_dict(data)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation's outcome, as the policy reads it (normalised from either predicate type)."""

    name: str
    benchmark: str
    risk_domain: str | None
    metrics: Mapping[str, float]
    sample_size: int | None = None
    stderr: Mapping[str, float] = field(default_factory=dict)
    harness: str | None = None
    harness_version: str | None = None
    dataset: str | None = None
    dataset_revision: str | None = None
    evaluated_at: datetime | None = None
    #: Metrics whose value is a bound, not a measurement (eval-result claims): name -> the relation proven,
    #: ``metric <relation> value`` (``"<="``, ``"<"``, ``">="`` or ``">"``).
    bounds: Mapping[str, str] = field(default_factory=dict)

    def metrics_for(self, comparator: str, threshold: float | None) -> Mapping[str, float]:
        """The metrics a requirement ``comparator threshold`` may read: every measured one, and each bound as a value
        that meets the requirement exactly when the bound proves it does, and fails it when the bound proves it
        cannot hold; a bound that proves neither is left out (``reported`` reads every bound; ``==`` none).

        ``score <= 0.05`` reads as 0.05 for ``<= 0.10`` (met); ``score > 0.10`` (a failed ``<= 0.10`` claim) reads,
        for the same requirement, as the next float above 0.10 (not met); ``score >= 0.01`` is left out.
        """
        if not self.bounds:
            return self.metrics
        usable = {k: v for k, v in self.metrics.items() if k not in self.bounds}
        for name, relation in self.bounds.items():
            value = _bound_reading(relation, self.metrics[name], comparator, threshold)
            if value is not None:
                usable[name] = value
        return usable


def _bound_reading(relation: str, bound: float, comparator: str, threshold: float | None) -> float | None:
    """How ``metric <relation> bound`` reads for a requirement ``comparator threshold`` (see
    :meth:`Evaluation.metrics_for`), or None when it says nothing of it."""
    if comparator == "reported":
        return bound
    if comparator not in _HOLDS or threshold is None:
        return None
    if (relation in _UPPER) == (comparator in _UPPER):
        # The same side proves the requirement when the bound lies within the threshold; a looser bound proves
        # nothing (score <= 0.20 says nothing of "<= 0.10") and must not count as a failure either.
        return bound if _HOLDS[comparator](bound, threshold) else None
    # The other side can only prove the requirement false: the metric lies beyond the bound, on the far side.
    strict = relation in ("<", ">")
    towards = -math.inf if relation in _UPPER else math.inf
    worst = math.nextafter(bound, towards) if strict else bound
    # Proven false when even the value nearest the threshold the bound allows fails it (metric >= 0.10 allows 0.10,
    # which meets "<= 0.10": nothing proven; metric > 0.10 does not).
    return worst if not _HOLDS[comparator](worst, threshold) else None


@dataclass(frozen=True)
class EvaluatorRef:
    """Who the predicate says evaluated; verification checks this evaluator signed."""

    id: str
    organization: str | None = None


@dataclass(frozen=True)
class EvidenceRef:
    """The raw evaluation log the scores came from (its bytes' digest is what is signed)."""

    sha256: str
    name: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class EvaluationPredicate:
    """The gate's scored-evaluation predicate (round-trips to/from its JSON form)."""

    evaluation: Evaluation
    evaluator: EvaluatorRef
    attested_at: datetime
    manifest: Manifest | None = None
    evidence: EvidenceRef | None = None

    def to_dict(self) -> dict[str, Any]:
        ev = self.evaluation
        evaluation: dict[str, Any] = {"name": ev.name, "benchmark": ev.benchmark}
        if ev.risk_domain:
            evaluation["riskDomain"] = ev.risk_domain
        if ev.harness:
            evaluation["harness"] = {"name": ev.harness,
                                     **({"version": ev.harness_version} if ev.harness_version else {})}
        if ev.dataset:
            evaluation["dataset"] = {"name": ev.dataset,
                                     **({"revision": ev.dataset_revision} if ev.dataset_revision else {})}
        results: dict[str, Any] = {"metrics": dict(ev.metrics)}
        if ev.sample_size is not None:
            results["sampleSize"] = ev.sample_size
        if ev.stderr:
            results["stderr"] = dict(ev.stderr)
        out: dict[str, Any] = {
            "evaluation": evaluation,
            "results": results,
            "evaluator": {"id": self.evaluator.id,
                          **({"organization": self.evaluator.organization} if self.evaluator.organization else {})},
            "attestedAt": format_time(self.attested_at),
        }
        if ev.evaluated_at:
            out["evaluatedAt"] = format_time(ev.evaluated_at)
        if self.evidence:
            evidence: dict[str, Any] = {"digest": {"sha256": self.evidence.sha256}}
            if self.evidence.name:
                evidence["name"] = self.evidence.name
            if self.evidence.format:
                evidence["format"] = self.evidence.format
            out["evidence"] = evidence
        if self.manifest is not None:
            out["manifest"] = self.manifest.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any) -> EvaluationPredicate:
        data = _object(data, "predicate")
        evaluation = _object(data.get("evaluation"), "predicate.evaluation")
        results = _object(data.get("results"), "predicate.results")
        metrics = _object(results.get("metrics"), "predicate.results.metrics")
        if not metrics:
            raise AttestationFormatError("predicate.results.metrics is empty")
        risk_domain = _text(evaluation, "riskDomain", "predicate.evaluation", required=False)
        if risk_domain is not None and risk_domain not in RISK_DOMAINS:
            raise AttestationFormatError(
                f"predicate.evaluation.riskDomain {risk_domain!r} is not one of {', '.join(RISK_DOMAINS)}"
            )
        sample_size = results.get("sampleSize")
        if sample_size is not None and (isinstance(sample_size, bool) or not isinstance(sample_size, int)
                                        or sample_size < 0):
            raise AttestationFormatError("predicate.results.sampleSize must be a non-negative integer")
        harness = _object(evaluation.get("harness", {}), "predicate.evaluation.harness")
        dataset = _object(evaluation.get("dataset", {}), "predicate.evaluation.dataset")
        evaluator = _object(data.get("evaluator"), "predicate.evaluator")
        manifest = None
        if data.get("manifest") is not None:
            try:
                manifest = Manifest.from_dict(data["manifest"])
            except ValueError as exc:
                raise AttestationFormatError(f"predicate.manifest: {exc}") from None
        evidence = None
        if data.get("evidence") is not None:
            raw = _object(data["evidence"], "predicate.evidence")
            sha = _object(raw.get("digest"), "predicate.evidence.digest").get("sha256")
            if not isinstance(sha, str) or len(sha) != 64:
                raise AttestationFormatError("predicate.evidence.digest.sha256 must be a hex SHA-256")
            evidence = EvidenceRef(sha256=sha, name=raw.get("name"), format=raw.get("format"))
        return cls(
            evaluation=Evaluation(
                name=_text(evaluation, "name", "predicate.evaluation") or "",
                benchmark=_text(evaluation, "benchmark", "predicate.evaluation") or "",
                risk_domain=risk_domain,
                metrics={str(k): _finite(v, f"predicate.results.metrics.{k}") for k, v in metrics.items()},
                sample_size=sample_size,
                stderr={
                    str(k): _finite(v, f"predicate.results.stderr.{k}")
                    for k, v in _object(results.get("stderr", {}), "predicate.results.stderr").items()
                },
                harness=_text(harness, "name", "predicate.evaluation.harness", required=False),
                harness_version=_text(harness, "version", "predicate.evaluation.harness", required=False),
                dataset=_text(dataset, "name", "predicate.evaluation.dataset", required=False),
                dataset_revision=_text(dataset, "revision", "predicate.evaluation.dataset", required=False),
                evaluated_at=_time(data, "evaluatedAt", "predicate", required=False),
            ),
            evaluator=EvaluatorRef(
                id=_text(evaluator, "id", "predicate.evaluator") or "",
                organization=_text(evaluator, "organization", "predicate.evaluator", required=False),
            ),
            attested_at=_time(data, "attestedAt", "predicate"),  # type: ignore[arg-type]
            manifest=manifest,
            evidence=evidence,
        )


def evaluation_from_test_result(predicate: Mapping[str, Any]) -> Evaluation:
    """Normalise an in-toto test-result v0.1 predicate: ``result`` becomes metric ``result`` (1 / 0.5 / 0).

    The benchmark is the name of the first ``configuration`` resource (the test suite that ran); test counts become
    metrics ``passedTests`` / ``warnedTests`` / ``failedTests`` and the sample size is their sum.
    """
    predicate = _object(predicate, "predicate")
    result = predicate.get("result")
    if not isinstance(result, str) or result not in _TEST_RESULT_SCORES:
        raise AttestationFormatError(f"predicate.result is {result!r}, expected PASSED, WARNED or FAILED")
    configuration = predicate.get("configuration") or []
    if not isinstance(configuration, list) or not configuration or not isinstance(configuration[0], Mapping):
        raise AttestationFormatError("predicate.configuration must list the test suite that ran")
    benchmark = configuration[0].get("name")
    if not isinstance(benchmark, str) or not benchmark:
        raise AttestationFormatError("predicate.configuration[0].name must name the test suite")
    metrics = {"result": _TEST_RESULT_SCORES[result]}
    total = 0
    for key in ("passedTests", "warnedTests", "failedTests"):
        tests = predicate.get(key, [])
        if not isinstance(tests, list):
            raise AttestationFormatError(f"predicate.{key} must be a list")
        metrics[key] = float(len(tests))
        total += len(tests)
    return Evaluation(name=benchmark, benchmark=benchmark, risk_domain=None, metrics=metrics, sample_size=total or None)


def evaluation_from_eval_result(predicate: Mapping[str, Any]) -> Evaluation:
    """Normalise an in-toto eval-result v0.1 predicate: ``suite.name`` is the benchmark (looked up in the catalogue
    like any other), each claim a bound on its metric at its threshold (:data:`_CLAIM_RELATIONS`), ``sampleSize`` the
    sample size, ``evaluatedAt`` the evaluation time; ``harness`` name and version are kept.

    Fields the draft requires must be there with their documented types; unknown fields are ignored, as the
    predicate's parsing rules require. ``commitments`` are salted hashes, never digests, and are not read.
    Raises AttestationFormatError naming the field.
    """
    predicate = _object(predicate, "predicate")
    _text(_object(predicate.get("verifier"), "predicate.verifier"), "id", "predicate.verifier")
    suite = _object(predicate.get("suite"), "predicate.suite")
    benchmark = _text(suite, "name", "predicate.suite") or ""
    _text(suite, "version", "predicate.suite")
    profile = predicate.get("subjectProfile")
    if profile not in EVAL_RESULT_PROFILES:
        raise AttestationFormatError(
            f"predicate.subjectProfile is {profile!r}: the gate needs the model itself as subject "
            f"({' or '.join(EVAL_RESULT_PROFILES)}); a 'receipt' subject does not name the model")
    _object(predicate.get("commitments"), "predicate.commitments")
    _text(predicate, "assuranceLevel", "predicate")
    sample_size = predicate.get("sampleSize")
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 0:
        raise AttestationFormatError("predicate.sampleSize must be a non-negative integer")
    claims = predicate.get("claims")
    if not isinstance(claims, list) or not claims:
        raise AttestationFormatError("predicate.claims must list at least one claim")
    metrics: dict[str, float] = {}
    bounds: dict[str, str] = {}
    for index, raw in enumerate(claims):
        where = f"predicate.claims[{index}]"
        claim = _object(raw, where)
        metric = _text(claim, "metric", where) or ""
        comparator, passed, threshold = claim.get("comparator"), claim.get("passed"), claim.get("threshold")
        relation = (_CLAIM_RELATIONS.get((comparator, passed))
                    if isinstance(comparator, str) and isinstance(passed, bool) else None)
        if relation is None:
            raise AttestationFormatError(f"{where} needs comparator >=, >, <= or < and passed true or false")
        # A decimal string, never a JSON number (the draft's rule, so no float round-trip changes it).
        if not isinstance(threshold, str) or not _DECIMAL.fullmatch(threshold):
            raise AttestationFormatError(f"{where}.threshold must be a decimal string such as \"0.98\"")
        if metric in metrics:
            raise AttestationFormatError(f"{where} repeats metric {metric!r}; one claim per metric")
        metrics[metric] = float(threshold)
        bounds[metric] = relation
    harness = _object(predicate.get("harness", {}), "predicate.harness")
    return Evaluation(
        name=benchmark,
        benchmark=benchmark,
        risk_domain=None,
        metrics=metrics,
        sample_size=sample_size,
        harness=_text(harness, "name", "predicate.harness", required=False),
        harness_version=_text(harness, "version", "predicate.harness", required=False),
        evaluated_at=_time(predicate, "evaluatedAt", "predicate"),
        bounds=bounds,
    )


def build_statement(subject_name: str, manifest: Manifest, predicate: EvaluationPredicate) -> Statement:
    return Statement(
        subjects=(Subject(name=subject_name, digest={"sha256": manifest.root_digest}),),
        predicate_type=EVALUATION_PREDICATE_TYPE,
        predicate=predicate.to_dict(),
    )
