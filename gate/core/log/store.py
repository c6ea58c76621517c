"""Append-only storage of the decision log: SQLite (embedded, the default) or PostgreSQL (shared by replicas).

What the store guarantees, and how:

- **One index per entry, no gaps, even with many writers.** Index assignment and the insert happen in one
  transaction that writers take in turn: SQLite ``BEGIN IMMEDIATE`` (one writer per database file), PostgreSQL a
  ``SELECT ... FOR UPDATE`` on the single row of ``log_head`` that holds the size. The index is the primary key, and
  triggers make the database itself refuse updates and deletes (and, in SQLite, inserts at any but the next index),
  so neither a bug nor a casual manual edit can rewrite history.
- **Crash safety.** Entry, leaf hash and any interior hash it completes are written in the same transaction; a
  process killed mid-append leaves the log as it was before that append. SQLite runs in WAL mode with
  ``synchronous=FULL`` so an acknowledged append survives power loss too: losing a suffix that a signed checkpoint
  already covered would look exactly like a forked log.
- **Fast proofs.** Besides each leaf hash the store keeps the root of every complete 256-leaf subtree ("tile"). A
  root or proof at size N then reads at most N/256 tile hashes and two 256-leaf blocks, not N leaf hashes: about a
  millisecond at N = 100 000, where reading and hashing every leaf takes a few tenths of a second. Tiles are derived
  data: :meth:`LogStore.audit` recomputes everything from the entries, and a missing tile is recomputed from leaves.

The Merkle math lives in :mod:`gate.core.log.merkle`; this module only stores and fetches. ``open_store`` picks the
backend from a path or URL. psycopg is imported only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gate.errors import ConfigError, GateError, InputError, VerificationError

from . import merkle

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_SIZE = 1 << 20
MAX_MODEL_DIGEST = 512
BATCH_SIZE = 512
FORMAT = "release-gate-log/1"
DEFAULT_POSTGRES_SCHEMA = "release_gate"

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")


class StoreError(GateError):
    """The log database cannot be used (locked too long, connection lost, closed, ...)."""


class StoreIntegrityError(VerificationError):
    """The stored log does not match itself: a leaf hash, tile, index or root is wrong. Someone edited it."""


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


def _check_namespace(namespace: str | None) -> str | None:
    if namespace is not None and not _IDENTIFIER.fullmatch(namespace):
        raise ConfigError(
            f"log namespace {namespace!r} must be 1-40 characters of a-z, 0-9 and _, not starting with a digit"
        )
    return namespace


class _Subtrees:
    """The store's tree at one size, as a :class:`merkle.SubtreeSource`.

    Perfect subtrees of at least one tile come from tile hashes (cached by the store, since complete subtrees never
    change); smaller ones from one 256-leaf block of leaf hashes, fetched once per proof.
    """

    def __init__(self, store: LogStore, size: int) -> None:
        self._store = store
        self._size = size
        self._tiles = store._tiles_for(size // TILE_WIDTH)
        self._blocks: dict[int, list[bytes]] = {}

    def subtree_root(self, height: int, index: int) -> bytes:
        if height >= TILE_HEIGHT:
            return self._store._perfect_from_tiles(self._tiles, height, index)
        first = index << height
        block = first >> TILE_HEIGHT
        leaves = self._blocks.get(block)
        if leaves is None:
            start = block * TILE_WIDTH
            leaves = self._store._leaf_hash_range(start, min(self._size, start + TILE_WIDTH))
            self._blocks[block] = leaves
        offset = first - block * TILE_WIDTH
        return merkle.root_from_leaf_hashes(leaves[offset : offset + (1 << height)])


class LogStore(ABC):
    """An append-only RFC 6962 log of byte entries, with proofs. Backends supply a handful of primitives.

    A store object may be shared by threads (calls are serialised by a lock); processes and replicas each open
    their own. Entries are never changed or removed.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._tile_cache: list[bytes] = []
        self._perfect_cache: dict[tuple[int, int], bytes] = {}

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
            first = self._insert(rows)
        return range(first, first + len(rows))

    def _completed_tiles(
        self, first: int, rows: Sequence[Row], fetch_leaf_hashes: Callable[[int, int], list[bytes]]
    ) -> list[tuple[int, bytes]]:
        """Tiles completed by appending ``rows`` at ``first``; backends call it inside the append transaction."""
        end = first + len(rows)
        tiles: list[tuple[int, bytes]] = []
        for tile in range(first // TILE_WIDTH, end // TILE_WIDTH):
            start = tile * TILE_WIDTH
            earlier = fetch_leaf_hashes(start, first) if start < first else []
            if len(earlier) != max(0, first - start):
                raise StoreIntegrityError(f"log has a gap below index {first}: found {len(earlier)} leaf hashes "
                                          f"in [{start}, {first})")
            newer = [row[1] for row in rows[max(0, start - first) : start + TILE_WIDTH - first]]
            tiles.append((tile, merkle.root_from_leaf_hashes(earlier + newer)))
        return tiles

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
        return merkle.range_root(_Subtrees(self, size), 0, size) if size else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Proof that entry ``index`` is in the tree of ``size`` entries (default: all)."""
        size = self._tree_size(size)
        self._check_index(index, size)
        return merkle.inclusion_proof_from(_Subtrees(self, size), index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the tree of ``new_size`` entries (default: all) extends the tree of ``old_size``."""
        new_size = self._tree_size(new_size)
        merkle.consistency_path_ranges(old_size, new_size)  # validates before any database work
        return merkle.consistency_proof_from(_Subtrees(self, new_size), old_size, new_size)

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

    def _tiles_for(self, count: int) -> list[bytes]:
        """Hashes of tiles ``[0, count)``: cached, read from the database, or recomputed if one is missing."""
        with self._lock:
            cache = self._tile_cache
            if len(cache) < count:
                self._check_open()
                stored = dict(self._fetch_tiles(len(cache), count))
                for tile in range(len(cache), count):
                    value = stored.get(tile)
                    if value is None:
                        start = tile * TILE_WIDTH
                        value = merkle.root_from_leaf_hashes(self._leaf_hash_range(start, start + TILE_WIDTH))
                    cache.append(value)
            return cache[:count]

    def _perfect_from_tiles(self, tiles: list[bytes], height: int, index: int) -> bytes:
        """Root of a perfect subtree of ``2**height`` leaves (height >= tile height) from tile hashes, memoised."""
        key = (height, index)
        with self._lock:
            cached = self._perfect_cache.get(key)
        if cached is not None:
            return cached
        span = 1 << (height - TILE_HEIGHT)
        value = merkle.root_from_leaf_hashes(tiles[index * span : (index + 1) * span])
        if height > TILE_HEIGHT:
            with self._lock:
                self._perfect_cache[key] = value
        return value

    # --- backend primitives --------------------------------------------------------------------------------------

    @abstractmethod
    def _insert(self, rows: list[Row]) -> int:
        """Atomically append rows at the next free index, with any tiles they complete; return the first index."""

    @abstractmethod
    def _size(self) -> int: ...

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


# --- shared by the SQL backends ----------------------------------------------------------------------------------


class _SqlLogStore(LogStore):
    """Reads are the same SQL on both backends but for the parameter placeholder."""

    _P = "?"
    _db: Any
    _entries: str
    _tiles: str

    def _errors(self, action: str) -> Any:
        raise NotImplementedError

    def _fetch_entries(self, start: int, end: int) -> list[LogEntry]:
        with self._errors("read"):
            cursor = self._db.execute(
                f"SELECT idx, entry, leaf_hash, model_digest FROM {self._entries} "
                f"WHERE idx >= {self._P} AND idx < {self._P} ORDER BY idx",
                (start, end),
            )
            return [LogEntry(int(i), bytes(e), bytes(h), d) for i, e, h, d in cursor]

    def _fetch_leaf_hashes(self, start: int, end: int) -> list[bytes]:
        with self._errors("read"):
            cursor = self._db.execute(
                f"SELECT leaf_hash FROM {self._entries} WHERE idx >= {self._P} AND idx < {self._P} ORDER BY idx", (start, end)
            )
            return [bytes(h) for (h,) in cursor]

    def _fetch_tiles(self, start: int, end: int) -> list[tuple[int, bytes]]:
        with self._errors("read"):
            cursor = self._db.execute(
                f"SELECT tile, hash FROM {self._tiles} WHERE tile >= {self._P} AND tile < {self._P} ORDER BY tile", (start, end)
            )
            return [(int(t), bytes(h)) for t, h in cursor]

    def _find(self, model_digest: str | None, start: int, end: int, limit: int | None) -> list[LogEntry]:
        sql = f"SELECT idx, entry, leaf_hash, model_digest FROM {self._entries} WHERE idx >= {self._P} AND idx < {self._P}"
        params: list[Any] = [start, end]
        if model_digest is not None:
            sql += f" AND model_digest = {self._P}"
            params.append(model_digest)
        sql += " ORDER BY idx"
        if limit is not None:
            sql += f" LIMIT {self._P}"
            params.append(limit)
        with self._errors("find"):
            return [LogEntry(int(i), bytes(e), bytes(h), d) for i, e, h, d in self._db.execute(sql, params)]

    def _close(self) -> None:
        self._db.close()


# --- SQLite --------------------------------------------------------------------------------------------------------


class SQLiteLogStore(_SqlLogStore):
    """The embedded log: one SQLite file, WAL mode, several processes may append to it concurrently.

    ``namespace`` prefixes the table names (``<namespace>_log_entries``) so several logs can share one file.
    """

    def __init__(self, path: str | os.PathLike[str], *, namespace: str | None = None, timeout: float = 30.0) -> None:
        super().__init__()
        prefix = f"{_check_namespace(namespace)}_" if namespace else ""
        self._entries, self._tiles, self._meta = (f"{prefix}log_entries", f"{prefix}log_tiles", f"{prefix}log_meta")
        self._path = str(path)
        self._timeout = timeout
        try:
            self._db = sqlite3.connect(self._path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"{self._path}: cannot open the log database: {exc}") from None
        try:
            with self._errors("open"):
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() not in ("wal", "memory"):
                    raise ConfigError(f"{self._path}: the log database cannot use WAL mode (got {mode!r})")
                self._db.execute("PRAGMA synchronous=FULL")
                self._initialise()
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(
                    f"{self._path}: log database stayed locked for {self._timeout:g} s during {action}"
                ) from None
            raise StoreError(f"{self._path}: log database error during {action}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self._path}: log database error during {action}: {exc}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the database's single write lock before reading the size."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with suppress(sqlite3.Error):  # if even ROLLBACK fails, the original error says why
                    self._db.execute("ROLLBACK")
            raise

    def _initialise(self) -> None:
        with self._write() as db:
            exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self._meta,))
            if exists.fetchone():
                row = db.execute(f"SELECT value FROM {self._meta} WHERE key = 'format'").fetchone()
                if not row or row[0] != FORMAT:
                    found = row[0] if row else "none"
                    raise ConfigError(f"{self._path}: log format {found!r} is not {FORMAT!r}")
                return
            e, t, m = self._entries, self._tiles, self._meta
            script = [
                f"""CREATE TABLE {e} (
                    idx INTEGER PRIMARY KEY CHECK (idx >= 0),
                    entry BLOB NOT NULL,
                    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
                    model_digest TEXT)""",
                f"CREATE INDEX {e}_model_digest ON {e} (model_digest, idx)",
                f"""CREATE TABLE {t} (
                    tile INTEGER PRIMARY KEY CHECK (tile >= 0),
                    hash BLOB NOT NULL CHECK (length(hash) = 32))""",
                f"CREATE TABLE {m} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                f"""CREATE TRIGGER {e}_next_index BEFORE INSERT ON {e}
                    WHEN NEW.idx IS NOT (SELECT COALESCE(MAX(idx) + 1, 0) FROM {e})
                    BEGIN SELECT RAISE(ABORT, 'release-gate log: entries must be appended at the next index'); END""",
            ]
            for table in (e, t, m):
                for op in ("UPDATE", "DELETE"):
                    script.append(
                        f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
                        BEGIN SELECT RAISE(ABORT, 'release-gate log is append-only: {op} refused'); END"""
                    )
            for statement in script:
                db.execute(statement)
            db.execute(f"INSERT INTO {m} (key, value) VALUES ('format', ?)", (FORMAT,))

    def _insert(self, rows: list[Row]) -> int:
        with self._errors("append"), self._write() as db:
            first = db.execute(f"SELECT COALESCE(MAX(idx) + 1, 0) FROM {self._entries}").fetchone()[0]
            db.executemany(
                f"INSERT INTO {self._entries} (idx, entry, leaf_hash, model_digest) VALUES (?, ?, ?, ?)",
                [(first + i, entry, leaf, digest) for i, (entry, leaf, digest) in enumerate(rows)],
            )
            tiles = self._completed_tiles(first, rows, self._fetch_leaf_hashes)
            db.executemany(f"INSERT INTO {self._tiles} (tile, hash) VALUES (?, ?)", tiles)
            return int(first)

    def _size(self) -> int:
        with self._errors("size"):
            return int(self._db.execute(f"SELECT COALESCE(MAX(idx) + 1, 0) FROM {self._entries}").fetchone()[0])


# --- PostgreSQL ----------------------------------------------------------------------------------------------------


def _redact(url: str) -> str:
    """The URL (or key=value connection string) without its password, for messages."""
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        from gate import DISTRIBUTION

        raise ConfigError(
            f"a postgresql:// log store needs the 'postgres' extra (psycopg is not installed): "
            f"pip install '{DISTRIBUTION}[postgres]'"
        ) from None
    return psycopg


class PostgresLogStore(_SqlLogStore):
    _P = "%s"
    """The shared log for several gate replicas: tables in schema ``namespace`` (default ``release_gate``).

    Appends serialise on the row lock of ``log_head`` (the current size), taken with ``SELECT ... FOR UPDATE`` in
    the append transaction, so replicas on different hosts never race for an index.
    """

    def __init__(
        self, url: str, *, namespace: str | None = None, connect_timeout: float = 10.0, timeout: float = 30.0
    ) -> None:
        super().__init__()
        psycopg = _import_psycopg()
        self._psycopg = psycopg
        self._schema = _check_namespace(namespace) or DEFAULT_POSTGRES_SCHEMA
        self._where = f"{_redact(url)} schema {self._schema}"
        s = f'"{self._schema}"'
        self._entries, self._tiles, self._head, self._meta = (
            f"{s}.log_entries", f"{s}.log_tiles", f"{s}.log_head", f"{s}.log_meta"
        )
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout)))
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot connect to the PostgreSQL log at {_redact(url)}: {reason}") from None
        try:
            with self._errors("open"):
                # A replica that hangs inside an append must not block the others for ever: waiting for the head
                # row gives up after ``timeout``, and the server ends a session that idles in a transaction.
                milliseconds = max(1, int(timeout * 1000))
                self._db.execute(f"SET lock_timeout = {milliseconds}")
                self._db.execute(f"SET idle_in_transaction_session_timeout = {max(60_000, 2 * milliseconds)}")
                self._initialise()
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._psycopg.errors.LockNotAvailable:
            raise StoreError(f"{self._where}: another writer held the log for too long during {action}") from None
        except self._psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{self._where}: log database error during {action}: {reason}") from None

    def _initialise(self) -> None:
        """Create the schema once; an advisory lock keeps replicas starting together from racing on DDL."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"release-gate-log:{self._schema}",))
            exists = self._db.execute("SELECT to_regclass(%s)", (self._meta,)).fetchone()[0]
            if exists is not None:
                row = self._db.execute(f"SELECT value FROM {self._meta} WHERE key = 'format'").fetchone()
                if not row or row[0] != FORMAT:
                    found = row[0] if row else "none"
                    raise ConfigError(f"{self._where}: log format {found!r} is not {FORMAT!r}")
                return
            s = f'"{self._schema}"'
            for statement in (
                f"CREATE SCHEMA IF NOT EXISTS {s}",
                f"""CREATE TABLE {self._entries} (
                    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
                    entry BYTEA NOT NULL,
                    leaf_hash BYTEA NOT NULL CHECK (octet_length(leaf_hash) = 32),
                    model_digest TEXT)""",
                f"CREATE INDEX log_entries_model_digest ON {self._entries} (model_digest, idx)",
                f"""CREATE TABLE {self._tiles} (
                    tile BIGINT PRIMARY KEY CHECK (tile >= 0),
                    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32))""",
                f"""CREATE TABLE {self._head} (
                    id SMALLINT PRIMARY KEY CHECK (id = 1),
                    size BIGINT NOT NULL CHECK (size >= 0))""",
                f"INSERT INTO {self._head} (id, size) VALUES (1, 0)",
                f"CREATE TABLE {self._meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                f"""CREATE FUNCTION {s}.log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'release-gate log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
                    END $$""",
            ):
                self._db.execute(statement)
            for table, name in ((self._entries, "log_entries"), (self._tiles, "log_tiles"), (self._meta, "log_meta")):
                self._db.execute(
                    f"CREATE TRIGGER {name}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {s}.log_refuse_change()"
                )
                self._db.execute(
                    f"CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {table} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_refuse_change()"
                )
            self._db.execute(f"INSERT INTO {self._meta} (key, value) VALUES ('format', %s)", (FORMAT,))

    def _insert(self, rows: list[Row]) -> int:
        with self._errors("append"), self._db.transaction():
            first = self._db.execute(f"SELECT size FROM {self._head} WHERE id = 1 FOR UPDATE").fetchone()[0]
            with self._db.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self._entries} (idx, entry, leaf_hash, model_digest) VALUES (%s, %s, %s, %s)",
                    [(first + i, entry, leaf, digest) for i, (entry, leaf, digest) in enumerate(rows)],
                )
                tiles = self._completed_tiles(first, rows, self._fetch_leaf_hashes)
                if tiles:
                    cursor.executemany(f"INSERT INTO {self._tiles} (tile, hash) VALUES (%s, %s)", tiles)
            self._db.execute(f"UPDATE {self._head} SET size = %s WHERE id = 1", (first + len(rows),))
            return int(first)

    def _size(self) -> int:
        with self._errors("size"):
            return int(self._db.execute(f"SELECT size FROM {self._head} WHERE id = 1").fetchone()[0])


# --- choosing a backend --------------------------------------------------------------------------------------------


def open_store(target: str | os.PathLike[str], *, namespace: str | None = None, **options: Any) -> LogStore:
    """Open (creating if needed) the log at ``target``.

    ``postgresql://...`` or ``postgres://...`` selects PostgreSQL (``namespace`` is the schema); ``sqlite:///path``,
    ``sqlite:path`` or a plain file path selects SQLite (``namespace`` prefixes the table names). ``options`` go to
    the backend: ``timeout`` (seconds a writer waits for another, both backends), ``connect_timeout`` (PostgreSQL).
    """
    if isinstance(target, os.PathLike):
        return SQLiteLogStore(target, namespace=namespace, **options)
    if not isinstance(target, str) or not target:
        raise ConfigError(f"log store must be a file path or a postgresql:// URL, not {target!r}")
    scheme = target.split(":", 1)[0].lower() if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) else ""
    if scheme in ("postgresql", "postgres"):
        return PostgresLogStore(target, namespace=namespace, **options)
    if scheme == "sqlite":
        path = target[len("sqlite:") :]
        if path.startswith("///"):
            path = path[2:]
        elif path.startswith("//"):
            raise ConfigError(f"{target}: write sqlite:///absolute/path or sqlite:relative/path")
        if not path:
            raise ConfigError(f"{target}: the SQLite URL names no file")
        return SQLiteLogStore(path, namespace=namespace, **options)
    if "://" in target:
        raise ConfigError(f"{_redact(target)}: unsupported log store; use a file path or a postgresql:// URL")
    if target != ":memory:" and Path(target).is_dir():
        raise ConfigError(f"{target}: is a directory; give the log database file path")
    return SQLiteLogStore(target, namespace=namespace, **options)
