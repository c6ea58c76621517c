"""Pure pieces of the service and auditor: log entries, reading decisions back, tokens, targets, the client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from collections.abc import Iterator

import pytest

from support import ANSWER_KEY, NOW, World, signed_answer
from tiergate.core.answer import ANSWER_HEADER
from tiergate.runtime.remote import ask
from tiergate.runtime.client import GateClient, GateServiceError
from tiergate.core.decision import decide
from tiergate.core.log.entries import (
    MAX_CONTEXT_BYTES, AttestationRecord, DecisionRecord, EntryFormatError, attestation_entry, canonical_json,
    decision_entry, entry_kind, parse_entry,
)
from tiergate.core.policy import Policy
from tiergate.errors import ConfigError
from tiergate.service.targets import UnknownTarget, tier_for_target
from tiergate.service.tokens import TokenSet, hash_token
from tiergate.core.decision import Decision, DecisionFormatError

from .conftest import POLICY


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(json.dumps(POLICY))
    return Policy.load(path)


@pytest.fixture
def decision(policy, manifest, world: World):
    items = [world.attest(manifest, "evalco", "strongreject", {"score": 0.05})]
    return decide(policy, "hosted", manifest, items, world.trust(), NOW)


def test_entries_are_canonical_and_round_trip(decision, manifest, world: World) -> None:
    item = world.attest(manifest, "evalco", "mmlu", {"acc": 0.9})
    data = attestation_entry(item.data, manifest.digest, NOW)
    assert data == canonical_json(json.loads(data)) and entry_kind(data) == "attestation"
    record = parse_entry(data)
    assert isinstance(record, AttestationRecord) and record.data == item.data and record.digest == item.digest
    assert record.model_digest == manifest.digest and record.time == NOW
    data = decision_entry(decision, {"who": "ci", "où": "ünïcode"})
    record = parse_entry(data)
    assert isinstance(record, DecisionRecord) and record.decision == decision.to_dict()
    assert record.context == {"who": "ci", "où": "ünïcode"} and data.startswith(b'{"context":')


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda b: b.replace(b'":', b'": ', 1), "not canonical"),
    (lambda b: b"[" + b + b"]", "a JSON object, not list"),
    (lambda b: b.replace(b"{", b"{\"kind\":\"x\",", 1), "not canonical"),
    (lambda b: b.replace(b'"kind":"decision"', b'"kind":"vote"'), "unknown entry kind"),
    (lambda b: b.replace(b'"schema":"https://tiergate.dev/log-entry/v1"', b'"schema":"x"'), "schema must be"),
    (lambda b: b"\xff" + b, "not UTF-8"),
    (lambda b: b[:-1], "not JSON"),
])
def test_malformed_entries_are_refused(decision, mutate, reason) -> None:
    with pytest.raises(EntryFormatError, match=reason):
        parse_entry(mutate(decision_entry(decision, {})))


def test_entry_fields_must_agree(decision, manifest) -> None:
    body = json.loads(decision_entry(decision, {}))
    body["model_digest"] = "sha256:" + "0" * 64
    with pytest.raises(EntryFormatError, match="the decision is about"):
        parse_entry(canonical_json(body))
    body = json.loads(attestation_entry(b"abc", manifest.digest, NOW))
    body["attestation"]["digest"] = "sha256:" + "0" * 64
    with pytest.raises(EntryFormatError, match="is not the SHA-256 of its data"):
        parse_entry(canonical_json(body))
    with pytest.raises(EntryFormatError, match="limit"):
        decision_entry(decision, {"big": "x" * MAX_CONTEXT_BYTES})
    with pytest.raises(EntryFormatError, match="canonical JSON"):
        decision_entry(decision, {"nan": float("nan")})


def test_decisions_read_back_exactly_and_strictly(decision) -> None:
    assert Decision.from_dict(json.loads(decision.to_json())) == decision
    body = decision.to_dict()
    for broken, reason in (({**body, "decision": "deny"}, "every requirement is met"),
                           ({**body, "extra": 1}, "unknown field"),
                           ({**body, "requirements": "none"}, "must be a list"),
                           ({**body, "time": "yesterday"}, "time")):
        with pytest.raises(DecisionFormatError, match=reason):
            Decision.from_dict(broken)


def test_tokens_files_hold_hashes_only(tmp_path: Path) -> None:
    lines = tmp_path / "tokens.txt"
    lines.write_text(f"# comment\n{hash_token('alpha')}  ci\nsha256:{hash_token('beta')}\n")
    tokens = TokenSet.load(lines)
    assert tokens.check("alpha") == "ci" and tokens.check("beta") == "token-3"
    assert tokens.check("gamma") is None and tokens.check("") is None and tokens.check(None) is None
    yaml_form = tmp_path / "tokens.yaml"
    yaml_form.write_text(f"tokens:\n  - name: bot\n    sha256: {hash_token('delta')}\n")
    assert TokenSet.load(yaml_form).check("delta") == "bot"
    clear = tmp_path / "clear.txt"
    clear.write_text("my-secret-token\n")
    with pytest.raises(ConfigError, match="line 1: not a SHA-256 hex digest"):
        TokenSet.load(clear)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no token hashes"):
        TokenSet.load(tmp_path / "empty.txt")


def test_targets_follow_the_policy(policy) -> None:
    assert tier_for_target(policy, "huggingface:public") == "open"
    assert tier_for_target(policy, "huggingface:private") == "internal"
    assert tier_for_target(policy, "mlflow:alias:anything") == "internal"  # registration, the lowest tier
    for bad in ("huggingface:everyone", "mlflow:alias:", "s3:bucket", "mlflow:tag:novalue"):
        with pytest.raises(UnknownTarget):
            tier_for_target(policy, bad)


class _Stub(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b"{}")

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(ANSWER_HEADER, signed_answer(request, body))  # as a real service signs it
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, type[_Stub]]]:
    handler = type("Handler", (_Stub,), {})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_the_client_refuses_anything_but_a_decision_about_the_model(stub, decision, manifest) -> None:
    url, handler = stub
    client = GateClient(url, token="t", answer_key=ANSWER_KEY.public, timeout=5)
    cases = [
        ((200, b"<html>ok</html>"), "not JSON"),
        ((200, b'{"decision": "allow"}'), "not a decision"),
        ((500, b'{"error": "boom"}'), "HTTP 500: boom"),
        ((200, decision.to_json().replace(manifest.root_digest, "0" * 64).encode()), "answered about sha256:0000"),
        ((200, decision.to_json().encode()), "answered for tier 'hosted', not 'open'"),
    ]
    for answer, message in cases:
        handler.answer = answer
        with pytest.raises(GateServiceError, match=message) as caught:
            ask(client, tier="open", model=manifest)
        assert str(caught.value).endswith("the publish is denied")
    handler.answer = (200, decision.to_json().encode())
    assert ask(client, tier="hosted", model=manifest).decision == decision
    with pytest.raises(GateServiceError, match="needs a bearer token"):
        ask(GateClient(url, token=None, answer_key=ANSWER_KEY.public), tier="hosted", model=manifest)


def test_the_client_times_out_closed(stub, manifest) -> None:
    url, handler = stub
    handler.do_POST = lambda self: __import__("time").sleep(0.8)  # type: ignore[method-assign]
    with pytest.raises(GateServiceError, match="did not answer within 0.3 s; the publish is denied"):
        ask(GateClient(url, token="t", answer_key=ANSWER_KEY.public, timeout=0.3), tier="hosted", model=manifest)


def test_an_auditor_refuses_a_health_answer_without_a_log_size(stub) -> None:
    from tiergate.audit.sources import ServerSource

    url, handler = stub

    def get(self: _Stub) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    handler.do_GET = get  # type: ignore[attr-defined]
    with pytest.raises(GateServiceError, match="malformed health answer"):
        ServerSource(GateClient(url, timeout=5)).size()


def test_an_answer_quoting_a_lone_surrogate_is_still_json() -> None:
    """Text quoted from a request into an error used to make the answer's UTF-8 encoding fail: a 500."""
    from tiergate.service.responses import Response

    body = Response.json(400, {"error": "unknown tier 'x\ud800'"}).body
    assert body == b'{"error":"unknown tier \'x\\ud800\'"}\n'  # the surrogate as its JSON escape
