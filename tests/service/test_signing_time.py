"""`gate serve` dates what it receives: a retired key's backdated attestation is refused at the time the service
logs it, and a gate attestation wrapped in a Sigstore bundle is stored and counted as the attestation it is."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import requests
import yaml

from support import run_gate, write_model
from tiergate.core.dsse import Envelope
from tiergate.core.manifest import hash_model
from tiergate.core.timeutil import format_time, utcnow

from .conftest import GateEnv, launch


def _bundle(envelope: bytes, hint: str) -> bytes:
    """The envelope in a Sigstore bundle v0.3, as model-signing's key method writes one."""
    return json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                       "verificationMaterial": {"publicKey": {"hint": hint}},
                       "dsseEnvelope": Envelope.from_json(envelope).to_dict()}).encode()


def test_the_service_judges_at_the_time_it_receives(gate_env: GateEnv, tmp_path: Path) -> None:
    world = gate_env.world
    revoked = utcnow() - timedelta(days=1)
    trust = yaml.safe_load(gate_env.trust.read_text())
    for entry in trust["evaluators"]:
        if entry["id"] == "redteam":
            entry["keys"][0]["revoked_at"] = format_time(revoked)  # retired, not compromised
            entry["keys"][0]["self_reported_time"] = True  # and the admin takes its attestedAt where nothing dates it
    trust_path = tmp_path / "trust.yaml"
    trust_path.write_text(yaml.safe_dump(trust))
    server = launch(dataclasses.replace(gate_env, trust=trust_path), tmp_path / "log.db", name="signing-time")
    try:
        model = hash_model(write_model(tmp_path / "tiny"))
        headers = {"Authorization": f"Bearer {gate_env.token}"}
        backdated = world.attest(model, "redteam", "mmlu", {"acc": 0.7}, when=revoked - timedelta(days=10))
        # Read from a folder, nothing but the signer dates it: this entry takes attestedAt (it says so).
        (tmp_path / "backdated.json").write_bytes(backdated.data)
        local = run_gate("verify", str(tmp_path / "tiny"), str(tmp_path / "backdated.json"), "--trust",
                         str(trust_path), "--policy", str(gate_env.policy))
        assert local.returncode == 0, local.stdout + local.stderr
        # The service logs what it accepts, so it judges at the time it receives (trusted): after the retirement.
        answer = requests.post(f"{server.url}/v1/attestations", headers=headers,
                               json={"attestation": base64.b64encode(backdated.data).decode()}, timeout=30)
        assert answer.status_code == 400, answer.text
        assert "was revoked at" in answer.text and "(first recorded by the gate's log)" in answer.text

        wrapped = _bundle(world.attest(model, "evalco", "strongreject", {"score": 0.05}).data,
                          world.evaluators["evalco"].key.key_id)
        stored = requests.post(f"{server.url}/v1/attestations", headers=headers,
                               json={"attestation": base64.b64encode(wrapped).decode()}, timeout=30)
        assert stored.status_code == 201, stored.text
        assert stored.json()["predicate_type"] == "https://tiergate.dev/evaluation/v0.1"
        body = {"tier": "hosted", "model": {"manifest": model.to_dict(content=True)}}
        decided = requests.post(f"{server.url}/v1/decisions", json=body, headers=headers, timeout=30)
        assert decided.status_code == 200 and decided.json()["decision"] == "allow", decided.text
    finally:
        server.kill()
