"""SLSA Verification Summary Attestations (https://slsa.dev/spec/v1.0/verification_summary) of gate decisions.

The gate signs one with its own key so a consumer downstream can trust the outcome without re-running the check.
``verifiedLevels`` names every tier the evidence supports as ``TIERGATE_TIER_<TIER>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from collections.abc import Mapping, Sequence

from tiergate import __version__
from tiergate.core.attestation import AttestationFormatError, Statement, Subject
from tiergate.core.decision import Decision
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope
from tiergate.core.keys import PrivateKey, PublicKey
from tiergate.core.signing import sign_statement
from tiergate.core.timeutil import format_time, parse_time
from tiergate.errors import VerificationError

VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "https://tiergate.dev/gate"


def tier_level(tier: str) -> str:
    return "TIERGATE_TIER_" + tier.upper().replace("-", "_")


def _sha256(digest: str) -> dict[str, str]:
    return {"sha256": digest.split(":", 1)[-1]}


def build_vsa(decision: Decision, resource_uri: str, tier_order: Sequence[str]) -> Statement:
    """``tier_order`` is the policy's tiers, least open first: tiers are cumulative, so every tier up to the one
    the evidence supports is a verified level."""
    supported = list(tier_order[: tier_order.index(decision.satisfied_tier) + 1]) if decision.satisfied_tier else []
    predicate = {
        "verifier": {"id": VERIFIER_ID, "version": {"tiergate": __version__}},
        "timeVerified": format_time(decision.time),
        "resourceUri": resource_uri,
        "policy": {"uri": decision.policy_uri, "digest": _sha256(decision.policy_digest)},
        "inputAttestations": [{"uri": source, "digest": _sha256(digest)} for source, digest in decision.inputs],
        "verificationResult": "PASSED" if decision.decision == "allow" else "FAILED",
        "verifiedLevels": [tier_level(t) for t in supported],
        "slsaVersion": "1.0",
    }
    subject = Subject(name=resource_uri, digest=_sha256(decision.model_digest))
    return Statement((subject,), VSA_PREDICATE_TYPE, predicate)


def sign_vsa(decision: Decision, resource_uri: str, tier_order: Sequence[str], key: PrivateKey) -> Envelope:
    return sign_statement(build_vsa(decision, resource_uri, tier_order), [key])


@dataclass(frozen=True)
class VerifiedSummary:
    resource_uri: str
    model_digest: str
    result: str  # PASSED | FAILED
    verified_levels: tuple[str, ...]
    policy_uri: str
    policy_digest: str
    time_verified: datetime

    @property
    def passed(self) -> bool:
        return self.result == "PASSED"


def _field(predicate: Mapping[str, Any], key: str) -> Any:
    if key not in predicate:
        raise VerificationError(f"malformed VSA: predicate has no {key!r}")
    return predicate[key]


def verify_vsa(data: bytes, key: PublicKey) -> VerifiedSummary:
    """Check a VSA's signature against the gate's public key and read what it says."""
    envelope = Envelope.from_json(data)
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(f"wrong payloadType {envelope.payload_type!r}: expected {INTOTO_PAYLOAD_TYPE}")
    if not envelope.verified_keys([key]):
        raise VerificationError(f"bad signature: the VSA is not signed by key {key.key_id[:16]}")
    try:
        statement = Statement.from_json(envelope.payload)
    except AttestationFormatError as exc:
        raise VerificationError(f"malformed VSA statement: {exc}") from None
    if statement.predicate_type != VSA_PREDICATE_TYPE:
        raise VerificationError(f"not a VSA: predicateType is {statement.predicate_type!r}")
    predicate = statement.predicate
    result = _field(predicate, "verificationResult")
    if result not in ("PASSED", "FAILED"):
        raise VerificationError(f"malformed VSA: verificationResult is {result!r}")
    policy = _field(predicate, "policy")
    try:
        verified_at = parse_time(_field(predicate, "timeVerified"))
        policy_digest = "sha256:" + policy["digest"]["sha256"]
        model = statement.subjects[0].digest["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"malformed VSA: {exc}") from None
    return VerifiedSummary(
        resource_uri=str(_field(predicate, "resourceUri")),
        model_digest=f"sha256:{model}",
        result=result,
        verified_levels=tuple(_field(predicate, "verifiedLevels")),
        policy_uri=str(policy.get("uri")),
        policy_digest=policy_digest,
        time_verified=verified_at,
    )
