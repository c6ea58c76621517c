"""Which webhook revisions were handled, in a small table next to the log, so containment is idempotent across
restarts and replicas.

A key is ``(repo type, repo, commit, tier)`` (:func:`tiergate.integrations.hf.containment.seen_key`). Its row says:

- ``pending``: a process claimed it and is checking it. A claim older than the lease (the process died mid-check)
  may be taken over; a fresh one makes a redelivery wait (the service answers 503 so the Hub retries later);
- ``done``: handled; a redelivery does nothing;
- ``reopen``: handled by narrowing access below this tier. Meeting the revision at this tier again means someone
  widened access again after the containment, so it is claimable again and checked again.

Claiming is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so two replicas (or threads) racing for a
key cannot both win: the database's primary key decides. The table lives in the log's database (same SQLite file, or
the log's PostgreSQL schema) but is not part of the log: it is bookkeeping, and rows change; every step it guards is
recorded in the log itself.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tiergate.core.log.postgres import DEFAULT_POSTGRES_SCHEMA, HealingPool
from tiergate.core.log.redact import redact_url
from tiergate.core.log.store import StoreError
from tiergate.errors import ConfigError

#: Seconds after which a claim of a process that did not finish may be taken over. Checking one revision is a
#: handful of Hub requests bounded by their timeouts, far below this.
DEFAULT_LEASE = 600.0
PENDING, DONE, REOPEN = "pending", "done", "reopen"
_NAMESPACE = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def _encode(key: tuple[str, ...]) -> str:
    return json.dumps(list(key), separators=(",", ":"), ensure_ascii=False)


class DatabaseSeen:
    """A :class:`tiergate.integrations.hf.containment.SeenStore` in table ``hf_webhook_seen`` of the log's database."""

    def __init__(self, target: str, namespace: str | None = None, *, lease: float = DEFAULT_LEASE,
                 clock: Callable[[], float] = time.time, timeout: float = 30.0) -> None:
        if namespace is not None and not _NAMESPACE.fullmatch(namespace):
            raise ConfigError(f"log namespace {namespace!r} must be 1-40 characters of a-z, 0-9 and _")
        self._lease = lease
        self._clock = clock
        self._lock = threading.Lock()
        self._pool: HealingPool | None = None
        self._rowcount = -1
        scheme = target.split(":", 1)[0].lower() if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) else ""
        if scheme in ("postgresql", "postgres"):
            self._open_postgres(target, namespace or DEFAULT_POSTGRES_SCHEMA, timeout)
        else:
            path = target
            if scheme == "sqlite":
                path = target[len("sqlite:"):]
                path = path[2:] if path.startswith("///") else path
            self._open_sqlite(path, f"{namespace}_" if namespace else "", timeout)

    # --- backends ------------------------------------------------------------------------------------------------

    def _open_sqlite(self, path: str, prefix: str, timeout: float) -> None:
        self._where = path
        self._p = "?"
        self._table = f"{prefix}hf_webhook_seen"
        self._errors_from: tuple[type[BaseException], ...] = (sqlite3.Error,)
        try:
            self._db: Any = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: cannot open the webhook table: {exc}") from None
        with self._errors("open"):
            self._db.execute(f"""CREATE TABLE IF NOT EXISTS {self._table} (
                key TEXT PRIMARY KEY, state TEXT NOT NULL, claimed_at REAL NOT NULL)""")

    def _open_postgres(self, url: str, schema: str, timeout: float) -> None:
        """On a pool of its own that heals like the log's (:class:`~tiergate.core.log.postgres.HealingPool`): a
        terminated connection or a database restart costs no restart of the service."""
        self._where = f"{redact_url(url)} schema {schema}"
        self._p = "%s"
        self._table = f'"{schema}".hf_webhook_seen'
        self._errors_from = ()  # the pool says what failed itself, as a StoreError

        def initialise(db: Any) -> None:
            with db.transaction():  # replicas starting together must not race on the DDL
                db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tiergate-seen:{schema}",))
                db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                db.execute(f"""CREATE TABLE IF NOT EXISTS {self._table} (
                    key TEXT PRIMARY KEY, state TEXT NOT NULL, claimed_at DOUBLE PRECISION NOT NULL)""")

        self._pool = HealingPool(url, schema, "seen", [f"SET lock_timeout = {max(1, int(timeout * 1000))}"],
                                 initialise)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._errors_from as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{self._where}: webhook table error during {action}: {reason}") from None

    def _execute(self, action: str, sql: str, params: tuple[Any, ...], *, idempotent: bool = False) -> list[Any]:
        """The statement's rows (and its rowcount in :attr:`_rowcount`); a read (``idempotent``) is retried once on
        a new connection if the first was lost, a write is not (it may have been applied)."""
        with self._lock:
            if self._pool is not None:
                def run(db: Any) -> list[Any]:
                    cursor = db.execute(sql.replace("?", self._p), params)
                    self._rowcount = cursor.rowcount
                    return cursor.fetchall() if cursor.description else []

                return self._pool.call(action, run, retry=lambda: idempotent)
            with self._errors(action):
                cursor = self._db.execute(sql, params)
                self._rowcount = cursor.rowcount
                return list(cursor.fetchall())

    # --- SeenStore -----------------------------------------------------------------------------------------------

    def add(self, key: tuple[str, ...]) -> bool:
        """Claim ``key``: True if it was free, reopened, or claimed by a process whose lease ran out."""
        now = self._clock()
        self._execute("claim", f"""
            INSERT INTO {self._table} AS s (key, state, claimed_at) VALUES (?, '{PENDING}', ?)
            ON CONFLICT (key) DO UPDATE SET state = '{PENDING}', claimed_at = excluded.claimed_at
            WHERE s.state = '{REOPEN}' OR (s.state = '{PENDING}' AND s.claimed_at < ?)""",
                                (_encode(key), now, now - self._lease))
        return self._rowcount == 1

    def discard(self, key: tuple[str, ...]) -> None:
        """Release a claim (handling failed): a redelivery will try again."""
        self._execute("release", f"DELETE FROM {self._table} WHERE key = ? AND state = '{PENDING}'", (_encode(key),))

    def done(self, key: tuple[str, ...], *, reopen: bool = False) -> None:
        self._execute("finish", f"UPDATE {self._table} SET state = ?, claimed_at = ? WHERE key = ?",
                      (REOPEN if reopen else DONE, self._clock(), _encode(key)))

    def state(self, key: tuple[str, ...]) -> str | None:
        """``pending`` (claimed, lease running), ``done``, ``reopen``, or None (free or claim expired)."""
        rows = self._execute("read", f"SELECT state, claimed_at FROM {self._table} WHERE key = ?", (_encode(key),),
                             idempotent=True)
        if not rows:
            return None
        row = rows[0]
        state, claimed_at = str(row[0]), float(row[1])
        if state == PENDING and claimed_at < self._clock() - self._lease:
            return None
        return state

    def close(self) -> None:
        with self._lock:
            (self._pool or self._db).close()
