"""A service's answer counts only once it is in a witnessed log: the client's side of split-view protection.

With a log key and k witnesses configured, a decision answered by a gate service is accepted only if the service's
checkpoint (signed by the log key, carrying valid cosignatures by k distinct trusted witnesses) covers the decision's
log index, and the entry at that index, proven included under that checkpoint, is this very decision. A service that
showed this client a log other than the one the witnesses follow would need k witnesses to cosign its fork.

Checkpoints are published at most every few hundred milliseconds (and then cosigned), so the client waits for one
that covers its decision, within its timeout; anything else is a deny.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tiergate.core.answer import load_answer_key
from tiergate.core.keys import PublicKey
from tiergate.core.log import merkle
from tiergate.core.log.checkpoint import (
    Checkpoint,
    NoteVerifier,
    SignedNote,
    parse_checkpoint,
    verify_checkpoint,
)
from tiergate.core.log.cosignature import WitnessVerifier, require_cosignatures
from tiergate.core.log.entries import DecisionRecord, EntryFormatError, parse_entry
from tiergate.errors import ConfigError, InputError, VerificationError
from tiergate.runtime.client import GateClient

#: What must be the same in the answer and the logged decision (texts may be cut for the log, these never are).
_SAME = ("model_digest", "files_digest", "decision", "mode", "requested_tier", "satisfied_tier", "time", "policy",
         "trust", "inputs")
#: Seconds between two looks at the checkpoint while waiting for one that covers the decision.
POLL = 0.1


@dataclass(frozen=True)
class Witnessing:
    """What a client requires of a service's log: its key, the witnesses it trusts and how many must cosign."""

    log_key: PublicKey
    witnesses: tuple[WitnessVerifier, ...]
    required: int

    @classmethod
    def load(cls, server_key: str | os.PathLike[str] | None, witnesses: Sequence[str],
             required: int) -> Witnessing | None:
        """None when no witness is required; raises ConfigError for a requirement that cannot be checked: no service
        key (``server_key``, the file the signed answers are checked with too), or more required than given."""
        if not witnesses and not required:
            return None
        if server_key is None:
            raise ConfigError("witness cosignatures are checked on a checkpoint signed with the service's log key: "
                              "give it too (--server-key FILE, as `gate serve` prints it, or server_key: in "
                              "GATE_CONFIG)")
        trusted = tuple(WitnessVerifier.load(w, "--witness") for w in witnesses)
        if required > len({(w.name, w.key_id) for w in trusted}):
            raise ConfigError(f"{required} witness cosignatures required of {len(trusted)} distinct witnesses given")
        return cls(load_answer_key(server_key), trusted, required)

    def confirm(self, client: GateClient, index: int, decision: dict[str, Any], timeout: float) -> Checkpoint:
        """The witnessed checkpoint under which the entry at ``index`` is ``decision``; raises
        :class:`~tiergate.runtime.transport.GateServiceError` (the publish is denied) otherwise."""
        t = client.transport
        deadline = time.monotonic() + timeout
        while True:
            note = client.checkpoint()
            try:
                stated, _ = parse_checkpoint(note)  # the gate signs under its origin
                checkpoint = verify_checkpoint(note, NoteVerifier(stated.origin, self.log_key))
            except (InputError, VerificationError, ConfigError) as exc:
                raise t.fail(f"sent a checkpoint that does not verify with its log key: {exc}", True) from None
            if checkpoint.size > index:
                break
            if time.monotonic() >= deadline:
                raise t.fail(f"published no checkpoint covering its decision (entry {index}) within {timeout:g} s",
                             True)
            time.sleep(POLL)
        try:
            require_cosignatures(SignedNote.parse(note), self.witnesses, self.required)
        except VerificationError as exc:
            raise t.fail(f"its checkpoint is not witnessed as required: {exc}", True) from None
        page = client.entries(index, index + 1)
        rows = [data for i, data in page.entries if i == index]
        if len(rows) != 1:
            raise t.fail(f"did not send log entry {index}", True)
        try:
            merkle.verify_inclusion(merkle.leaf_hash(rows[0]), index, checkpoint.size,
                                    client.inclusion_proof(index, checkpoint.size), checkpoint.root_hash)
            record = parse_entry(rows[0])
        except (VerificationError, InputError, EntryFormatError) as exc:
            raise t.fail(f"could not prove its decision is entry {index} of the witnessed log: {exc}", True) from None
        logged = record.decision if isinstance(record, DecisionRecord) else {}
        differs = [k for k in _SAME if logged.get(k) != decision.get(k)]
        if not isinstance(record, DecisionRecord) or differs:
            raise t.fail(f"logged something else at entry {index} than the decision it answered "
                         f"({', '.join(differs) or 'not a decision'} differ)", True)
        return checkpoint
