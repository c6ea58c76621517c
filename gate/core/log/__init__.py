"""The append-only transparency log of gate decisions (RFC 6962 Merkle tree, C2SP checkpoints).

- :mod:`gate.core.log.merkle` - tree hashing, inclusion and consistency proofs, and their verification.
- :mod:`gate.core.log.checkpoint` - signed notes, checkpoints (signed tree heads) and verifier keys.
- :mod:`gate.core.log.store` - the append-only store many processes can append to safely; its backends
  :mod:`gate.core.log.sqlite` and :mod:`gate.core.log.postgres` (on :mod:`gate.core.log.sql`), chosen by
  ``open_store`` (:mod:`gate.core.log.backends`); the tile cache that makes proofs cheap (:mod:`gate.core.log.tiles`);
  passwords kept out of messages (:mod:`gate.core.log.redact`).

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
