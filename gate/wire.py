"""Reading a decision back from its JSON form (``Decision.to_dict()``), strictly.

Two readers need it and both must fail closed: the client, for whom an answer from the gate service that is not
exactly a decision means "deny", and the auditor, for whom a decision entry in the log that is not well formed is a
bad entry. The core only writes this form; reading it lives here so the core stays free of wire concerns.
"""

from __future__ import annotations

from typing import Any, Mapping

from gate.core.decision import DECISION_SCHEMA, MET, NOT_MET, Decision, RequirementResult
from gate.core.manifest import parse_digest
from gate.core.timeutil import parse_time
from gate.core.verify import Rejection
from gate.errors import InputError

_FIELDS = {"schema", "decision", "mode", "requested_tier", "satisfied_tier", "model_digest", "policy", "requirements",
           "rejected_attestations", "inputs", "time"}


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
    if value not in allowed:
        raise DecisionFormatError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def decision_from_dict(data: Any) -> Decision:
    """The :class:`Decision` whose ``to_dict()`` is ``data``; raises :class:`DecisionFormatError` otherwise."""
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
        policy_uri=_str(policy, "uri", "policy."),
        policy_digest=_str(policy, "digest", "policy."),
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
