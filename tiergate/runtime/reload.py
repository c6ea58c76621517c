"""Following configuration files while a process runs: the one reloader of every long-running gate process.

A key revoked in the trust store, a key file replaced, a policy tightened must reach the next decision, without a
restart: ``gate serve``, its Hub webhook and the MLflow plugin run for months. :class:`Reloader` holds what was
loaded from a set of files (the ``GATE_CONFIG`` file, the policy, the trust store and every key file the trust store
names by path) and, before handing it out, checks whether any of them changed:

- symlinks are resolved at every check (an atomic deploy re-points a link: the new target is what counts);
- a check is a ``stat`` of each file (cheap; it follows the links, so a re-pointed link shows as another inode); a
  file whose stat changed is hashed, and so is every file
  every :data:`REHASH_EVERY` seconds (a write that keeps size and times); a changed *content* reloads;
- a load that fails leaves no configuration: :meth:`Reloader.current` raises :class:`ConfigurationBroken` naming the
  file (so every decision is denied) until a later check loads cleanly, which it retries on any change of the files
  watched and every :data:`REHASH_EVERY` seconds, so a link that dangled for a moment recovers by itself;
- a load is kept only if the files hashed the same just before and just after it, so a file changed half-way
  through a load is not mistaken for the one that was read.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar
from collections.abc import Callable, Sequence

from tiergate.errors import ConfigError, GateError

T = TypeVar("T")

#: Seconds after which every watched file is hashed again even if its stat did not change.
REHASH_EVERY = 2.0
#: Loads tried in a row while the files keep changing under them.
_SETTLE_TRIES = 5
#: Bytes of a watched file hashed at most (the loaders refuse larger files anyway).
_MAX_HASHED = 64 * 1024 * 1024

Stat = tuple[int, int, int, int, int] | None  # dev, inode, size, mtime_ns, ctime_ns (None: not there)
Content = str | None  # sha256 of the bytes (None: not readable)


class ConfigurationBroken(ConfigError):
    """The configuration files do not load (any more): every decision is refused until they are fixed. ``reason``
    is the error the load raised (it names the file)."""

    def __init__(self, reason: GateError) -> None:
        super().__init__(f"the gate configuration does not load, so every decision is refused until it is fixed: "
                         f"{reason}")
        self.reason = reason


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """What a loader returns: the value, and every file it was read from (to be watched)."""

    value: T
    files: tuple[Path, ...]


def _stat(path: Path) -> Stat:
    """The stat of what ``path`` leads to now: ``os.stat`` follows every link in the chain at each call, so a link
    re-pointed to another file shows as another device and inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _content(path: Path) -> Content:
    """The sha256 of what ``path`` leads to now (links followed), None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            hasher = hashlib.sha256()
            remaining = _MAX_HASHED
            while remaining > 0 and (chunk := handle.read(min(1 << 20, remaining))):
                hasher.update(chunk)
                remaining -= len(chunk)
        return hasher.hexdigest()
    except OSError:
        return None


class Reloader(Generic[T]):
    """Holds the value ``load`` makes from files, made again whenever one of those files changes. Thread-safe.

    ``load`` raises :class:`~tiergate.errors.GateError` for a configuration that does not load; ``roots`` are the files
    to watch while there is no loaded value to say which (at least the ones ``load`` starts from). ``on_change`` is
    told of every reload after the first: the new value, or the error (for the operator's log; it must not raise).
    """

    def __init__(self, load: Callable[[], Loaded[T]], roots: Callable[[], Sequence[Path]] = tuple,
                 *, rehash_every: float = REHASH_EVERY, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[T | None, ConfigurationBroken | None], None] | None = None) -> None:
        self._load = load
        self._roots = roots
        self._on_change = None
        self._rehash_every = rehash_every
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: ConfigurationBroken | None = None
        self._files: tuple[Path, ...] = ()
        self._stats: tuple[Stat, ...] = ()
        self._contents: tuple[Content, ...] = ()
        self._hashed_at = 0.0
        with self._lock:
            self._reload()
        self._on_change = on_change

    @property
    def error(self) -> ConfigurationBroken | None:
        """Why the files do not load now (None when they do); checks the files first."""
        with self._lock:
            self._check()
            return self._error

    def current(self) -> T:
        """The value for the files as they are now; raises :class:`ConfigurationBroken` while they do not load."""
        with self._lock:
            self._check()
            if self._error is not None:
                raise self._error
            assert self._value is not None
            return self._value

    # --- inside the lock ---------------------------------------------------------------------------------------

    def _check(self) -> None:
        stats = tuple(_stat(p) for p in self._files)
        due = self._clock() - self._hashed_at >= self._rehash_every
        if stats == self._stats and not due:
            return
        changed = [i for i, (now, then) in enumerate(zip(stats, self._stats, strict=False)) if now != then]
        indices = range(len(self._files)) if due else changed
        contents = list(self._contents)
        for i in indices:
            contents[i] = _content(self._files[i])
        if due:
            self._hashed_at = self._clock()
        self._stats = stats
        if tuple(contents) != self._contents or (due and self._error is not None):
            was = self._error
            self._reload()
            if self._on_change is not None and (self._error is None or was is None or str(was) != str(self._error)):
                self._on_change(self._value, self._error)  # not again for each retry of the same broken state

    def _reload(self) -> None:
        """Load until the files read the same before and after a load (or give up: broken, retried later)."""
        files = tuple(self._files) or tuple(self._roots())
        problem: GateError | None = None
        for _ in range(_SETTLE_TRIES):
            before = tuple(_content(p) for p in files)
            try:
                loaded = self._load()
            except GateError as exc:
                problem = exc
                files = _union(files, tuple(self._roots()))
                if tuple(_content(p) for p in files[:len(before)]) == before:
                    break  # broken as it stands, not mid-change
                continue
            except Exception as exc:  # noqa: BLE001 - an unexpected failure is still a configuration that does not load
                problem = ConfigError(f"the gate configuration does not load: {type(exc).__name__}: {exc}")
                files = _union(files, tuple(self._roots()))
                break
            stats = tuple(_stat(p) for p in loaded.files)  # before hashing: a later change shows in the stat
            after = tuple(_content(p) for p in loaded.files)
            if loaded.files == files and after == before:
                self._value, self._error = loaded.value, None
                self._watch(files, stats, after)
                return
            files, problem = loaded.files, ConfigError("the configuration files kept changing while being read")
        self._value = None
        assert problem is not None
        self._error = ConfigurationBroken(problem)
        stats = tuple(_stat(p) for p in files)
        self._watch(files, stats, tuple(_content(p) for p in files))

    def _watch(self, files: tuple[Path, ...], stats: tuple[Stat, ...], contents: tuple[Content, ...]) -> None:
        self._files, self._stats, self._contents = files, stats, contents
        self._hashed_at = self._clock()


def _union(first: tuple[Path, ...], second: tuple[Path, ...]) -> tuple[Path, ...]:
    return first + tuple(p for p in second if p not in first)
