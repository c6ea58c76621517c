"""Auditor commands against a real service: checkpoints, proofs, full audits, and tampering found and named."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from support import run_gate, write_model
from tiergate.runtime.remote import ask
from tiergate.core.log.entries import canonical_json
from tiergate.core.manifest import hash_model

from .conftest import GateEnv, Server


def populate(server: Server, tmp_path: Path, decisions: int = 6) -> str:
    """An attestation and some decisions about one model; returns its digest."""
    manifest = hash_model(write_model(tmp_path / "populated"))
    client = server.client()
    client.submit_attestation(server.env.world.attest(manifest, "evalco", "strongreject", {"score": 0.02}).data)
    for n in range(decisions):
        ask(client, tier=("internal", "hosted", "gated")[n % 3], model=manifest.digest, context={"n": n})
    return manifest.digest


def log_cmd(env: GateEnv, *args: str) -> object:
    return run_gate("log", *args, "--key-file", str(env.vkey))


def audit(env: GateEnv, *where: str, checkpoints: tuple[Path, ...] = ()) -> object:
    extra = [a for c in checkpoints for a in ("--checkpoint", str(c))]
    return run_gate("log", "audit", *where, "--trust", str(env.trust), "--key-file", str(env.vkey), *extra)


def test_checkpoint_prove_consistency_find_and_a_clean_audit(start_server, tmp_path: Path) -> None:
    server = start_server(tmp_path / "log.db")
    env = server.env
    digest = populate(server, tmp_path, decisions=3)
    first = tmp_path / "first.checkpoint"
    result = log_cmd(env, "checkpoint", "--server", server.url, "--save", str(first))
    assert result.returncode == 0, result.stderr
    assert "checkpoint verified" in result.stdout and "4 entries" in result.stdout, result.stderr
    populate(server, tmp_path, decisions=2)
    second = tmp_path / "second.checkpoint"
    assert log_cmd(env, "checkpoint", "--server", server.url, "--save", str(second)).returncode == 0
    result = log_cmd(env, "consistency", str(first), str(second), "--server", server.url)
    assert result.returncode == 0 and "grew from 4 to 7 entries" in result.stdout, result.stderr
    result = log_cmd(env, "prove", "2", "--server", server.url, "--checkpoint", str(first))
    assert result.returncode == 0 and "entry 2 (decision" in result.stdout and "size 4" in result.stdout, result.stderr
    result = log_cmd(env, "prove", "6", "--log", server.log, "--checkpoint", str(second))
    assert result.returncode == 0, result.stderr
    result = log_cmd(env, "prove", "6", "--server", server.url, "--checkpoint", str(first))
    assert result.returncode == 1 and "not covered by the checkpoint" in result.stderr
    found = run_gate("log", "find", "--model", digest, "--server", server.url, "--json")
    kinds = [e["kind"] for e in json.loads(found.stdout)["entries"]]
    assert kinds == ["attestation", "decision", "decision", "decision"]
    result = audit(env, "--server", server.url, checkpoints=(first, second))
    assert result.returncode == 0, result.stderr
    assert "log audit passed: 7 entries (2 attestations, 5 decisions)" in result.stdout
    assert "matches 3 signed checkpoint(s)" in result.stdout
    result = audit(env, "--log", server.log, checkpoints=(first, second))
    assert result.returncode == 0 and "7 entries" in result.stdout, result.stderr
    result = run_gate("log", "checkpoint", "--server", server.url, "--pub", str(env.pub), "--origin",
                      "test.tiergate.local/log")  # the PEM key and the pinned origin work as well as the vkey
    assert result.returncode == 0 and "7 entries" in result.stdout, result.stderr


def test_a_checkpoint_signed_by_another_key_is_refused(start_server, tmp_path: Path, server: Server) -> None:
    other = tmp_path / "other.vkey"
    other.write_text("tiergate.local/log+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
    result = run_gate("log", "checkpoint", "--server", server.url, "--key-file", str(other))
    assert result.returncode == 2 and "key ID" in result.stderr  # not even a well-formed key for that name
    result = run_gate("log", "checkpoint", "--server", server.url, "--pub", str(server.env.pub),
                      "--origin", "other/log")
    assert result.returncode == 1 and "expected 'other/log'" in result.stderr


def _tamper(db: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:
        for op in ("update", "delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS log_entries_no_{op}")  # what an intruder with file access does
        conn.execute(sql, params)


@pytest.mark.parametrize("how", ["edit", "delete"])
def test_editing_or_deleting_a_stored_entry_fails_the_audit_naming_it(start_server, tmp_path: Path, how: str) -> None:
    db = tmp_path / "log.db"
    server = start_server(db)
    env = server.env
    populate(server, tmp_path, decisions=8)  # entries 0-8
    saved = tmp_path / "saved.checkpoint"
    assert log_cmd(env, "checkpoint", "--server", server.url, "--save", str(saved)).returncode == 0
    assert audit(env, "--server", server.url, checkpoints=(saved,)).returncode == 0
    if how == "edit":
        with sqlite3.connect(db) as conn:
            raw = conn.execute("SELECT entry FROM log_entries WHERE idx = 5").fetchone()[0]
        body = json.loads(raw)
        body["decision"]["decision"] = "allow" if body["decision"]["decision"] == "deny" else "deny"
        body["context"] = {"n": 999}
        _tamper(db, "UPDATE log_entries SET entry = ? WHERE idx = 5", canonical_json(body))
    else:
        _tamper(db, "DELETE FROM log_entries WHERE idx = 5")
    for where in (("--server", server.url), ("--log", str(db))):
        result = audit(env, *where, checkpoints=(saved,))
        assert result.returncode == 1, (where, result.stdout, result.stderr)
        assert "log audit FAILED" in result.stderr and "first bad entry 5:" in result.stderr, (where, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_rewritten_entry_and_its_hash_still_fail_the_audit(start_server, tmp_path: Path) -> None:
    """An intruder who also recomputes the leaf hash changes the root: the saved checkpoint no longer matches."""
    from tiergate.core.log.merkle import leaf_hash

    db = tmp_path / "log.db"
    server = start_server(db)
    env = server.env
    populate(server, tmp_path, decisions=4)
    saved = tmp_path / "saved.checkpoint"
    assert log_cmd(env, "checkpoint", "--server", server.url, "--save", str(saved)).returncode == 0
    server.kill()
    with sqlite3.connect(db) as conn:
        body = json.loads(conn.execute("SELECT entry FROM log_entries WHERE idx = 3").fetchone()[0])
    body["context"] = {"rewritten": True}
    forged = canonical_json(body)
    _tamper(db, "UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = 3", forged, leaf_hash(forged))
    result = audit(env, "--log", str(db), checkpoints=(saved,))
    assert result.returncode == 1 and "do not hash to the root signed in" in result.stderr, result.stderr


def test_an_attestation_entry_that_no_longer_verifies_is_named(start_server, tmp_path: Path, gate_env: GateEnv) -> None:
    db = tmp_path / "log.db"
    server = start_server(db)
    populate(server, tmp_path, decisions=1)  # entry 0 is the attestation
    server.kill()
    strict = tmp_path / "strict-trust.yaml"
    trust = gate_env.world.trust_dict()
    trust["evaluators"] = [e for e in trust["evaluators"] if e["id"] != "evalco"]
    strict.write_text(json.dumps(trust))
    result = run_gate("log", "audit", "--log", str(db), "--trust", str(strict))
    assert result.returncode == 1 and "first bad entry 0: attestation does not verify" in result.stderr, result.stderr
    assert "unknown key" in result.stderr


def test_audit_needs_a_source_and_a_key(server: Server) -> None:
    result = run_gate("log", "audit", "--trust", str(server.env.trust))
    assert result.returncode == 2 and "--server URL" in result.stderr
    result = run_gate("log", "audit", "--server", server.url, "--trust", str(server.env.trust))
    assert result.returncode == 2 and "--key-file" in result.stderr


def test_entries_decode_as_documented(server: Server, tmp_path: Path) -> None:
    populate(server, tmp_path, decisions=1)
    page = server.client(token=None).entries(0, 2)
    for _, data in page.entries:
        assert canonical_json(json.loads(data)) == data
        assert json.loads(data)["kind"] in ("attestation", "decision")
        if json.loads(data)["kind"] == "attestation":
            assert base64.b64decode(json.loads(data)["attestation"]["data"])
