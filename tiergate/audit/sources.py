"""Where an auditor reads the log from: a gate service (HTTP, through :class:`~tiergate.runtime.client.GateClient`) or
the log database itself (a SQLite file or a PostgreSQL URL, e.g. a backup), with one interface for both.

Neither is trusted: every entry is re-hashed and every proof is verified against a signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from tiergate.runtime.client import GateClient
from tiergate.core.log.store import LogStore


@dataclass(frozen=True)
class SourcedEntry:
    index: int
    data: bytes
    stored_leaf_hash: bytes | None = None  # what the database holds beside the entry (databases only)


class LogSource(Protocol):
    name: str

    def size(self) -> int: ...

    def entries(self, start: int, end: int) -> Iterator[SourcedEntry]:
        """Entries in ``[start, end)`` that exist, in index order (gaps are the auditor's to find)."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...

    def checkpoint(self) -> bytes | None:
        """The source's current signed checkpoint, if it has one (a database does not)."""
        ...


class ServerSource:
    def __init__(self, client: GateClient) -> None:
        self.client = client
        self.name = f"gate service at {client.server}"

    def size(self) -> int:
        size = self.client.health().get("tree_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise self.client.transport.fail("sent a malformed health answer (no tree_size)", False)
        return size

    def entries(self, start: int, end: int) -> Iterator[SourcedEntry]:
        position = start
        while position < end:
            page = self.client.entries(position, end)
            for index, data in page.entries:
                yield SourcedEntry(index, data)
            if page.end <= position:
                return  # the service has nothing more (its log is shorter than asked)
            position = page.end

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.client.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.client.consistency_proof(old, new)

    def checkpoint(self) -> bytes | None:
        return self.client.checkpoint()


class StoreSource:
    PAGE = 32  # entries read at once: at most 32 MiB, were each as large as an entry can be

    def __init__(self, store: LogStore, name: str) -> None:
        self.store = store
        self.name = f"log store {name}"

    def size(self) -> int:
        return self.store.size()

    def entries(self, start: int, end: int) -> Iterator[SourcedEntry]:
        # find() reads what is there without insisting on continuity, so a deleted row shows as a gap. Past the end
        # of the database (a truncated copy checked against a larger checkpoint) there is nothing to read: the
        # auditor reports the entries missing from there.
        position = start
        while position < end:
            size = self.store.size()
            if position >= size:
                return
            stop = min(end, position + self.PAGE, size)
            for entry in self.store.find(start=position, end=stop):
                yield SourcedEntry(entry.index, entry.entry, entry.leaf_hash)
            position = stop

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.store.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.store.consistency_proof(old, new)

    def checkpoint(self) -> bytes | None:
        return None
