"""Log stores: SQLite and PostgreSQL behave alike, never assign one index twice or leave a gap, and survive SIGKILL.

PostgreSQL tests need a server at ``GATE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each test works in its own schema, dropped afterwards. Without a server they are skipped with a loud reason.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import secrets
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tiergate.core.log import merkle
from tiergate.core.log.merkle import MerkleTree, TreeRangeError, leaf_hash, verify_consistency, verify_inclusion
from tiergate.core.log.sqlite import SQLiteLogStore
from tiergate.core.log.backends import open_store
from tiergate.core.log.store import LogHoleError, LogStore, StoreError, StoreIntegrityError
from tiergate.core.log.tiles import TILE_WIDTH
from tiergate.errors import ConfigError, InputError

PG_URL = os.environ.get("GATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SPAWN = multiprocessing.get_context("spawn")  # children open their own connections; nothing inherited by fork


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> str:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed: PostgreSQL log store tests NOT RUN (pip install tiergate[postgres])")
    try:
        with psycopg.connect(PG_URL, connect_timeout=2):
            pass
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        pytest.skip(f"PostgreSQL unreachable at {PG_URL} ({reason}): PostgreSQL log store tests NOT RUN")
    return PG_URL


@pytest.fixture
def pg_namespace(pg_url: str) -> Iterator[str]:
    import psycopg

    namespace = f"rg_test_{secrets.token_hex(6)}"
    yield namespace
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=2) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(store location, namespace) for each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "log.db"), None
    return request.getfixturevalue("pg_url"), request.getfixturevalue("pg_namespace")


@pytest.fixture
def store(target: tuple[str, str | None]) -> Iterator[LogStore]:
    with open_store(target[0], namespace=target[1]) as opened:
        yield opened


def raw_execute(target: tuple[str, str | None], sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run SQL beside the store, as an operator (or attacker) with database access would."""
    location, namespace = target
    if namespace is None:
        conn = sqlite3.connect(location, isolation_level=None)
        try:
            conn.execute(sql, params)
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(location, autocommit=True) as pg:
            pg.execute(sql.replace("log_", f'"{namespace}".log_', 1).replace("?", "%s"), params)


def entry(tag: str, i: int) -> bytes:
    return f'{{"decision": "{tag}", "n": {i}}}'.encode()


# --- behaviour common to both backends -----------------------------------------------------------------------------


def test_append_read_find(store: LogStore) -> None:
    assert store.size() == 0 and store.root() == merkle.EMPTY_ROOT
    assert store.append(b"first", "sha256:aa") == 0
    assert store.append(b"") == 1
    assert store.append_many([entry("b", i) for i in range(5)], ["sha256:bb"] * 5) == range(2, 7)
    assert store.append_many([]) == range(0)
    assert store.size() == 7
    got = store.get(0)
    assert (got.index, got.entry, got.leaf_hash, got.model_digest) == (0, b"first", leaf_hash(b"first"), "sha256:aa")
    assert [e.index for e in store.entries()] == list(range(7))
    assert [e.entry for e in store.entries(2, 4)] == [entry("b", 0), entry("b", 1)]
    assert list(store.leaf_hashes(0, 2)) == [leaf_hash(b"first"), leaf_hash(b"")]
    assert [e.index for e in store.find(model_digest="sha256:bb")] == [2, 3, 4, 5, 6]
    assert [e.index for e in store.find(model_digest="sha256:bb", start=3, end=5)] == [3, 4]
    assert [e.index for e in store.find(model_digest="sha256:bb", limit=2)] == [2, 3]
    assert store.find(model_digest="sha256:none") == []
    assert [e.index for e in store.find(limit=3)] == [0, 1, 2]


def test_proofs_match_the_pure_tree_across_tile_boundaries(store: LogStore) -> None:
    rng = random.Random(7)
    total, batches = 0, []
    while total < 2 * TILE_WIDTH + 190:
        size = rng.choice([1, 1, 3, 17, 100, 255, 300])
        batches.append([entry("t", total + i) for i in range(size)])
        total += size
    for batch in batches:
        store.append_many(batch)
    tree = MerkleTree(leaf_hash(e) for batch in batches for e in batch)
    assert store.size() == tree.size == total
    for size in sorted({0, 1, 2, 255, 256, 257, 511, 512, 513, total - 1, total}):
        assert store.root(size) == tree.root(size), size
    root = store.root()
    for index in range(total):
        proof = store.inclusion_proof(index)
        assert proof == tree.inclusion_proof(index), index
        verify_inclusion(tree.subtree_root(0, index), index, total, proof, root)
    for old in sorted({1, 2, 255, 256, 257, 300, 511, 512, 513, total - 1, total}):
        proof = store.consistency_proof(old)
        assert proof == tree.consistency_proof(old), old
        verify_consistency(old, total, store.root(old), root, proof)
    assert store.inclusion_proof(3, 300) == tree.inclusion_proof(3, 300)
    assert store.consistency_proof(7, 300) == tree.consistency_proof(7, 300)
    assert store.audit().root == root


def test_bad_requests_are_user_errors(store: LogStore) -> None:
    store.append_many([entry("x", i) for i in range(3)])
    with pytest.raises(TreeRangeError, match="entry 3 does not exist"):
        store.inclusion_proof(3)
    with pytest.raises(TreeRangeError, match="larger than the log"):
        store.root(4)
    with pytest.raises(TreeRangeError, match="empty tree"):
        store.consistency_proof(0, 3)
    with pytest.raises(TreeRangeError):
        store.consistency_proof(3, 2)
    with pytest.raises(TreeRangeError):
        store.get(-1)
    with pytest.raises(TreeRangeError, match="outside the log"):
        store.entries(2, 5)  # checked when called, before any iteration
    with pytest.raises(TreeRangeError, match="outside the log"):
        store.leaf_hashes(4)
    with pytest.raises(InputError, match="must be bytes"):
        store.append("text")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="limit is 1048576"):
        store.append(b"x" * (1 << 20 + 1))
    with pytest.raises(InputError, match="model digest"):
        store.append(b"x", "bad\ndigest")
    with pytest.raises(InputError, match="2 entries but 1 model digests"):
        store.append_many([b"a", b"b"], ["m"])
    with pytest.raises(InputError):
        store.append_many([b"ok", 42])  # type: ignore[list-item]
    assert store.size() == 3  # nothing of a refused batch was written
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.size()


def test_database_refuses_changes_deletes_and_gaps(store: LogStore, target: tuple[str, str | None]) -> None:
    store.append_many([entry("a", i) for i in range(TILE_WIDTH)])
    for sql in (
        "UPDATE log_entries SET entry = ? WHERE idx = 0",
        "DELETE FROM log_entries WHERE idx = 0",
        "UPDATE log_tiles SET hash = ? WHERE tile = 0",
    ):
        with pytest.raises(Exception, match="append-only"):
            raw_execute(target, sql, (b"\0" * 32,) if "?" in sql else ())
    with pytest.raises(Exception, match="next index|duplicate|UNIQUE"):
        raw_execute(target, "INSERT INTO log_entries (idx, entry, leaf_hash) VALUES (?, ?, ?)",
                    (0 if target[1] else TILE_WIDTH + 5, b"x", leaf_hash(b"x")))
    assert store.audit().size == TILE_WIDTH


def test_a_stuck_writer_times_out_the_others_cleanly(target: tuple[str, str | None]) -> None:
    location, namespace = target
    with open_store(location, namespace=namespace, timeout=0.3) as store:
        store.append(b"before")
        if namespace is None:
            blocker: Any = sqlite3.connect(location, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            blocker = psycopg.connect(location)
            blocker.execute(f'SELECT size FROM "{namespace}".log_head WHERE id = 1 FOR UPDATE')
        try:
            started = time.monotonic()
            with pytest.raises(StoreError, match="locked for 0.3 s|held the log for too long"):
                store.append(b"blocked")
            assert time.monotonic() - started < 5
        finally:
            blocker.rollback()  # both sqlite3 and psycopg connections end the transaction this way
            blocker.close()
        assert store.append(b"after") == 1 and store.size() == 2


def test_reopen_keeps_the_log(store: LogStore, target: tuple[str, str | None]) -> None:
    store.append_many([entry("r", i) for i in range(300)])
    root = store.root()
    with open_store(target[0], namespace=target[1]) as again:
        assert again.size() == 300 and again.root() == root
        assert again.append(b"more") == 300
    assert store.size() == 301


# --- SQLite specifics ----------------------------------------------------------------------------------------------


def test_sqlite_settings_and_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with open_store(path) as plain, open_store(str(path), namespace="other") as other:
        plain.append(b"a")
        assert other.size() == 0
        other.append_many([b"b", b"c"])
        assert (plain.size(), other.size()) == (1, 2)
        assert isinstance(plain, SQLiteLogStore)
        assert plain._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert plain._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"log_entries", "other_log_entries", "other_log_tiles"} <= tables
    with pytest.raises(ConfigError, match="namespace"):
        open_store(path, namespace="Bad-Name")


def test_audit_detects_tampering_and_missing_tiles_are_recomputed(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_store(path) as store:
        store.append_many([entry("z", i) for i in range(600)])
        root = store.root()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER log_tiles_no_delete")
    db.execute("DELETE FROM log_tiles WHERE tile = 1")
    with open_store(path) as store:
        assert store.root() == root and store.audit().root == root
    db.execute("DROP TRIGGER log_entries_no_update")
    db.execute("UPDATE log_entries SET entry = ? WHERE idx = 5", (b"rewritten history",))
    with open_store(path) as store, pytest.raises(StoreIntegrityError, match="leaf hash of entry 5"):
        store.audit()
    db.execute("UPDATE log_entries SET leaf_hash = ? WHERE idx = 5", (leaf_hash(b"rewritten history"),))
    with open_store(path) as store, pytest.raises(StoreIntegrityError, match=r"stored hash of leaves \[0, 256\)"):
        store.audit()
    db.execute("DROP TRIGGER log_meta_no_update")
    db.execute("UPDATE log_meta SET value = 'other-format/9' WHERE key = 'format'")
    db.close()
    with pytest.raises(ConfigError, match="other-format/9"):
        open_store(path)


def test_inclusion_proof_at_100k_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    count = 100_000
    with open_store(path) as store:
        store.append_many([b"%d" % i for i in range(count)])
    with open_store(path) as store:  # a fresh store: nothing cached
        started = time.perf_counter()
        root = store.root()
        proof = store.inclusion_proof(77_777)
        consistency = store.consistency_proof(54_321)
        elapsed = time.perf_counter() - started
        verify_inclusion(leaf_hash(b"77777"), 77_777, count, proof, root)
        verify_consistency(54_321, count, store.root(54_321), root, consistency)
    assert elapsed < 0.5, f"root and two proofs at size 100k took {elapsed:.3f} s"


# --- open_store ----------------------------------------------------------------------------------------------------


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(f"sqlite://{tmp_path}/a.db") as store:
        assert isinstance(store, SQLiteLogStore)
    assert (tmp_path / "a.db").exists()
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:rel.db"), open_store("plain.db"):
        pass
    assert (tmp_path / "rel.db").exists() and (tmp_path / "plain.db").exists()
    with pytest.raises(ConfigError, match="unsupported log store"):
        open_store("mysql://user:pw@host/db")
    with pytest.raises(ConfigError, match="is a directory"):
        open_store(str(tmp_path))
    with pytest.raises(ConfigError, match="sqlite:///absolute"):
        open_store("sqlite://host/x.db")
    with pytest.raises(ConfigError, match="cannot open"):
        open_store(str(tmp_path / "missing-dir" / "x.db"))
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the optional dependency were absent
    with pytest.raises(ConfigError, match=r"the 'postgres' extra .* pip install 'psycopg"):
        open_store("postgresql://postgres@127.0.0.1:5432/test")


@pytest.mark.postgres
def test_postgres_connection_errors_are_config_errors(pg_url: str) -> None:
    with pytest.raises(ConfigError, match=r"nobody:\*\*\*@127\.0\.0\.1:1/"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/test", connect_timeout=1)


@pytest.mark.postgres
def test_a_terminated_postgres_connection_is_replaced_before_it_fails_a_call(pg_url: str, pg_namespace: str) -> None:
    """The server ends the pooled connection while it idles (pg_terminate_backend: an admin, a restart, a failover):
    the pool sees it before use and the next call runs on a new one, again and again."""
    import psycopg

    with open_store(pg_url, namespace=pg_namespace, connect_timeout=2) as store:
        store.append(b"before")
        for n in range(5):
            with store._connection() as db:  # type: ignore[attr-defined]  # the pooled connection, to end it
                pid = db.execute("SELECT pg_backend_pid()").fetchone()[0]
            with psycopg.connect(pg_url, autocommit=True) as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            time.sleep(0.05)  # the termination reaches the idle socket
            assert store.append(f"after {n}".encode()) == n + 1
        assert store.size() == 6 and store.audit().size == 6


@pytest.mark.postgres
def test_postgres_unreachable_fails_fast_and_heals(pg_url: str, pg_namespace: str) -> None:
    """Through a TCP relay that is stopped and started again: while the database is away every call fails at once
    with the reason; within seconds of its return the same store appends again, by itself."""
    from tcp_relay import Relay

    with Relay(("127.0.0.1", 5432)) as relay:
        url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
        with open_store(url, namespace=pg_namespace, connect_timeout=2, pool_timeout=2) as store:
            store.append(b"before")
            relay.stop()  # a database restart, a network cut: connections reset, new ones refused
            began = time.monotonic()
            for _ in range(5):
                with pytest.raises(StoreError, match="unreachable|log database error"):
                    store.append(b"lost")
            assert time.monotonic() - began < 10  # the first waits for the pool, the rest fail at once
            assert "unreachable" in (store.writable_problem() or "")
            relay.start()
            deadline = time.monotonic() + 10
            while True:
                try:
                    store.append(b"after")
                    break
                except StoreError:
                    assert time.monotonic() < deadline, "the store did not heal within 10 s"
                    time.sleep(0.1)
            assert store.writable_problem() is None
            assert [e.entry for e in store.entries()] == [b"before", b"after"]


def test_a_hole_in_the_log_stops_appends(target: tuple[str, str | None]) -> None:
    """An entry removed behind the store's back (triggers dropped by a database owner): no append, and the health
    check says why, until the log is restored."""
    location, namespace = target
    with open_store(location, namespace=namespace) as store:
        store.append_many([entry("e", i) for i in range(10)])
        assert store.writable_problem() is None
        _remove_entry(location, namespace, 4)
        with pytest.raises(LogHoleError, match=r"the log has a hole: 1 of its entries in \[0, 10\) are missing"):
            with_whole_check(store).append(b"more")
        assert "hole" in (store.writable_problem() or "")
    # A restarted service finds it at its first append.
    with open_store(location, namespace=namespace) as fresh, pytest.raises(LogHoleError):
        fresh.append(b"more")


def with_whole_check(store: LogStore) -> LogStore:
    store._whole_checked_at = None  # type: ignore[attr-defined]  # as if WHOLE_CHECK_INTERVAL had passed
    return store


def _remove_entry(location: str, namespace: str | None, index: int) -> None:
    if namespace is None or not location.startswith("postgres"):
        db = sqlite3.connect(location)
        db.execute("DROP TRIGGER log_entries_no_delete")
        db.execute("DELETE FROM log_entries WHERE idx = ?", (index,))
        db.commit()
        db.close()
        return
    import psycopg

    with psycopg.connect(location, autocommit=True) as db:
        db.execute(f'ALTER TABLE "{namespace}".log_entries DISABLE TRIGGER log_entries_append_only')
        db.execute(f'DELETE FROM "{namespace}".log_entries WHERE idx = %s', (index,))


# --- many processes ------------------------------------------------------------------------------------------------

WORKERS, PER_WORKER = 4, 250


def _append_worker(location: str, namespace: str | None, worker: int, count: int) -> None:
    """Child process: open the log (maybe creating it, racing the others) and append one entry at a time."""
    with open_store(location, namespace=namespace) as store:
        for i in range(count):
            store.append(entry(f"w{worker}", i), f"sha256:worker{worker}")


def _append_until_killed(location: str, namespace: str | None, tag: str) -> None:
    """Child process: append batches of 1-7 entries forever; the parent SIGKILLs it at a random moment."""
    with open_store(location, namespace=namespace) as store:
        batch = 0
        while True:
            n = 1 + batch % 7
            store.append_many([f"{tag} batch {batch} item {j} of {n}".encode() for j in range(n)])
            batch += 1


def _check_log(location: str, namespace: str | None) -> LogStore:
    """Everything a verifier would check: contiguous indices, hashes, tiles, root, and every proof."""
    store = open_store(location, namespace=namespace)
    size = store.size()
    result = store.audit()
    assert result.size == size
    indices = [e.index for e in store.entries()]
    assert indices == list(range(size))
    tree = MerkleTree(store.leaf_hashes())
    assert tree.root() == result.root == store.root()
    return store


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_processes_get_distinct_contiguous_indices(backend: str, request: pytest.FixtureRequest,
                                                              tmp_path: Path) -> None:
    if backend == "sqlite":
        location, namespace = str(tmp_path / "shared.db"), None
    else:
        location, namespace = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_namespace")
    children = [SPAWN.Process(target=_append_worker, args=(location, namespace, w, PER_WORKER))
                for w in range(WORKERS)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0, f"append worker exited with {child.exitcode}"
    with _check_log(location, namespace) as store:
        assert store.size() == WORKERS * PER_WORKER
        seen: dict[bytes, int] = {}
        for e in store.entries():
            assert e.entry not in seen, f"{e.entry!r} appended twice"
            seen[e.entry] = e.index
        for w in range(WORKERS):
            mine = [seen[entry(f"w{w}", i)] for i in range(PER_WORKER)]
            assert mine == sorted(mine), "a worker's sequential appends must get increasing indices"
            assert [e.index for e in store.find(model_digest=f"sha256:worker{w}")] == mine
        size, root = store.size(), store.root()
        for index in range(size):
            verify_inclusion(store.get(index).leaf_hash, index, size, store.inclusion_proof(index), root)
        for old in (1, 2, 3, 255, 256, 257, 500, 999, 1000):
            verify_consistency(old, size, store.root(old), root, store.consistency_proof(old))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sigkill_mid_append_leaves_a_consistent_log(backend: str, request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    if backend == "sqlite":
        location, namespace = str(tmp_path / "killed.db"), None
    else:
        location, namespace = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_namespace")
    rng = random.Random(9)
    with open_store(location, namespace=namespace) as store:
        for round_ in range(5):
            before = store.size()
            child = SPAWN.Process(target=_append_until_killed, args=(location, namespace, f"round {round_}"))
            child.start()
            deadline = time.monotonic() + 60
            while store.size() < before + 40 + round_ * 37:  # let it get well into its append loop
                assert child.is_alive() and time.monotonic() < deadline, "append child died or stalled"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.01))
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            child.join(10)
            assert child.exitcode == -signal.SIGKILL
        after_kills = store.size()
        assert store.append(b"after the kills") == after_kills
    with _check_log(location, namespace) as store:
        batches: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        pattern = re.compile(rb"(round \d+) batch (\d+) item (\d+) of (\d+)")
        for e in store.entries(0, after_kills):
            match = pattern.fullmatch(e.entry)
            assert match, e.entry
            batches[(match[1].decode(), int(match[2]))].append((int(match[3]), int(match[4])))
        for (round_name, batch), items in batches.items():
            n = items[0][1]
            assert sorted(items) == [(j, n) for j in range(n)], f"{round_name} batch {batch} is torn: {items}"
        for round_ in range(5):
            numbers = sorted(b for (r, b) in batches if r == f"round {round_}")
            assert numbers == list(range(len(numbers))), f"round {round_} lost a batch in the middle"
