"""The shared log backend: PostgreSQL, for several gate replicas (psycopg 3 with psycopg_pool, imported on use).

Tables live in one schema per log (default ``tiergate``). Appends serialise on the row lock of ``log_head``;
triggers refuse updates, deletes and truncation; an advisory lock keeps replicas starting together from racing on
the schema's creation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from tiergate.errors import ConfigError, extra_missing

from .redact import redact_url
from .sql import SqlLogStore
from .store import FORMAT, Row, StoreError, check_namespace

DEFAULT_POSTGRES_SCHEMA = "tiergate"

# The pool logs failed reconnection attempts as warnings; with no handler configured Python would print them on
# stderr. The call that meets a lost connection reports it as a StoreError, in one line.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


def import_psycopg() -> Any:
    """The psycopg module (ConfigError naming the extra to install when it, or psycopg_pool, is missing)."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401  (the log store's connections come from a pool)
    except ImportError:
        raise extra_missing("postgres", "psycopg or psycopg_pool") from None
    return psycopg


class PostgresLogStore(SqlLogStore):
    """The shared log for several gate replicas: tables in schema ``namespace`` (default ``tiergate``).

    Appends serialise on the row lock of ``log_head`` (the current size), taken with ``SELECT ... FOR UPDATE`` in
    the append transaction, so replicas on different hosts never race for an index. Connections come from a
    ``psycopg_pool`` pool of one (the store's lock serialises its calls anyway): a connection lost to a server
    restart or a network cut fails the call that met it and is replaced, instead of failing every later call.
    """

    _P = "%s"

    def __init__(
        self, url: str, *, namespace: str | None = None, connect_timeout: float = 10.0, timeout: float = 30.0
    ) -> None:
        super().__init__()
        psycopg = import_psycopg()
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self._schema = check_namespace(namespace) or DEFAULT_POSTGRES_SCHEMA
        self._where = f"{redact_url(url)} schema {self._schema}"
        s = f'"{self._schema}"'
        self._entries, self._tiles, self._head, self._meta = (
            f"{s}.log_entries", f"{s}.log_tiles", f"{s}.log_head", f"{s}.log_meta"
        )
        # A replica that hangs inside an append must not block the others for ever: waiting for the head row gives
        # up after ``timeout``, and the server ends a session that idles in a transaction.
        milliseconds = max(1, int(timeout * 1000))
        self._settings = (f"SET lock_timeout = {milliseconds}",
                          f"SET idle_in_transaction_session_timeout = {max(60_000, 2 * milliseconds)}")
        seconds = max(1, int(connect_timeout))
        try:  # the first connection says why it failed, which a pool does not; it creates the schema, then goes
            first = psycopg.connect(url, autocommit=True, connect_timeout=seconds)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to the PostgreSQL log at {redact_url(url)}: {_reason(exc)}") from None
        try:
            with self._errors("open"):
                self._configure(first)
                self._initialise(first)
        finally:
            first.close()
        self._pool = ConnectionPool(url, min_size=1, max_size=1, num_workers=1, open=False,
                                    timeout=max(timeout, seconds),
                                    kwargs={"autocommit": True, "connect_timeout": seconds}, configure=self._configure,
                                    name=f"tiergate-log:{self._schema}")
        try:
            self._pool.open(wait=True, timeout=seconds)
        except psycopg.Error as exc:
            self._pool.close()
            raise ConfigError(f"cannot connect to the PostgreSQL log at {redact_url(url)}: {_reason(exc)}") from None

    def _configure(self, db: Any) -> None:
        for statement in self._settings:
            db.execute(statement)

    def _connection(self) -> AbstractContextManager[Any]:
        return self._pool.connection()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._psycopg.errors.LockNotAvailable:
            raise StoreError(f"{self._where}: another writer held the log for too long during {action}") from None
        except self._psycopg.Error as exc:
            raise StoreError(f"{self._where}: log database error during {action}: {_reason(exc)}") from None

    def _initialise(self, db: Any) -> None:
        """Create the schema once; an advisory lock keeps replicas starting together from racing on DDL."""
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tiergate-log:{self._schema}",))
            exists = db.execute("SELECT to_regclass(%s)", (self._meta,)).fetchone()[0]
            if exists is not None:
                row = db.execute(f"SELECT value FROM {self._meta} WHERE key = 'format'").fetchone()
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
                    BEGIN RAISE EXCEPTION 'tiergate log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
                    END $$""",
            ):
                db.execute(statement)
            for table, name in ((self._entries, "log_entries"), (self._tiles, "log_tiles"), (self._meta, "log_meta")):
                db.execute(
                    f"CREATE TRIGGER {name}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {s}.log_refuse_change()"
                )
                db.execute(
                    f"CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {table} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_refuse_change()"
                )
            db.execute(f"INSERT INTO {self._meta} (key, value) VALUES ('format', %s)", (FORMAT,))

    def _insert(self, rows: list[Row]) -> int:
        with self._errors("append"), self._pool.connection() as db, db.transaction():
            first = db.execute(f"SELECT size FROM {self._head} WHERE id = 1 FOR UPDATE").fetchone()[0]
            with db.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self._entries} (idx, entry, leaf_hash, model_digest) VALUES (%s, %s, %s, %s)",
                    [(first + i, entry, leaf, digest) for i, (entry, leaf, digest) in enumerate(rows)],
                )
                tiles = self._completed_tiles(first, rows, lambda start, end: self._leaf_hashes_on(db, start, end))
                if tiles:
                    cursor.executemany(f"INSERT INTO {self._tiles} (tile, hash) VALUES (%s, %s)", tiles)
            db.execute(f"UPDATE {self._head} SET size = %s WHERE id = 1", (first + len(rows),))
            return int(first)

    def _size(self) -> int:
        with self._errors("size"), self._pool.connection() as db:
            return int(db.execute(f"SELECT size FROM {self._head} WHERE id = 1").fetchone()[0])

    def _close(self) -> None:
        self._pool.close()


def _reason(exc: BaseException) -> str:
    """The first line of a database error, for a one-line message."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
