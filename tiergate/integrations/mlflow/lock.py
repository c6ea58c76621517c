"""The registry lock: one lock in the store every worker and replica of the server shares.

A gated registry call resolves names to a version, finds and hashes its files, decides, records the decision and
lets MLflow write. Any other registry write in between (a rename, a delete and re-create, a copy) or an artifact
upload into the files being hashed could make MLflow's write land on something the gate never decided on. So the
whole gated call holds this lock *exclusively*, and so does every other registry write (the store guard in
:mod:`tiergate.integrations.mlflow.registry` takes it around every write method of MLflow's registry store); artifact
writes through the server hold it *shared* while they run, so they cannot overlap a decision but do not wait for each
other.

Where the lock lives, so that it covers everything that shares the backend store:

- PostgreSQL: a session-level advisory lock (``pg_advisory_lock`` / ``pg_advisory_lock_shared``) in the registry
  database, on a connection of its own (not one of MLflow's pool, which the holder needs for its writes). A worker
  that dies releases it with its connection.
- SQLite: an ``flock`` on a file beside the database (``<db file>.tiergate.lock``). Everything that writes the
  SQLite file is on a machine that sees that folder; a worker that dies releases it with its file descriptor.

Any other backend store has no lock the gate knows: acquiring raises :class:`~tiergate.errors.ConfigError`, so every
registry write is refused (fail closed) until the backend is one of these.

The lock is re-entrant within a thread for exclusive holds (a store method calling another one, the gate writing its
own tags). Waiting is bounded by :data:`WAIT_SECONDS`; a lock not obtained in time is an error (the call is refused).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol
from collections.abc import Iterator

from tiergate.errors import ConfigError, GateError

#: How long a registry write or artifact write waits for a gated call in progress (which may be hashing a large
#: model) before it is refused.
WAIT_SECONDS = float(os.environ.get("GATE_MLFLOW_LOCK_WAIT", "300"))
#: The advisory lock key in PostgreSQL ("relgate" in ASCII): the same in every worker and replica.
ADVISORY_KEY = 0x72656C67617465
_POLL = 0.005


class LockTimeout(GateError):
    """The registry lock was not obtained within :data:`WAIT_SECONDS`."""


class Held(Protocol):
    def release(self) -> None: ...


class Backend(Protocol):
    """One kind of lock: ``acquire(shared)`` blocks until held (or raises), and returns the hold."""

    def acquire(self, shared: bool) -> Held: ...


class _FileHold:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops its flock


class FileLock:
    """``flock`` on a file: every open descriptor is its own holder, so threads of one process exclude each other
    as processes do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def acquire(self, shared: bool) -> Held:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + WAIT_SECONDS
        delay = _POLL
        while True:
            try:
                fcntl.flock(fd, mode)
                return _FileHold(fd)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise LockTimeout(f"the registry is busy: another registry write held its lock for more than "
                                      f"{WAIT_SECONDS:.0f} s; try again") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            except BaseException:
                os.close(fd)
                raise


class _PgHold:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def release(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            from sqlalchemy import text

            connection.execute(text("SELECT pg_advisory_unlock_all()"))
            connection.commit()
            connection.close()  # back to the lock's own pool, holding nothing
        except Exception:  # noqa: BLE001 - whatever failed, dropping the session releases its locks
            connection.invalidate()  # closes the session, which drops its advisory locks


class PostgresLock:
    """A session-level advisory lock in the registry's PostgreSQL database."""

    def __init__(self, uri: str) -> None:
        from sqlalchemy import create_engine

        # A pool of its own, never MLflow's connections: the holder needs those for its writes, and uploads waiting
        # for a gated call must not take them all.
        self._engine = create_engine(uri, pool_pre_ping=True, pool_size=2, max_overflow=64)

    def acquire(self, shared: bool) -> Held:
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError

        connection = self._engine.connect()
        try:
            connection.execute(text(f"SET lock_timeout = '{max(1, int(WAIT_SECONDS * 1000))}ms'"))  # 0 = forever
            function = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
            connection.execute(text(f"SELECT {function}(:key)"), {"key": ADVISORY_KEY})
            connection.commit()  # the lock is the session's, not the transaction's
        except OperationalError as exc:
            connection.invalidate()
            if "lock timeout" in str(exc).lower():
                raise LockTimeout(f"the registry is busy: another registry write held its lock for more than "
                                  f"{WAIT_SECONDS:.0f} s; try again") from None
            raise
        except BaseException:
            connection.invalidate()  # never back to the pool with a lock it might hold
            raise
        return _PgHold(connection)


class Unsupported:
    def __init__(self, uri: str) -> None:
        self.scheme = uri.split(":", 1)[0]

    def acquire(self, shared: bool) -> Held:
        raise ConfigError(f"tiergate cannot lock a '{self.scheme}' registry store across workers, so it cannot "
                          "make a gated call atomic; registry writes are refused. Use a SQLite or PostgreSQL "
                          "backend store")


def backend_for(uri: str) -> Backend:
    """The lock for the registry store at ``uri`` (a SQLAlchemy URI as given to ``mlflow server``)."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception:  # noqa: BLE001 - an unparsable store URI is one the lock does not support
        return Unsupported(uri)
    dialect = url.get_backend_name()
    if dialect == "sqlite" and url.database and url.database != ":memory:":
        return FileLock(Path(os.path.abspath(url.database) + ".tiergate.lock"))
    if dialect == "postgresql":
        return PostgresLock(uri)
    return Unsupported(uri)


class RegistryLock:
    """The lock over a backend: exclusive holds re-entrant per thread, shared holds handed to the caller."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._local = threading.local()

    def held_exclusively(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock exclusively for the block; raises :class:`LockTimeout` or ConfigError if not obtained."""
        if self.held_exclusively():
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        hold = self._backend.acquire(shared=False)
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            hold.release()

    def shared(self) -> Held:
        """A shared hold for an artifact write; the caller releases it when the write is done. Inside an exclusive
        hold of this thread, nothing more is needed."""
        if self.held_exclusively():
            return _NoHold()
        return self._backend.acquire(shared=True)


class _NoHold:
    def release(self) -> None:
        pass


_LOCK: RegistryLock | None = None
_LOCK_GUARD = threading.Lock()


def registry_lock() -> RegistryLock:
    """The process's lock for the server's registry store (from the URI ``mlflow server`` hands its workers)."""
    global _LOCK
    with _LOCK_GUARD:
        if _LOCK is None:
            from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR, REGISTRY_STORE_URI_ENV_VAR

            uri = os.environ.get(REGISTRY_STORE_URI_ENV_VAR) or os.environ.get(BACKEND_STORE_URI_ENV_VAR) or ""
            _LOCK = RegistryLock(backend_for(uri))
        return _LOCK
