"""Real ``gate witness`` processes cosigning a real ``gate serve``'s checkpoints; forks refused; k-of-n auditors."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support import run_gate, write_model

from tiergate.core.keys import PrivateKey, write_keypair
from tiergate.core.log.checkpoint import SignedNote
from tiergate.core.log.cosignature import WitnessVerifier, cosignatures_of
from tiergate.core.log.witness import AddCheckpoint

from .conftest import ORIGIN, STARTUP_TIMEOUT, GateEnv, Launcher, Server

_SERVING = re.compile(r"witness serving on (http://127\.0\.0\.1:\d+)")
_VKEY = re.compile(r"witness verifier key (\S+)")


@dataclass
class WitnessProcess:
    proc: subprocess.Popen[bytes]
    url: str
    vkey: str
    state: Path

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


def start_witness(env: GateEnv, tmp: Path, name: str) -> WitnessProcess:
    """A witness process; started again with the same name, it reuses its config, key and state file."""
    config, key = tmp / f"{name}.json", tmp / f"{name}.key"
    if not key.exists():
        config.write_text(json.dumps({"logs": [{"origin": ORIGIN, "keys": [env.vkey.read_text().strip()]}]}))
        write_keypair(PrivateKey.generate(), tmp / name)
    state, stderr = tmp / f"{name}.state", tmp / f"{name}-{secrets.token_hex(4)}.stderr"
    with open(stderr, "wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "tiergate", "witness", "--config", str(config), "--key",
                                 str(key), "--name", f"{name}.example", "--state", str(state), "--port", "0"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=handle,
                                start_new_session=True)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        text = stderr.read_text(errors="replace")
        serving, vkey = _SERVING.search(text), _VKEY.search(text)
        if serving and vkey:
            return WitnessProcess(proc, serving.group(1), vkey.group(1), state)
        if proc.poll() is not None:
            raise RuntimeError(f"gate witness exited with {proc.returncode}: {text}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("gate witness did not start")


@pytest.fixture
def witnesses(gate_env: GateEnv, tmp_path: Path) -> Iterator[list[WitnessProcess]]:
    """Three real witnesses of the test origin, trusting the session's gate key."""
    started = [start_witness(gate_env, tmp_path, f"w{i}") for i in range(3)]
    yield started
    for witness in started:
        witness.stop()


def decide(server: Server, n: int) -> None:
    answer = requests.post(f"{server.url}/v1/decisions", timeout=30,
                           headers={"Authorization": f"Bearer {server.env.token}"},
                           json={"model": {"digest": "sha256:" + f"{n:064x}"}, "tier": "internal"})
    assert answer.status_code == 200, answer.text


def checkpoint_note(server: Server) -> bytes:
    return requests.get(f"{server.url}/v1/log/checkpoint", timeout=30).content


def witness_args(*used: WitnessProcess) -> list[str]:
    return [a for w in used for a in ("--witness", w.url, w.vkey)]


def audit_args(env: GateEnv, witnesses: list[WitnessProcess], required: int) -> list[str]:
    return ["--key-file", str(env.vkey), *[a for w in witnesses for a in ("--witness", w.vkey)],
            "--witnesses-required", str(required)]


def test_a_served_checkpoint_carries_the_witnesses_cosignatures(start_server: Launcher, witnesses, tmp_path: Path,
                                                               gate_env: GateEnv) -> None:
    server = start_server(tmp_path / "log.db", *witness_args(*witnesses[:2]))
    for n in range(3):
        decide(server, n)
    note = SignedNote.parse(checkpoint_note(server))
    trusted = [WitnessVerifier.from_vkey(w.vkey) for w in witnesses]
    # 5 entries: the policy and trust store the decisions cite, then the 3 decisions.
    assert len(cosignatures_of(note, trusted)) == 2 and note.text.split("\n")[1] == "5"
    # Each witness persisted what it cosigned.
    assert json.loads(witnesses[0].state.read_text())["logs"][ORIGIN]["size"] == 5
    ok = run_gate("log", "checkpoint", "--server", server.url, *audit_args(gate_env, witnesses, 2))
    assert ok.returncode == 0, ok.stderr
    assert "cosigned by 2 of 3 trusted witnesses (w0.example, w1.example)" in ok.stdout
    # An auditor asking for all three refuses the checkpoint: one witness was never asked.
    three = run_gate("log", "checkpoint", "--server", server.url, *audit_args(gate_env, witnesses, 3))
    assert three.returncode == 1 and "2 valid cosignature(s)" in three.stderr and "3 are required" in three.stderr
    assert "Traceback" not in three.stderr
    # More decisions: the witnesses follow with consistency proofs from the size they hold.
    for n in range(3, 7):
        decide(server, n)
    later = SignedNote.parse(checkpoint_note(server))
    assert later.text.split("\n")[1] == "9" and len(cosignatures_of(later, trusted)) == 2


def test_an_auditor_requiring_two_of_three_rejects_a_checkpoint_with_one(start_server: Launcher, witnesses,
                                                                          tmp_path: Path, gate_env: GateEnv) -> None:
    server = start_server(tmp_path / "log.db", *witness_args(witnesses[0]))
    decide(server, 1)
    refused = run_gate("log", "audit", "--server", server.url, "--trust", str(gate_env.trust),
                       *audit_args(gate_env, witnesses, 2))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "1 valid cosignature(s)" in refused.stdout + refused.stderr
    one = run_gate("log", "checkpoint", "--server", server.url, *audit_args(gate_env, witnesses, 1))
    assert one.returncode == 0, one.stderr
    usage = run_gate("log", "checkpoint", "--server", server.url, *audit_args(gate_env, witnesses[:1], 2))
    assert usage.returncode == 2 and "more than the 1" in usage.stderr


def test_a_forked_log_gets_no_cosignature_for_its_second_branch(start_server: Launcher, witnesses, tmp_path: Path,
                                                                gate_env: GateEnv) -> None:
    """Two services with the same key and origin but different logs: the same size, different roots."""
    witness = witnesses[0]
    honest = start_server(tmp_path / "honest.db", *witness_args(witness))
    decide(honest, 1)
    honest_note = checkpoint_note(honest)
    honest.kill()
    forked = start_server(tmp_path / "forked.db", *witness_args(witness))
    decide(forked, 2)  # another decision (and rules entries of another time): a checkpoint of size 3, another root
    forked_note = checkpoint_note(forked)
    assert honest_note.split(b"\n")[:2] == forked_note.split(b"\n")[:2] and honest_note != forked_note
    trusted = [WitnessVerifier.from_vkey(witness.vkey)]
    assert len(cosignatures_of(SignedNote.parse(honest_note), trusted)) == 1
    assert cosignatures_of(SignedNote.parse(forked_note), trusted) == []
    assert "no cosignature for size 3" in forked.output()
    # Asked directly, the witness answers the spec's 409 for the fork.
    direct = requests.post(f"{witness.url}/add-checkpoint", data=AddCheckpoint(3, (), _log_only(forked_note)).encode(),
                           timeout=30)
    assert direct.status_code == 409 and "forked" in direct.text
    audit = run_gate("log", "checkpoint", "--server", forked.url, *audit_args(gate_env, witnesses, 1))
    assert audit.returncode == 1 and "0 valid cosignature(s)" in audit.stderr


def test_the_witness_answers_409_with_its_size_and_survives_a_restart(start_server: Launcher, tmp_path: Path,
                                                                       gate_env: GateEnv) -> None:
    witness = start_witness(gate_env, tmp_path, "solo")
    try:
        server = start_server(tmp_path / "log.db", *witness_args(witness))
        for n in range(2):
            decide(server, n)
        note = _log_only(checkpoint_note(server))
        stale = requests.post(f"{witness.url}/add-checkpoint", data=AddCheckpoint(0, (), note).encode(), timeout=30)
        assert stale.status_code == 409 and stale.headers["Content-Type"] == "text/x.tlog.size"
        assert stale.text == "4\n"  # the policy and trust entries, then the 2 decisions
        assert requests.get(f"{witness.url}/add-checkpoint", timeout=30).status_code == 405
        assert requests.post(f"{witness.url}/add-checkpoint", data=b"garbage", timeout=30).status_code == 400
    finally:
        witness.stop()
    restarted = start_witness(gate_env, tmp_path, "solo")  # same key and state file
    try:
        assert restarted.vkey == witness.vkey
        again = requests.post(f"{restarted.url}/add-checkpoint", data=AddCheckpoint(0, (), note).encode(), timeout=30)
        assert again.status_code == 409 and again.text == "4\n"  # it remembers what it cosigned
        same = requests.post(f"{restarted.url}/add-checkpoint", data=AddCheckpoint(4, (), note).encode(), timeout=30)
        assert same.status_code == 200 and same.text.startswith("\u2014 solo.example ")
    finally:
        restarted.stop()


def _log_only(note: bytes) -> bytes:
    """The checkpoint with the log's signature only (what a log sends a witness)."""
    parsed = SignedNote.parse(note)
    return SignedNote(parsed.text, parsed.signatures[:1]).encode()


def test_gate_check_requires_k_witnesses_on_the_checkpoint_covering_its_decision(
        start_server: Launcher, witnesses, tmp_path: Path, gate_env: GateEnv) -> None:
    """The real client with the real service's default signing interval: it waits for a cosigned checkpoint covering
    its decision, proves the decision is in it, and denies when fewer witnesses than required cosigned."""
    model = write_model(tmp_path / "model")
    env = {"GATE_TOKEN": gate_env.token, "GATE_CHECKPOINT_INTERVAL": "0.3"}
    keys = [a for w in witnesses for a in ("--witness", w.vkey)]
    two = start_server(tmp_path / "two.db", *witness_args(*witnesses[:2]), "--checkpoint-interval", "0.3")
    allowed = run_gate("check", str(model), "--tier", "internal", "--server", two.url, "--server-key",
                       str(gate_env.vkey), *keys, "--witnesses-required", "2", env=env)
    assert allowed.returncode == 0, allowed.stderr
    one = start_server(tmp_path / "one.db", *witness_args(witnesses[2]), "--checkpoint-interval", "0.3")
    denied = run_gate("check", str(model), "--tier", "internal", "--server", one.url, "--server-key",
                      str(gate_env.vkey), *keys, "--witnesses-required", "2", env=env)
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "1 valid cosignature(s)" in denied.stderr and "the publish is denied" in denied.stderr
    half = run_gate("check", str(model), "--tier", "internal", "--server", one.url, *keys, "--witnesses-required", "1",
                    env=env)
    assert half.returncode == 2 and "--server-key" in half.stderr and "Traceback" not in half.stderr
