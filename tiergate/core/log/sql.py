"""What the SQL backends share: the reads, the same SQL on SQLite and PostgreSQL but for the parameter placeholder.

A backend supplies ``_connection()`` (a database connection for one operation: SQLite's one connection, a pooled
PostgreSQL one) and ``_errors(action)`` (its database errors as :class:`~tiergate.core.log.store.StoreError`), plus
the writes.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import Any

from .store import LogEntry, LogStore


class SqlLogStore(LogStore):
    """A :class:`LogStore` on tables ``_entries`` (idx, entry, leaf_hash, model_digest) and ``_tiles`` (tile, hash)."""

    _P = "?"
    _entries: str
    _tiles: str

    @abstractmethod
    def _connection(self) -> AbstractContextManager[Any]:
        """A connection for one operation (used inside ``_errors``)."""

    @abstractmethod
    def _errors(self, action: str) -> AbstractContextManager[None]:
        """Turns the backend's database errors during ``action`` into StoreError."""

    def _rows(self, action: str, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._errors(action), self._connection() as db:
            return list(db.execute(sql, params))

    def _fetch_entries(self, start: int, end: int) -> list[LogEntry]:
        return [LogEntry(int(i), bytes(e), bytes(h), d) for i, e, h, d in self._rows(
            "read",
            f"SELECT idx, entry, leaf_hash, model_digest FROM {self._entries} "
            f"WHERE idx >= {self._P} AND idx < {self._P} ORDER BY idx",
            (start, end),
        )]

    def _fetch_leaf_hashes(self, start: int, end: int) -> list[bytes]:
        with self._errors("read"), self._connection() as db:
            return self._leaf_hashes_on(db, start, end)

    def _leaf_hashes_on(self, db: Any, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``[start, end)`` read on ``db`` (inside a backend's append transaction, too)."""
        cursor = db.execute(
            f"SELECT leaf_hash FROM {self._entries} WHERE idx >= {self._P} AND idx < {self._P} ORDER BY idx",
            (start, end),
        )
        return [bytes(h) for (h,) in cursor]

    def _fetch_tiles(self, start: int, end: int) -> list[tuple[int, bytes]]:
        return [(int(t), bytes(h)) for t, h in self._rows(
            "read",
            f"SELECT tile, hash FROM {self._tiles} WHERE tile >= {self._P} AND tile < {self._P} ORDER BY tile",
            (start, end),
        )]

    def _find(self, model_digest: str | None, start: int, end: int, limit: int | None) -> list[LogEntry]:
        sql = (f"SELECT idx, entry, leaf_hash, model_digest FROM {self._entries} "
               f"WHERE idx >= {self._P} AND idx < {self._P}")
        params: list[Any] = [start, end]
        if model_digest is not None:
            sql += f" AND model_digest = {self._P}"
            params.append(model_digest)
        sql += " ORDER BY idx"
        if limit is not None:
            sql += f" LIMIT {self._P}"
            params.append(limit)
        return [LogEntry(int(i), bytes(e), bytes(h), d) for i, e, h, d in self._rows("find", sql, params)]
