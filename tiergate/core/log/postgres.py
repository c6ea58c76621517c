"""The shared log backend: PostgreSQL, for several gate replicas (psycopg 3 with psycopg_pool, imported on use).

Tables live in one schema per log (default ``tiergate``). Appends serialise on the row lock of ``log_head``;
triggers refuse updates, deletes and truncation; an advisory lock keeps replicas starting together from racing on
the schema's creation.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from tiergate.errors import ConfigError, extra_missing

from .redact import redact_url
from .sql import SqlLogStore
from .store import FORMAT, Row, StoreError, check_namespace

DEFAULT_POSTGRES_SCHEMA = "tiergate"
#: Seconds a call waits for a connection (a new one is made within this when the pooled one was lost).
DEFAULT_POOL_TIMEOUT = 5.0
#: Seconds a call waits for a connection while the last one could not get any (the database is away): a replica
#: under load answers 503 at once instead of queueing every request behind a full wait.
AWAY_WAIT = 0.1
#: Seconds of failed reconnection attempts after which the pool starts a fresh series (see the class docstring).
RECONNECT_TIMEOUT = 2.0

#: libpq settings that bound how long a dead peer goes unnoticed: TCP keepalive probes after 5 s idle, every 2 s,
#: 3 lost ones end it; data unacknowledged for 15 s ends it too.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
              "tcp_user_timeout": 15_000}

T = TypeVar("T")

# The pool logs failed reconnection attempts as warnings; with no handler configured Python would print them on
# stderr. The call that meets a lost connection reports it as a StoreError, in one line.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


def application_name(schema: str) -> str:
    """The application_name of a gate's connections to the log in ``schema`` (the log's and its webhook table's):
    an operator, or a test, finds them in ``pg_stat_activity`` by it."""
    return f"tiergate:{schema}"


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
    ``psycopg_pool`` pool of one (the store's lock serialises its calls anyway), which heals by itself:

    - a pooled connection the server ended while it was idle (``pg_terminate_backend``, a restart, a failover) is
      seen before use, at no round trip (its socket has become readable), and replaced;
    - a call whose connection is lost under it runs once more on a new connection, unless the loss came while an
      append was committing (then whether it was written is unknown, and the call fails: the client hears a deny);
    - while the database is away, calls fail at once with a :class:`StoreError` saying so (after the first, which
      waits up to ``pool_timeout``), and the pool keeps trying to reconnect every second or so, so the store answers
      again within about a second of the database's return.
    """

    _P = "%s"

    def __init__(
        self, url: str, *, namespace: str | None = None, connect_timeout: float = 10.0, timeout: float = 30.0,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        super().__init__()
        self._schema = check_namespace(namespace) or DEFAULT_POSTGRES_SCHEMA
        s = f'"{self._schema}"'
        self._entries, self._tiles, self._head, self._meta = (
            f"{s}.log_entries", f"{s}.log_tiles", f"{s}.log_head", f"{s}.log_meta"
        )
        # A replica that hangs inside an append must not block the others for ever: waiting for the head row gives
        # up after ``timeout``, and the server ends a session that idles in a transaction.
        milliseconds = max(1, int(timeout * 1000))
        settings = (f"SET lock_timeout = {milliseconds}",
                    f"SET idle_in_transaction_session_timeout = {max(60_000, 2 * milliseconds)}")
        self._where = f"{redact_url(url)} schema {self._schema}"
        self._pool = HealingPool(url, self._schema, "log", settings, self._initialise,
                                 connect_timeout=connect_timeout, pool_timeout=pool_timeout)

    def _connection(self) -> AbstractContextManager[Any]:
        return self._pool.connection()

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return self._pool.errors(action)

    def _call(self, action: str, work: Callable[[Any], T], retry: Callable[[], bool] = lambda: True) -> T:
        return self._pool.call(action, work, retry)

    def _rows(self, action: str, sql: str, params: Any) -> list[tuple[Any, ...]]:
        return self._call(action, lambda db: db.execute(sql, params).fetchall())

    def _fetch_leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return self._call("read", lambda db: self._leaf_hashes_on(db, start, end))

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
        committing = False

        def append(db: Any) -> int:
            nonlocal committing
            committing = False
            with db.transaction():
                first = db.execute(f"SELECT size FROM {self._head} WHERE id = 1 FOR UPDATE").fetchone()[0]
                # One statement per table, rows as arrays: one round trip each, and no pipeline mode (executemany's),
                # whose wait for results after a connection hiccup was seen to hang.
                db.execute(
                    f"INSERT INTO {self._entries} (idx, entry, leaf_hash, model_digest) "
                    "SELECT * FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[], %s::text[])",
                    ([first + i for i in range(len(rows))], [r[0] for r in rows], [r[1] for r in rows],
                     [r[2] for r in rows]),
                )
                tiles = self._completed_tiles(first, rows, lambda start, end: self._leaf_hashes_on(db, start, end))
                if tiles:
                    db.execute(f"INSERT INTO {self._tiles} (tile, hash) SELECT * FROM unnest(%s::bigint[], "
                               "%s::bytea[])", ([t for t, _ in tiles], [h for _, h in tiles]))
                db.execute(f"UPDATE {self._head} SET size = %s WHERE id = 1", (first + len(rows),))
                committing = True  # the COMMIT follows: lost now, the append may or may not have been written
            return int(first)

        return self._call("append", append, retry=lambda: not committing)

    def _size(self) -> int:
        return self._call("size",
                          lambda db: int(db.execute(f"SELECT size FROM {self._head} WHERE id = 1").fetchone()[0]))

    def _span(self, start: int) -> tuple[int, int]:
        def read(db: Any) -> tuple[int, int]:
            size, found = db.execute(f"SELECT h.size, (SELECT count(*) FROM {self._entries} WHERE idx >= %s AND "
                                     f"idx < h.size) FROM {self._head} h WHERE h.id = 1", (start,)).fetchone()
            return int(size), int(found)

        return self._call("read", read)

    def _writable_problem(self) -> str | None:
        """Why the log cannot be written now: the database unreachable, or read-only (a standby after a failover)."""
        try:
            read_only = self._call("health check", lambda db: db.execute(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'").fetchone()[0])
        except StoreError as exc:
            return str(exc)
        return f"{self._where}: the log database is read-only (a standby?)" if read_only else None

    def _close(self) -> None:
        self._pool.close()


class HealingPool:
    """A ``psycopg_pool`` pool of one connection to the log's database that heals by itself (see
    :class:`PostgresLogStore`), for the log and for the tables kept next to it (the webhook's).

    ``purpose`` names the user in messages and in the connections' application_name; ``settings`` run on every new
    connection; ``initialise(connection)`` runs once, on a first connection made directly, whose failure says why
    (a pool only times out). Raises ConfigError when the database cannot be reached at all.
    """

    def __init__(self, url: str, schema: str, purpose: str, settings: Sequence[str],
                 initialise: Callable[[Any], None], *, connect_timeout: float = 10.0,
                 pool_timeout: float = DEFAULT_POOL_TIMEOUT) -> None:
        if not 0 < pool_timeout <= 3600:
            raise ConfigError("the log's pool timeout must be more than 0 and at most 3600 seconds, "
                              f"not {pool_timeout}")
        psycopg = import_psycopg()
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._psycopg = psycopg
        self._pool_timeout_error = PoolTimeout
        self._timeout = pool_timeout
        self._settings = tuple(settings)
        self._away = False  # the last attempt to get a connection timed out: the database is away
        self.where = f"{redact_url(url)} schema {schema}"
        #: What the server shows for these connections (pg_stat_activity.application_name): one name per log.
        name = application_name(schema)
        seconds = max(1, int(connect_timeout))
        try:
            first = psycopg.connect(url, autocommit=True, connect_timeout=seconds, application_name=name)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to the PostgreSQL log at {redact_url(url)}: {_reason(exc)}") from None
        try:
            with self.errors("open"):
                self._configure(first)
                initialise(first)
        finally:
            first.close()
        # reconnect_timeout: the pool gives up a series of reconnection attempts after this long and starts a new
        # one at the next call, so attempts stay about a second apart instead of backing off to minutes.
        # A network cut sends no reset: without keepalives a call waiting for an answer would wait for ever, holding
        # the store (and every request behind it). With them the connection is declared dead within ~15 s.
        given = set(psycopg.conninfo.conninfo_to_dict(url))  # libpq parameters in the URL win over these defaults
        kwargs = {"autocommit": True, "connect_timeout": seconds, "application_name": name,
                  **{key: value for key, value in KEEPALIVES.items() if key not in given}}
        self._pool = ConnectionPool(url, min_size=1, max_size=1, num_workers=1, open=False, timeout=pool_timeout,
                                    kwargs=kwargs,
                                    configure=self._configure, check=_check_connection,
                                    reconnect_timeout=RECONNECT_TIMEOUT, name=f"tiergate-{purpose}:{schema}")
        try:
            self._pool.open(wait=True, timeout=seconds)
        except psycopg.Error as exc:
            self._pool.close()
            raise ConfigError(f"cannot connect to the PostgreSQL log at {redact_url(url)}: {_reason(exc)}") from None

    def _configure(self, db: Any) -> None:
        for statement in self._settings:
            db.execute(statement)

    def connection(self) -> AbstractContextManager[Any]:
        """A pooled connection; while the database is away, the wait is short, so a loaded replica answers 503 at
        once instead of queueing every request behind a full wait."""
        return self._pool.connection(timeout=AWAY_WAIT if self._away else self._timeout)

    def call(self, action: str, work: Callable[[Any], T], retry: Callable[[], bool] = lambda: True) -> T:
        """``work(connection)``; once more on a new connection if the first was lost under it and ``retry()`` says
        running it again is safe. Raises :class:`StoreError` saying what failed during ``action``."""
        with self.errors(action):
            try:
                return self._once(work)
            except self._psycopg.OperationalError as exc:
                if not _lost(exc, self._pool_timeout_error) or not retry():
                    raise
            return self._once(work)

    def _once(self, work: Callable[[Any], T]) -> T:
        try:
            with self.connection() as db:
                result = work(db)
        except self._pool_timeout_error:
            self._away = True
            raise
        self._away = False
        return result

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """The database's errors during ``action`` as one-line :class:`StoreError`."""
        try:
            yield
        except self._psycopg.errors.LockNotAvailable:
            raise StoreError(f"{self.where}: another writer held the log for too long during {action}") from None
        except self._pool_timeout_error:
            raise StoreError(f"{self.where}: the log database is unreachable (no connection within "
                             f"{AWAY_WAIT if self._away else self._timeout:g} s during {action}; reconnecting)"
                             ) from None
        except self._psycopg.Error as exc:
            raise StoreError(f"{self.where}: log database error during {action}: {_reason(exc)}") from None

    def close(self) -> None:
        self._pool.close()


def _check_connection(db: Any) -> None:
    """The pool's check before handing out a connection: an idle connection has nothing to read, so a readable
    socket means the server ended it (or sent a notice); only then is it tried, with an empty query that raises for
    a dead connection (which the pool then replaces). No round trip for a healthy connection."""
    readable, _, _ = select.select([db.fileno()], [], [], 0)  # fileno() of a closed connection raises
    if readable:
        from psycopg_pool import ConnectionPool

        ConnectionPool.check_connection(db)


def _lost(exc: BaseException, pool_timeout: type[BaseException]) -> bool:
    """Whether ``exc`` is a lost connection (worth one retry on a new one): no SQLSTATE (the socket closed), a
    connection exception (08) or an operator intervention (57P: terminated, shutting down); never a timeout waiting
    for the pool or for a lock."""
    state = getattr(exc, "sqlstate", None)
    return not isinstance(exc, pool_timeout) and (state is None or state.startswith(("08", "57P")))


def _reason(exc: BaseException) -> str:
    """The first line of a database error, for a one-line message."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
