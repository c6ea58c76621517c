"""SIGKILL in the middle of appends, again and again: every acknowledged decision survives and the log audits clean."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import requests

from support import run_gate
from tiergate.core.log.entries import parse_entry

from .conftest import Server

ROUNDS = 3


def hammer(server: Server, stop: threading.Event, acknowledged: list[tuple[int, str]], n: int) -> None:
    """Post decisions until the service dies; remember each acknowledged (log index, decision time)."""
    with requests.Session() as http:
        count = 0
        while not stop.is_set():
            digest = f"sha256:{n:08x}{count:056x}"
            count += 1
            try:
                answer = http.post(f"{server.url}/v1/decisions", timeout=5,
                                   json={"tier": "internal", "model": {"digest": digest}, "context": {"writer": n}},
                                   headers={"Authorization": f"Bearer {server.env.token}"})
            except requests.RequestException:
                return
            if answer.status_code != 200:
                return
            acknowledged.append((int(answer.headers["X-Gate-Log-Index"]), answer.text))


def test_sigkill_during_appends_leaves_a_log_that_audits_clean(start_server, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    acknowledged: list[tuple[int, str]] = []
    for _ in range(ROUNDS):
        server = start_server(db)
        stop = threading.Event()
        writers = [threading.Thread(target=hammer, args=(server, stop, acknowledged, n)) for n in range(4)]
        for writer in writers:
            writer.start()
        time.sleep(0.5)
        server.kill()  # SIGKILL to the process group, whatever it is doing
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    server = start_server(db)
    env = server.env
    assert len(acknowledged) > 10
    page_size = server.client(token=None).health()["tree_size"]
    assert page_size >= len(acknowledged)
    for index, body in acknowledged[:: max(1, len(acknowledged) // 50)] + acknowledged[-5:]:
        entries = server.client(token=None).entries(index, index + 1).entries
        assert parse_entry(entries[0][1]).decision == json.loads(body)  # acknowledged means logged
    saved = tmp_path / "after-crashes.checkpoint"
    result = run_gate("log", "checkpoint", "--server", server.url, "--key-file", str(env.vkey), "--save", str(saved))
    assert result.returncode == 0, result.stderr
    for where in (("--server", server.url), ("--log", str(db), "--checkpoint", str(saved))):
        result = run_gate("log", "audit", *where, "--trust", str(env.trust), "--key-file", str(env.vkey))
        assert result.returncode == 0, (where, result.stderr)
        assert f"{page_size} entries" in result.stdout
