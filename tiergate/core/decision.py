"""The release decision: verified evidence + policy + tier -> allow or deny, with one row per requirement.

Rules that make a decision deterministic and hard to game:

- An attestation that fails verification counts as absent; it is listed with its reason.
- When several valid attestations speak to one requirement, the *worst* result counts (no shopping for the best
  score); the rows name every attestation that was considered.
- Freshness is measured on the gate's clock from the older of the evaluation time and the signing time.
- The same inputs and clock give byte-identical JSON (:meth:`Decision.to_json`), so auditors can replay it.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

from tiergate.core.formats import AUXILIARY_CLASSES, WEIGHT_CLASSES
from tiergate.core.manifest import Manifest, parse_digest, weight_format
from tiergate.core.policy import EffectiveTier, EvaluationRequirement, Policy, format_duration
from tiergate.core.timeutil import format_time, parse_time
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, Rejection, VerifiedAttestation, unique_inputs, verify_all
from tiergate.errors import InputError

DECISION_SCHEMA = "https://tiergate.dev/decision/v1"

MET, NOT_MET = "met", "not_met"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}


@dataclass(frozen=True)
class RequirementResult:
    id: str
    tier: str
    description: str
    status: str  # met | not_met
    reason: str
    evidence: tuple[str, ...] = ()  # digests of the attestations the result rests on

    @property
    def met(self) -> bool:
        return self.status == MET

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tier": self.tier, "description": self.description, "status": self.status,
                "reason": self.reason, "evidence": list(self.evidence)}


@dataclass(frozen=True)
class Decision:
    decision: str  # allow | deny
    mode: str  # enforce | warn
    requested_tier: str
    satisfied_tier: str | None
    model_digest: str
    files_digest: str | None  # Manifest.files_digest (names included); None when decided by digest only
    policy_uri: str
    policy_digest: str
    trust_source: str
    trust_digest: str | None  # None for a trust store built in memory
    requirements: tuple[RequirementResult, ...]
    rejected: tuple[Rejection, ...]
    inputs: tuple[tuple[str, str], ...]  # (source, digest) of every attestation considered, accepted or not
    time: datetime

    @property
    def allowed(self) -> bool:
        """Whether the publish may go ahead: allowed, or denied in warn mode."""
        return self.decision == "allow" or self.mode == "warn"

    @property
    def missing(self) -> tuple[RequirementResult, ...]:
        return tuple(r for r in self.requirements if not r.met)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DECISION_SCHEMA,
            "decision": self.decision,
            "mode": self.mode,
            "requested_tier": self.requested_tier,
            "satisfied_tier": self.satisfied_tier,
            "model_digest": self.model_digest,
            "files_digest": self.files_digest,
            "policy": {"uri": self.policy_uri, "digest": self.policy_digest},
            "trust": {"source": self.trust_source, "digest": self.trust_digest},
            "requirements": [r.to_dict() for r in self.requirements],
            "rejected_attestations": [{"source": r.source, "digest": r.digest, "reason": r.reason}
                                      for r in self.rejected],
            "inputs": [{"source": s, "digest": d} for s, d in self.inputs],
            "time": format_time(self.time),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Decision:
        """Read a decision back from its JSON form, strictly: the client treats an answer of the gate service that is
        not exactly a decision as a deny, and the auditor a malformed decision entry as a bad entry.

        Raises :class:`DecisionFormatError` naming the field.
        """
        return _decision_from_dict(data)

    def summary(self) -> str:
        """One paragraph for a release engineer: what was decided, what is missing, what to do."""
        head = f"release at tier '{self.requested_tier}' {'allowed' if self.decision == 'allow' else 'denied'}"
        if self.decision == "allow":
            return f"{head} for {self.model_digest} (policy {self.policy_digest[:19]})."
        missing = "; ".join(f"{r.id}: {r.reason}" for r in self.missing)
        rejected = (f" {len(self.rejected)} attestation(s) rejected, e.g. {self.rejected[0].source}: "
                    f"{self.rejected[0].reason}." if self.rejected else "")
        best = f"highest tier supported: '{self.satisfied_tier}'" if self.satisfied_tier else "no tier is supported"
        warn = " [warn mode: not enforced]" if self.mode == "warn" else ""
        return (f"{head}{warn}: {missing}.{rejected} {best}. "
                "Add signed attestations from trusted evaluators that meet these requirements, "
                "or publish at a lower tier.")


# --- reading a decision back ------------------------------------------------------------------------------------

_FIELDS = {"schema", "decision", "mode", "requested_tier", "satisfied_tier", "model_digest", "files_digest", "policy",
           "trust", "requirements", "rejected_attestations", "inputs", "time"}


class DecisionFormatError(InputError):
    """A JSON document that should be a decision is not one. The message names the field."""


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DecisionFormatError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DecisionFormatError(f"{where} must be a list")
    return value


def _str(data: Mapping[str, Any], key: str, where: str, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional and key in data:
        return None
    if not isinstance(value, str):
        raise DecisionFormatError(f"{where}{key} must be a string")
    return value


def _choice(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _str(data, key, "")
    if not isinstance(value, str) or value not in allowed:
        raise DecisionFormatError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _decision_from_dict(data: Any) -> Decision:
    """See :meth:`Decision.from_dict`."""
    body = _obj(data, "a decision")
    missing = sorted(_FIELDS - set(body))
    if missing:
        raise DecisionFormatError(f"decision has no {missing[0]!r}")
    extra = sorted(set(body) - _FIELDS)
    if extra:
        raise DecisionFormatError(f"decision has unknown field {extra[0]!r}")
    if body["schema"] != DECISION_SCHEMA:
        raise DecisionFormatError(f"schema must be {DECISION_SCHEMA!r}, not {body['schema']!r}")
    digest = _str(body, "model_digest", "")
    try:
        if digest != f"sha256:{parse_digest(digest)}":
            raise DecisionFormatError(f"model_digest {digest!r} is not written as sha256:<lowercase hex>")
    except InputError as exc:
        raise DecisionFormatError(f"model_digest: {exc}") from None
    policy = _obj(body["policy"], "policy")
    trust = _obj(body["trust"], "trust")
    try:
        when = parse_time(_str(body, "time", ""))
    except ValueError as exc:
        raise DecisionFormatError(f"time: {exc}") from None
    requirements = []
    for i, raw in enumerate(_list(body["requirements"], "requirements")):
        row = _obj(raw, f"requirements[{i}]")
        where = f"requirements[{i}]."
        evidence = _list(row.get("evidence"), f"{where}evidence")
        if not all(isinstance(e, str) for e in evidence):
            raise DecisionFormatError(f"{where}evidence must be a list of digests")
        status = _str(row, "status", where)
        if status not in (MET, NOT_MET):
            raise DecisionFormatError(f"{where}status must be {MET} or {NOT_MET}, not {status!r}")
        requirements.append(RequirementResult(
            _str(row, "id", where), _str(row, "tier", where), _str(row, "description", where), status,
            _str(row, "reason", where), tuple(evidence)))
    rejected = []
    for i, raw in enumerate(_list(body["rejected_attestations"], "rejected_attestations")):
        row = _obj(raw, f"rejected_attestations[{i}]")
        where = f"rejected_attestations[{i}]."
        rejected.append(Rejection(_str(row, "source", where), _str(row, "digest", where), _str(row, "reason", where)))
    inputs = []
    for i, raw in enumerate(_list(body["inputs"], "inputs")):
        row = _obj(raw, f"inputs[{i}]")
        inputs.append((_str(row, "source", f"inputs[{i}]."), _str(row, "digest", f"inputs[{i}].")))
    decision = Decision(
        decision=_choice(body, "decision", ("allow", "deny")),
        mode=_choice(body, "mode", ("enforce", "warn")),
        requested_tier=_str(body, "requested_tier", ""),
        satisfied_tier=_str(body, "satisfied_tier", "", optional=True),
        model_digest=digest,
        files_digest=_str(body, "files_digest", "", optional=True),
        policy_uri=_str(policy, "uri", "policy."),
        policy_digest=_str(policy, "digest", "policy."),
        trust_source=_str(trust, "source", "trust."),
        trust_digest=_str(trust, "digest", "trust.", optional=True),
        requirements=tuple(requirements),
        rejected=tuple(rejected),
        inputs=tuple(inputs),
        time=when,
    )
    if decision.decision == "allow" and not all(r.met for r in decision.requirements):
        raise DecisionFormatError("decision is 'allow' although a requirement is not met")
    if decision.decision == "deny" and all(r.met for r in decision.requirements):
        raise DecisionFormatError("decision is 'deny' although every requirement is met")
    if decision.to_dict() != dict(body):
        raise DecisionFormatError("decision does not round-trip (a field has an unexpected form)")
    return decision


# --- evaluating requirements -------------------------------------------------------------------------------------


def _age_start(item: VerifiedAttestation) -> datetime | None:
    """The earliest of the claimed times and the trusted signing time: a signer may claim an older time (it only
    ages its own evidence), never a fresher one than a log or timestamp authority saw."""
    trusted = item.trusted_time.time if item.trusted_time else None
    claimed = (item.attested_at, item.evaluation.evaluated_at if item.evaluation else None)
    times = [t for t in (*claimed, trusted) if t is not None]
    return min(times) if times else None


def _fresh(items: Iterable[VerifiedAttestation], tier: EffectiveTier,
           now: datetime) -> tuple[list[VerifiedAttestation], dict[str, str]]:
    """Split evidence into what is fresh enough for the tier and, by digest, why the rest is not counted."""
    if tier.max_age is None:
        return list(items), {}
    fresh, stale = [], {}
    for item in items:
        start = _age_start(item)
        if start is None:
            stale[item.digest] = f"{item.source} has no signing or evaluation time, so its age cannot be checked"
        elif now - start > tier.max_age:
            stale[item.digest] = (f"{item.source} is from {format_time(start)}, "
                                  f"older than {format_duration(tier.max_age)}")
        else:
            fresh.append(item)
    return fresh, stale


def _matches(req: EvaluationRequirement, item: VerifiedAttestation) -> bool:
    """Whether ``item`` speaks to ``req``. Its risk domain is the one verification derived from its benchmark (the
    policy's catalogue), and only signers trusted for that domain are in ``item.signers``: a requirement naming
    only a benchmark still needs a signer in scope for what that benchmark measures."""
    ev = item.evaluation
    if ev is None or not item.signers or not req.covers_benchmark(ev.benchmark):
        return False
    if req.value_in(ev.metrics_for(req.comparator, req.threshold)) is None:
        return False
    return req.risk_domain is None or ev.risk_domain == req.risk_domain


def _unqualified(req: EvaluationRequirement, item: VerifiedAttestation) -> str | None:
    """Why a matching attestation does not count for ``req`` (too few samples, a condition unmet), or None."""
    ev = item.evaluation
    assert ev is not None
    if req.min_samples and (ev.sample_size or 0) < req.min_samples:
        return f"{item.source} has sample size {ev.sample_size or 0}, below the {req.min_samples} required"
    for condition in req.conditions:
        value = ev.metrics_for(condition.comparator, condition.threshold).get(condition.metric)
        if value is None:
            return f"{item.source} does not report {condition.metric} (needs {condition.describe()})"
        if not _COMPARE[condition.comparator](value, condition.threshold):
            return f"{item.source} has {condition.metric} = {value:g} (needs {condition.describe()})"
    return None


def _evaluation_row(
    tier_name: str, req: EvaluationRequirement, evidence: Sequence[VerifiedAttestation],
    stale: Sequence[VerifiedAttestation], stale_why: dict[str, str],
) -> RequirementResult:
    def row(status: str, reason: str, used: Sequence[VerifiedAttestation] = ()) -> RequirementResult:
        return RequirementResult(req.id, tier_name, req.describe(), status, reason,
                                 tuple(sorted(a.digest for a in used)))

    matching = [a for a in evidence if _matches(req, a)]
    unqualified = {a.digest: why for a in matching if (why := _unqualified(req, a))}
    counted = [a for a in matching if a.digest not in unqualified]
    if not counted:
        if unqualified:
            return row(NOT_MET, "not counted: " + "; ".join(unqualified.values()), list(matching))
        too_old = [stale_why[a.digest] for a in stale if _matches(req, a)]
        stale_note = f" (not counted: {'; '.join(too_old)})" if too_old else ""
        return row(NOT_MET, f"no valid attestation reports {req.describe()}{stale_note}")
    values = [req.value_in(a.evaluation.metrics_for(req.comparator, req.threshold)) for a in counted]  # type: ignore[union-attr]
    by = ", ".join(sorted({a.evaluator.evaluator_id for a in counted}))
    if unqualified:  # say so: a bad score on a small sample must not vanish silently behind a good one
        by += f"; {len(unqualified)} attestation(s) not counted ({'; '.join(unqualified.values())})"
    if req.comparator == "reported":
        return row(MET, f"reported by {by}", counted)
    worst = req.worst(values)  # type: ignore[arg-type]
    of = f" (worst of {len(counted)})" if len(counted) > 1 else ""
    if _COMPARE[req.comparator](worst, req.threshold):  # type: ignore[arg-type]
        return row(MET, f"{req.metric} = {worst:g}{of} {req.comparator} {req.threshold:g}, attested by {by}", counted)
    return row(NOT_MET, f"{req.metric} = {worst:g}{of} does not satisfy {req.comparator} {req.threshold:g} "
                        f"(attested by {by})", counted)


def _signer_rows(tier: EffectiveTier, evidence: Sequence[VerifiedAttestation]) -> list[RequirementResult]:
    rule = tier.signers
    signers = [s for a in evidence for s in a.signers]
    used = tuple(sorted({a.digest for a in evidence}))
    rows = []
    if rule.min_organizations:
        orgs = sorted({s.organization for s in signers})
        status = MET if len(orgs) >= rule.min_organizations else NOT_MET
        rows.append(RequirementResult(
            "signers.organizations", tier.name,
            f"evidence signed by at least {rule.min_organizations} distinct evaluator organizations", status,
            f"{len(orgs)} organization(s): {', '.join(orgs) or 'none'}", used))
    if rule.min_independent:
        independent = sorted({s.organization for s in signers if s.independent})
        status = MET if len(independent) >= rule.min_independent else NOT_MET
        rows.append(RequirementResult(
            "signers.independent", tier.name,
            f"at least {rule.min_independent} organization(s) independent of the model developer", status,
            f"independent: {', '.join(independent) or 'none'}", used))
    for kind in rule.required_kinds:
        # A developer's own evaluator never counts as a third party or government, whatever its declared kind.
        found = sorted({s.organization for s in signers if s.kind == kind and (kind == "developer" or s.independent)})
        rows.append(RequirementResult(
            f"signers.kind.{kind}", tier.name, f"at least one {kind.replace('_', ' ')} evaluator signed",
            MET if found else NOT_MET, f"{kind}: {', '.join(found) or 'none'}", used))
    return rows


def _format_row(tier: EffectiveTier, manifest: Manifest | None) -> list[RequirementResult]:
    """The ``formats`` rule, judged on each file's content class (never its name): weight classes must be listed,
    auxiliary classes (text, images, tokenizers) are always allowed, anything unclassified or unknown is refused."""
    if tier.allowed_formats is None:
        return []
    description = f"weights only in {', '.join(tier.allowed_formats)} (judged by content)"
    rid = "formats"
    if manifest is None:
        return [RequirementResult(rid, tier.name, description, NOT_MET,
                                  "the file list is unknown (decided by digest only)")]
    refused = []
    for f in manifest.files:
        if f.content in AUXILIARY_CLASSES or f.content in tier.allowed_formats:
            continue
        found = "not classified: its bytes were not available, e.g. an LFS object not fetched" if f.content is None \
            else f.content
        named = weight_format(f.path)
        refused.append(f"{f.path} ({found}{f', named like {named}' if named and named != found else ''})")
    if refused:
        shown = ", ".join(sorted(refused)[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        return [RequirementResult(rid, tier.name, description, NOT_MET,
                                  f"refused content: {shown}; convert weights to an allowed format "
                                  "(e.g. safetensors) and remove anything else that is not text")]
    weights = [f for f in manifest.files if f.content in WEIGHT_CLASSES]
    return [RequirementResult(rid, tier.name, description, MET, f"{len(weights)} weight file(s), all allowed")]


def evaluate_tier(
    policy: Policy, tier_name: str, accepted: Sequence[VerifiedAttestation], manifest: Manifest | None, now: datetime
) -> list[RequirementResult]:
    """Every requirement of ``tier_name`` (inherited ones included), met or not, in policy order."""
    tier = policy.effective(tier_name)
    evidence = [a for a in accepted if a.evaluation is not None]
    fresh, stale_why = _fresh(evidence, tier, now)
    # Evidence too old for the tier counts as absent; only the rows it would have served say so.
    stale = [a for a in evidence if a.digest in stale_why]
    rows = [_evaluation_row(owner, req, fresh, stale, stale_why) for owner, req in tier.evaluations]
    rows += _signer_rows(tier, fresh)
    rows += _format_row(tier, manifest)
    return rows


def decide(
    policy: Policy,
    tier: str,
    model: Manifest | str,
    attestations: Sequence[AttestationInput],
    trust: TrustStore,
    now: datetime,
) -> Decision:
    """Verify ``attestations`` for ``model`` (a manifest or a hex root digest) and decide on releasing at ``tier``."""
    requested = policy.tier(tier).name
    items = unique_inputs(attestations)
    manifest = model if isinstance(model, Manifest) else None
    report = verify_all(items, trust, model, now, policy.clock_skew, policy.benchmarks)
    requirements = evaluate_tier(policy, requested, report.accepted, manifest, now)
    satisfied = None
    for name in policy.tier_names:
        rows = requirements if name == requested else evaluate_tier(policy, name, report.accepted, manifest, now)
        if all(r.met for r in rows):
            satisfied = name
    root = model.root_digest if isinstance(model, Manifest) else model
    return Decision(
        decision="allow" if all(r.met for r in requirements) else "deny",
        mode=policy.effective(requested).mode,
        requested_tier=requested,
        satisfied_tier=satisfied,
        model_digest=f"sha256:{root}",
        files_digest=manifest.files_digest if manifest is not None else None,
        policy_uri=policy.uri,
        policy_digest=policy.digest,
        trust_source=trust.source,
        trust_digest=trust.digest,
        requirements=tuple(requirements),
        rejected=tuple(sorted(report.rejected, key=lambda r: (r.source, r.digest))),
        inputs=tuple(sorted((i.source, i.digest) for i in items)),
        time=now,
    )
