"""Re-checking one log entry as an auditor: is it a well-formed entry, and does what it claims still hold?

- an attestation entry must verify against the auditor's trust store for the model it was logged for, judged at
  the time it was logged (a key revoked *later* as compromised fails: the evidence is no longer worth anything);
- a decision entry must be a well-formed decision (``Decision.to_dict()``) about the entry's model.
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.core.log.entries import AttestationRecord, EntryFormatError, parse_entry
from gate.core.trust import TrustStore
from gate.core.verify import AttestationInput, verify_attestation
from gate.errors import GateError
from gate.core.decision import Decision


class EntryProblem(Exception):
    """What is wrong with one entry (the message), raised by :func:`check_entry`."""


@dataclass(frozen=True)
class EntrySummary:
    kind: str
    model_digest: str
    text: str  # one line for people, e.g. "decision allow at tier hosted"


def describe(data: bytes) -> EntrySummary:
    """Decode an entry for display, checking its format only."""
    try:
        record = parse_entry(data)
    except EntryFormatError as exc:
        raise EntryProblem(f"malformed entry: {exc}") from None
    if isinstance(record, AttestationRecord):
        return EntrySummary("attestation", record.model_digest, f"attestation {record.digest[:19]}...")
    decision = record.decision
    return EntrySummary("decision", record.model_digest,
                        f"decision {decision.get('decision')} at tier {decision.get('requested_tier')}")


def check_entry(index: int, data: bytes, trust: TrustStore | None) -> EntrySummary:
    """Check one entry fully; raises :class:`EntryProblem`. Without a trust store, signatures are not checked."""
    summary = describe(data)
    record = parse_entry(data)
    if isinstance(record, AttestationRecord):
        if trust is not None:
            item = AttestationInput(f"log entry {index}", record.data)
            try:
                verified = verify_attestation(item, trust, record.model_digest.split(":", 1)[1], record.time)
            except GateError as exc:
                raise EntryProblem(f"attestation does not verify against the trust store: {exc}") from None
            return EntrySummary(summary.kind, summary.model_digest,
                                f"{summary.text} by {verified.evaluator.evaluator_id}")
        return summary
    try:
        Decision.from_dict(record.decision)
    except GateError as exc:
        raise EntryProblem(f"malformed decision: {exc}") from None
    return summary
