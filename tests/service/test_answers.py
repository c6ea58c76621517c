"""Answers bound to requests: real answers of a real `gate serve`, captured and replayed by a man in the middle.

A proxy between the client and the service records what the service answers and then plays the attacker: it replays
a captured answer to a later request, swaps the model or tier of a request before forwarding it, changes a field of
the answer, strips its signature, signs its own with a key the service has since replaced, or delivers an answer
signed long ago. The client (`ask`, and `gate check --server` through the proxy) must deny each, saying why, and
accept the honest answer passed through untouched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from support import run_gate, signed_answer, write_model

from tiergate.core.answer import (
    ANSWER_HEADER,
    AnswerError,
    AnswerRequest,
    SignedAnswer,
    body_digest,
    verify_answer,
)
from tiergate.core.keys import PrivateKey, PublicKey, write_keypair
from tiergate.core.log.checkpoint import NoteSigner
from tiergate.core.manifest import hash_model
from tiergate.core.timeutil import utcnow
from tiergate.runtime.client import GateClient, GateServiceError
from tiergate.runtime.remote import ask

from .conftest import ORIGIN, Server

#: Rewrites a decision request's JSON on its way to the service (None: as sent).
RequestRewrite = Callable[[dict], dict]


@dataclass
class Captured:
    request: bytes
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class Proxy:
    """A man in the middle in front of ``upstream``: forwards, records, and misbehaves as told."""

    upstream: str
    captured: list[Captured] = field(default_factory=list)
    replay: Captured | None = None  # answer every decision request with this
    rewrite_request: RequestRewrite | None = None
    rewrite_answer: Callable[[bytes, dict[str, str], bytes], tuple[bytes, dict[str, str]]] | None = None
    url: str = ""

    def start(self) -> ThreadingHTTPServer:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                answer = requests.get(proxy.upstream + self.path, timeout=10)
                self._send(answer.status_code, answer.content, {})

            def do_POST(self) -> None:
                request = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if proxy.replay is not None:
                    self._send(proxy.replay.status, proxy.replay.body, proxy.replay.headers)
                    return
                forwarded = request
                if proxy.rewrite_request is not None:
                    forwarded = json.dumps(proxy.rewrite_request(json.loads(request))).encode()
                answer = requests.post(proxy.upstream + self.path, data=forwarded, timeout=10, headers={
                    "Content-Type": "application/json", "Authorization": self.headers.get("Authorization", "")})
                headers = {k: v for k, v in answer.headers.items() if k in (ANSWER_HEADER, "X-Gate-Log-Index")}
                proxy.captured.append(Captured(request, answer.status_code, answer.content, headers))
                body = answer.content
                if proxy.rewrite_answer is not None:
                    body, headers = proxy.rewrite_answer(request, dict(headers), body)
                self._send(answer.status_code, body, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def proxy(server: Server) -> Iterator[Proxy]:
    made = Proxy(server.url)
    running = made.start()
    yield made
    running.shutdown()
    running.server_close()


def _client(proxy: Proxy, server: Server, key: PublicKey | None = None, max_age: float = 300.0) -> GateClient:
    return GateClient(proxy.url, token=server.env.token, timeout=10, answer_key=key or PublicKey.load(server.env.pub),
                      max_age=max_age)


def _denied(match: str, call: Callable[[], object]) -> str:
    with pytest.raises(GateServiceError, match=match) as caught:
        call()
    assert str(caught.value).endswith("the publish is denied"), caught.value
    return str(caught.value)


@pytest.fixture
def two_models(tmp_path: Path) -> tuple[str, str]:
    return hash_model(write_model(tmp_path / "a")).digest, hash_model(write_model(tmp_path / "b")).digest


def test_an_honest_answer_passes_through_and_is_signed_over_the_request(proxy: Proxy, server: Server,
                                                                        two_models: tuple[str, str]) -> None:
    model, _ = two_models
    recorded = ask(_client(proxy, server), tier="internal", model=model)
    assert recorded.decision.allowed and recorded.log_index is not None
    captured = proxy.captured[-1]
    sent = json.loads(captured.request)
    assert len(sent["nonce"]) >= 43  # 256 random bits
    signed = verify_answer(captured.headers[ANSWER_HEADER], PublicKey.load(server.env.pub),
                           AnswerRequest(sent["nonce"], model, "internal", None), captured.body, utcnow())
    assert (signed.decision, signed.tier, signed.log_index, signed.origin) == ("allow", "internal",
                                                                              recorded.log_index, ORIGIN)
    assert signed.decision_digest == body_digest(captured.body)


def test_a_captured_allow_replayed_later_is_denied(proxy: Proxy, server: Server, two_models: tuple[str, str]) -> None:
    model, other = two_models
    assert ask(_client(proxy, server), tier="internal", model=model).decision.allowed
    proxy.replay = proxy.captured[-1]  # the same request again: a fresh nonce, the old answer
    _denied("answered another request \\(its nonce is not the one sent\\): a replayed answer",
            lambda: ask(_client(proxy, server), tier="internal", model=model))
    # ... and for another model or tier the nonce gives it away first, whatever else matches
    _denied("replayed answer", lambda: ask(_client(proxy, server), tier="open", model=model))
    _denied("replayed answer", lambda: ask(_client(proxy, server), tier="internal", model=other))


def test_gate_check_through_a_replaying_proxy_is_denied(proxy: Proxy, server: Server, tmp_path: Path) -> None:
    model_dir = write_model(tmp_path / "m")
    env = {"GATE_TOKEN": server.env.token, "GATE_SERVER_KEY": str(server.env.vkey)}
    first = run_gate("check", str(model_dir), "--tier", "internal", "--server", proxy.url, env=env)
    assert first.returncode == 0, first.stderr
    proxy.replay = proxy.captured[-1]
    again = run_gate("check", str(model_dir), "--tier", "internal", "--server", proxy.url, env=env)
    assert again.returncode == 1 and "a replayed answer; the publish is denied" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    keyless = run_gate("check", str(model_dir), "--tier", "internal", "--server", proxy.url,
                       env={"GATE_TOKEN": server.env.token})
    assert keyless.returncode == 1 and "no key to check the gate service's signed answers" in keyless.stderr


def test_a_request_swapped_in_transit_is_denied(proxy: Proxy, server: Server, two_models: tuple[str, str]) -> None:
    """The proxy forwards the client's nonce with another model or a lower tier: the service signs what it was
    asked, truthfully, and the client sees it is not what it asked."""
    model, other = two_models
    proxy.rewrite_request = lambda body: {**body, "model": {"digest": other}}
    _denied("signed an answer to another request", lambda: ask(_client(proxy, server), tier="internal", model=model))
    proxy.rewrite_request = lambda body: {**body, "tier": "internal"}
    _denied("signed an answer to another request .* at tier 'internal', not .* at tier 'open'",
            lambda: ask(_client(proxy, server), tier="open", model=model))
    proxy.rewrite_request = lambda body: {key: value for key, value in body.items() if key != "tier"} | {
        "target": "huggingface:private"}
    _denied("another request", lambda: ask(_client(proxy, server), tier="internal", model=model))


def test_a_tampered_or_unsigned_answer_is_denied(proxy: Proxy, server: Server, two_models: tuple[str, str]) -> None:
    model, _ = two_models

    def flip(request: bytes, headers: dict[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
        return body.replace(b'"decision": "deny"', b'"decision": "allow"'), headers

    proxy.rewrite_answer = flip
    _denied("sent a decision that is not the one it signed", lambda: ask(_client(proxy, server), tier="open",
                                                                         model=model))
    proxy.rewrite_answer = lambda request, headers, body: (body, {})
    _denied(f"sent no signed answer \\({ANSWER_HEADER}\\)", lambda: ask(_client(proxy, server), tier="internal",
                                                                         model=model))
    proxy.rewrite_answer = lambda request, headers, body: (body, {ANSWER_HEADER: headers[ANSWER_HEADER][:-8]})
    _denied("not base64|not a DSSE envelope", lambda: ask(_client(proxy, server), tier="internal", model=model))
    # a log index changed in the unsigned header
    proxy.rewrite_answer = lambda request, headers, body: (body, {**headers, "X-Gate-Log-Index": "0"})
    _denied("signed log index [0-9]+ but said 0", lambda: ask(_client(proxy, server), tier="internal", model=model))


def test_an_answer_signed_with_a_replaced_key_is_denied(proxy: Proxy, server: Server, tmp_path: Path,
                                                        two_models: tuple[str, str]) -> None:
    """The service's old key leaked and was replaced; clients were given the new one. A captured answer, or a fresh
    one the attacker signs with the old key for the client's own nonce, is denied."""
    model, _ = two_models
    old = PrivateKey.load(server.env.key)
    assert ask(_client(proxy, server), tier="internal", model=model).decision.allowed
    captured = proxy.captured[-1]
    new = PrivateKey.generate()
    proxy.replay = captured
    _denied("replayed answer|not signed by the configured service key",
            lambda: ask(_client(proxy, server, key=new.public), tier="internal", model=model))
    proxy.replay = None
    proxy.rewrite_answer = lambda request, headers, body: (body, {ANSWER_HEADER: signed_answer(request, body, old)})
    _denied("not signed by the configured service key",
            lambda: ask(_client(proxy, server, key=new.public), tier="internal", model=model))
    # the same forgery passes only for a client still trusting the old key: the key is what the client checks
    assert ask(_client(proxy, server, key=old.public), tier="internal", model=model).decision.allowed


def test_an_old_answer_is_denied_beyond_the_maximum_age(proxy: Proxy, server: Server,
                                                        two_models: tuple[str, str]) -> None:
    """Signed for this very request, but timed ten minutes ago (a service with a wrong clock, a held-back answer)."""
    model, _ = two_models
    key = PrivateKey.load(server.env.key)
    proxy.rewrite_answer = lambda request, headers, body: (body, {ANSWER_HEADER: signed_answer(
        request, body, key, when=utcnow() - timedelta(minutes=10))})
    _denied("600 s old by this clock; at most 300 s is accepted",
            lambda: ask(_client(proxy, server), tier="internal", model=model))
    assert ask(_client(proxy, server, max_age=900), tier="internal", model=model).decision.allowed
    proxy.rewrite_answer = lambda request, headers, body: (body, {ANSWER_HEADER: signed_answer(
        request, body, key, when=utcnow() + timedelta(minutes=10))})
    _denied("in the future", lambda: ask(_client(proxy, server), tier="internal", model=model))


def test_the_service_refuses_a_malformed_nonce(server: Server, http: requests.Session,
                                               two_models: tuple[str, str]) -> None:
    body = {"tier": "internal", "model": {"digest": two_models[0]}}
    headers = {"Authorization": f"Bearer {server.env.token}"}
    for nonce in ("short", "x" * 129, "has space in it here", 12345678901234567890):
        answer = http.post(f"{server.url}/v1/decisions", json={**body, "nonce": nonce}, headers=headers)
        assert answer.status_code == 400 and "nonce must be" in answer.json()["error"], answer.text
    without = http.post(f"{server.url}/v1/decisions", json=body, headers=headers)  # curl, older clients: still signed
    assert without.status_code == 200 and without.headers[ANSWER_HEADER]


def test_a_signed_answer_is_refused_field_by_field(tmp_path: Path) -> None:
    """The verifier alone: every field of the statement is checked, and only the configured key counts."""
    key = PrivateKey.generate()
    asked = AnswerRequest("n" * 43, "sha256:" + "ab" * 32, "hosted", None)
    body = b'{"decision": "allow"}'
    now = utcnow()

    def header(**changes: object) -> str:
        fields = {"request": asked, "decision": "allow", "tier": "hosted", "decision_digest": body_digest(body),
                  "origin": "o", "log_index": 3, "time": now, **changes}
        return SignedAnswer(**fields).sign(key)  # type: ignore[arg-type]

    assert verify_answer(header(), key.public, asked, body, now).log_index == 3
    cases = {
        "not signed by the configured service key": (header(), PrivateKey.generate().public, asked),
        "another request": (header(request=AnswerRequest("n" * 43, asked.model, "open", None)), key.public, asked),
        "nonce is not the one sent": (header(), key.public, AnswerRequest("m" * 43, asked.model, "hosted", None)),
        "not the one it signed": (header(decision_digest=body_digest(b"{}")), key.public, asked),
        "decision is 'maybe'": (header(decision="maybe"), key.public, asked),
    }
    for reason, (value, trusted, request) in cases.items():
        with pytest.raises(AnswerError, match=reason):
            verify_answer(value, trusted, request, body, now)
    _, public = write_keypair(key, tmp_path / "k")
    vkey = tmp_path / "k.vkey"
    vkey.write_text(NoteSigner("some.origin/log", key).verifier.vkey() + "\n")
    from tiergate.core.answer import load_answer_key

    assert load_answer_key(vkey).key_id == load_answer_key(public).key_id == key.public.key_id
