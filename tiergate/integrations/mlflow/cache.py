"""Not hashing the same weights twice: manifests of on-disk model folders, keyed by a stat of every file.

Setting an alias on a version that was just registered must not read a 500 GB model again, but a weight file
changed since must still be caught. The key is the set of files the manifest covers with, for each, its size,
mtime, ctime, inode and device. ctime cannot be set back by the writer (``touch -d`` and ``os.utime`` move it
forward), so a rewrite that restores size and mtime still misses the cache. A manifest is only cached if nothing
changed while it was being hashed.

Only folders hashed in place are cached; a download is a fresh copy every time. The cache lives in one server
worker: each worker hashes a version the first time it sees it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from collections.abc import Callable

from tiergate.core.manifest import Manifest, hash_model, list_files
from tiergate.errors import ModelError

Signature = tuple[tuple[str, int, int, int, int, int], ...]

#: Manifests kept per worker. A manifest is ~150 bytes per file: 256 models of 1,000 files are ~40 MB at worst.
DEFAULT_ENTRIES = 256
#: Folders share this many locks: bounded memory, and two models wait for each other 1 time in 64.
LOCK_STRIPES = 64


def signature(root: Path) -> Signature:
    """The stat of every file hash_model would read (same walk, same ignores, symlinks resolved)."""
    rows = []
    for entry in list_files(root):
        try:
            st = os.stat(entry.real)
        except OSError as exc:
            raise ModelError(f"{entry.path}: cannot stat ({exc.strerror}); is the model being modified?") from None
        rows.append((entry.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev))
    return tuple(sorted(rows))


class ManifestCache:
    """Manifests of model folders, reused while their files are untouched. Safe to share between threads."""

    def __init__(self, entries: int = DEFAULT_ENTRIES, hasher: Callable[[Path], Manifest] = hash_model) -> None:
        self._entries = entries
        self._hasher = hasher
        self._cache: OrderedDict[str, tuple[Signature, Manifest]] = OrderedDict()
        self._lock = threading.Lock()
        self._stripes = tuple(threading.Lock() for _ in range(LOCK_STRIPES))

    def manifest(self, root: Path) -> tuple[Manifest, bool]:
        """The manifest of ``root`` and whether it came from the cache.

        Requests for the same folder wait for one hash instead of each reading the model (a client that times out
        and retries would otherwise start a second full read).
        """
        key = str(root.resolve())
        with self._stripes[hash(key) % LOCK_STRIPES]:
            before = signature(root)
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and hit[0] == before:
                    self._cache.move_to_end(key)
                    return hit[1], True
            manifest = self._hasher(root)
            if signature(root) == before:
                with self._lock:
                    self._cache[key] = (before, manifest)
                    self._cache.move_to_end(key)
                    while len(self._cache) > self._entries:
                        self._cache.popitem(last=False)
            return manifest, False
