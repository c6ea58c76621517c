"""What a client can make the gate service (and the gate's client and auditor) spend or believe, and the bounds on it:
connections, time and memory before authentication, request framing, deep JSON, entry and page sizes, reserved
context keys, a trickling server, and audits with nothing signed to compare against.

Each test names the review finding it covers. Time bounds are generous: a failure means "waited for ever", not
"was a little slow".
"""

from __future__ import annotations

import base64
import json
import select
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest
import requests

from support import ANSWER_KEY, NOW, World, run_gate, signed_answer
from tiergate.core.answer import ANSWER_HEADER
from tiergate.runtime.remote import ask
from tiergate.runtime.client import GateClient, GateServiceError
from tiergate.core.decision import Decision, decide
from tiergate.core.keys import PrivateKey
from tiergate.core.log.checkpoint import Checkpoint
from tiergate.core.log.entries import (
    MAX_DECISION_BYTES, MAX_RECORDED_TEXT, DecisionTooLarge, decision_entry, parse_entry, webhook_entry,
)
from tiergate.core.log.backends import open_store
from tiergate.core.log.store import MAX_ENTRY_SIZE
from tiergate.core.policy import Policy
from tiergate.core.verify import Rejection
from tiergate.service.app import MAX_FIND_BYTES, MAX_PAGE_BYTES, GateService
from tiergate.service.attestations import AttestationIndex

from .conftest import ORIGIN, POLICY, GateEnv, Server

# --- raw HTTP, for what requests would not send -----------------------------------------------------------------


def _address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _read_reply(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """One HTTP answer: (status, head, body). Raises socket.timeout if it does not come."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, head, body


def _exchange(server: Server, data: bytes, timeout: float = 10.0) -> tuple[int, bytes, bytes]:
    with socket.create_connection(_address(server), timeout=timeout) as sock:
        sock.sendall(data)
        return _read_reply(sock)


def _closed_or_answered(sock: socket.socket, wait: float) -> bytes | None:
    """What the server sent (b"" if it closed), or None when it has said nothing within ``wait`` seconds."""
    ready, _, _ = select.select([sock], [], [], wait)
    if not ready:
        return None
    try:
        return sock.recv(65536)
    except ConnectionError:
        return b""


def _post_head(path: str, length: int, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gate", "Content-Type: application/json", f"Content-Length: {length}",
             *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _decision_body(env: GateEnv, **extra: Any) -> dict[str, Any]:
    return {"tier": "internal", "model": {"digest": "sha256:" + "ab" * 32}, **extra}


# --- 1: route and authenticate before the body; per-route limits; connection cap; request deadline ---------------


def test_webhook_off_is_404_before_the_body_is_read(server: Server) -> None:
    """Finding 1: the body (up to --max-body) used to be read before the route said the webhook is off."""
    status, _, body = _exchange(server, _post_head("/v1/webhooks/huggingface", 16_000_000))  # and no body at all
    assert status == 404 and "not enabled" in json.loads(body)["error"]


def test_a_bad_token_is_refused_before_the_body_and_before_100_continue(server: Server) -> None:
    """Finding 1: "100 Continue" (the client's cue to send the body) only goes to an authenticated request."""
    status, head, body = _exchange(server, _post_head("/v1/decisions", 16_000_000, "Authorization: Bearer wrong",
                                                      "Expect: 100-continue"))
    assert status == 401 and b"100 Continue" not in head, head
    payload = json.dumps(_decision_body(server.env)).encode()
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(_post_head("/v1/decisions", len(payload), f"Authorization: Bearer {server.env.token}",
                                "Expect: 100-continue"))
        status, _, _ = _read_reply(sock)
        assert status == 100
        sock.sendall(payload)
        status, _, body = _read_reply(sock)
    assert status == 200 and json.loads(body)["requested_tier"] == "internal"


def test_attestation_bodies_have_their_own_smaller_limit(server: Server) -> None:
    """Finding 1: a route's limit (2 MiB for attestations) applies before anything is read."""
    status, _, body = _exchange(server, _post_head("/v1/attestations", 3 * 1024 * 1024,
                                                   f"Authorization: Bearer {server.env.token}"))
    assert status == 413 and "2097152-byte limit" in json.loads(body)["error"]


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_connections_over_the_cap_get_503_and_no_thread(start_server, tmp_path: Path) -> None:
    """Finding 1: one thread per connection without a cap; 1,000 half-sent requests were 1,001 threads."""
    server = start_server(tmp_path / "log.db", "--max-connections", "4")
    address = _address(server)
    baseline = _threads(server.proc.pid) if Path("/proc/self/status").exists() else None
    held = []
    for _ in range(4):
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(b"GET /v1/healthz HTTP/1.1\r\nHost: gate\r\nX-Half: ")  # half-sent: holds its slot
        held.append(sock)
    refused = []
    try:
        for _ in range(40):
            sock = socket.create_connection(address, timeout=10)
            refused.append(sock)
            status, head, body = _read_reply(sock)  # answered at once, before the client says anything
            assert status == 503 and b"Retry-After" in head and "connections" in json.loads(body)["error"]
        if baseline is not None:
            assert _threads(server.proc.pid) <= baseline + 4 + 2  # the four held, and nothing per refusal
    finally:
        for sock in held + refused:
            sock.close()
    deadline = time.monotonic() + 20  # the slots come back as the server sees the closes
    status = None
    while status != 200 and time.monotonic() < deadline:
        try:
            status = requests.get(f"{server.url}/v1/healthz", timeout=10).status_code
        except requests.ConnectionError:  # a 503 can arrive as a reset when the request was already on its way
            status = None
        time.sleep(0.1)
    assert status == 200


def _trickle(sock: socket.socket, data: bytes, every: float, give_up: float) -> tuple[bytes | None, float]:
    """Send ``data`` a byte at a time; stop when the server answers or closes. (what it sent, seconds taken)"""
    began = time.monotonic()
    for byte in data:
        seen = _closed_or_answered(sock, every)
        if seen is not None:
            return seen, time.monotonic() - began
        if time.monotonic() - began > give_up:
            break
        try:
            sock.send(bytes([byte]))
        except OSError:
            return b"", time.monotonic() - began
    return _closed_or_answered(sock, 5), time.monotonic() - began


def test_a_trickled_request_is_cut_off_at_the_request_deadline(start_server, tmp_path: Path) -> None:
    """Finding 1: the read timeout restarted with every byte, so a request trickled in for ever. Now the whole
    request (headers, then body) must arrive within --request-timeout."""
    server = start_server(tmp_path / "log.db", "--request-timeout", "1")
    head = b"GET /v1/healthz HTTP/1.1\r\nHost: gate\r\nX-Slow: " + b"a" * 400 + b"\r\n\r\n"
    with socket.create_connection(_address(server), timeout=10) as sock:
        seen, took = _trickle(sock, head, every=0.05, give_up=15)
    assert seen is not None and seen.startswith(b"HTTP/1.1 408"), seen
    assert took < 12
    body = json.dumps(_decision_body(server.env, context={"pad": "x" * 400})).encode()
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(_post_head("/v1/decisions", len(body), f"Authorization: Bearer {server.env.token}"))
        seen, took = _trickle(sock, body, every=0.05, give_up=15)
    assert seen is not None and seen.startswith(b"HTTP/1.1 408"), seen
    assert b"did not arrive within 1 s" in seen and took < 12
    assert requests.get(f"{server.url}/v1/healthz", timeout=10).status_code == 200


def test_an_oversized_header_block_is_431(server: Server) -> None:
    """Finding 1: the stdlib reads 100 header lines of 64 KiB each (6.5 MB a connection) before anything else."""
    headers = "".join(f"X-Pad-{n}: {'h' * 2000}\r\n" for n in range(60))
    status, _, body = _exchange(server, f"GET /v1/healthz HTTP/1.1\r\nHost: gate\r\n{headers}\r\n".encode())
    assert status == 431 and "65536 bytes" in json.loads(body)["error"]


# --- 5 and 7: request framing and deep JSON -----------------------------------------------------------------------


def test_content_length_must_be_one_ascii_number(server: Server) -> None:
    """Finding 5: ``"²".isdigit()`` is true and ``int("²")`` raises: a 500 with a traceback in the log."""
    auth = f"Authorization: Bearer {server.env.token}"
    head = _post_head("/v1/decisions", 2, auth).replace(b"Content-Length: 2", b"Content-Length: \xb2")
    status, _, body = _exchange(server, head + b"{}")
    assert status == 400 and "Content-Length" in json.loads(body)["error"]
    payload = json.dumps(_decision_body(server.env)).encode()
    for lengths in ((len(payload), len(payload)), (len(payload), 2)):
        head = _post_head("/v1/decisions", lengths[0], auth, f"Content-Length: {lengths[1]}")
        status, _, body = _exchange(server, head + payload)
        assert status == 400 and "2 Content-Length headers" in json.loads(body)["error"], body


def test_a_second_content_length_cannot_smuggle_a_request(server: Server) -> None:
    """Finding 7: with two Content-Length headers the first one won, and the rest of the bytes became a request."""
    smuggled = b"GET /v1/log/checkpoint HTTP/1.1\r\nHost: gate\r\n\r\n"
    head = (b"GET /v1/healthz HTTP/1.1\r\nHost: gate\r\nContent-Length: 0\r\nContent-Length: "
            + str(len(smuggled)).encode() + b"\r\n\r\n")
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(head + smuggled)
        status, head_bytes, _ = _read_reply(sock)
        assert status == 400 and b"Connection: close" in head_bytes
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert rest == b""  # no second answer: the smuggled request was never parsed


def test_deeply_nested_json_is_a_400_not_a_500(server: Server, http: requests.Session) -> None:
    """Finding 5: a deeply nested body raised RecursionError in json.loads: a 500."""
    headers = {"Authorization": f"Bearer {server.env.token}", "Content-Type": "application/json"}
    deep = b'{"tier":"internal","model":{"digest":"' + b"a" * 64 + b'"},"context":{"x":' + b"[" * 100_000 \
        + b"]" * 100_000 + b"}}"
    answer = http.post(f"{server.url}/v1/decisions", data=deep, headers=headers)
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["error"], answer.text
    nested: Any = 1
    for _ in range(100):  # parses, but would be re-encoded and parsed again for the log near the recursion limit
        nested = [nested]
    answer = http.post(f"{server.url}/v1/decisions", json=_decision_body(server.env, context={"x": nested}),
                       headers=headers)
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["error"], answer.text


# --- 2: log reads in batches within a byte budget -----------------------------------------------------------------


class _SpyStore:
    """A store that remembers how many bytes each find() returned."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.reads: list[int] = []

    def size(self) -> int:
        return self.store.size()

    def find(self, **kwargs: Any) -> Any:
        found = self.store.find(**kwargs)
        self.reads.append(sum(len(e.entry) for e in found))
        return found


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Iterator[tuple[Any, str]]:
    """24 entries of about 1 MiB about one model (24 MiB), then one small one."""
    model = "sha256:" + "cd" * 32
    store = open_store(tmp_path_factory.mktemp("big") / "log.db")
    big = (MAX_ENTRY_SIZE - 100)
    store.append_many([b'{"pad":"' + bytes([97 + n % 26]) * big + b'"}' for n in range(24)] + [b"{}"],
                      [model] * 25)
    yield store, model
    store.close()


def test_log_pages_read_within_their_byte_budget(big_log) -> None:
    """Finding 2: the 8 MiB page cap was applied after find() returned up to 1,000 entries of up to 1 MiB each."""
    store, model = big_log
    spy = _SpyStore(store)
    service = GateService(rules=None, store=spy, signer=None, tokens=None, origin=ORIGIN)  # type: ignore[arg-type]
    page = service.entries(0, None)
    assert 0 < len(page["entries"]) < 25 and page["end"] == len(page["entries"])
    assert sum(len(base64.b64decode(e["data"])) for e in page["entries"]) <= MAX_PAGE_BYTES
    assert sum(spy.reads) <= MAX_PAGE_BYTES + MAX_ENTRY_SIZE, spy.reads
    spy.reads.clear()
    found = service.find(model[7:], 0, 1000)
    assert 0 < len(found["entries"]) < 25 and found["next"] == len(found["entries"])
    assert sum(spy.reads) <= MAX_FIND_BYTES + MAX_ENTRY_SIZE, spy.reads
    rows, following = found["entries"], found["next"]
    while following is not None:  # paging on from `next` reaches every entry, each once
        found = service.find(model[7:], following, 1000)
        rows, following = rows + found["entries"], found["next"]
    assert rows == [{"index": i, "kind": "malformed"} for i in range(25)]
    # Entries of ~1 MiB against a 1 MiB budget: one a page, however many the limit allows.
    assert service.find(model[7:], 3, 2) == {"model": model, "entries": [{"index": 3, "kind": "malformed"}], "next": 4}
    assert service.find(model[7:], 24, 2) == {"model": model, "entries": [{"index": 24, "kind": "malformed"}],
                                              "next": None}


def test_attestation_index_pages_through_a_busy_model(big_log) -> None:
    """Finding 2: a cold view read every entry about the model in one find()."""
    store, model = big_log
    spy = _SpyStore(store)
    assert AttestationIndex(spy).for_model(model) == []  # type: ignore[arg-type]
    assert len(spy.reads) > 1 and max(spy.reads) <= 16 * 1024 * 1024, spy.reads


# --- 4: decision entries are bounded ------------------------------------------------------------------------------


@pytest.fixture
def decision(manifest, world: World, tmp_path: Path) -> Decision:
    path = tmp_path / "policy.yaml"
    path.write_text(json.dumps(POLICY))
    items = [world.attest(manifest, "evalco", "strongreject", {"score": 0.05})]
    return decide(Policy.load(path), "hosted", manifest, items, world.trust(), NOW)


def test_long_rejection_reasons_are_cut_in_the_log(decision: Decision) -> None:
    """Finding 4: reasons echo what an attestation claims (a 700 KB predicateType) into the decision entry."""
    echoed = Rejection("request:attestations[0]" + "s" * 5000, "sha256:" + "0" * 64,
                       "unsupported predicateType '" + "p" * 700_000 + "'")
    noisy = replace(decision, rejected=(echoed,))
    entry = decision_entry(noisy, {"who": "ci"})
    assert len(entry) < MAX_DECISION_BYTES
    logged = parse_entry(entry).decision
    row = logged["rejected_attestations"][0]
    assert len(row["reason"]) == MAX_RECORDED_TEXT and row["reason"].endswith("\u2026")
    assert len(row["source"]) == MAX_RECORDED_TEXT and row["source"].startswith("request:attestations[0]")
    assert Decision.from_dict(logged).rejected[0].reason == row["reason"]  # still a well-formed decision
    assert decision_entry(decision, {}) == decision_entry(Decision.from_dict(decision.to_dict()), {})  # untouched
    many = replace(decision, rejected=tuple(Rejection(f"request:attestations[{i}]", "sha256:" + "0" * 64, "r" * 390)
                                            for i in range(300)))
    with pytest.raises(DecisionTooLarge, match="over the 65536-byte limit"):
        decision_entry(many, {})


def test_a_decision_too_large_to_log_is_a_413(server: Server, http: requests.Session) -> None:
    """Finding 4: hundreds of junk attestations, each rejected with a long reason, made a huge decision entry."""
    junk = [base64.b64encode(json.dumps({"payload": "e30=", "payloadType": f"{n}-" + "t" * 1000,
                                         "signatures": [{"sig": "AA=="}]}).encode()).decode() for n in range(200)]
    before = server.client(token=None).health()["tree_size"]
    answer = http.post(f"{server.url}/v1/decisions", json=_decision_body(server.env, attestations=junk),
                       headers={"Authorization": f"Bearer {server.env.token}"})
    assert answer.status_code == 413 and "cannot be logged" in answer.json()["error"], answer.text
    assert server.client(token=None).health()["tree_size"] == before  # nothing logged
    few = http.post(f"{server.url}/v1/decisions", json=_decision_body(server.env, attestations=junk[:3]),
                    headers={"Authorization": f"Bearer {server.env.token}"})
    assert few.status_code == 200 and all(len(r["reason"]) <= MAX_RECORDED_TEXT
                                          for r in few.json()["rejected_attestations"])


# --- 8: reserved context keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["requested_by", "webhook_entry"])
def test_callers_cannot_set_reserved_context_keys(server: Server, http: requests.Session, key: str) -> None:
    """Finding 8: a caller could log a decision that claims another token asked, or that it answers a webhook."""
    answer = http.post(f"{server.url}/v1/decisions", json=_decision_body(server.env, context={key: 3}),
                       headers={"Authorization": f"Bearer {server.env.token}"})
    assert answer.status_code == 400 and f"context key {key!r} is set by the service" in answer.json()["error"]


# --- 6: the client --------------------------------------------------------------------------------------------------


class _RawStub:
    """A one-trick HTTP server on 127.0.0.1: each connection gets ``respond(sock, request_head)``."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(sock,), daemon=True).start()

    def _one(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += sock.recv(65536)
                self.respond(sock, head + b"\r\n\r\n" + body)  # the body too: answers are signed over it
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def raw_stub() -> Iterator[Any]:
    made: list[_RawStub] = []

    def make(respond: Any) -> _RawStub:
        made.append(_RawStub(respond))
        return made[-1]

    yield make
    for stub in made:
        stub.close()


def _answer(status: int, body: bytes, *headers: bytes) -> bytes:
    return (b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (status, len(body))
            + b"".join(h + b"\r\n" for h in headers) + b"Connection: close\r\n\r\n" + body)


def _signed(request: bytes, body: bytes) -> bytes:
    """The signed-answer header a real service sends with ``body`` for ``request``."""
    return f"{ANSWER_HEADER}: {signed_answer(request, body)}".encode("ascii")


def test_the_client_deadline_covers_the_whole_answer(raw_stub, decision: Decision) -> None:
    """Finding 6: the timeout was per read, so a service trickling a byte at a time held decide() for ever."""
    done = threading.Event()

    def drip(sock: socket.socket, head: bytes) -> None:
        answer = _answer(200, decision.to_json().encode(), _signed(head, decision.to_json().encode()))
        split = answer.index(b"\r\n\r\n") + 4 if b"drip-body" in head else 0
        sock.sendall(answer[:split])
        for byte in answer[split:]:
            if done.wait(0.2):
                return
            sock.sendall(bytes([byte]))

    stub = raw_stub(drip)
    try:
        for where in ("drip-body", "drip-head"):
            client = GateClient(stub.url, token="t", answer_key=ANSWER_KEY.public, timeout=1)
            client.transport._session.headers["X-Where"] = where
            began = time.monotonic()
            with pytest.raises(GateServiceError, match="did not answer within 1 s; the publish is denied"):
                ask(client, tier="hosted", model=decision.model_digest)
            assert time.monotonic() - began < 10, where
    finally:
        done.set()


def test_the_client_refuses_odd_log_indices_and_deep_json(raw_stub, decision: Decision) -> None:
    """Finding 6: ``X-Gate-Log-Index: ²`` raised ValueError, and a deeply nested answer RecursionError."""
    answers = {"index": (decision.to_json().encode(), b"X-Gate-Log-Index: \xb2"),
               "deep": (b"[" * 100_000 + b"]" * 100_000,)}
    which = ["index"]

    def respond(sock: socket.socket, head: bytes) -> None:
        body, *headers = answers[which[0]]
        sock.sendall(_answer(200, body, _signed(head, body), *headers))

    stub = raw_stub(respond)
    recorded = ask(GateClient(stub.url, token="t", answer_key=ANSWER_KEY.public, timeout=10), tier="hosted",
                   model=decision.model_digest)
    assert recorded.decision == decision and recorded.log_index == 7  # the signed index; the odd header is ignored
    which[0] = "deep"
    with pytest.raises(GateServiceError, match="not JSON; the publish is denied"):
        ask(GateClient(stub.url, token="t", answer_key=ANSWER_KEY.public, timeout=10), tier="hosted",
            model=decision.model_digest)


def test_the_client_checks_the_tier_a_target_was_decided_at(raw_stub, decision: Decision, tmp_path: Path) -> None:
    """Finding 6: asked by target, the client took whatever tier the answer named."""
    policy = {"uri": "p", "digest": decision.policy_digest, "tiers": ["internal", "hosted", "gated", "open"],
              "targets": {"huggingface": {"private": "internal", "gated_manual": "open", "gated_auto": "open",
                                          "public": "open"},
                          "mlflow": {"registration": "internal", "aliases": {"prod": "hosted"}, "stages": {},
                                     "tags": {}}}}
    served = {"policy": policy}

    def respond(sock: socket.socket, head: bytes) -> None:
        if head.startswith(b"GET /v1/policy"):
            sock.sendall(_answer(200, json.dumps(served["policy"]).encode()))
        else:
            body = decision.to_json().encode()
            sock.sendall(_answer(200, body, b"X-Gate-Log-Index: 7", _signed(head, body)))

    stub = raw_stub(respond)
    assert decision.requested_tier == "hosted"
    client = GateClient(stub.url, token="t", answer_key=ANSWER_KEY.public, timeout=10)
    assert ask(client, target="mlflow:alias:prod", model=decision.model_digest).decision == decision
    with pytest.raises(GateServiceError, match="requires tier 'open' for huggingface:public; the publish is denied"):
        ask(client, target="huggingface:public", model=decision.model_digest)
    served["policy"] = {**policy, "digest": "sha256:" + "9" * 64}
    with pytest.raises(GateServiceError, match="decided with policy .* but reports policy"):
        ask(GateClient(stub.url, token="t", answer_key=ANSWER_KEY.public, timeout=10), target="mlflow:alias:prod",
            model=decision.model_digest)


def test_the_real_service_reports_its_policy_for_target_checks(server: Server) -> None:
    summary = server.client(token=None).policy()
    assert summary["tiers"] == ["internal", "hosted", "gated", "open"]
    assert summary["targets"]["huggingface"]["public"] == "open"
    decision = ask(server.client(), target="huggingface:public", model="sha256:" + "ef" * 32).decision
    assert decision.requested_tier == "open" and decision.policy_digest == summary["digest"]


# --- 8: audits --------------------------------------------------------------------------------------------------------


def _webhook_log(path: Path, count: int) -> Any:
    store = open_store(path)
    record = {"integration": "huggingface", "scope": "repo.config", "action": "update", "repo": "org/m",
              "repo_type": "model", "refs": [], "updated_config": {"private": False}, "hub_webhook_id": None}
    store.append_many([webhook_entry(record, NOW) for _ in range(count)])
    return store


def test_an_audit_of_a_database_needs_something_signed(gate_env: GateEnv, tmp_path: Path) -> None:
    """Finding 8: `gate log audit --log DB` with no checkpoint passed, though nothing vouched for the root."""
    db = tmp_path / "log.db"
    _webhook_log(db, 3).close()
    result = run_gate("log", "audit", "--log", str(db), "--trust", str(gate_env.trust))
    assert result.returncode == 1 and "nothing signed to compare the root with" in result.stderr, result.stderr
    assert "--unsigned-ok" in result.stderr
    result = run_gate("log", "audit", "--log", str(db), "--trust", str(gate_env.trust), "--unsigned-ok")
    assert result.returncode == 0 and "log audit passed: 3 entries" in result.stdout, result.stderr


def test_a_truncated_database_copy_reports_the_missing_entries(gate_env: GateEnv, tmp_path: Path) -> None:
    """Finding 8: a copy shorter than the checkpoint (by more than a read page) failed with a range error."""
    full, short = tmp_path / "full.db", tmp_path / "short.db"
    store = _webhook_log(full, 600)
    signer_key = PrivateKey.load(gate_env.key)
    note = Checkpoint(ORIGIN, store.size(), store.root()).sign(signer_key, ORIGIN)
    saved = tmp_path / "cp.txt"
    saved.write_bytes(note)
    store.close()
    copy = _webhook_log(short, 100)  # the first 100 of the same entries: an old backup
    copy.close()
    result = run_gate("log", "audit", "--log", str(short), "--trust", str(gate_env.trust), "--key-file",
                      str(gate_env.vkey), "--checkpoint", str(saved))
    assert result.returncode == 1, result.stderr
    assert "entry 100: entries missing from 100" in result.stderr and "covers 600" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "beyond" not in result.stderr
    result = run_gate("log", "audit", "--log", str(full), "--trust", str(gate_env.trust), "--key-file",
                      str(gate_env.vkey), "--checkpoint", str(saved))
    assert result.returncode == 0 and "root matches 1 signed checkpoint(s)" in result.stdout, result.stderr
