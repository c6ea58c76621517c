"""The attestations the log holds for a model, found incrementally.

The log is the attestation store: an accepted attestation is an ``attestation`` entry indexed by its model digest,
so replicas sharing one log share one store. Decisions for a model are indexed under the same digest, and a busy
model accumulates many of them; re-reading them all on every decision would make each decision slower than the last.
So each model's view remembers how far it has read and only asks the store for entries appended since (by this
process or any other), keeping what it found. Views are kept for the most recently used models only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from gate.core.log.entries import AttestationRecord, EntryFormatError, parse_entry
from gate.core.log.store import LogStore

#: Canonical entries have sorted keys and "attestation" sorts first among an attestation entry's keys, so this
#: prefix tells the kinds apart without decoding every decision entry of a busy model.
_ATTESTATION_PREFIX = b'{"attestation":'


@dataclass(frozen=True)
class StoredAttestation:
    index: int
    digest: str
    data: bytes


@dataclass
class _View:
    upto: int = 0
    items: dict[str, StoredAttestation] = field(default_factory=dict)


class AttestationIndex:
    def __init__(self, store: LogStore, max_models: int = 1024) -> None:
        self._store = store
        self._max_models = max_models
        self._views: OrderedDict[str, _View] = OrderedDict()
        self._lock = threading.Lock()

    def for_model(self, model_digest: str) -> list[StoredAttestation]:
        """Every distinct attestation logged for ``model_digest`` (``sha256:<hex>``), oldest first."""
        with self._lock:
            view = self._views.pop(model_digest, None) or _View()
            self._views[model_digest] = view
            while len(self._views) > self._max_models:
                self._views.popitem(last=False)
            for entry in self._store.find(model_digest=model_digest, start=view.upto):
                view.upto = entry.index + 1
                if not entry.entry.startswith(_ATTESTATION_PREFIX):
                    continue
                try:
                    record = parse_entry(entry.entry)
                except EntryFormatError:
                    continue  # an auditor reports malformed entries; the gate just does not rely on them
                if isinstance(record, AttestationRecord) and record.digest not in view.items:
                    view.items[record.digest] = StoredAttestation(entry.index, record.digest, record.data)
            return sorted(view.items.values(), key=lambda item: item.index)
