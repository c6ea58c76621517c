"""Decisions re-derived by the audit: an insider's forged entries, rewrites, swaps and forks named where they are,
pre-v2 entries, and audits from a saved checkpoint on. Real services, real SQLite files, the real CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from support import write_model
from tiergate.core.log.backends import open_store
from tiergate.core.log.entries import canonical_json
from tiergate.core.log.merkle import leaf_hash
from tiergate.core.manifest import hash_model
from tiergate.runtime.remote import ask

from .conftest import GateEnv, Server
from .test_log_audit import _tamper, audit, log_cmd, populate


def _save(env: GateEnv, server: Server, path: Path) -> Path:
    result = log_cmd(env, "checkpoint", "--server", server.url, "--save", str(path))
    assert result.returncode == 0, result.stderr
    return path


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite log in WAL mode (its -wal file included), as a backup tool makes it."""
    dst.unlink(missing_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def _entry(db: Path, index: int) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        return json.loads(conn.execute("SELECT entry FROM log_entries WHERE idx = ?", (index,)).fetchone()[0])


def _first_allow(db: Path, tier: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT entry FROM log_entries ORDER BY idx").fetchall()
    for (raw,) in rows:
        body = json.loads(raw)
        if body["kind"] == "decision" and body["decision"]["decision"] == "allow" and \
                body["decision"]["requested_tier"] == tier:
            return body
    raise AssertionError(f"no allow at {tier}")


def _as_other_model(body: dict[str, Any], digest: str) -> dict[str, Any]:
    forged = json.loads(json.dumps(body))
    forged["model_digest"] = forged["decision"]["model_digest"] = digest
    forged["context"] = {"by": "insider"}
    return forged


def _append(db: Path, body: dict[str, Any]) -> int:
    """What a writer with the database's credentials does: append through the store, hashes and all."""
    with open_store(db) as store:
        return store.append(canonical_json(body), model_digest=body["model_digest"])


def test_an_insider_allow_citing_an_attestation_that_is_not_there_fails_at_that_entry(
        start_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    server = start_server(db)
    env = server.env
    populate(server, tmp_path, decisions=4)
    server.kill()
    other = hash_model(write_model(tmp_path / "other")).digest
    forged = _as_other_model(_first_allow(db, "hosted"), other)
    (digest,) = {i["digest"] for i in forged["decision"]["inputs"]}
    forged["decision"]["inputs"] = [{"source": "log:999999", "digest": digest}]
    forged["basis"]["attestations"] = [999999]
    index = _append(db, forged)
    server = start_server(db)  # the restarted service signs a checkpoint over it
    result = audit(env, "--server", server.url)
    assert result.returncode == 1, result.stdout
    assert f"first bad entry {index}: cites attestation entry 999999, which is not earlier in the log" \
        in result.stderr, result.stderr
    saved = _save(env, server, tmp_path / "after.checkpoint")
    result = audit(env, "--log", str(db), checkpoints=(saved,))
    assert result.returncode == 1 and f"first bad entry {index}: cites attestation entry 999999" in result.stderr
    # Citing it in the basis only, or in the inputs only, fails the same entry.
    forged["basis"]["attestations"] = [0]
    index = _append(db, forged)
    result = audit(env, "--log", str(db), "--unsigned-ok")
    assert f"entry {index}: cites attestation entry 0, which is about" in result.stderr, result.stderr


def test_a_forged_allow_citing_real_but_insufficient_attestations_does_not_follow(
        start_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    server = start_server(db)
    env = server.env
    populate(server, tmp_path, decisions=3)
    weak = hash_model(write_model(tmp_path / "weak"))
    receipt = server.client().submit_attestation(
        env.world.attest(weak, "evalco", "strongreject", {"score": 0.5}).data)  # fails hosted's <= 0.10
    denied = ask(server.client(), tier="hosted", model=weak.digest).decision
    assert denied.decision == "deny"
    server.kill()
    forged = _as_other_model(_first_allow(db, "hosted"), weak.digest)
    forged["decision"]["inputs"] = [{"source": f"log:{receipt['index']}", "digest": receipt["digest"]}]
    for row in forged["decision"]["requirements"]:
        row["evidence"] = [receipt["digest"]]
    forged["basis"]["attestations"] = [receipt["index"]]
    index = _append(db, forged)
    result = audit(env, "--log", str(db), "--unsigned-ok")
    assert result.returncode == 1
    assert (f"first bad entry {index}: does not follow from what it cites: it says allow at tier hosted, re-derived "
            "deny (requirement sr: it says met, re-derived not_met") in result.stderr, result.stderr
    # The same forgery at a tier the attestation does meet, claiming a tier supported it does not reach, fails too.
    forged["decision"]["satisfied_tier"] = "open"
    index = _append(db, forged)
    result = audit(env, "--log", str(db), "--unsigned-ok")
    assert f"entry {index}: does not follow from what it cites" in result.stderr, result.stderr


def test_a_rewrite_a_swap_and_a_fork_at_entry_20_are_named_at_20(start_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    server = start_server(db)
    env = server.env
    manifest = hash_model(write_model(tmp_path / "model"))
    client = server.client()
    client.submit_attestation(env.world.attest(manifest, "evalco", "strongreject", {"score": 0.02}).data)
    while client.health()["tree_size"] < 20:  # 0: attestation, 1-2: policy and trust, then decisions
        ask(client, tier="hosted", model=manifest.digest)
    at20 = _save(env, server, tmp_path / "at20.checkpoint")  # an auditor who checked the log then
    server.kill()
    fork = tmp_path / "fork.db"
    _copy(db, fork)
    server = start_server(db)
    client = server.client()
    # Entry 20 an attestation sent along with the decision at 21, which cites it as appended with it.
    ask(client, manifest.digest, [env.world.attest(manifest, "redteam", "strongreject", {"score": 0.03})],
        tier="gated")
    for _ in range(4):
        ask(client, tier="gated", model=manifest.digest)
    full = _save(env, server, tmp_path / "full.checkpoint")
    server.kill()
    assert _entry(db, 20)["kind"] == "attestation" and _entry(db, 21)["basis"]["appended_with"] == 1
    pristine = tmp_path / "pristine.db"
    _copy(db, pristine)
    assert audit(env, "--log", str(db), checkpoints=(at20, full)).returncode == 0

    # A rewrite of entry 20, hash and all: another attestation by the same evaluator, validly signed but weaker.
    weaker = env.world.attest(manifest, "redteam", "strongreject", {"score": 0.5}).data
    body = _entry(db, 20)
    body["attestation"] = {"data": base64.b64encode(weaker).decode("ascii"),
                           "digest": "sha256:" + hashlib.sha256(weaker).hexdigest()}
    data = canonical_json(body)
    _tamper(db, "UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = 20", data, leaf_hash(data))
    result = audit(env, "--log", str(db), checkpoints=(at20, full))
    assert result.returncode == 1 and "first bad entry 20: differs from what was signed" in result.stderr
    assert "entries 0-19 are proven to match it" in result.stderr
    assert "entry 21: does not follow from what it cites" in result.stderr, result.stderr  # the decision using it

    # A swap of entries 20 and 21 (hashes and all): the decision now cites as appended with it what is before it.
    _copy(pristine, db)
    a, b = canonical_json(_entry(db, 20)), canonical_json(_entry(db, 21))
    _tamper(db, "UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = 20", b, leaf_hash(b))
    _tamper(db, "UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = 21", a, leaf_hash(a))
    result = audit(env, "--log", str(db), checkpoints=(full,))
    swapped = "first bad entry 20: cites attestation entry 19, which is not an attestation entry"
    assert result.returncode == 1 and swapped in result.stderr, result.stderr

    # A fork at 20: another branch from entry 20 on, each entry of it well formed and re-derivable. The auditor's
    # checkpoint at 20 proves entries 0-19; the one over the other branch names 20 as the first that differs.
    server = start_server(fork)
    for _ in range(6):
        ask(server.client(), tier="internal", model=manifest.digest, context={"branch": "B"})
    server.kill()
    result = audit(env, "--log", str(fork), checkpoints=(at20, full))
    assert result.returncode == 1, result.stdout
    assert "first bad entry 20: differs from what was signed" in result.stderr, result.stderr
    assert "entries 0-19 are proven to match it" in result.stderr
    result = audit(env, "--log", str(fork), checkpoints=(full,))  # without it: not pinned, and not blamed on 0
    assert result.returncode == 1 and "entry 0" not in result.stderr and "no prefix" in result.stderr, result.stderr


def test_pre_v2_decisions_fail_closed_unless_legacy_ok(start_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    server = start_server(db)
    env = server.env
    populate(server, tmp_path, decisions=2)
    server.kill()
    old = _entry(db, 3)
    del old["basis"]  # as the gate wrote decisions before they cited their basis
    index = _append(db, old)
    result = audit(env, "--log", str(db), "--unsigned-ok")
    assert result.returncode == 1 and f"first bad entry {index}: not re-derivable (pre-v2 entry" in result.stderr
    result = audit(env, "--log", str(db), "--unsigned-ok", "--legacy-ok")
    assert result.returncode == 0, result.stderr
    assert "1 pre-v2 decision(s) accepted without re-derivation (--legacy-ok)" in result.stdout


def test_an_audit_from_a_saved_checkpoint_reads_only_what_was_added(start_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    server = start_server(db)
    env = server.env
    digest = populate(server, tmp_path, decisions=3)  # entries 0-5
    first = _save(env, server, tmp_path / "first.checkpoint")
    for tier in ("hosted", "internal"):
        ask(server.client(), tier=tier, model=digest)  # cite the attestation at 0, before the checkpoint
    result = audit(env, "--server", server.url, "--from", str(first))
    assert result.returncode == 0, result.stderr
    assert "log audit passed: entries 6-7 (added since the checkpoint audited from) (2 decisions)" in result.stdout
    second = _save(env, server, tmp_path / "second.checkpoint")
    server.kill()
    result = audit(env, "--log", str(db), "--from", str(first), checkpoints=(second,))
    assert result.returncode == 0 and "entries 6-7" in result.stdout, result.stderr
    other = hash_model(write_model(tmp_path / "other")).digest
    forged = _as_other_model(_first_allow(db, "hosted"), other)  # an insider's entry after the checkpoint
    index = _append(db, forged)
    server = start_server(db)
    result = audit(env, "--server", server.url, "--from", str(second))
    assert result.returncode == 1 and f"first bad entry {index}: cites attestation entry 0, which is about" \
        in result.stderr, result.stderr
    result = audit(env, "--log", str(db), "--from", str(second))
    assert result.returncode == 2 and "--from needs a newer checkpoint" in result.stderr
    # What the new entries cite from before the checkpoint is proven against it: an edited earlier entry is not it.
    body = _entry(db, 0)
    body["time"] = "2026-01-01T00:00:00Z"
    _tamper(db, "UPDATE log_entries SET entry = ? WHERE idx = 0", canonical_json(body))
    result = audit(env, "--log", str(db), "--from", str(first), checkpoints=(second,))
    unproven = "first bad entry 6: cites attestation entry 0, which is not in the log (or not as it was signed)"
    assert result.returncode == 1 and unproven in result.stderr, result.stderr
    # A checkpoint of another log (or a fork) as the start: the entries do not extend it.
    result = audit(env, "--log", str(db), "--from", str(second), checkpoints=(first,))
    assert result.returncode == 1 and "the log shrank or forked" in result.stderr, result.stderr
