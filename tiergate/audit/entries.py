"""Re-checking one log entry as an auditor: is it a well-formed entry, and does what it claims still hold?

- an attestation entry must verify against the auditor's trust store for the model it was logged for, judged at
  the time it was logged (a key revoked *later* as compromised fails: the evidence is no longer worth anything);
- a decision entry must be a well-formed decision (``Decision.to_dict()``) about the entry's model;
- webhook and containment entries (the gate service's Hugging Face webhook) must be well formed; that a containment
  cites an earlier webhook entry and an earlier decision about the same model, whose outcome it follows, is checked
  across entries by :class:`WebhookLinks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tiergate.core.log.entries import (
    AttestationRecord, ContainmentRecord, DecisionRecord, EntryFormatError, ParsedEntry, WebhookRecord, parse_entry,
)
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import GateError
from tiergate.core.decision import Decision


class EntryProblem(Exception):
    """What is wrong with one entry (the message), raised by :func:`check_entry`."""


@dataclass(frozen=True)
class EntrySummary:
    kind: str
    model_digest: str  # for an entry about no model (a webhook event): the repository it is about
    text: str  # one line for people, e.g. "decision allow at tier hosted"
    record: ParsedEntry | None = field(default=None, compare=False, repr=False)


def _subject(repo_type: Any, repo: Any) -> str:
    return f"huggingface {repo_type} {repo}"


def describe(data: bytes) -> EntrySummary:
    """Decode an entry for display, checking its format only."""
    try:
        record = parse_entry(data)
    except EntryFormatError as exc:
        raise EntryProblem(f"malformed entry: {exc}") from None
    if isinstance(record, AttestationRecord):
        return EntrySummary("attestation", record.model_digest, f"attestation {record.digest[:19]}...", record)
    if isinstance(record, WebhookRecord):
        hook = record.webhook
        return EntrySummary("webhook", _subject(hook["repo_type"], hook["repo"]),
                            f"webhook {hook['scope']}/{hook['action']}", record)
    if isinstance(record, ContainmentRecord):
        item = record.containment
        where = f"{item['repo']}@{str(item['commit'])[:12]}" if item["commit"] else item["repo"]
        done = f" ({', '.join(item['actions'])})" if item["actions"] else ""
        return EntrySummary("containment", record.model_digest or _subject(item["repo_type"], item["repo"]),
                            f"containment {item['outcome']} of {where}"
                            + (f" at tier {item['tier']}" if item["tier"] else "") + done, record)
    decision = record.decision
    return EntrySummary("decision", record.model_digest,
                        f"decision {decision.get('decision')} at tier {decision.get('requested_tier')}", record)


def check_entry(index: int, data: bytes, trust: TrustStore | None) -> EntrySummary:
    """Check one entry fully; raises :class:`EntryProblem`. Without a trust store, signatures are not checked."""
    summary = describe(data)
    record = summary.record
    if isinstance(record, (WebhookRecord, ContainmentRecord)):
        if isinstance(record, ContainmentRecord):
            for key in ("decision_index", "webhook_index"):
                if record.containment[key] is not None and record.containment[key] >= index:
                    raise EntryProblem(f"containment cites {key.split('_')[0]} entry {record.containment[key]}, "
                                       "which is not earlier in the log")
        return summary
    if isinstance(record, AttestationRecord):
        if trust is not None:
            item = AttestationInput(f"log entry {index}", record.data, recorded_at=record.time)
            try:
                verified = verify_attestation(item, trust, record.model_digest.split(":", 1)[1], record.time)
            except GateError as exc:
                raise EntryProblem(f"attestation does not verify against the trust store: {exc}") from None
            return EntrySummary(summary.kind, summary.model_digest,
                                f"{summary.text} by {verified.evaluator.evaluator_id}", record)
        return summary
    assert isinstance(record, DecisionRecord)
    try:
        Decision.from_dict(record.decision)
    except GateError as exc:
        raise EntryProblem(f"malformed decision: {exc}") from None
    return summary


#: The decision context key by which a webhook's decisions name the webhook entry they answer.
WEBHOOK_CONTEXT_KEY = "webhook_entry"


@dataclass
class WebhookLinks:
    """Cross-entry checks of the webhook's entries, fed every well-formed entry in index order.

    A containment entry must cite an earlier webhook entry, and (when it cites one) an earlier decision entry about
    the same model that answers the same webhook, whose decision its outcome follows: ``allowed`` an allow (or a deny
    in warn mode), ``contained`` and ``denied`` an enforced deny. Only the webhook's entries and the decisions that
    answer one are remembered, so memory stays small on a log of ordinary decisions.
    """

    webhooks: set[int] = field(default_factory=set)
    decisions: dict[int, tuple[str, str, str, Any]] = field(default_factory=dict)  # model, decision, mode, webhook

    def check(self, index: int, summary: EntrySummary) -> None:
        """Remember or check the entry at ``index``; raises :class:`EntryProblem` for a containment that does not
        hold."""
        record = summary.record
        if isinstance(record, WebhookRecord):
            self.webhooks.add(index)
        elif isinstance(record, DecisionRecord):
            if WEBHOOK_CONTEXT_KEY in record.context:
                decision = record.decision
                self.decisions[index] = (record.model_digest, str(decision.get("decision")), str(decision.get("mode")),
                                         record.context[WEBHOOK_CONTEXT_KEY])
        elif isinstance(record, ContainmentRecord):
            self._containment(record)

    def _containment(self, record: ContainmentRecord) -> None:
        item = record.containment
        if item["webhook_index"] not in self.webhooks:
            raise EntryProblem(f"containment cites entry {item['webhook_index']} as its webhook, which is not a "
                               "webhook entry")
        cited = item["decision_index"]
        if cited is None:
            return
        found = self.decisions.get(cited)
        if found is None:
            raise EntryProblem(f"containment cites entry {cited} as its decision, which is not a decision answering "
                               "a webhook")
        model, decision, mode, webhook = found
        if model != record.model_digest:
            raise EntryProblem(f"containment is about {record.model_digest}, the decision it cites ({cited}) about "
                               f"{model}")
        if webhook != item["webhook_index"]:
            raise EntryProblem(f"containment answers webhook entry {item['webhook_index']}, the decision it cites "
                               f"({cited}) webhook entry {webhook}")
        allowed = decision == "allow" or mode == "warn"
        outcome = item["outcome"]
        if (outcome == "allowed" and not allowed) or (outcome in ("contained", "denied") and allowed):
            raise EntryProblem(f"containment outcome {outcome!r} does not follow the decision it cites ({cited}: "
                               f"{decision}{', warn mode' if mode == 'warn' else ''})")
