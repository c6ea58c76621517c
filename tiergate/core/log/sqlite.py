"""The embedded log backend: one SQLite file in WAL mode, which several processes may append to concurrently.

Appends take SQLite's single write lock (``BEGIN IMMEDIATE``) before reading the size, so index assignment and the
insert are one step; triggers refuse updates, deletes and inserts at any but the next index. ``synchronous=FULL``
makes an acknowledged append survive power loss.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tiergate.errors import ConfigError

from .sql import SqlLogStore
from .store import FORMAT, MAX_ENTRY_SIZE, Row, StoreError, check_namespace

#: Bytes that must be free on the log's disk for the health check to call it writable: a large append and the
#: write-ahead log's growth, with room to spare.
MIN_FREE_BYTES = 16 * MAX_ENTRY_SIZE


class SQLiteLogStore(SqlLogStore):
    """The embedded log: one SQLite file, WAL mode, several processes may append to it concurrently.

    ``namespace`` prefixes the table names (``<namespace>_log_entries``) so several logs can share one file.
    """

    def __init__(self, path: str | os.PathLike[str], *, namespace: str | None = None, timeout: float = 30.0) -> None:
        super().__init__()
        prefix = f"{check_namespace(namespace)}_" if namespace else ""
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
                    BEGIN SELECT RAISE(ABORT, 'tiergate log: entries must be appended at the next index'); END""",
            ]
            for table in (e, t, m):
                for op in ("UPDATE", "DELETE"):
                    script.append(
                        f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
                        BEGIN SELECT RAISE(ABORT, 'tiergate log is append-only: {op} refused'); END"""
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
            tiles = self._completed_tiles(first, rows, lambda start, end: self._leaf_hashes_on(db, start, end))
            db.executemany(f"INSERT INTO {self._tiles} (tile, hash) VALUES (?, ?)", tiles)
            return int(first)

    def _size(self) -> int:
        with self._errors("size"):
            return int(self._db.execute(f"SELECT COALESCE(MAX(idx) + 1, 0) FROM {self._entries}").fetchone()[0])

    def _span(self, start: int) -> tuple[int, int]:
        with self._errors("read"):
            size, found = self._db.execute(
                f"SELECT COALESCE(MAX(idx) + 1, 0), count(*) FROM {self._entries} WHERE idx >= ?", (start,)).fetchone()
            if found == 0:  # nothing at or above start: the size is the highest index below it, plus one
                size = self._size()
            return int(size), int(found)

    def _writable_problem(self) -> str | None:
        """The database's folder short of space (SQLite needs room for its write-ahead log and a checkpoint)."""
        if self._path == ":memory:" or self._path.startswith("file:"):
            return None
        folder = os.path.dirname(os.path.abspath(self._path))
        try:
            stats = os.statvfs(folder)
        except OSError as exc:
            return f"{self._path}: cannot check its disk: {exc.strerror or exc}"
        free = stats.f_bavail * stats.f_frsize
        if free < MIN_FREE_BYTES:
            return (f"{self._path}: the disk holding the log is full ({free} bytes free, at least {MIN_FREE_BYTES} "
                    "needed to append safely)")
        if not os.access(folder, os.W_OK) or (os.path.exists(self._path) and not os.access(self._path, os.W_OK)):
            return f"{self._path}: the log database or its folder is not writable"
        return None

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        yield self._db  # one connection, used under the store's lock

    def _close(self) -> None:
        self._db.close()
