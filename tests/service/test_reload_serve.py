"""A running ``gate serve`` follows its trust store, the key files it names and its policy: a key revoked (here by
re-pointing the deployed folder's symlink) stops clearing publishes at the next request, without a restart; a
broken trust store is answered 503 naming the file (a deny for every client) until it is fixed."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from support import write_model
from gate.core.manifest import hash_model
from gate.core.trust import TrustStore
from gate.runtime.remote import ask
from gate.runtime.transport import GateServiceError

from .conftest import GateEnv, launch

pytestmark = pytest.mark.e2e


def _release(folder: Path, env: GateEnv, **key_fields: object) -> None:
    """A deployed trust store folder: trust.yaml naming evalco's key file by path."""
    (folder / "keys").mkdir(parents=True)
    (folder / "keys" / "evalco.pub").write_bytes(env.world.evaluators["evalco"].key.public.to_pem())
    entry = {"id": "evalco", "organization": "EvalCo", "kind": "third_party",
             "keys": [{"path": "keys/evalco.pub", **key_fields}]}
    (folder / "trust.yaml").write_text(yaml.safe_dump({"version": 1, "evaluators": [entry]}))


def _repoint(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_gate_serve_applies_a_revocation_without_a_restart(gate_env: GateEnv, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    _release(releases / "a", gate_env)
    _release(releases / "b", gate_env, revoked_at="2026-01-01T00:00:00Z", compromised=True)
    current = tmp_path / "current"
    current.symlink_to(releases / "a")
    env = replace(gate_env, trust=current / "trust.yaml")
    server = launch(env, tmp_path / "log.db", name="reload")
    try:
        manifest = hash_model(write_model(tmp_path / "model"))
        evidence = [gate_env.world.attest(manifest, "evalco", "strongreject", {"score": 0.02})]
        first = ask(server.client(), manifest, evidence, tier="hosted").decision
        assert first.allowed and first.trust_digest == TrustStore.load(releases / "a" / "trust.yaml").digest

        _repoint(current, releases / "b")  # the revocation is deployed
        second = ask(server.client(), manifest, evidence, tier="hosted").decision
        assert not second.allowed and "compromised" in second.rejected[0].reason
        assert second.trust_digest == TrustStore.load(releases / "b" / "trust.yaml").digest

        (releases / "b" / "trust.yaml").write_text("version: 1\nevaluators: [{id: x}]\n")  # broken in place
        with pytest.raises(GateServiceError, match=r"HTTP 503.*trust\.yaml.*the publish is denied"):
            ask(server.client(), manifest, evidence, tier="hosted")

        _repoint(current, releases / "a")  # fixed: the same process decides again
        assert ask(server.client(), manifest, evidence, tier="hosted").decision.allowed
        assert server.proc.poll() is None
    finally:
        server.kill()
