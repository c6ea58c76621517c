"""Deciding a history, not a head: which commits hold nothing of a model, and whose evidence counts for which commit.

Anything that makes commits reachable at a tier (a git push, a Hub visibility change) publishes every one of them:
anyone can fetch a file at any commit. So each commit is a model state to decide. Two rules make that workable, and
the git hook and the Hub checks share them:

- a commit whose files are only ``.gitattributes`` / ``.gitignore`` and attestation files holds nothing of a model
  (the Hub's "initial commit"; an evidence-only commit) and is not decided, unless it is a head;
- an attestation is about a model, wherever it is kept: an attestation in any of the commits being published counts
  for every one of them whose model digest it names (weights committed in one commit and attested in the next are
  cleared by the next commit's attestations). Picking is by the subjects named, read without verifying; the gate
  verifies whatever it is given.
"""

from __future__ import annotations

from collections.abc import Iterable

from tiergate.core.attestation import Statement
from tiergate.core.dsse import Envelope
from tiergate.core.manifest import ATTESTATION_DIR, ATTESTATION_SUFFIXES
from tiergate.core.verify import AttestationInput
from tiergate.errors import GateError

#: Paths a commit may hold and still hold nothing of a model.
NOTHING_PATHS = frozenset({".gitattributes", ".gitignore"})


def holds_nothing(paths: Iterable[str]) -> bool:
    """Whether a commit with these files holds nothing of a model (see the module docstring)."""
    return all(p in NOTHING_PATHS or (p.startswith(ATTESTATION_DIR + "/") and p.endswith(ATTESTATION_SUFFIXES))
               for p in paths)


def subject_digests(item: AttestationInput) -> frozenset[str]:
    """The sha256 subjects an in-toto (DSSE) attestation names, read WITHOUT verifying it: only to pick which
    attestations to present for which model (the gate verifies what it is given). Empty if it cannot be read so."""
    try:
        return frozenset(Statement.from_json(Envelope.from_json(item.data).payload).digests("sha256"))
    except (GateError, ValueError, TypeError, KeyError, AttributeError):
        return frozenset()


class EvidencePool:
    """The attestations kept anywhere in a set of commits, by the model digest they name."""

    def __init__(self) -> None:
        self._by_model: dict[str, list[AttestationInput]] = {}
        self._subjects: dict[str, frozenset[str]] = {}

    def add(self, items: Iterable[AttestationInput]) -> None:
        for item in items:
            if item.digest in self._subjects:
                continue
            self._subjects[item.digest] = subject_digests(item)
            for root in self._subjects[item.digest]:
                self._by_model.setdefault(root, []).append(item)

    def for_model(self, root_digest: str, own: Iterable[AttestationInput]) -> list[AttestationInput]:
        """``own`` (a commit's own attestations), then every pooled one naming ``root_digest``, each once."""
        out = list(own)
        have = {item.digest for item in out}
        for item in self._by_model.get(root_digest, ()):
            if item.digest not in have:
                have.add(item.digest)
                out.append(item)
        return out
