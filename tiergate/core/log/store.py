"""Append-only storage of the decision log: the store every backend implements.

What a store guarantees, and how:

- **One index per entry, no gaps, even with many writers.** Index assignment and the insert happen in one
  transaction that writers take in turn: SQLite ``BEGIN IMMEDIATE`` (one writer per database file), PostgreSQL a
  ``SELECT ... FOR UPDATE`` on the single row of ``log_head`` that holds the size. The index is the primary key, and
  triggers make the database itself refuse updates and deletes (and, in SQLite, inserts at any but the next index),
  so neither a bug nor a casual manual edit can rewrite history.
- **Crash safety.** Entry, leaf hash and any interior hash it completes are written in the same transaction; a
  process killed mid-append leaves the log as it was before that append. SQLite runs in WAL mode with
  ``synchronous=FULL`` so an acknowledged append survives power loss too: losing a suffix that a signed checkpoint
  already covered would look exactly like a forked log.
- **Fast proofs**, from stored tiles (:mod:`tiergate.core.log.tiles`).

The Merkle math lives in :mod:`tiergate.core.log.merkle`; the backends in :mod:`tiergate.core.log.sqlite` and
:mod:`tiergate.core.log.postgres` (on the SQL they share, :mod:`tiergate.core.log.sql`);
:func:`tiergate.core.log.backends.open_store` picks one from a path or URL.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from tiergate.errors import ConfigError, GateError, InputError, VerificationError

from . import merkle
from .tiles import TILE_HEIGHT, TILE_WIDTH, Subtrees, TileCache, TilePath, completed_tiles, entry_bundle

MAX_ENTRY_SIZE = 1 << 20
MAX_MODEL_DIGEST = 512
BATCH_SIZE = 512
#: Seconds between checks that no entry is missing anywhere in the log (before an append or in a health check;
#: entries added since the last check are checked every time).
WHOLE_CHECK_INTERVAL = 2.0
FORMAT = "tiergate-log/1"

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")


class StoreError(GateError):
    """The log database cannot be used (locked too long, connection lost, closed, ...)."""


class StoreIntegrityError(VerificationError):
    """The stored log does not match itself: a leaf hash, tile, index or root is wrong. Someone edited it."""


class LogHoleError(StoreIntegrityError):
    """Entries are missing below the log's size (removed behind the store's back): nothing may be appended, or
    decided, until the log is restored, since an entry logged now would sit in a log no auditor can verify."""


@dataclass(frozen=True)
class LogEntry:
    """One leaf of the log: its index, the entry bytes, their RFC 6962 leaf hash and the optional model digest."""

    index: int
    entry: bytes
    leaf_hash: bytes
    model_digest: str | None = None


@dataclass(frozen=True)
class AuditResult:
    """What :meth:`LogStore.audit` checked: every entry up to ``size`` and the root it recomputed."""

    size: int
    root: bytes


Row = tuple[bytes, bytes, "str | None"]  # entry, leaf hash, model digest


def _check_entry(entry: object, position: str) -> bytes:
    if not isinstance(entry, (bytes, bytearray, memoryview)):
        raise InputError(f"log entry {position} must be bytes, not {type(entry).__name__}")
    data = bytes(entry)
    if len(data) > MAX_ENTRY_SIZE:
        raise InputError(f"log entry {position} is {len(data)} bytes; the limit is {MAX_ENTRY_SIZE}")
    return data


def _check_model_digest(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_MODEL_DIGEST or not value.isprintable():
        raise InputError(f"{where}: a model digest must be 1-{MAX_MODEL_DIGEST} printable characters")
    return value


def check_namespace(namespace: str | None) -> str | None:
    """``namespace`` if it is a safe SQL identifier (ConfigError if not); backends name their tables with it."""
    if namespace is not None and not _IDENTIFIER.fullmatch(namespace):
        raise ConfigError(
            f"log namespace {namespace!r} must be 1-40 characters of a-z, 0-9 and _, not starting with a digit"
        )
    return namespace


class LogStore(ABC):
    """An append-only RFC 6962 log of byte entries, with proofs. Backends supply a handful of primitives.

    A store object may be shared by threads (calls are serialised by a lock); processes and replicas each open
    their own. Entries are never changed or removed.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._contiguous = 0  # entries [0, _contiguous) were found all present
        self._whole_checked_at: float | None = None  # time.monotonic() of the last check of the whole log
        self._write_failure: str | None = None  # why the last append failed (None: it did not)
        self._tile_cache = TileCache(self._lock, self._stored_tiles, self._leaf_hash_range)

    # --- writing -------------------------------------------------------------------------------------------------

    def append(self, entry: bytes, model_digest: str | None = None) -> int:
        """Append one entry atomically; returns its index."""
        return self.append_many([entry], [model_digest])[0]

    def append_many(
        self, entries: Sequence[bytes], model_digests: Sequence[str | None] | None = None
    ) -> range:
        """Append entries in one transaction: all get consecutive indices, or (on any error) none is written."""
        if isinstance(entries, (bytes, bytearray, str)):
            raise InputError("append_many takes a sequence of entries, not a single entry")
        entries = list(entries)
        digests = [None] * len(entries) if model_digests is None else list(model_digests)
        if len(digests) != len(entries):
            raise InputError(f"{len(entries)} entries but {len(digests)} model digests")
        rows: list[Row] = []
        for position, (entry, digest) in enumerate(zip(entries, digests, strict=True)):
            data = _check_entry(entry, f"#{position}")
            rows.append((data, merkle.leaf_hash(data), _check_model_digest(digest, f"log entry #{position}")))
        if not rows:
            return range(0)
        with self._lock:
            self._check_open()
            self._check_contiguous(self._whole_check_due())
            try:
                first = self._insert(rows)
            except StoreError as exc:
                self._write_failure = str(exc)
                raise
            self._write_failure = None
        return range(first, first + len(rows))

    def _check_contiguous(self, whole: bool) -> None:
        """Raise :class:`LogHoleError` if an entry is missing below the size: from where the last check ended (the
        entries other writers added since), or in the ``whole`` log (every :data:`WHOLE_CHECK_INTERVAL` seconds:
        an entry removed from the middle is found within that time)."""
        start = 0 if whole else self._contiguous
        # Until this check passes, the next one checks the whole log again (a hole found stays found).
        checked_before, self._whole_checked_at = self._whole_checked_at, None
        size, found = self._span(start)
        restore = "nothing is logged or decided until the log is restored and `gate log audit` passes"
        if size < self._contiguous:
            raise LogHoleError(f"the log has shrunk from {self._contiguous} to {size} entries (its last entries were "
                               f"removed from the database); {restore}")
        if found != size - start:
            raise LogHoleError(f"the log has a hole: {size - start - found} of its entries in [{start}, {size}) are "
                               f"missing (removed from the database); {restore}")
        self._contiguous = size
        self._whole_checked_at = time.monotonic() if whole else checked_before

    def _whole_check_due(self) -> bool:
        checked = self._whole_checked_at
        return checked is None or time.monotonic() - checked >= WHOLE_CHECK_INTERVAL

    def writable_problem(self) -> str | None:
        """Why an append would fail now, for a health check: a hole in the log, the database unreachable or
        read-only, its disk full, or the last append's failure; None when nothing is known to be wrong. The whole
        log is checked for holes at most every :data:`WHOLE_CHECK_INTERVAL` seconds, however often this is asked
        (a public endpoint calls it)."""
        with self._lock:
            try:
                self._check_open()
                self._check_contiguous(self._whole_check_due())
            except (StoreError, StoreIntegrityError) as exc:
                return str(exc)
            return self._writable_problem() or self._write_failure

    def _completed_tiles(
        self, first: int, rows: Sequence[Row], fetch_leaf_hashes: Callable[[int, int], list[bytes]]
    ) -> list[tuple[int, bytes]]:
        """Tiles completed by appending ``rows`` at ``first``; backends call it inside the append transaction."""

        def earlier(start: int, end: int) -> list[bytes]:
            found = fetch_leaf_hashes(start, end)
            if len(found) != end - start:
                raise StoreIntegrityError(f"log has a gap below index {first}: found {len(found)} leaf hashes "
                                          f"in [{start}, {first})")
            return found

        return completed_tiles(first, [row[1] for row in rows], earlier)

    # --- reading -------------------------------------------------------------------------------------------------

    def size(self) -> int:
        """Number of entries (the current tree size)."""
        with self._lock:
            self._check_open()
            return self._size()

    def get(self, index: int) -> LogEntry:
        """The entry at ``index``."""
        self._check_index(index, self.size())
        return next(self.entries(index, index + 1))

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[LogEntry]:
        """Entries ``[start, end)`` in index order, read in batches so a large log never sits in memory.

        The range is checked now, not when iteration starts, so a bad request fails where it is made.
        """
        return self._iter_entries(start, self._end(start, end))

    def _iter_entries(self, start: int, end: int) -> Iterator[LogEntry]:
        position = start
        while position < end:
            with self._lock:
                self._check_open()
                batch = self._fetch_entries(position, min(end, position + BATCH_SIZE))
            if not batch or batch[0].index != position:
                raise StoreIntegrityError(f"log entry {position} is missing")
            yield from batch
            position = batch[-1].index + 1

    def leaf_hashes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Leaf hashes ``[start, end)`` in index order, in batches (the range is checked now)."""
        return self._iter_leaf_hashes(start, self._end(start, end))

    def _iter_leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        position = start
        while position < end:
            stop = min(end, position + BATCH_SIZE * 8)
            yield from self._leaf_hash_range(position, stop)
            position = stop

    def find(
        self,
        *,
        model_digest: str | None = None,
        start: int = 0,
        end: int | None = None,
        limit: int | None = None,
    ) -> list[LogEntry]:
        """Entries in ``[start, end)`` whose indexed columns match (today: ``model_digest``), in index order."""
        end = self._end(start, end)
        digest = _check_model_digest(model_digest, "find")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InputError(f"limit must be a non-negative integer, not {limit!r}")
        with self._lock:
            self._check_open()
            return self._find(digest, start, end, limit)

    # --- tree ----------------------------------------------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """RFC 6962 root of the first ``size`` entries (default: all)."""
        size = self._tree_size(size)
        return merkle.range_root(self._subtrees(size), 0, size) if size else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Proof that entry ``index`` is in the tree of ``size`` entries (default: all)."""
        size = self._tree_size(size)
        self._check_index(index, size)
        return merkle.inclusion_proof_from(self._subtrees(size), index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the tree of ``new_size`` entries (default: all) extends the tree of ``old_size``."""
        new_size = self._tree_size(new_size)
        merkle.consistency_path_ranges(old_size, new_size)  # validates before any database work
        return merkle.consistency_proof_from(self._subtrees(new_size), old_size, new_size)

    def tile(self, tile: TilePath) -> bytes:
        """A tlog-tiles hash tile (the concatenated hashes) or entry bundle, if the log covers it now; raises
        :class:`merkle.TreeRangeError` if it does not, ValueError for an entry a bundle cannot hold.

        Hashes above level 0 are roots of complete subtrees, read from the tile cache (never from the leaves again).
        """
        start, end = tile.leaf_range()
        size = self.size()
        if end > size:
            raise merkle.TreeRangeError(f"{tile.path()} needs {end} entries; the log has {size}")
        if tile.level is None:
            return entry_bundle([e.entry for e in self.entries(start, end)])
        first = tile.index * TILE_WIDTH
        if tile.level == 0:
            return b"".join(self._leaf_hash_range(first, first + tile.width))
        subtrees = self._subtrees(end)
        return b"".join(subtrees.subtree_root(TILE_HEIGHT * tile.level, first + i) for i in range(tile.width))

    def audit(self, size: int | None = None) -> AuditResult:
        """Recompute the log from its entries and check every stored leaf hash, tile and index.

        Streams the entries, so memory stays O(log n) whatever the log size. Raises
        :class:`StoreIntegrityError` on the first mismatch.
        """
        size = self._tree_size(size)
        compact = merkle.CompactRange()
        block: list[bytes] = []
        for entry in self.entries(0, size):
            if entry.index != compact.size:
                raise StoreIntegrityError(f"log index {compact.size} is missing (next stored index is {entry.index})")
            if merkle.leaf_hash(entry.entry) != entry.leaf_hash:
                raise StoreIntegrityError(f"stored leaf hash of entry {entry.index} does not match the entry")
            compact.append(entry.leaf_hash)
            block.append(entry.leaf_hash)
            if len(block) == TILE_WIDTH:
                tile = entry.index // TILE_WIDTH
                stored = self._fetch_tiles(tile, tile + 1)
                if stored and stored[0] != (tile, merkle.root_from_leaf_hashes(block)):
                    first = tile * TILE_WIDTH
                    raise StoreIntegrityError(f"stored hash of leaves [{first}, {entry.index + 1}) is wrong")
                block = []
        if compact.size != size:
            raise StoreIntegrityError(f"log should have {size} entries, found {compact.size}")
        root = compact.root()
        if root != self.root(size):
            raise StoreIntegrityError(f"root at size {size} from stored hashes differs from the recomputed one")
        return AuditResult(size, root)

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- helpers shared by backends ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the log store is closed")

    def _tree_size(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise merkle.TreeRangeError(f"tree size must be a non-negative integer, not {size!r}")
        if size > current:
            raise merkle.TreeRangeError(f"tree size {size} is larger than the log ({current} entries)")
        return size

    def _end(self, start: int, end: int | None) -> int:
        current = self.size()
        end = current if end is None else end
        self._check_range(start, end, current)
        return end

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise merkle.TreeRangeError(f"a log index is an integer, not {index!r}")
        if not 0 <= index < size:
            raise merkle.TreeRangeError(f"log entry {index} does not exist in a tree of {size} entries")

    @staticmethod
    def _check_range(start: int, end: int, size: int) -> None:
        for value in (start, end):
            if isinstance(value, bool) or not isinstance(value, int):
                raise merkle.TreeRangeError(f"log range bounds must be integers, not {value!r}")
        if not 0 <= start <= end <= size:
            raise merkle.TreeRangeError(f"log range [{start}, {end}) is outside the log's {size} entries")

    def _leaf_hash_range(self, start: int, end: int) -> list[bytes]:
        with self._lock:
            self._check_open()
            hashes = self._fetch_leaf_hashes(start, end)
        if len(hashes) != end - start:
            raise StoreIntegrityError(f"log is missing leaf hashes in [{start}, {end})")
        return hashes

    def _stored_tiles(self, start: int, end: int) -> list[tuple[int, bytes]]:
        with self._lock:
            self._check_open()
            return self._fetch_tiles(start, end)

    def _subtrees(self, size: int) -> Subtrees:
        return Subtrees(self._tile_cache, self._leaf_hash_range, size)

    # --- backend primitives --------------------------------------------------------------------------------------

    @abstractmethod
    def _insert(self, rows: list[Row]) -> int:
        """Atomically append rows at the next free index, with any tiles they complete; return the first index."""

    @abstractmethod
    def _size(self) -> int: ...

    @abstractmethod
    def _span(self, start: int) -> tuple[int, int]:
        """The size, and how many entries are stored in ``[start, size)``, read together."""

    def _writable_problem(self) -> str | None:
        """Why the backend could not be written now, as far as it can tell without writing; None: no reason known."""
        return None

    @abstractmethod
    def _fetch_entries(self, start: int, end: int) -> list[LogEntry]: ...

    @abstractmethod
    def _fetch_leaf_hashes(self, start: int, end: int) -> list[bytes]: ...

    @abstractmethod
    def _fetch_tiles(self, start: int, end: int) -> list[tuple[int, bytes]]: ...

    @abstractmethod
    def _find(self, model_digest: str | None, start: int, end: int, limit: int | None) -> list[LogEntry]: ...

    @abstractmethod
    def _close(self) -> None: ...
