"""Two `gate serve` replicas sharing one PostgreSQL log: 1,000 concurrent decisions, exactly those entries, every
proof verifies."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator

import pytest
import requests

from support import run_gate
from tiergate.audit.keys import CheckpointKey
from tiergate.core.log.entries import parse_entry
from tiergate.core.log.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion

PG_URL = os.environ.get("GATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
DECISIONS = 1000
THREADS = 8

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_namespace() -> Iterator[str]:
    """A schema of its own per run, dropped afterwards; skipped loudly (or failed, under CI) without PostgreSQL."""
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        message = f"PostgreSQL at {PG_URL} unreachable ({str(exc).strip().splitlines()[0]})"
        if os.environ.get("GATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{message}; GATE_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(f"SKIPPED LOUDLY: {message}; set GATE_REQUIRE_POSTGRES=1 to make this a failure")
    namespace = f"gate_test_{secrets.token_hex(6)}"
    try:
        yield namespace
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        conn.close()


def test_two_replicas_append_1000_decisions_concurrently(start_server, pg_namespace: str) -> None:
    replicas = [start_server(PG_URL, "--log-namespace", pg_namespace) for _ in range(2)]
    env = replicas[0].env
    results: dict[int, dict] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def post(worker: int) -> None:
        server = replicas[worker % 2]
        with requests.Session() as http:
            for n in range(worker, DECISIONS, THREADS):
                digest = f"sha256:{n:064x}"
                answer = http.post(f"{server.url}/v1/decisions", timeout=30,
                                   headers={"Authorization": f"Bearer {env.token}"},
                                   json={"tier": "internal", "model": {"digest": digest}, "context": {"n": n}})
                with lock:
                    if answer.status_code != 200:
                        errors.append(answer.text)
                    else:
                        results[int(answer.headers["X-Gate-Log-Index"])] = answer.json()

    threads = [threading.Thread(target=post, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert sorted(results) == list(range(DECISIONS))  # one index each, no gaps, no duplicates

    key = CheckpointKey.load(env.vkey, None, None)
    checkpoints = [key.verify(r.client(token=None).checkpoint()) for r in replicas]
    assert checkpoints[0] == checkpoints[1] and checkpoints[0].size == DECISIONS  # one log, seen alike
    size, root = checkpoints[0].size, checkpoints[0].root_hash

    clients = [r.client(token=None) for r in replicas]
    entries: list[bytes] = []
    while len(entries) < size:
        page = clients[len(entries) % 2].entries(len(entries), size)
        entries += [data for _, data in page.entries]
    assert sorted(parse_entry(e).context["n"] for e in entries) == list(range(DECISIONS))
    for index, data in enumerate(entries):
        assert parse_entry(data).decision == results[index]
        proof = clients[index % 2].inclusion_proof(index, size)
        verify_inclusion(leaf_hash(data), index, size, proof, root)
    for old in (1, 255, 256, 257, 511, 999):
        old_hash = root_from_leaf_hashes([leaf_hash(e) for e in entries[:old]])
        verify_consistency(old, size, old_hash, root, clients[old % 2].consistency_proof(old, size))

    result = run_gate("log", "audit", "--server", replicas[1].url, "--trust", str(env.trust), "--key-file",
                      str(env.vkey))
    assert result.returncode == 0 and f"{DECISIONS} entries" in result.stdout, result.stderr
    saved = env.tmp / f"{pg_namespace}.checkpoint"
    result = run_gate("log", "checkpoint", "--server", replicas[0].url, "--key-file", str(env.vkey),
                      "--save", str(saved))
    assert result.returncode == 0, result.stderr
    result = run_gate("log", "audit", "--log", PG_URL, "--log-namespace", pg_namespace, "--trust", str(env.trust),
                      "--key-file", str(env.vkey), "--checkpoint", str(saved))
    assert result.returncode == 0 and "root matches 1 signed checkpoint(s)" in result.stdout, result.stderr
