"""The append-only transparency log of gate decisions (RFC 6962 Merkle tree, C2SP checkpoints).

- :mod:`tiergate.core.log.merkle` - tree hashing, inclusion and consistency proofs, and their verification.
- :mod:`tiergate.core.log.checkpoint` - signed notes, checkpoints (signed tree heads) and verifier keys.
- :mod:`tiergate.core.log.store` - the append-only store many processes can append to safely; its backends
  :mod:`tiergate.core.log.sqlite` and :mod:`tiergate.core.log.postgres` (on :mod:`tiergate.core.log.sql`), chosen by
  ``open_store`` (:mod:`tiergate.core.log.backends`); the tile cache that makes proofs cheap
  (:mod:`tiergate.core.log.tiles`); passwords kept out of messages (:mod:`tiergate.core.log.redact`).

Auditors need only :mod:`merkle` and :mod:`checkpoint`: both are pure and work offline.
"""

from __future__ import annotations

from .checkpoint import (
    Checkpoint,
    NoteFormatError,
    NoteSigner,
    NoteVerificationError,
    NoteVerifier,
    open_note,
    parse_checkpoint,
    sign_note,
    verify_checkpoint,
)
from .merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    ProofError,
    TreeRangeError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from .backends import open_store
from .store import LogEntry, LogStore, StoreError, StoreIntegrityError

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CompactRange",
    "LogEntry",
    "LogStore",
    "MerkleTree",
    "NoteFormatError",
    "NoteSigner",
    "NoteVerificationError",
    "NoteVerifier",
    "ProofError",
    "StoreError",
    "StoreIntegrityError",
    "TreeRangeError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "open_note",
    "open_store",
    "parse_checkpoint",
    "root_from_leaf_hashes",
    "sign_note",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
