"""The attestations the log holds for a model, found incrementally.

The log is the attestation store: an accepted attestation is an ``attestation`` entry indexed by its model digest,
so replicas sharing one log share one store. Decisions for a model are indexed under the same digest, and a busy
model accumulates many of them; re-reading them all on every decision would make each decision slower than the last.
So each model's view remembers how far it has read and only asks the store for entries appended since (by this
process or any other), keeping what it found. Views are kept for the most recently used models only.

The store is read in pages of :data:`PAGE_ENTRIES` entries, so a cold view of a model with thousands of logged
decisions holds one page of them at a time (at most ``PAGE_ENTRIES`` x 1 MiB), not all of them: only the
attestations are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from tiergate.core.log.entries import AttestationRecord, EntryFormatError, parse_entry
from tiergate.core.log.store import MAX_ENTRY_SIZE, LogStore

#: Canonical entries have sorted keys and "attestation" sorts first among an attestation entry's keys, so this
#: prefix tells the kinds apart without decoding every decision entry of a busy model.
_ATTESTATION_PREFIX = b'{"attestation":'
#: Entries read from the store at once: at most 16 MiB were each as large as an entry can be.
PAGE_ENTRIES = max(1, (16 * 1024 * 1024) // MAX_ENTRY_SIZE)


@dataclass(frozen=True)
class StoredAttestation:
    index: int
    digest: str
    data: bytes
    recorded_at: datetime  # when the log first recorded it: a signing time the signer could not choose


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
            while True:
                page = self._store.find(model_digest=model_digest, start=view.upto, limit=PAGE_ENTRIES)
                for entry in page:
                    view.upto = entry.index + 1
                    if not entry.entry.startswith(_ATTESTATION_PREFIX):
                        continue
                    try:
                        record = parse_entry(entry.entry)
                    except EntryFormatError:
                        continue  # an auditor reports malformed entries; the gate just does not rely on them
                    if isinstance(record, AttestationRecord) and record.digest not in view.items:
                        view.items[record.digest] = StoredAttestation(entry.index, record.digest, record.data,
                                                                     record.time)
                if len(page) < PAGE_ENTRIES:
                    break
            return sorted(view.items.values(), key=lambda item: item.index)
