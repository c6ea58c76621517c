"""The service's robustness: ambiguous requests refused, unwritable storage reported, holes in the log fail closed."""

from __future__ import annotations

import resource
import socket
import sqlite3
import time
from pathlib import Path

import requests

from tiergate.core.log.store import WHOLE_CHECK_INTERVAL

from .conftest import Server, launch


def _raw(server: Server, request: bytes) -> tuple[int, dict]:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), requests.models.complexjson.loads(body)


def test_two_authorization_headers_are_refused(server: Server) -> None:
    """A proxy in front may take the first and this server the last (or the other way round): neither is trusted."""
    body = b'{"tier": "internal", "model": {"digest": "sha256:' + b"ab" * 32 + b'"}}'
    for pair in ((server.env.token, "wrong"), ("wrong", server.env.token), (server.env.token, server.env.token)):
        request = (b"POST /v1/decisions HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\n"
                   + b"".join(f"Authorization: Bearer {t}\r\n".encode() for t in pair)
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status, answer = _raw(server, request)
        assert status == 400 and "2 Authorization headers; send exactly one" in answer["error"], answer


def test_duplicate_keys_and_lone_surrogates_in_a_request_body_are_400(server: Server,
                                                                      http: requests.Session) -> None:
    headers = {"Authorization": f"Bearer {server.env.token}", "Content-Type": "application/json"}
    digest = "sha256:" + "cd" * 32
    cases = {
        # read last-wins this is a request for "open"; a proxy reading first-wins saw "internal"
        b'{"tier": "internal", "tier": "open", "model": {"digest": "%s"}}' % digest.encode(): "'tier' twice",
        b'{"tier": "internal", "model": {"digest": "%s"}, "context": {"a": "\\udc00"}}' % digest.encode():
            "unpaired surrogate",
        b'{"tier": "internal", "model": {"digest": "%s", "digest": "sha256:%s"}}' % (digest.encode(), b"ef" * 32):
            "'digest' twice",
    }
    for body, reason in cases.items():
        answer = http.post(f"{server.url}/v1/decisions", data=body, headers=headers)
        assert answer.status_code == 400 and reason in answer.json()["error"], answer.text
    answer = http.post(f"{server.url}/v1/attestations", headers=headers,
                       data=b'{"attestation": "e30=", "attestation": "e30="}')
    assert answer.status_code == 400 and "twice" in answer.json()["error"]


def _decide(server: Server, n: int) -> requests.Response:
    return requests.post(f"{server.url}/v1/decisions", timeout=30,
                         headers={"Authorization": f"Bearer {server.env.token}"},
                         json={"tier": "internal", "model": {"digest": f"sha256:{n:064x}"}})


def test_a_hole_in_the_log_refuses_decisions_and_fails_the_health_check(start_server, tmp_path: Path) -> None:
    log = tmp_path / "holed.db"
    server = start_server(log)
    for n in range(5):
        assert _decide(server, n).status_code == 200
    assert requests.get(f"{server.url}/v1/healthz", timeout=10).status_code == 200
    db = sqlite3.connect(log)  # someone with the database file removes an entry (after dropping the guard)
    db.execute("DROP TRIGGER log_entries_no_delete")
    db.execute("DELETE FROM log_entries WHERE idx = 2")
    db.commit()
    db.close()
    deadline = time.monotonic() + 3 * WHOLE_CHECK_INTERVAL  # the whole log is checked every few seconds
    while (health := requests.get(f"{server.url}/v1/healthz", timeout=10)).status_code == 200:
        assert time.monotonic() < deadline, "the hole went unreported"
        time.sleep(0.2)
    assert health.status_code == 503 and "the log has a hole: 1 of its entries in [0, 5) are missing" in \
        health.json()["error"], health.text
    answer = _decide(server, 99)  # a hole found stays found: the next append checks the whole log again
    assert answer.status_code == 503 and "the log has a hole" in answer.json()["error"], answer.text
    assert answer.headers["Retry-After"]
    db = sqlite3.connect(log)
    assert db.execute("SELECT max(idx) FROM log_entries").fetchone()[0] == 4  # nothing was appended
    db.close()


def test_a_full_disk_is_reported_by_the_health_check(gate_env, tmp_path: Path) -> None:
    """A file-size limit stands in for a full disk: the append that hits it is a 503, and so is the health check
    from then on, with the reason, until an append succeeds again."""
    log = tmp_path / "full.db"
    setup = launch(gate_env, log)
    assert _decide(setup, 0).status_code == 200
    setup.stop()
    limit = log.stat().st_size + 64 * 1024  # room for a few decisions in the write-ahead log, then "disk full"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    server = launch(gate_env, log, preexec=small_files)
    try:
        statuses = [_decide(server, n).status_code for n in range(1, 200)]
        assert 503 in statuses and set(statuses) <= {200, 503}, statuses
        first_refused = statuses.index(503)
        refused = _decide(server, 500)
        assert refused.status_code == 503 and "full" in refused.json()["error"], refused.text
        health = requests.get(f"{server.url}/v1/healthz", timeout=10)
        assert health.status_code == 503, health.text  # SQLite says "disk is full", or "disk I/O error" after it
        assert "log database error during append" in health.json()["error"], health.text
        assert health.json()["status"] == "unavailable"
        assert first_refused > 0  # decisions were answered until the disk filled
    finally:
        server.kill()
    db = sqlite3.connect(log)  # every acknowledged decision is in the log, and the log is whole
    count, top = db.execute("SELECT count(*), max(idx) FROM log_entries").fetchone()
    db.close()
    assert count == top + 1 >= 1 + first_refused
