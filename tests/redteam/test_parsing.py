"""Red team, parsing: hostile attestation files dropped beside valid ones. Each is rejected with its own one-line
reason and the valid ones are still judged, by `gate verify`, `gate check` and `gate serve` alike; nothing answers
"internal error" or HTTP 500. Most are validly signed by a trusted evaluator: the attacker is a key holder (or a
parser bug away from one), not a stranger."""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import os
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterator

import pytest
import requests

from support import ANSWER_KEY, NOW, World, run_gate, signed_answer, write_model
from tiergate.core.answer import ANSWER_HEADER
from tiergate.core.decision import decide
from tiergate.core.dsse import sign
from tiergate.core.keys import PrivateKey, write_keypair
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.policy import Policy
from tiergate.core.verify import AttestationInput, verify_all
from tiergate.service.tokens import hash_token

NOW_TEXT = "2026-11-01T12:00:00Z"
INTOTO = "application/vnd.in-toto+json"

#: payload edit -> what the reason must say. Each edit is applied to a valid statement's JSON text, then signed.
Edit = Callable[[bytes], bytes]


def _sub(old: bytes, new: bytes) -> Edit:
    def edit(payload: bytes) -> bytes:
        assert old in payload, (old, payload[:300])
        return payload.replace(old, new, 1)
    return edit


def _nest(depth: int) -> Edit:
    return _sub(b'"predicate":{', b'"predicate":{"x":' + b"[" * depth + b"]" * depth + b",")


SIGNED_CASES: dict[str, tuple[Edit, str]] = {
    "duplicate metric": (_sub(b'"score":0.05', b'"score":0.01,"score":0.05'), "has the key 'score' twice"),
    "duplicate predicateType": (_sub(b'"predicateType":', b'"predicateType":"x","predicateType":'),
                                "has the key 'predicateType' twice"),
    "duplicate subject digest": (_sub(b'"sha256":"', b'"sha256":"00","sha256":"'), "twice"),
    "5000-digit sample size": (_sub(b'"sampleSize":313', b'"sampleSize":' + b"9" * 5000), "5000 digits"),
    "401-digit metric": (_sub(b'"score":0.05', b'"score":' + b"1" * 401), "401 digits"),
    "401-digit fraction": (_sub(b'"score":0.05', b'"score":0.' + b"0" * 400), "402 characters"),
    "metric 1e400": (_sub(b'"score":0.05', b'"score":1e400'), "too large for a 64-bit float"),
    "metric NaN": (_sub(b'"score":0.05', b'"score":NaN'), "has NaN"),
    "metric -Infinity": (_sub(b'"score":0.05', b'"score":-Infinity'), "has -Infinity"),
    "metric a string": (_sub(b'"score":0.05', b'"score":"0.05"'), "must be a finite number"),
    "metric true": (_sub(b'"score":0.05', b'"score":true'), "must be a finite number"),
    "nesting 100k": (_nest(100_000), "nests more than 64 levels deep"),
    "nesting 66": (_nest(64), "nests more than 64 levels deep"),
    "attestedAt overflows in UTC": (_sub(b'"attestedAt":"2026-10-31T12:00:00Z"',
                                         b'"attestedAt":"9999-12-31T23:59:59-05:00"'), "out of range in UTC"),
    "attestedAt underflows in UTC": (_sub(b'"attestedAt":"2026-10-31T12:00:00Z"',
                                          b'"attestedAt":"0001-01-01T00:00:00+05:00"'), "out of range in UTC"),
    "attestedAt at the end of time": (_sub(b'"attestedAt":"2026-10-31T12:00:00Z"',
                                           b'"attestedAt":"9999-12-31T23:59:59Z"'), "is in the future"),
    "evaluatedAt at the end of time": (_sub(b'"evaluatedAt":"2026-10-31T12:00:00Z"',
                                            b'"evaluatedAt":"9999-12-31T23:59:59+00:00"'), "is after attestedAt"),
    "attestedAt a number": (_sub(b'"attestedAt":"2026-10-31T12:00:00Z"', b'"attestedAt":1e18'), "attestedAt"),
    "attestedAt without offset": (_sub(b'"attestedAt":"2026-10-31T12:00:00Z"', b'"attestedAt":"2026-10-31T12:00:00"'),
                                  "has no UTC offset"),
    "year 0": (_sub(b'"attestedAt":"2026-10-31T12:00:00Z"', b'"attestedAt":"0000-01-01T00:00:00Z"'),
               "not an RFC 3339 time"),
    "unpaired surrogate key": (_sub(b'"metrics":{', b'"metrics":{"\\udc80":1,'), "unpaired surrogate"),
    "not UTF-8": (_sub(b'"tiny"', b'"\xff\xfe"'), "is not UTF-8"),
    "payload a list": (lambda p: b"[" + p + b"]", "statement must be an object"),
    "payload truncated": (lambda p: p[: len(p) // 2], "is not valid JSON"),
    "mislabelled domain": (_sub(b'"riskDomain":"misuse"', b'"riskDomain":"capability"'),
                           "riskDomain capability contradicts benchmark 'strongreject', which measures misuse"),
    "benchmark unknown, labelled": (_sub(b'"benchmark":"strongreject"', b'"benchmark":"strongreject2"'),
                                    "cannot be confirmed"),
    "benchmark with prefix": (_sub(b'"benchmark":"strongreject"', b'"benchmark":"inspect_evals/strongreject"'),
                              "cannot be confirmed"),
    "sampleSize negative": (_sub(b'"sampleSize":313', b'"sampleSize":-1'), "non-negative integer"),
    "sampleSize float": (_sub(b'"sampleSize":313', b'"sampleSize":313.0'), "non-negative integer"),
    "metrics empty": (lambda p: re.sub(rb'"metrics":\{[^}]*\}', b'"metrics":{}', p), "metrics is empty"),
    "manifest path with dot-dot": (_sub(b'"name":"config.json"', b'"name":"../config.json"'), "predicate.manifest"),
    "manifest digest uppercase junk": (_sub(b'"digest":{"sha256":"', b'"digest":{"sha256":"ZZ'), "predicate.manifest"),
}

#: Raw files (not signed statements): what an attacker without a key can drop into .attestations/.
RAW_CASES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "is not valid JSON"),
    "envelope nested 100k": (b'{"payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests more than 64 levels"),
    "envelope 5000-digit int": (b'{"payload":"e30=","payloadType":' + b"7" * 5000 + b',"signatures":[]}',
                                "5000 digits"),
    "envelope NaN": (b'{"payload":"e30=","payloadType":NaN,"signatures":[]}', "has NaN"),
    "envelope duplicate keys": (b'{"payload":"e30=","payload":"e30=","payloadType":"x","signatures":[]}',
                                "has the key 'payload' twice"),
    "envelope not UTF-8": (b'{"payload":"\xff"}', "is not UTF-8"),
    "envelope a list": (b"[]", "expected a JSON object"),
    "too many signatures": (json.dumps({"payload": "e30=", "payloadType": INTOTO,
                                        "signatures": [{"keyid": "k", "sig": "AAAA"}] * 1000}).encode(),
                            "1000 signatures, more than the 32"),
    # Each quote opens a string that never closes: a scan that looks for the closing quote from every one of them is
    # quadratic (hours at this size); the parser fails at the first.
    "unterminated escapes": (b'"\\' * 200_000, "is not valid JSON"),
    "signature not base64": (b'{"payload":"e30=","payloadType":"x","signatures":[{"sig":"%%%"}]}', "not valid base64"),
    "OMS bundle nested": (b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","x":' + b"[" * 100_000
                          + b"]" * 100_000 + b"}", "nests more than 64 levels"),
    "OMS bundle huge int": (b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","x":' + b"1" * 5000 + b"}",
                            "5000 digits"),
}


@pytest.fixture
def scene(world: World, tmp_path: Path):
    """A model with two valid attestations (hosted tier of the default policy is not the point: they meet the
    strongreject requirements) and the signed template every hostile case is cut from."""
    model = write_model(tmp_path / "tiny")
    manifest = hash_model(model)
    valid = [world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, sample_size=313),
             world.attest(manifest, "aisi", "wmdp_bio", {"acc": 0.26}, sample_size=1273)]
    return model, manifest, valid


def _template(manifest: Manifest, world: World) -> bytes:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, sample_size=313)
    payload = base64.b64decode(json.loads(item.data)["payload"])
    return json.dumps(json.loads(payload), separators=(",", ":")).encode()


def hostile_inputs(world: World, manifest: Manifest) -> dict[str, tuple[bytes, str]]:
    template = _template(manifest, world)
    out = {}
    for name, (edit, reason) in SIGNED_CASES.items():
        payload = edit(template)
        out[name] = (sign(payload, INTOTO, [world.evaluators["evalco"].key]).to_json(), reason)
    out.update(RAW_CASES)
    return out


def _file_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".json"


def test_every_hostile_file_is_judged_alone_in_the_core(world: World, scene) -> None:
    _, manifest, valid = scene
    hostile = hostile_inputs(world, manifest)
    items = valid + [AttestationInput(_file_name(n), data) for n, (data, _) in hostile.items()]
    report = verify_all(items, world.trust(), manifest, NOW, catalogue=Policy.load().benchmarks)
    assert sorted(a.source for a in report.accepted) == sorted(v.source for v in valid)
    reasons = {r.source: r.reason for r in report.rejected}
    for name, (_, expected) in hostile.items():
        reason = reasons[_file_name(name)]
        assert expected in reason, (name, reason)
        assert "\n" not in reason and len(reason) <= 400
    decision = decide(Policy.load(), "hosted", manifest, items, world.trust(), NOW)
    rows = {r.id: r for r in decision.requirements}
    assert rows["strongreject-hosted"].met and rows["wmdp-bio-reported"].met, rows


def test_gate_verify_and_check_judge_each_file_alone(world: World, scene, tmp_path: Path) -> None:
    """Hostile envelopes in the model's `.attestations/` and hostile files of any kind given on the command line are
    each rejected with their own reason while the valid ones are judged. (A file in `.attestations/` that is not an
    envelope at all refuses the whole model instead: the next test.)"""
    model, manifest, valid = scene
    folder = model / ".attestations"
    folder.mkdir()
    for item in valid:
        (folder / item.source).write_bytes(item.data)
    hostile = hostile_inputs(world, manifest)
    outside = tmp_path / "given"
    outside.mkdir()
    for name, (data, _) in hostile.items():
        where = folder if name in SIGNED_CASES else outside
        (where / _file_name(name)).write_bytes(data)
    with open(outside / "oversized.json", "wb") as handle:  # over the 16 MiB envelope limit: rejected unread
        handle.truncate(16 * 1024 * 1024 + 1)
    hostile["oversized"] = (b"", "attestation is larger than 16777216 bytes")
    trust = world.trust_path()
    result = run_gate("verify", str(model), str(folder), str(outside), "--trust", str(trust), "--now", NOW_TEXT,
                      "--json")
    assert result.returncode == 1 and "internal error" not in result.stderr and "Traceback" not in result.stderr
    rows = {Path(r["source"]).name: r for r in json.loads(result.stdout)["attestations"]}
    assert all(rows[v.source]["valid"] for v in valid)
    for name, (_, expected) in hostile.items():
        row = rows[_file_name(name)]
        assert not row["valid"] and expected in row["reason"], (name, row)
    # `gate check` still decides, on the valid ones, and names every rejected file.
    result = run_gate("check", str(model), str(outside), "--tier", "internal", "--trust", str(trust), "--now",
                      NOW_TEXT, "--json")
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert len(decision["rejected_attestations"]) == len(hostile)


@pytest.mark.parametrize("name", sorted(RAW_CASES))
def test_a_file_in_the_attestation_folder_that_is_no_envelope_refuses_the_model(name: str, scene) -> None:
    """`.attestations/` is outside the model's identity, so it may hold attestation envelopes only: anything else
    there would be published unchecked. The refusal is one line naming the file, never an internal error."""
    model, _, _ = scene
    folder = model / ".attestations"
    folder.mkdir(exist_ok=True)
    target = folder / _file_name(name)
    target.write_bytes(RAW_CASES[name][0])
    try:
        result = run_gate("check", str(model), "--tier", "internal", "--now", NOW_TEXT)
    finally:
        target.unlink()
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and _file_name(name) in result.stderr, result.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, key_pool) -> Iterator[tuple[str, str, World]]:
    from support import Evaluator

    tmp = tmp_path_factory.mktemp("redteam-serve")
    world = World(tmp, {name: Evaluator(name, org, kind, key_pool(name)) for name, org, kind in (
        ("evalco", "EvalCo", "third_party"), ("aisi", "UK AI Security Institute", "government"))})
    private, _ = write_keypair(PrivateKey.generate(), tmp / "gate")
    token = secrets.token_urlsafe(24)
    (tmp / "tokens.txt").write_text(f"{hash_token(token)} redteam\n")
    stderr = tmp / "serve.stderr"
    with open(stderr, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tiergate", "serve", "--port", "0", "--trust", str(world.trust_path()), "--key",
             str(private), "--tokens", str(tmp / "tokens.txt"), "--log", str(tmp / "log.db")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=handle, start_new_session=True, cwd=tmp)
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"serving on (http://127\.0\.0\.1:\d+)", stderr.read_text(errors="replace"))):
            assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text(errors="replace")
            time.sleep(0.05)
        yield match.group(1), token, world
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def test_the_service_judges_each_file_alone(served, tmp_path: Path) -> None:
    url, token, world = served
    manifest = hash_model(write_model(tmp_path / "tiny"))
    valid = world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, sample_size=313)
    # An empty attestation makes the request itself malformed (a 400 for the whole request), so it is left out here.
    hostile = {n: case for n, case in hostile_inputs(world, manifest).items() if case[0]}
    headers = {"Authorization": f"Bearer {token}"}
    body = {"tier": "internal", "model": {"digest": manifest.digest},
            "attestations": [base64.b64encode(valid.data).decode()]
            + [base64.b64encode(data).decode() for data, _ in hostile.values()]}
    answer = requests.post(f"{url}/v1/decisions", json=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    assert decision["decision"] == "allow" and len(decision["rejected_attestations"]) == len(hostile)
    # Submitted alone, each is a 400 with its reason, never a 500.
    for name, (data, _expected) in hostile.items():
        answer = requests.post(f"{url}/v1/attestations", json={"attestation": base64.b64encode(data).decode()},
                               headers=headers, timeout=60)
        assert answer.status_code == 400, (name, answer.status_code, answer.text)


# --- a false deny ------------------------------------------------------------------------------------------------


def test_a_backslash_in_a_file_name_is_signed_and_verified(world: World, tmp_path: Path) -> None:
    model = write_model(tmp_path / "tiny", {"model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
                                           "notes\\readme.txt": b"a backslash is a file-name character on POSIX"})
    (tmp_path / "evalco.key").write_bytes(world.evaluators["evalco"].key.to_pem())
    result = run_gate("attest", str(model), "--key", str(tmp_path / "evalco.key"), "--evaluator", "evalco",
                      "--eval", "strongreject", "--metric", "score=0.04", "--sample-size", "400")
    assert result.returncode == 0, result.stderr
    result = run_gate("verify", str(model), "--trust", str(world.trust_path()))
    assert result.returncode == 0 and "VALID" in result.stdout, (result.stdout, result.stderr)


# --- the decision the client reads -------------------------------------------------------------------------------


def test_the_client_refuses_a_decision_with_a_duplicated_key(world: World, scene) -> None:
    """A deny in enforce mode, with a second ``mode: warn`` after the first: read last-wins it is a deny the
    publish may ignore; a proxy reading first-wins logs an enforced deny. The client refuses the ambiguity."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    import threading

    from tiergate.runtime.client import GateClient, GateServiceError
    from tiergate.runtime.remote import ask

    _, manifest, _ = scene
    decision = decide(Policy.load(), "hosted", manifest, [], world.trust(), NOW)
    assert decision.decision == "deny" and decision.mode == "enforce"
    body = decision.to_json().replace('"mode": "enforce",', '"mode": "enforce",\n  "mode": "warn",', 1).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header(ANSWER_HEADER, signed_answer(request, body))  # signed: the body itself is the problem
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = GateClient(f"http://127.0.0.1:{server.server_address[1]}", token="t", answer_key=ANSWER_KEY.public,
                            timeout=10)
        with pytest.raises(GateServiceError, match="has the key 'mode' twice.*the publish is denied"):
            ask(client, manifest, tier="hosted")
    finally:
        server.shutdown()
        server.server_close()
