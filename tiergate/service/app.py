"""The service's operations, free of HTTP: submit an attestation, decide, and read the log.

Why the log is written *before* an answer leaves: a decision or an accepted attestation that is not in the log did
not happen. If the append fails the caller gets an error (a deny, for a publish), never an unlogged allow.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping, Sequence

from tiergate.core.answer import AnswerRequest, SignedAnswer, body_digest
from tiergate.core.attestation import AttestationFormatError, Statement
from tiergate.core.bundle import is_bundle, is_oms_signature, parse_bundle
from tiergate.core.decision import Decision
from tiergate.core.dsse import Envelope
from tiergate.core.log.checkpoint import Checkpoint, NoteSigner
from tiergate.core.log.entries import (
    DecisionTooLarge, EntryFormatError, attestation_entry, bounded_decision_record, entry_kind,
)
from tiergate.core.log.merkle import TreeRangeError
from tiergate.core.log.store import MAX_ENTRY_SIZE, LogStore
from tiergate.core.log.tiles import TilePath
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.timeutil import utcnow
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import ConfigError, VerificationError
from tiergate.runtime import ConfigurationBroken, LocalDecider, RecordedDecision, Rules
from tiergate.runtime.local import RulesLog, decision_entries, source_of_logged
from tiergate.service.attestations import AttestationIndex
from tiergate.service.bodies import AttestationSubmission, DecisionRequest, model_digest
from tiergate.service.responses import ApiError, bad_request
from tiergate.service.targets import TARGET_FORMS, TargetError, tier_for_target
from tiergate.service.tokens import TokenSet

if TYPE_CHECKING:  # only for the annotation: the webhook is built (and huggingface_hub imported) when enabled
    from tiergate.service.webhook import HfWebhook

#: Entries returned by one ``GET /v1/log/entries`` at most, and bytes of entry data (at least one entry is sent).
#: A tile's worth and 1 MiB: a page is built in milliseconds, so one reader's page never stalls the deciders for long.
MAX_PAGE_ENTRIES = 256
MAX_PAGE_BYTES = 1024 * 1024
#: Results of one ``GET /v1/log/find`` at most, and bytes of entries it reads to tell their kinds (at least one).
MAX_FIND = 1000
MAX_FIND_BYTES = 1024 * 1024
#: Seconds a signed checkpoint is served before the log's size is looked at again: reads never sign, and a busy log
#: is signed (and sent to its witnesses) at most this often, not once per decision.
CHECKPOINT_INTERVAL = 0.5
#: Bytes of full tiles and entry bundles kept in memory: they never change, so a popular one is read from the log once.
TILE_CACHE_BYTES = 64 * 1024 * 1024
#: What the public endpoints say while the trust store or policy does not load (token holders get the reason).
BROKEN_IN_PUBLIC = ("the trust store or policy does not load; every decision is refused until it is fixed (the reason "
                    "is in the service's log)")
#: The context key under which a decision entry records which token asked for it.
REQUESTED_BY = "requested_by"


def source_of_sent(position: int) -> str:
    """How a decision names the n-th attestation sent along with the request."""
    return f"request:attestations[{position}]"


@dataclass(frozen=True)
class Logged:
    """A decision and the index of its log entry."""

    decision: Decision
    index: int


@dataclass
class GateService:
    #: The policy and trust store as their files are now (a :class:`~tiergate.runtime.reload.Reloader`'s ``current``);
    #: raises :class:`~tiergate.runtime.reload.ConfigurationBroken` while they do not load.
    rules: Callable[[], Rules]
    store: LogStore
    signer: NoteSigner
    tokens: TokenSet
    origin: str
    clock: Callable[[], datetime] = utcnow
    #: ``POST /v1/webhooks/huggingface`` (a :class:`tiergate.service.webhook.HfWebhook`); None: the feature is off.
    hf_webhook: HfWebhook | None = None
    #: Witnesses asked to cosign each new checkpoint (:class:`tiergate.service.witness.WitnessClient`).
    witnesses: Sequence[Any] = ()
    checkpoint_interval: float = CHECKPOINT_INTERVAL
    _index: AttestationIndex = field(init=False, repr=False)
    _rules_log: RulesLog = field(init=False, repr=False)
    _submit_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: The published checkpoint: tree size, the signed (and cosigned) note, and when the size was last looked at.
    _checkpoint: tuple[int, bytes, float] | None = field(default=None, repr=False)
    _publish_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _tiles: ImmutableCache = field(default_factory=lambda: ImmutableCache(TILE_CACHE_BYTES), repr=False)

    def __post_init__(self) -> None:
        self._index = AttestationIndex(self.store)
        self._rules_log = RulesLog(self.store)

    @property
    def policy(self) -> Policy:
        return self.rules().policy

    @property
    def trust(self) -> TrustStore:
        return self.rules().trust

    # --- attestations ------------------------------------------------------------------------------------------

    def submit_attestation(self, submission: AttestationSubmission) -> tuple[int, dict[str, Any]]:
        """Verify and log one attestation; ``(201, receipt)`` when new, ``(200, receipt)`` when already held."""
        model = submission.model or _subject_digest(submission.data)
        now = self.clock()
        # Logged now if accepted: judged at the time the log will record, as it will be judged later.
        item = AttestationInput("submitted", submission.data, recorded_at=now)
        rules = self.rules()
        try:
            verified = verify_attestation(item, rules.trust, model, now, rules.policy.clock_skew,
                                          rules.policy.benchmarks)
        except VerificationError as exc:
            raise bad_request(f"attestation rejected: {exc}", reason=str(exc)) from None
        digest = f"sha256:{model}"
        receipt = {"digest": item.digest, "model": digest, "evaluator": verified.evaluator.evaluator_id,
                   "predicate_type": verified.predicate_type}
        with self._submit_lock:  # one process never logs the same attestation twice (replicas may, harmlessly)
            held = {a.digest: a for a in self._index.for_model(digest)}
            if item.digest in held:
                return 200, {**receipt, "index": held[item.digest].index, "status": "already stored"}
            index = self.store.append(_fits(attestation_entry(submission.data, digest, now)), model_digest=digest)
        return 201, {**receipt, "index": index, "status": "stored"}

    def attestations(self, model: str) -> dict[str, Any]:
        digest = f"sha256:{model}"
        items = self._index.for_model(digest)
        return {"model": digest, "attestations": [
            {"digest": a.digest, "index": a.index, "data": base64.b64encode(a.data).decode("ascii")} for a in items]}

    # --- decisions ---------------------------------------------------------------------------------------------

    def tier_of(self, request: DecisionRequest, policy: Policy | None = None) -> str:
        policy = policy or self.policy
        if request.target is not None:
            try:
                return tier_for_target(policy, request.target)
            except TargetError as exc:
                raise bad_request(str(exc)) from None
        try:
            return policy.tier(str(request.tier)).name
        except ConfigError as exc:
            raise bad_request(str(exc)) from None

    def decide(self, request: DecisionRequest, requested_by: str | None = None) -> Logged:
        """Decide with the logged attestations for the model plus those sent, then log the decision (and any newly
        accepted attestation that was sent along) in one append.

        ``requested_by`` (the name of the token that authenticated the request) is recorded in the context under
        :data:`REQUESTED_BY`, replacing anything the caller put there, so the log says who asked.
        """
        rules = self.rules()  # one version of the files for the tier and the decision
        tier = self.tier_of(request, rules.policy)
        # Sent ones are logged with the decision if accepted: judged, like logged ones, at the time the gate saw them.
        received = self.clock()
        sent = [AttestationInput(source_of_sent(i), data, recorded_at=received)
                for i, data in enumerate(request.attestations)]
        context = dict(request.context)
        if requested_by is not None:
            context[REQUESTED_BY] = requested_by
        return self.decide_and_log(tier, request.model, sent, context, rules)

    def sign_answer(self, request: DecisionRequest, logged: Logged, body: bytes) -> str:
        """The signed answer (:mod:`tiergate.core.answer`) binding ``body``, the decision logged at ``logged.index``,
        to ``request`` (its nonce, model, tier or target), signed now with the log's key."""
        decision = logged.decision
        asked = AnswerRequest(request.nonce, decision.model_digest, request.tier, request.target)
        return SignedAnswer(asked, decision.decision, decision.requested_tier, body_digest(body), self.origin,
                            logged.index, self.clock()).sign(self.signer.private_key)

    def decider(self, rules: Rules | None = None) -> LocalDecider:
        """The service's :class:`~tiergate.runtime.port.Decider` for ``rules`` (default: as the files are now): it
        judges with the attestations the log holds for the model plus those sent, and records through
        :meth:`record`."""
        rules = rules or self.rules()
        return LocalDecider(rules.policy, rules.trust, log=self, evidence=self._held, clock=self.clock)

    def decide_and_log(self, tier: str, model: Manifest | str, sent: Sequence[AttestationInput],
                       context: dict[str, Any], rules: Rules | None = None) -> Logged:
        """Decide on ``model`` at ``tier`` with the attestations the log holds for it plus ``sent`` (named by their
        ``source``), and log the decision, with any newly accepted attestation of ``sent``, in one append (through
        :meth:`decider`, with ``rules`` or the files as they are now)."""
        recorded = self.decider(rules).decide(tier, model, sent, context)
        assert recorded.log_index is not None
        return Logged(recorded.decision, recorded.log_index)

    def _held(self, digest: str) -> list[AttestationInput]:
        return [AttestationInput(source_of_logged(a.index), a.data, recorded_at=a.recorded_at)
                for a in self._index.for_model(digest)]

    def record(self, decision: Decision, context: Mapping[str, Any], sent: Sequence[AttestationInput],
               held: Sequence[AttestationInput], policy: Policy, trust: TrustStore) -> RecordedDecision:
        """The service's :class:`~tiergate.runtime.local.DecisionLog`: the decision (its long texts cut as logged),
        citing what it was judged on, and every newly accepted attestation of ``sent``, in one append; the policy
        and trust store first, when the log does not hold them yet."""
        record = decision.to_dict()
        bounded = bounded_decision_record(record)
        if bounded is not record:  # a text was cut for the log: answer with the decision as logged
            decision = Decision.from_dict(bounded)
        try:
            entries = decision_entries(decision, context, sent, held,
                                       lambda: self._rules_log.basis(policy, trust, decision.time), _fits)
        except DecisionTooLarge as exc:
            raise ApiError(413, f"the decision cannot be logged: {exc}; send fewer attestations") from None
        indices = self.store.append_many(entries, [decision.model_digest] * len(entries))
        return RecordedDecision(decision, indices[-1])

    # --- the log -----------------------------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The published signed checkpoint: at most :attr:`checkpoint_interval` seconds behind the log.

        A read never waits for a signature while one is published: when the interval is over, one reader refreshes
        (:meth:`publish`) and the others are served the checkpoint in hand meanwhile.
        """
        published = self._checkpoint
        if published is not None and time.monotonic() - published[2] < self.checkpoint_interval:
            return published[1]
        if not self._publish_lock.acquire(blocking=published is None):
            assert published is not None
            return published[1]
        try:
            return self._publish()
        finally:
            self._publish_lock.release()

    def publish(self) -> bytes:
        """Sign (and have cosigned) the log as it is now if it grew since the last checkpoint; the checkpoint."""
        with self._publish_lock:
            return self._publish()

    def _publish(self) -> bytes:
        size = self.store.size()
        published = self._checkpoint
        if published is not None and published[0] == size:
            self._checkpoint = (size, published[1], time.monotonic())
            return published[1]
        note = Checkpoint(self.origin, size, self.store.root(size)).sign(self.signer.private_key, self.signer.name)
        if self.witnesses:
            from tiergate.service.witness import collect_cosignatures

            note, problems = collect_cosignatures(note, self.witnesses, self.store.consistency_proof)
            for problem in problems:  # the checkpoint is served with the cosignatures it got; auditors count them
                print(f"gate serve: no cosignature for size {size} from {problem}", file=sys.stderr, flush=True)
        self._checkpoint = (size, note, time.monotonic())
        return note

    def run_publisher(self, stop: threading.Event) -> None:
        """Publish every :attr:`checkpoint_interval` seconds until ``stop`` is set, so witnesses see the log grow
        even when nobody reads it (a thread of ``gate serve``)."""
        while True:
            try:
                self.publish()
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end publishing; the next round retries
                print(f"gate serve: cannot publish a checkpoint: {exc}", file=sys.stderr, flush=True)
            if stop.wait(self.checkpoint_interval):
                return

    def tile(self, tile: TilePath) -> bytes:
        """A C2SP tlog-tiles hash tile or entry bundle (404 while the log does not cover it yet). Full ones never
        change and are served from memory after the first read."""
        key = tile.path()
        cached = None if tile.partial else self._tiles.get(key)
        if cached is not None:
            return cached
        try:
            data = self.store.tile(tile)
        except TreeRangeError as exc:
            raise ApiError(404, str(exc)) from None
        except ValueError as exc:
            raise ApiError(404, f"{key}: {exc}; read these entries from /v1/log/entries") from None
        if not tile.partial:
            self._tiles.put(key, data)
        return data

    def entries(self, start: int, end: int | None) -> dict[str, Any]:
        size = self.store.size()
        if start > size:
            raise bad_request(f"start {start} is beyond the end of the log ({size} entries)")
        stop = size if end is None else min(end, size)
        if stop < start:
            raise bad_request(f"end {end} is before start {start}")
        stop = min(stop, start + MAX_PAGE_ENTRIES)
        rows: list[dict[str, Any]] = []
        position, total = start, 0
        while position < stop:
            # Never more at once than the page may still hold, were every entry of the largest size.
            batch = self.store.find(start=position, end=min(stop, position + _batch(MAX_PAGE_BYTES - total)))
            if not batch:
                break
            for entry in batch:
                if rows and total + len(entry.entry) > MAX_PAGE_BYTES:
                    return {"start": start, "end": entry.index, "tree_size": size, "entries": rows}
                total += len(entry.entry)
                rows.append({"index": entry.index, "data": base64.b64encode(entry.entry).decode("ascii")})
            position = batch[-1].index + 1
        return {"start": start, "end": stop, "tree_size": size, "entries": rows}

    def inclusion(self, index: int, size: int | None) -> dict[str, Any]:
        size = self.store.size() if size is None else size
        proof = self.store.inclusion_proof(index, size)
        return {"index": index, "size": size, "hashes": [base64.b64encode(h).decode("ascii") for h in proof]}

    def consistency(self, old: int, new: int | None) -> dict[str, Any]:
        new = self.store.size() if new is None else new
        proof = self.store.consistency_proof(old, new)
        return {"old": old, "new": new, "hashes": [base64.b64encode(h).decode("ascii") for h in proof]}

    def find(self, model: str, start: int, limit: int) -> dict[str, Any]:
        digest = f"sha256:{model}"
        size = self.store.size()
        rows: list[dict[str, Any]] = []
        position, total = min(start, size), 0
        while True:
            # One entry past the limit (or the byte budget) says where the next page starts.
            count = 1 if len(rows) >= limit else min(limit + 1 - len(rows), _batch(MAX_FIND_BYTES - total))
            batch = self.store.find(model_digest=digest, start=position, end=size, limit=count)
            for entry in batch:
                if len(rows) >= limit or (rows and total + len(entry.entry) > MAX_FIND_BYTES):
                    return {"model": digest, "entries": rows, "next": entry.index}
                total += len(entry.entry)
                try:
                    kind = entry_kind(entry.entry)
                except EntryFormatError:
                    kind = "malformed"
                rows.append({"index": entry.index, "kind": kind})
            if len(batch) < count:
                return {"model": digest, "entries": rows, "next": None}
            position = batch[-1].index + 1

    def health(self) -> dict[str, Any]:
        """Serving, the log's size and key, and what decisions are judged against now (or why nothing is): the log
        stays readable while the trust store or policy does not load. A 503 when the log cannot be written (a hole,
        the database unreachable or read-only, a full disk, the last append failed), saying why."""
        try:
            rules = self.rules()
            judged: dict[str, Any] = {"trust_source": rules.trust.source, "trust_digest": rules.trust.digest,
                                      "policy_uri": rules.policy.uri, "policy_digest": rules.policy.digest}
        except ConfigurationBroken:  # the reason (paths, lines) is for the operator's log, not the public
            judged = {"error": BROKEN_IN_PUBLIC}
        problem = self.store.writable_problem()
        if problem is not None:  # a load balancer takes this replica out; the reason is the operator's to act on
            error = ApiError(503, f"the log cannot be written, so nothing can be decided: {problem}",
                             status="unavailable", origin=self.origin, log_key=self.signer.verifier.vkey(),
                             rules=judged)
            error.headers["Retry-After"] = "5"
            raise error
        return {"status": "ok", "origin": self.origin, "tree_size": self.store.size(),
                "log_key": self.signer.verifier.vkey(), "rules": judged}

    def policy_summary(self) -> dict[str, Any]:
        """What a client needs to check a decision asked for by target: the policy's digest (every decision carries
        it), its tiers, and which tier each publish target needs (as :func:`tier_for_target` resolves them)."""
        try:
            policy = self.policy
        except ConfigurationBroken:  # a public endpoint: the reason is for the operator's log
            raise ApiError(503, BROKEN_IN_PUBLIC) from None
        hf, ml = policy.huggingface, policy.mlflow
        return {
            "uri": policy.uri, "digest": policy.digest, "tiers": list(policy.tier_names),
            "target_forms": list(TARGET_FORMS),
            "targets": {
                "huggingface": {name: str(getattr(hf, name)) for name in
                                ("private", "gated_manual", "gated_auto", "public")},
                "mlflow": {"registration": ml.registration, "aliases": dict(ml.aliases), "stages": dict(ml.stages),
                           "tags": {key: dict(values) for key, values in ml.tags.items()}},
            },
        }


class ImmutableCache:
    """Values that never change (full tiles), least recently used dropped first, within a byte budget."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._used = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self._budget:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._used += len(value)
            while self._used > self._budget:
                _, dropped = self._items.popitem(last=False)
                self._used -= len(dropped)


def _batch(budget: int) -> int:
    """Entries to read at once so that, were each the largest an entry can be, they stay within ``budget`` bytes
    (one at least: a page always makes progress)."""
    return max(1, min(64, budget // MAX_ENTRY_SIZE))


def _fits(entry: bytes) -> bytes:
    """An attestation entry the log can hold, or a 413: an accepted attestation that cannot be logged is refused."""
    if len(entry) > MAX_ENTRY_SIZE:
        raise ApiError(413, f"the attestation is too large to be logged: its log entry would be {len(entry)} bytes, "
                            f"over the log's {MAX_ENTRY_SIZE}-byte entry limit (base64 adds a third)")
    return entry


def _subject_digest(data: bytes) -> str:
    """The model an attestation is about, when the caller did not say: its single sha256 subject."""
    if is_oms_signature(data):
        raise bad_request("an OMS signature binds a model's files, not a digest: send it with a decision that "
                          "carries the model's manifest", reason="OMS bundle without a manifest")
    try:
        envelope = parse_bundle(data).envelope if is_bundle(data) else Envelope.from_json(data)
        statement = Statement.from_json(envelope.payload)
    except VerificationError as exc:
        raise bad_request(f"attestation rejected: {exc}", reason=str(exc)) from None
    except AttestationFormatError as exc:
        raise bad_request(f"attestation rejected: malformed statement: {exc}",
                          reason=f"malformed statement: {exc}") from None
    digests = sorted(statement.digests("sha256"))
    if len(digests) != 1:
        raise bad_request(f"the attestation names {len(digests)} sha256 subjects; say which model it is for with "
                          "'model'", reason="ambiguous subject")
    return model_digest(digests[0], "the attestation's subject digest")

