"""The digest cache: unchanged files are not read again, and no change of a file's bytes is ever missed."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from support import run_gate

from tiergate.core import digestcache
from tiergate.core.digestcache import DigestCache
from tiergate.core.manifest import CHUNK_SIZE, hash_model

BIG = 3 * CHUNK_SIZE + 123  # read in several chunks, so a read and a remembered digest report progress differently


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled at once (the real window is covered by its own test)."""
    monkeypatch.setattr(digestcache, "RACY_NS", 0)


def _model(tmp: Path) -> Path:
    model = tmp / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(BIG))
    (model / "config.json").write_text('{"a": 1}')
    return model


def _hash(model: Path, cache: DigestCache | None) -> tuple[str, int]:
    """The root digest and how many progress reports hashing made (one per chunk read, one per remembered file)."""
    calls: list[int] = []
    digest = hash_model(model, cache=cache, progress=calls.append, workers=1).digest
    return digest, len(calls)


def _cache(tmp: Path) -> DigestCache:
    cache, problem = DigestCache.open(tmp / "cache")
    assert cache is not None, problem
    return cache


def test_unchanged_files_are_not_read_again(tmp_path: Path, no_racy_window: None) -> None:
    model, cache = _model(tmp_path), _cache(tmp_path)
    fresh, reads = _hash(model, cache)
    again, remembered = _hash(model, cache)
    assert again == fresh == hash_model(model).digest
    assert reads > 2 and remembered == 2  # every chunk read the first time; one report per file the second


@pytest.mark.parametrize("change", ["same size and mtime", "replaced by rename", "appended", "truncated"])
def test_every_change_of_the_bytes_is_read(tmp_path: Path, no_racy_window: None, change: str) -> None:
    model, cache = _model(tmp_path), _cache(tmp_path)
    weights = model / "weights.bin"
    _hash(model, cache)
    before = weights.stat()
    if change == "same size and mtime":  # the forger's rewrite: size and mtime restored, only ctime tells
        with open(weights, "r+b") as handle:
            handle.write(b"\xff" * 16)
        os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    elif change == "replaced by rename":
        (model / "new.tmp").write_bytes(os.urandom(BIG))
        os.replace(model / "new.tmp", weights)
    elif change == "appended":
        with open(weights, "ab") as handle:
            handle.write(b"x")
    else:
        os.truncate(weights, 10)
    digest, _ = _hash(model, cache)
    assert digest == hash_model(model).digest


def test_a_file_changed_just_before_the_hash_is_not_remembered(tmp_path: Path) -> None:
    # Timestamps have a granularity: a write in the same tick as the read could keep the key, so files this fresh
    # are hashed again next time (the real RACY_NS window).
    model, cache = _model(tmp_path), _cache(tmp_path)
    _hash(model, cache)
    assert cache.get(os.stat(model / "weights.bin")) is None
    _, reads = _hash(model, cache)
    assert reads > 2


def test_a_cache_others_can_write_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    cache, problem = DigestCache.open(shared)
    assert cache is None and problem is not None and "writable by other users" in problem
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / digestcache.FILE_NAME).touch(mode=0o666)
    (private / digestcache.FILE_NAME).chmod(0o666)
    cache, problem = DigestCache.open(private)
    assert cache is None and problem is not None and "writable by other users" in problem


def test_a_symlinked_cache_file_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    (tmp_path / "elsewhere").write_bytes(b"")
    (folder / digestcache.FILE_NAME).symlink_to(tmp_path / "elsewhere")
    cache, problem = DigestCache.open(folder)
    assert cache is None and problem is not None


def test_a_cache_of_another_version_starts_afresh(tmp_path: Path, no_racy_window: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model, cache = _model(tmp_path), _cache(tmp_path)
    _hash(model, cache)
    cache.close()
    monkeypatch.setattr(digestcache, "__version__", "0.0.0-other")
    newer = _cache(tmp_path)
    assert newer.get(os.stat(model / "weights.bin")) is None


def test_a_corrupt_cache_costs_a_hash_never_a_wrong_digest(tmp_path: Path, no_racy_window: None) -> None:
    model = _model(tmp_path)
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    (folder / digestcache.FILE_NAME).write_bytes(b"not a database" * 100)
    (folder / digestcache.FILE_NAME).chmod(0o600)
    cache, problem = DigestCache.open(folder)
    assert cache is None and problem is not None
    assert hash_model(model, cache=cache).digest == hash_model(model).digest


def test_the_cli_uses_the_cache_and_no_cache_bypasses_it(tmp_path: Path) -> None:
    model = _model(tmp_path)
    old = time.time() - 3600
    for path in model.iterdir():
        os.utime(path, (old, old))
    time.sleep(digestcache.RACY_NS / 1e9 + 0.1)  # ctime cannot be set back: let it settle past the racy window
    env = {"GATE_CACHE_DIR": str(tmp_path / "cache")}
    expected = hash_model(model).digest
    first = run_gate("hash", str(model), env=env)
    assert first.returncode == 0 and first.stdout.strip() == expected, first.stderr
    cache = _cache(tmp_path)
    assert cache.get(os.stat(model / "weights.bin")) is not None  # remembered by the CLI run
    cache.close()
    mode = stat.S_IMODE((tmp_path / "cache").stat().st_mode)
    assert mode == 0o700
    shutil.rmtree(tmp_path / "cache")
    for args, extra in ((["--no-cache"], {}), ([], {"GATE_NO_CACHE": "1"})):
        bypass = run_gate("hash", *args, str(model), env={**env, **extra})
        assert bypass.returncode == 0 and bypass.stdout.strip() == expected, bypass.stderr
        assert not (tmp_path / "cache").exists()
