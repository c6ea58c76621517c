"""POST /v1/webhooks/huggingface against a real `gate serve` and the stand-in Hub: secret, containment, the log,
idempotency across redeliveries and restarts, errors answered without a 500, and the auditor's view of it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest
import requests

from support import REPO, run_gate, write_model
from tiergate.audit.entries import EntryProblem, WebhookLinks, check_entry
from tiergate.core.log.entries import (
    ContainmentRecord, DecisionRecord, EntryFormatError, WebhookRecord, containment_entry, parse_entry, webhook_entry,
)
from tiergate.core.manifest import hash_model
from tiergate.service.seen import DatabaseSeen
from hf.hub_standin import HubStandin, webhook_payload

from .conftest import GateEnv, Server, launch

SECRET = "whsec-" + "7f3a9c1e5b2d8a4f6e0c"
TOKEN = "hf_gate_service_token"
WEBHOOK_FLAGS = ("--hf-webhook-secret-env", "GATE_TEST_HF_SECRET", "--hf-token-env", "GATE_TEST_HF_TOKEN")


@pytest.fixture(scope="module")
def hub() -> Iterator[HubStandin]:
    standin = HubStandin()
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def hf_environment() -> Iterator[None]:
    """What a `gate serve` started now inherits: the secret and token variables, a private HF_HOME, no offline mode."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GATE_TEST_HF_SECRET", SECRET)
        patch.setenv("GATE_TEST_HF_TOKEN", TOKEN)
        patch.setenv("HF_HOME", tempfile.mkdtemp(prefix="gate-webhook-hf-home-"))
        patch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
            patch.delenv(name, raising=False)
        yield


def start_webhook_server(env: GateEnv, log: Path, hub: HubStandin) -> Server:
    return launch(env, log, *WEBHOOK_FLAGS, "--hf-endpoint", hub.endpoint, name="webhook")


@pytest.fixture(scope="module")
def hooked(gate_env: GateEnv, hub: HubStandin, hf_environment: None, tmp_path_factory) -> Iterator[Server]:
    """One webhook-enabled service for the module (each test uses repositories of its own)."""
    server = start_webhook_server(gate_env, tmp_path_factory.mktemp("webhook") / "log.db", hub)
    yield server
    server.kill()


def deliver(server: Server, payload: dict[str, Any], secret: str | None = SECRET) -> requests.Response:
    headers = {"X-Webhook-Secret": secret} if secret is not None else {}
    return requests.post(f"{server.url}/v1/webhooks/huggingface", json=payload, headers=headers, timeout=60)


def tree_size(server: Server) -> int:
    return server.client(token=None).health()["tree_size"]


def entries_from(server: Server, start: int) -> list[tuple[int, Any]]:
    page = server.client(token=None).entries(start, tree_size(server))
    return [(index, parse_entry(data)) for index, data in page.entries]


def model_files(env: GateEnv, root: Path, evidence: bool) -> dict[str, bytes]:
    """A small model's files; with ``evidence``, attestations in .attestations/ that clear the 'open' tier."""
    write_model(root)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    if evidence:
        manifest = hash_model(root)
        files[".attestations/strongreject.json"] = env.world.attest(manifest, "evalco", "strongreject",
                                                                    {"score": 0.04}).data
        files[".attestations/mmlu.json"] = env.world.attest(manifest, "redteam", "mmlu", {"acc": 0.8}).data
    return files


def flip_public(hub: HubStandin, repo_id: str) -> dict[str, Any]:
    """Someone makes the repository public in the Hub's web UI; the Hub sends this."""
    hub.set_visibility(repo_id, private=False)
    return webhook_payload(repo_id, scope="repo.config", updated_config={"private": False},
                           head_sha=hub.repo(repo_id).branches["main"], endpoint=hub.endpoint)


def audit(server: Server) -> subprocess.CompletedProcess[str]:
    return run_gate("log", "audit", "--server", server.url, "--trust", str(server.env.trust), "--key-file",
                    str(server.env.vkey))


# --- over HTTP, against a real `gate serve` ---------------------------------------------------------------------


def test_wrong_or_missing_secret_is_refused_and_triggers_nothing(hooked: Server, hub: HubStandin, server: Server,
                                                                 tmp_path: Path) -> None:
    hub.create_repo("org/secret-test", private=True, files=model_files(hooked.env, tmp_path / "m", evidence=False))
    payload = flip_public(hub, "org/secret-test")
    hub.reset_requests()
    before = tree_size(hooked)
    for secret in ("wrong", None, SECRET + " ", SECRET[:-1], ""):
        answer = deliver(hooked, payload, secret)
        assert answer.status_code == 401, answer.text
        assert answer.json() == {"error": "wrong or missing X-Webhook-Secret"}
    assert hub.requests_matching() == []  # not a single request reached the Hub
    assert tree_size(hooked) == before  # nothing logged
    assert hub.repo("org/secret-test").private is False
    # A service started without --hf-webhook-secret-env has no webhook at all.
    answer = deliver(server, payload)
    assert answer.status_code == 404 and "not enabled" in answer.json()["error"]


def test_flip_to_public_without_evidence_is_contained_logged_and_not_repeated(hooked: Server, hub: HubStandin,
                                                                              tmp_path: Path) -> None:
    hub.create_repo("org/raw", private=True, files=model_files(hooked.env, tmp_path / "m", evidence=False))
    head = hub.repo("org/raw").branches["main"]
    payload = flip_public(hub, "org/raw")
    start = tree_size(hooked)

    answer = deliver(hooked, payload)

    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert (result["outcome"], result["tier"], result["commit"]) == ("contained", "open", head)
    assert result["actions"] == ["made private", "opened discussion #1"]
    repo = hub.repo("org/raw")
    assert repo.private is True
    [discussion] = repo.discussions
    assert head[:12] in discussion["title"]
    for missing in result["missing"]:
        assert missing in discussion["description"]
    assert "mmlu" in result["missing"] and "narrowed from **public** to **private**" in discussion["description"]
    assert not any(r.path.endswith(".safetensors") for r in hub.downloads())

    logged = entries_from(hooked, start)
    assert [type(r).__name__ for _, r in logged] == ["WebhookRecord", "DecisionRecord", "ContainmentRecord"]
    (hook_index, hook), (decision_index, decision), (_, containment) = logged
    assert isinstance(hook, WebhookRecord) and hook.webhook["repo"] == "org/raw"
    assert hook.webhook["updated_config"] == {"private": False} and answer.json()["webhook_entry"] == hook_index
    assert isinstance(decision, DecisionRecord) and decision.decision["decision"] == "deny"
    assert decision.context["integration"] == "huggingface-webhook" and decision.context["webhook_entry"] == hook_index
    assert isinstance(containment, ContainmentRecord) and containment.model_digest == decision.model_digest
    assert containment.containment["decision_index"] == decision_index
    assert containment.containment["actions"] == ["made private", "opened discussion #1"]
    assert containment.containment["state_after"] == "private"

    # The Hub redelivers the same event: the repository is private now, so it is checked at the private tier and
    # allowed; nothing is changed and no second discussion is opened.
    hub.reset_requests()
    again = deliver(hooked, payload)
    assert again.status_code == 200, again.text
    assert [(r["outcome"], r["tier"]) for r in again.json()["results"]] == [("allowed", "internal")]
    assert hub.requests_matching("PUT") == [] and hub.requests_matching("POST", "/discussions") == []
    assert len(hub.repo("org/raw").discussions) == 1 and hub.repo("org/raw").private is True
    # Delivered once more: that revision at that tier was handled, so it is skipped (and the skip is logged).
    third = deliver(hooked, payload)
    assert [r["outcome"] for r in third.json()["results"]] == ["skipped"]
    assert hub.requests_matching("PUT") == [] and len(hub.repo("org/raw").discussions) == 1

    # Someone widens it again behind the gate's back: the containment was undone, so it is checked and contained
    # again (a redelivery could not tell this apart, and must not let it through).
    again_public = flip_public(hub, "org/raw")
    answer = deliver(hooked, again_public)
    assert [r["outcome"] for r in answer.json()["results"]] == ["contained"]
    assert hub.repo("org/raw").private is True and len(hub.repo("org/raw").discussions) == 2

    result = audit(hooked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "webhook" in result.stdout and "containment" in result.stdout


def test_flip_with_sufficient_evidence_stays_public_and_survives_a_restart(
        start_server, gate_env: GateEnv, hub: HubStandin, hf_environment: None, tmp_path: Path) -> None:
    log = tmp_path / "log.db"
    first = start_webhook_server(gate_env, log, hub)
    start_server.started.append(first)  # killed after the test, like every server start_server starts
    hub.create_repo("org/ready", private=True, files=model_files(gate_env, tmp_path / "m", evidence=True))
    payload = flip_public(hub, "org/ready")

    answer = deliver(first, payload)

    assert answer.status_code == 200, answer.text
    # contained first (before the history was read), then restored once every commit was cleared
    assert [(r["outcome"], r["decision"], r["actions"]) for r in answer.json()["results"]] == [
        ("allowed", "allow", ["made private", "restored to public"])]
    assert hub.repo("org/ready").private is False and hub.repo("org/ready").discussions == []
    kinds = [type(r).__name__ for _, r in entries_from(first, 0)]
    assert kinds == ["WebhookRecord", "AttestationRecord", "AttestationRecord", "DecisionRecord", "ContainmentRecord"]

    first.stop()  # the idempotency table is in the log's database: a restarted service still knows
    assert "gate: stopped" in first.output() and "Traceback" not in first.output()
    second = start_webhook_server(gate_env, log, hub)
    start_server.started.append(second)
    size = tree_size(second)
    hub.reset_requests()
    again = deliver(second, payload)
    assert [r["outcome"] for r in again.json()["results"]] == ["skipped"]
    assert [type(r).__name__ for _, r in entries_from(second, size)] == ["WebhookRecord", "ContainmentRecord"]
    assert hub.requests_matching("PUT") == [] and hub.repo("org/ready").private is False
    result = audit(second)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_push_behind_the_gates_back_is_contained(hooked: Server, hub: HubStandin, tmp_path: Path) -> None:
    hub.create_repo("org/pub", private=False, files=model_files(hooked.env, tmp_path / "m", evidence=True))
    old = hub.repo("org/pub").branches["main"]
    new = hub.push_commit("org/pub", {"extra.safetensors": b"\x02" * 4096})  # `git push --no-verify`
    payload = webhook_payload("org/pub", scope="repo.content", head_sha=new, endpoint=hub.endpoint,
                              updated_refs=[{"ref": "refs/heads/main", "oldSha": old, "newSha": new}])
    answer = deliver(hooked, payload)
    assert answer.status_code == 200, answer.text
    assert [(r["ref"], r["commit"], r["outcome"]) for r in answer.json()["results"]] == [
        ("refs/heads/main", new, "contained"), ("refs/heads/main", old, "allowed")]  # the pushed history too
    assert hub.repo("org/pub").private is True


def test_hub_errors_are_logged_and_answered_without_a_500(hooked: Server, hub: HubStandin) -> None:
    start = tree_size(hooked)
    answer = deliver(hooked, webhook_payload("org/does-not-exist", scope="repo.config",
                                             updated_config={"private": False}, endpoint=hub.endpoint))
    assert answer.status_code == 502, answer.text
    assert "containment of org/does-not-exist failed" in answer.json()["error"]
    assert answer.headers["Retry-After"]
    logged = entries_from(hooked, start)
    assert [type(r).__name__ for _, r in logged] == ["WebhookRecord", "ContainmentRecord"]
    failure = logged[1][1].containment
    assert failure["outcome"] == "failed" and "RepositoryNotFound" in failure["error"]
    # Events that cannot publish are answered and ignored; a body that is not JSON is a 400. Neither is logged.
    answer = deliver(hooked, webhook_payload("org/x", scope="discussion.comment", action="create"))
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    answer = requests.post(f"{hooked.url}/v1/webhooks/huggingface", data=b"[1, 2",
                           headers={"X-Webhook-Secret": SECRET, "Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 400
    assert tree_size(hooked) == start + 2
    assert hooked.proc.poll() is None and "containment failed" in hooked.output()


def test_openapi_documents_the_webhook(hooked: Server) -> None:
    document = requests.get(f"{hooked.url}/openapi.json", timeout=30).json()
    operation = document["paths"]["/v1/webhooks/huggingface"]["post"]
    assert {"200", "401", "404", "502", "503"} <= set(operation["responses"])
    assert operation["parameters"][0]["name"] == "X-Webhook-Secret"


# --- in process ---------------------------------------------------------------------------------------------------


def test_serving_without_a_webhook_does_not_import_huggingface_hub(gate_env: GateEnv, tmp_path: Path) -> None:
    code = f"""
import os, sys
from pathlib import Path
from tiergate.service.config import ServiceConfig, load_service
from tiergate.service.http import GateHTTPServer
import tiergate.cli.serve, tiergate.service.routes
os.environ["S"] = {SECRET!r}; os.environ["T"] = "t"
for secret_env in (None, "S"):
    config = ServiceConfig(trust=Path({str(gate_env.trust)!r}), key=Path({str(gate_env.key)!r}),
                           tokens=Path({str(gate_env.tokens)!r}), log={str(tmp_path / "lazy.db")!r},
                           hf_webhook_secret_env=secret_env, hf_token_env="T")
    service = load_service(config)
    assert (service.hf_webhook is None) == (secret_env is None)
    service.hf_webhook and service.hf_webhook.handle({{}}, b"{{}}")  # refused: no secret sent
assert "huggingface_hub" not in sys.modules, "huggingface_hub imported"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("secret_env", "token_env", "message"), [
    ("GATE_TEST_NO_SUCH_VAR", "GATE_TEST_HF_TOKEN", "$GATE_TEST_NO_SUCH_VAR is not set or empty"),
    ("GATE_TEST_SHORT_SECRET", "GATE_TEST_HF_TOKEN", "use at least 16 random ones"),
    ("GATE_TEST_HF_SECRET", "GATE_TEST_NO_SUCH_VAR", "containment needs a Hub token"),
])
def test_a_webhook_configured_without_its_secret_or_token_refuses_to_start(
        gate_env: GateEnv, tmp_path: Path, secret_env: str, token_env: str, message: str) -> None:
    result = run_gate("serve", "--port", "0", "--trust", str(gate_env.trust), "--key", str(gate_env.key),
                      "--tokens", str(gate_env.tokens), "--log", str(tmp_path / "log.db"),
                      "--hf-webhook-secret-env", secret_env, "--hf-token-env", token_env,
                      env={"GATE_TEST_HF_SECRET": SECRET, "GATE_TEST_HF_TOKEN": TOKEN,
                           "GATE_TEST_SHORT_SECRET": "short", "GATE_TEST_NO_SUCH_VAR": ""})
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_slow_hub_gets_a_503_in_time_and_the_check_is_still_logged(gate_env: GateEnv, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from tiergate.service.config import ServiceConfig, load_service

    monkeypatch.setenv("GATE_TEST_HF_SECRET", SECRET)
    monkeypatch.setenv("GATE_TEST_HF_TOKEN", TOKEN)
    service = load_service(ServiceConfig(trust=gate_env.trust, key=gate_env.key, tokens=gate_env.tokens,
                                         log=str(tmp_path / "slow.db"), policy=gate_env.policy,
                                         hf_webhook_secret_env="GATE_TEST_HF_SECRET",
                                         hf_token_env="GATE_TEST_HF_TOKEN"))
    released = threading.Event()

    class SlowHub:
        endpoint = "http://127.0.0.1:9"

        def repo_info(self, *args: Any, **kwargs: Any) -> Any:
            released.wait(10)
            raise TimeoutError("the Hub did not answer")

    webhook = service.hf_webhook
    webhook.answer_within = 0.3
    webhook._api = SlowHub()
    body = json.dumps(webhook_payload("org/slow", scope="repo.config", updated_config={"private": False})).encode()
    began = time.monotonic()
    answer = webhook.handle({"x-webhook-secret": SECRET}, body)
    assert answer.status == 503 and time.monotonic() - began < 5
    assert answer.headers["Retry-After"] and "still checking" in json.loads(answer.body)["error"]
    released.set()
    webhook.close(wait=10)
    kinds = [parse_entry(e.entry) for e in service.store.entries()]
    assert isinstance(kinds[0], WebhookRecord) and isinstance(kinds[-1], ContainmentRecord)
    assert kinds[-1].containment["outcome"] == "failed" and "TimeoutError" in kinds[-1].containment["error"]
    webhook.seen.close()
    service.store.close()


def test_a_revision_another_replica_is_checking_gets_a_503_so_the_hub_retries(
        gate_env: GateEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from tiergate.integrations.hf.containment import seen_key
    from tiergate.service.config import ServiceConfig, load_service

    monkeypatch.setenv("GATE_TEST_HF_SECRET", SECRET)
    monkeypatch.setenv("GATE_TEST_HF_TOKEN", TOKEN)
    service = load_service(ServiceConfig(trust=gate_env.trust, key=gate_env.key, tokens=gate_env.tokens,
                                         log=str(tmp_path / "busy.db"), policy=gate_env.policy,
                                         hf_webhook_secret_env="GATE_TEST_HF_SECRET",
                                         hf_token_env="GATE_TEST_HF_TOKEN"))
    head = "d" * 40
    service.hf_webhook._api = SimpleNamespace(
        endpoint="http://127.0.0.1:9",
        repo_info=lambda *a, **k: SimpleNamespace(private=False, gated=False),
        list_repo_refs=lambda *a, **k: SimpleNamespace(
            branches=[SimpleNamespace(ref="refs/heads/main", target_commit=head)], tags=[]))
    other_replica = DatabaseSeen(str(tmp_path / "busy.db"))
    assert other_replica.add(seen_key("model", "org/busy", head, "open"))  # claimed elsewhere, still running
    body = json.dumps(webhook_payload("org/busy", scope="repo.config", updated_config={"private": False})).encode()
    answer = service.hf_webhook.handle({"x-webhook-secret": SECRET}, body)
    assert answer.status == 503 and answer.headers["Retry-After"]
    assert [r["outcome"] for r in json.loads(answer.body)["results"]] == ["skipped"]
    other_replica.done(seen_key("model", "org/busy", head, "open"))  # finished there: now a redelivery is a 200
    assert service.hf_webhook.handle({"x-webhook-secret": SECRET}, body).status == 200
    other_replica.close()
    service.hf_webhook.seen.close()
    service.store.close()


def test_seen_table_claims_once_across_replicas_and_restarts(tmp_path: Path) -> None:
    clock = [1000.0]
    db = str(tmp_path / "seen.db")
    a = DatabaseSeen(db, clock=lambda: clock[0], lease=60)
    b = DatabaseSeen(f"sqlite:///{db}", clock=lambda: clock[0], lease=60)  # another replica, same database
    key = ("model", "org/m", "a" * 40, "open")
    assert a.add(key) is True and b.add(key) is False and b.state(key) == "pending"
    clock[0] += 61  # the claimant died: its lease ran out, another may take over
    assert b.state(key) is None and b.add(key) is True and a.add(key) is False
    b.discard(key)  # handling failed: free again
    assert a.add(key) is True
    a.done(key)
    assert b.add(key) is False and b.state(key) == "done"
    clock[0] += 10_000
    assert b.add(key) is False  # done is for good
    other = ("model", "org/m", "b" * 40, "open")
    assert a.add(other) and a.done(other, reopen=True) is None
    assert b.state(other) == "reopen" and b.add(other) is True and a.add(other) is False  # widened again: re-check
    a.close()
    b.close()
    again = DatabaseSeen(db, namespace=None)
    assert again.state(key) == "done"
    again.close()
    # Claims race: exactly one of many threads wins.
    racers = [DatabaseSeen(db) for _ in range(4)]
    wins: list[bool] = []
    threads = [threading.Thread(target=lambda s=s: wins.append(s.add(("model", "org/race", "c" * 40, "open"))))
               for s in racers for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 11 + [True]
    for racer in racers:
        racer.close()


@pytest.mark.postgres
def test_seen_table_on_postgresql() -> None:
    psycopg = pytest.importorskip("psycopg")
    url = os.environ.get("GATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(url, autocommit=True, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"SKIPPED LOUDLY: PostgreSQL at {url} unreachable ({str(exc).strip().splitlines()[0]})")
    namespace = f"gate_test_seen_{os.getpid()}"
    try:
        a, b = DatabaseSeen(url, namespace), DatabaseSeen(url, namespace)
        key = ("model", "org/m", "a" * 40, "open")
        assert a.add(key) is True and b.add(key) is False
        a.done(key, reopen=True)
        assert b.add(key) is True and a.state(key) == "pending"
        a.close()
        b.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


def test_webhook_and_containment_entries_are_strict_and_audited(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    hook = {"integration": "huggingface", "scope": "repo.config", "action": "update", "repo": "org/m",
            "repo_type": "model", "refs": [], "updated_config": {"private": False}, "hub_webhook_id": None}
    data = webhook_entry(hook, now)
    assert parse_entry(data) == WebhookRecord(now, hook)
    for bad in ({**hook, "extra": 1}, {**hook, "refs": [{"ref": "main"}]}, {**hook, "integration": "gitlab"},
                {k: v for k, v in hook.items() if k != "repo"}, {**hook, "scope": ""}):
        with pytest.raises(EntryFormatError):
            webhook_entry(bad, now)
    skipped = {"integration": "huggingface", "repo": "org/m", "repo_type": "model", "ref": "refs/heads/main",
               "commit": "a" * 40, "tier": "open", "state": "public", "outcome": "skipped", "decision_index": None,
               "webhook_index": 0, "missing": [], "actions": [], "state_after": None, "error": None}
    assert parse_entry(containment_entry(skipped, now)).containment == skipped
    # contain first: a revision found to need no decision still lists the narrowing and the restore
    steps = {**skipped, "actions": ["made private", "restored to public"]}
    assert parse_entry(containment_entry(steps, now)).containment == steps
    digest = "sha256:" + "b" * 64
    for bad, model in (({**skipped, "outcome": "contained"}, None),  # contained cites a decision and a new state
                       ({**skipped, "outcome": "maybe"}, None),
                       ({**skipped, "decision_index": 1}, digest),  # a skip decides nothing
                       ({**skipped, "outcome": "failed"}, None),  # a failure says why
                       (skipped, digest)):  # a model digest only with a decision
        with pytest.raises(EntryFormatError):
            containment_entry(bad, now, model)
    contained = {**skipped, "outcome": "contained", "decision_index": 1, "state_after": "private",
                 "actions": ["made private", "opened discussion #1"], "missing": ["mmlu"]}
    record = containment_entry(contained, now, digest)
    assert parse_entry(record).model_digest == digest
    # Cross-entry: a containment must follow a real, earlier decision answering its webhook.
    links = WebhookLinks()
    links.check(0, check_entry(0, data, None))
    with pytest.raises(EntryProblem, match="not a decision answering a webhook"):
        links.check(2, check_entry(2, record, None))
    with pytest.raises(EntryProblem, match="not earlier in the log"):
        check_entry(1, record, None)



# --- bounds before the secret is known (security review findings 1 and 5) ---------------------------------------


def _raw_post(server: Server, head_lines: list[str], body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """POST to the webhook over a raw socket, sending only ``body`` (possibly less than announced)."""
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    head = "\r\n".join(["POST /v1/webhooks/huggingface HTTP/1.1", "Host: gate", "Content-Type: application/json",
                        *head_lines]) + "\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
                data.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), json.loads(data.partition(b"\r\n\r\n")[2])


def test_the_secret_and_the_size_are_checked_before_the_body_is_read(hooked: Server) -> None:
    """The body (up to 16 MiB) used to be read before the secret was checked; a webhook payload is now 1 MiB at most."""
    before = tree_size(hooked)
    status, body = _raw_post(hooked, ["Content-Length: 16000000", "X-Webhook-Secret: wrong"])  # no body sent
    assert status == 401 and "X-Webhook-Secret" in body["error"]
    status, body = _raw_post(hooked, ["Content-Length: 16000000"])
    assert status == 401
    status, body = _raw_post(hooked, ["Content-Length: 2000000", f"X-Webhook-Secret: {SECRET}"])
    assert status == 413 and "1048576-byte limit" in body["error"]
    assert tree_size(hooked) == before  # nothing logged


def test_a_deeply_nested_payload_is_a_400(hooked: Server) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    status, body = _raw_post(hooked, [f"Content-Length: {len(deep)}", f"X-Webhook-Secret: {SECRET}"], deep)
    assert status == 400 and "nested too deeply" in body["error"]


def test_a_lone_surrogate_or_a_duplicate_key_in_an_event_is_a_400(hooked: Server) -> None:
    """A lone surrogate (``\\ud800``) in the repo name reached the answer's encoding: a 500. Both are ambiguous JSON,
    refused before anything is logged."""
    before = tree_size(hooked)
    for payload, reason in (((b'{"event": {"scope": "repo.content", "action": "update"}, "repo": {"type": "model", '
                              b'"name": "org/\\ud800"}}'), "unpaired surrogate"),
                            (b'{"event": {"scope": "repo"}, "event": {"scope": "repo.content"}}', "twice")):
        status, body = _raw_post(hooked, [f"Content-Length: {len(payload)}", f"X-Webhook-Secret: {SECRET}"], payload)
        assert status == 400 and reason in body["error"], body
    assert tree_size(hooked) == before
