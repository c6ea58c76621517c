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
from tiergate.core.manifest import hash_model
from tiergate.core.trust import TrustStore
from tiergate.runtime.remote import ask
from tiergate.runtime.transport import GateServiceError

from hf.hub_standin import HubStandin
from .conftest import GateEnv, launch
from .test_webhook import deliver, flip_public, hf_environment, hub, model_files, start_webhook_server  # noqa: F401

pytestmark = pytest.mark.e2e


def _release(folder: Path, env: GateEnv, **key_fields: object) -> None:
    """A deployed trust store folder: trust.yaml naming each evaluator's key file by path."""
    (folder / "keys").mkdir(parents=True)
    entries = []
    for e in env.world.evaluators.values():
        (folder / "keys" / f"{e.id}.pub").write_bytes(e.key.public.to_pem())
        entries.append({"id": e.id, "organization": e.organization, "kind": e.kind,
                        "keys": [{"path": f"keys/{e.id}.pub", **key_fields}]})
    (folder / "trust.yaml").write_text(yaml.safe_dump({"version": 1, "evaluators": entries}))


@pytest.fixture
def deployed(gate_env: GateEnv, tmp_path: Path) -> tuple[GateEnv, Path, Path]:
    """releases/a (keys trusted) and releases/b (every key revoked as compromised); ``current`` links to a."""
    releases = tmp_path / "releases"
    _release(releases / "a", gate_env)
    _release(releases / "b", gate_env, revoked_at="2026-01-01T00:00:00Z", compromised=True)
    current = tmp_path / "current"
    current.symlink_to(releases / "a")
    return replace(gate_env, trust=current / "trust.yaml"), current, releases


def _repoint(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_gate_serve_applies_a_revocation_without_a_restart(deployed, gate_env: GateEnv, tmp_path: Path) -> None:
    env, current, releases = deployed
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
        assert server.client(token=None).health()["rules"]["trust_digest"] == second.trust_digest

        (releases / "b" / "trust.yaml").write_text("version: 1\nevaluators: [{id: x}]\n")  # broken in place
        with pytest.raises(GateServiceError, match=r"HTTP 503.*trust\.yaml.*the publish is denied"):
            ask(server.client(), manifest, evidence, tier="hosted")
        health = server.client(token=None).health()  # the log stays readable; health says nothing is decided
        assert "does not load" in health["rules"]["error"] and health["tree_size"] > 0
        assert "trust.yaml" not in health["rules"]["error"]  # paths and lines are for the operator's log:
        with pytest.raises(GateServiceError, match="HTTP 503") as public:
            server.client(token=None).policy()
        assert "trust.yaml" not in str(public.value)
        assert "gate serve: the gate configuration does not load" in server.output()
        assert "trust.yaml" in server.output()

        _repoint(current, releases / "a")  # fixed: the same process decides again
        assert ask(server.client(), manifest, evidence, tier="hosted").decision.allowed
        assert f"gate serve: reloaded: trust store {current / 'trust.yaml'} ({first.trust_digest})" in server.output()
        assert server.proc.poll() is None
    finally:
        server.kill()


def test_the_webhook_judges_with_the_trust_store_as_deployed_now(deployed, hub: HubStandin, hf_environment: None,
                                                                  tmp_path: Path) -> None:
    """The Hub webhook shares the service's reloader: after the revocation is deployed, a release resting on the
    revoked keys is contained, without a restart."""
    env, current, releases = deployed
    server = start_webhook_server(env, tmp_path / "log.db", hub)
    try:
        hub.create_repo("org/reload-a", private=True, files=model_files(env, tmp_path / "a", evidence=True))
        answer = deliver(server, flip_public(hub, "org/reload-a"))
        assert [r["outcome"] for r in answer.json()["results"]] == ["allowed"], answer.text

        _repoint(current, releases / "b")
        hub.create_repo("org/reload-b", private=True, files=model_files(env, tmp_path / "b", evidence=True))
        answer = deliver(server, flip_public(hub, "org/reload-b"))
        assert [r["outcome"] for r in answer.json()["results"]] == ["contained"], answer.text
        assert hub.repo("org/reload-b").private is True

        (releases / "b" / "keys" / "evalco.pub").write_text("not a key\n")  # broken: the event fails, logged
        hub.create_repo("org/reload-c", private=True, files=model_files(env, tmp_path / "c", evidence=True))
        answer = deliver(server, flip_public(hub, "org/reload-c"))
        assert answer.status_code == 502 and "evalco.pub" in answer.json()["error"], answer.text
        assert answer.headers["Retry-After"]  # the Hub redelivers; fixed by then, the event is checked
    finally:
        server.kill()
