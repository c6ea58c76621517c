"""Digests of unchanged files, remembered between runs, so that re-checking 400 GB of unchanged weights is a stat.

A file's SHA-256 and content class are kept under the key ``(device, inode, size, mtime, ctime)`` of the file they
were read from, and are used again only when all five still match the open file. Every write to a file moves its
mtime and ctime forward, and ctime cannot be set by the writer (``touch -d`` and ``os.utime`` move it to *now*), so a
rewrite that restores size and mtime still misses. What is never trusted:

- a file whose key changed while it was hashed (nothing is stored);
- a file changed within :data:`RACY_NS` of the hash starting: timestamps have a granularity, and a write in the same
  tick as the read would keep the key (git's "racy clean" problem), so such a file is hashed again next time;
- a cache the current user does not own, or that others may write (its folder or file): it is not used at all;
- rows from another tiergate version (the content classifier may have changed): the cache starts afresh.

The cache is the user's own: anyone who can write it can make the gate take other bytes for the ones it checked,
exactly as anyone who can write the user's model folder after a check can. Shared services (``gate serve``, the MLflow
plugin) do not use it; CI starts without one. Every doubt means hashing the bytes, never a deny.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path
from collections.abc import Iterable

from tiergate import __version__

#: A file whose mtime or ctime is this close to the start of its hash is not remembered (coarse timestamps).
RACY_NS = 2_000_000_000
#: Where the cache lives unless GATE_CACHE_DIR says otherwise: ``$XDG_CACHE_HOME/tiergate`` (``~/.cache/tiergate``).
FILE_NAME = "digests.sqlite3"

Key = tuple[int, int, int, int, int]


def file_key(st: os.stat_result) -> Key:
    """The key a file's digest is remembered under."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def default_dir() -> Path:
    """The cache folder for this user: ``$GATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/tiergate``, else
    ``~/.cache/tiergate``."""
    if os.environ.get("GATE_CACHE_DIR"):
        return Path(os.environ["GATE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tiergate"


def _private(path: Path) -> str | None:
    """Why ``path`` may not hold the user's cache (None if it may): owned by someone else, or writable by others."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if st.st_uid != os.getuid():
        return f"{path} belongs to another user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by other users"
    return None


class DigestCache:
    """A SQLite file of remembered digests (safe to share between threads: one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=5, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS digests (dev INTEGER, ino INTEGER, size INTEGER, "
                         "mtime INTEGER, ctime INTEGER, sha256 TEXT NOT NULL, content TEXT NOT NULL, "
                         "PRIMARY KEY (dev, ino))")
        row = self._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if row is None or row[0] != __version__:
            with self._db:
                self._db.execute("DELETE FROM digests")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (__version__,))

    @classmethod
    def open(cls, folder: Path | None = None) -> tuple[DigestCache | None, str | None]:
        """The cache in ``folder`` (default :func:`default_dir`), created private (0700/0600) if absent; or None and
        why it cannot be used. Never raises for an unusable cache: the caller hashes instead."""
        folder = folder or default_dir()
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            problem = _private(folder)
            if problem is None:
                path = folder / FILE_NAME
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                os.close(fd)
                problem = _private(path)
            if problem is not None:
                return None, problem + ": the digest cache is not used"
            return cls(path), None
        except (OSError, sqlite3.Error) as exc:
            return None, f"the digest cache in {folder} cannot be used ({exc}); hashing every file"

    def get(self, st: os.stat_result) -> tuple[str, str] | None:
        """The ``(sha256 hex, content class)`` remembered for the file ``st`` describes, if its key still matches."""
        key = file_key(st)
        try:
            with self._lock:
                row = self._db.execute("SELECT size, mtime, ctime, sha256, content FROM digests "
                                       "WHERE dev = ? AND ino = ?", key[:2]).fetchone()
        except sqlite3.Error:
            return None
        if row is None or tuple(row[:3]) != key[2:]:
            return None
        return str(row[3]), str(row[4])

    def put(self, rows: Iterable[tuple[os.stat_result, str, str]], started_ns: int) -> None:
        """Remember ``(stat, sha256 hex, content class)`` rows of files hashed from ``started_ns`` (wall clock,
        ``time.time_ns()``) on, leaving out files changed within :data:`RACY_NS` of it."""
        fresh = [file_key(st) + (digest, content) for st, digest, content in rows
                 if max(st.st_mtime_ns, st.st_ctime_ns) < started_ns - RACY_NS]
        if not fresh:
            return
        try:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)", fresh)
        except sqlite3.Error:
            pass  # a cache that cannot be written only costs the next run a re-hash

    def close(self) -> None:
        with self._lock:
            self._db.close()
