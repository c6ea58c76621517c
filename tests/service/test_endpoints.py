"""The HTTP API of `gate serve`, against a real process: authentication, limits, errors, decisions, log reads."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest
import requests

from support import World, run_gate, write_model
from tiergate.runtime.remote import ask
from tiergate.core.decision import decide
from tiergate.core.log.entries import parse_entry
from tiergate.core.manifest import hash_model
from tiergate.core.trust import TrustStore
from tiergate.core.policy import Policy
from tiergate.core.timeutil import parse_time
from tiergate.core.verify import AttestationInput
from tiergate.service.routes import ROUTES
from tiergate.service.app import source_of_logged, source_of_sent

from .conftest import GateEnv, Server


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def auth(env: GateEnv) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.token}"}


@pytest.fixture
def model(tmp_path: Path):
    return hash_model(write_model(tmp_path / "tiny"))


def test_writes_need_a_valid_token_reads_do_not(server: Server, http: requests.Session, model) -> None:
    body = {"tier": "internal", "model": {"digest": model.digest}}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {server.env.token}"}):
        answer = http.post(f"{server.url}/v1/decisions", json=body, headers=headers)
        assert answer.status_code == 401, answer.text
        assert "bearer token" in answer.json()["error"]
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    answer = http.post(f"{server.url}/v1/attestations", json={"attestation": "e30="})
    assert answer.status_code == 401
    for path in ("/v1/log/checkpoint", "/v1/log/entries", "/v1/healthz", "/openapi.json",
                 f"/v1/attestations?model={model.digest}", f"/v1/log/find?model={model.digest}"):
        assert http.get(server.url + path).status_code == 200, path


def test_invalid_attestation_is_refused_with_its_reason(server: Server, http: requests.Session, model,
                                                        tmp_path: Path) -> None:
    world: World = server.env.world
    good = world.attest(model, "evalco", "strongreject", {"score": 0.05})
    envelope = json.loads(good.data)
    envelope["signatures"][0]["sig"] = b64(b"\x00" * 64)
    answer = http.post(f"{server.url}/v1/attestations", json={"attestation": b64(json.dumps(envelope).encode())},
                       headers=auth(server.env))
    assert answer.status_code == 400
    assert "bad signature" in answer.json()["reason"] and answer.json()["error"].startswith("attestation rejected")
    other = hash_model(write_model(tmp_path / "other"))
    answer = http.post(f"{server.url}/v1/attestations", json={"attestation": b64(good.data), "model": other.digest},
                       headers=auth(server.env))
    assert answer.status_code == 400 and "subject mismatch" in answer.json()["reason"]
    answer = http.post(f"{server.url}/v1/attestations", json={"attestation": "not base64!"}, headers=auth(server.env))
    assert answer.status_code == 400 and "base64" in answer.json()["error"]


def test_attestations_are_stored_once_and_listed(server: Server, http: requests.Session, model) -> None:
    item = server.env.world.attest(model, "evalco", "strongreject", {"score": 0.05})
    first = http.post(f"{server.url}/v1/attestations", json={"attestation": b64(item.data)}, headers=auth(server.env))
    assert first.status_code == 201, first.text
    assert first.json()["digest"] == item.digest and first.json()["model"] == model.digest
    # The bare envelope is accepted too, stored under the same digest (its exact bytes).
    again = http.post(f"{server.url}/v1/attestations", data=item.data,
                      headers={**auth(server.env), "Content-Type": "application/json"})
    assert again.status_code == 200 and again.json()["index"] == first.json()["index"]
    listed = http.get(f"{server.url}/v1/attestations", params={"model": model.digest}).json()
    assert [(a["digest"], base64.b64decode(a["data"])) for a in listed["attestations"]] == [(item.digest, item.data)]
    entry = http.get(f"{server.url}/v1/log/entries",
                     params={"start": first.json()["index"], "end": first.json()["index"] + 1}).json()
    record = parse_entry(base64.b64decode(entry["entries"][0]["data"]))
    assert record.data == item.data and record.model_digest == model.digest


def test_decision_equals_the_local_decision_and_is_logged(server: Server, http: requests.Session, model) -> None:
    world = server.env.world
    stored = world.attest(model, "evalco", "strongreject", {"score": 0.05})
    sent = world.attest(model, "redteam", "mmlu", {"acc": 0.7})
    bogus = AttestationInput("x", b'{"payload": "e30=", "payloadType": "x", "signatures": [{"sig": "AA=="}]}')
    receipt = server.client().submit_attestation(stored.data)
    body = {"tier": "gated", "model": {"manifest": model.to_dict(content=True)},
            "attestations": [b64(sent.data), b64(bogus.data)], "context": {"event": "test", "by": "ci"}}
    answer = http.post(f"{server.url}/v1/decisions", json=body, headers=auth(server.env))
    assert answer.status_code == 200, answer.text
    served = answer.json()
    inputs = [AttestationInput(source_of_logged(receipt["index"]), stored.data),
              AttestationInput(source_of_sent(0), sent.data), AttestationInput(source_of_sent(1), bogus.data)]
    local = decide(Policy.load(server.env.policy), "gated", model, inputs, TrustStore.load(server.env.trust),
                   parse_time(served["time"]))
    assert answer.text == local.to_json()  # byte for byte what `gate check --json` prints
    assert served["decision"] == "allow" and len(served["rejected_attestations"]) == 1
    index = int(answer.headers["X-Gate-Log-Index"])
    page = http.get(f"{server.url}/v1/log/entries", params={"start": index - 1, "end": index + 1}).json()
    sent_entry, decision_entry = (parse_entry(base64.b64decode(e["data"])) for e in page["entries"])
    assert sent_entry.data == sent.data  # the accepted attestation sent along was logged; the bogus one was not
    assert decision_entry.decision == served
    assert decision_entry.context == {**body["context"], "requested_by": "tests"}  # the token's name, from the server
    # Now held by the service, the sent attestation counts for the next decision by digest alone.
    again = ask(server.client(), tier="open", model=model.root_digest).decision
    assert again.decision == "deny" and {r.id for r in again.missing} == {"formats"}  # no file list by digest


def test_targets_resolve_through_the_policy(server: Server, model) -> None:
    decision = ask(server.client(), target="huggingface:private", model=model.digest).decision
    assert decision.requested_tier == "internal" and decision.decision == "allow"
    answer = requests.post(f"{server.url}/v1/decisions", headers=auth(server.env),
                           json={"target": "somewhere:else", "model": {"digest": model.digest}}, timeout=30)
    assert answer.status_code == 400 and "unknown target" in answer.json()["error"]


def test_targets_are_normalised_by_the_core_rule(server: Server, model) -> None:
    """Issue #13 item 3: the service's target API was case-sensitive where the MLflow plugin was not."""
    decision = ask(server.client(), target="HuggingFace:Private ", model=model.digest).decision
    assert decision.requested_tier == "internal"  # and the client's own check of the tier agreed
    answer = requests.post(f"{server.url}/v1/decisions", headers=auth(server.env),
                           json={"target": "huggingface:рublic", "model": {"digest": model.digest}},
                           timeout=30)  # Cyrillic р
    assert answer.status_code == 400 and "unknown target" in answer.json()["error"], answer.text


@pytest.mark.parametrize(("body", "reason"), [
    ({"tier": "nope", "model": {"digest": "sha256:" + "a" * 64}}, "unknown tier"),
    ({"tier": "internal", "model": {"digest": "sha256:xyz"}}, "not a model digest"),
    ({"tier": "internal", "model": {"manifest": {"files": "no"}}}, "model.manifest"),
    ({"tier": "internal", "target": "huggingface:public", "model": {"digest": "a" * 64}}, "exactly one"),
    ({"tier": "internal", "model": {"digest": "a" * 64}, "extra": 1}, "unknown field"),
    ({"tier": "internal", "model": {"digest": "a" * 64}, "context": [1]}, "context must be a JSON object"),
    ([1, 2], "must be a JSON object"),
])
def test_malformed_decision_requests_get_400(server: Server, http: requests.Session, body, reason) -> None:
    answer = http.post(f"{server.url}/v1/decisions", json=body, headers=auth(server.env))
    assert answer.status_code == 400 and reason in answer.json()["error"], answer.text


def test_body_limits_and_content_types(server: Server, http: requests.Session) -> None:
    big = b"x" * (16 * 1024 * 1024 + 1)
    answer = http.post(f"{server.url}/v1/decisions", data=big,
                       headers={**auth(server.env), "Content-Type": "application/json"})
    assert answer.status_code == 413 and "limit" in answer.json()["error"]
    answer = http.post(f"{server.url}/v1/decisions", data=b"tier=open", headers={
        **auth(server.env), "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]
    answer = http.post(f"{server.url}/v1/decisions", data=b"{not json",
                       headers={**auth(server.env), "Content-Type": "application/json"})
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]
    answer = http.post(f"{server.url}/v1/decisions", data=iter([b"{}"]),
                       headers={**auth(server.env), "Content-Type": "application/json"})  # chunked
    assert answer.status_code == 411
    # The connection stays usable after refusals (bodies never read are not parsed as requests).
    assert http.get(f"{server.url}/v1/healthz").json()["status"] == "ok"


def test_unknown_paths_methods_and_garbage(server: Server, http: requests.Session) -> None:
    answer = http.get(f"{server.url}/v2/nothing")
    assert answer.status_code == 404 and "no such endpoint" in answer.json()["error"]
    answer = http.delete(f"{server.url}/v1/log/checkpoint")
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"
    for params in ({"start": "-1"}, {"start": "x"}, {"start": "5", "end": "2"}, {"start": "99999999"}):
        answer = http.get(f"{server.url}/v1/log/entries", params=params)
        assert answer.status_code == 400 and "error" in answer.json(), params
    for path, params in (("/v1/log/proof/inclusion", {"index": "999999999"}),
                         ("/v1/log/proof/inclusion", {}),
                         ("/v1/log/proof/consistency", {"old": "0", "new": "1"}),
                         ("/v1/log/proof/consistency", {"old": "5", "new": "2"}),
                         ("/v1/log/find", {"model": "nope"}),
                         ("/v1/attestations", {})):
        answer = http.get(server.url + path, params=params)
        assert answer.status_code == 400 and answer.json()["error"], (path, params, answer.text)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"BLAH\r\n\r\n")
        reply = raw.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400") and b'{"error"' in reply


def test_log_reads_are_public_and_verifiable(server: Server, model) -> None:
    from tiergate.audit.keys import CheckpointKey
    from tiergate.core.log.merkle import leaf_hash, verify_consistency, verify_inclusion

    client = server.client(token=None)
    ask(server.client(), tier="internal", model=model.digest)
    key = CheckpointKey.load(server.env.vkey, None, None)
    old = key.verify(client.checkpoint())
    ask(server.client(), tier="hosted", model=model.digest)
    new = key.verify(client.checkpoint())
    assert new.size > old.size
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, client.consistency_proof(old.size, new.size))
    page = client.entries(0, new.size)
    assert page.start == 0 and page.entries[0][0] == 0
    for index, data in page.entries[-3:]:
        verify_inclusion(leaf_hash(data), index, new.size, client.inclusion_proof(index, new.size), new.root_hash)
    found, following = client.find(model.digest)
    assert following is None and [r["kind"] for r in found][-2:] == ["decision", "decision"]
    health = client.health()
    assert health["origin"] == "test.tiergate.local/log" and health["tree_size"] >= new.size


def test_openapi_document_lists_exactly_the_routes(server: Server, http: requests.Session) -> None:
    document = http.get(f"{server.url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert bool(operation.get("security")) == route.auth, route.path
        if route.auth:
            assert {"401", "413", "415"} <= set(operation["responses"])


def test_gate_check_with_server_decides_remotely(server: Server, tmp_path: Path) -> None:
    model_dir = write_model(tmp_path / "remote")
    manifest = hash_model(model_dir)
    attestation = tmp_path / "sr.json"
    attestation.write_bytes(server.env.world.attest(manifest, "evalco", "strongreject", {"score": 0.01}).data)
    env = {"GATE_TOKEN": server.env.token, "GATE_SERVER_KEY": str(server.env.vkey)}
    result = run_gate("check", str(model_dir), str(attestation), "--tier", "hosted", "--server", server.url, "--json",
                      env=env)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["decision"] == "allow" and decision["model_digest"] == manifest.digest
    denied = run_gate("check", str(model_dir), "--tier", "open", "--server", server.url, env=env)
    assert denied.returncode == 1 and "denied" in denied.stderr and "mmlu" in denied.stderr


def test_gate_check_fails_closed_when_the_service_is_unreachable(tmp_path: Path, gate_env: GateEnv) -> None:
    vkey = gate_env.vkey
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        result = run_gate("check", str(write_model(tmp_path / "m")), "--tier", "internal", "--server",
                          f"http://127.0.0.1:{port}", env={"GATE_TOKEN": "t", "GATE_SERVER_KEY": str(vkey)})
    assert result.returncode == 1
    assert f"gate service at http://127.0.0.1:{port} unreachable" in result.stderr
    assert "the publish is denied" in result.stderr and "Traceback" not in result.stderr


def test_gate_check_fails_closed_on_a_bad_token(server: Server, tmp_path: Path) -> None:
    result = run_gate("check", str(write_model(tmp_path / "m")), "--tier", "internal", "--server", server.url,
                      env={"GATE_TOKEN": "wrong", "GATE_SERVER_KEY": str(server.env.vkey)})
    assert result.returncode == 1 and "HTTP 401" in result.stderr and "the publish is denied" in result.stderr


def test_gate_check_without_a_token_is_denied_before_hashing(server: Server, tmp_path: Path) -> None:
    result = run_gate("check", str(write_model(tmp_path / "m")), "--tier", "internal", "--server", server.url,
                      "--token-env", "NO_SUCH_TOKEN_VAR", env={"NO_SUCH_TOKEN_VAR": ""})
    assert result.returncode == 1 and "no bearer token for the gate service in $NO_SUCH_TOKEN_VAR" in result.stderr
