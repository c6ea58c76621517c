"""The MLflow plugin follows the trust store, the key files it names (also behind a re-pointed symlink) and
recovers from a broken version by itself: one real ``mlflow server --app-name tiergate`` of its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
import yaml

from mlflow_e2e import hosted_evidence, own_registry, session_world, start_server

pytestmark = pytest.mark.e2e


def _release(folder: Path, world: Any, **key_fields: object) -> None:
    """A deployed trust store: every evaluator's key in a key file named by path."""
    (folder / "keys").mkdir(parents=True)
    evaluators = []
    for e in world.evaluators.values():
        (folder / "keys" / f"{e.id}.pub").write_bytes(e.key.public.to_pem())
        evaluators.append({"id": e.id, "organization": e.organization, "kind": e.kind,
                           "keys": [{"path": f"keys/{e.id}.pub", **key_fields}]})
    (folder / "trust.yaml").write_text(yaml.safe_dump({"version": 1, "evaluators": evaluators}))


def _repoint(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_the_plugin_applies_a_revocation_and_recovers_from_a_broken_trust_store_without_a_restart(
        tmp_path: Path, key_pool: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import RestException

    world = session_world(tmp_path / "world", key_pool)
    releases = tmp_path / "releases"
    _release(releases / "a", world)
    _release(releases / "b", world, revoked_at="2026-01-01T00:00:00Z", compromised=True)
    current = tmp_path / "current"
    current.symlink_to(releases / "a")
    server = start_server(tmp_path / "server", f"sqlite:///{tmp_path / 'mlflow.db'}",
                          {"GATE_TRUST": str(current / "trust.yaml")})
    try:
        registry = own_registry(server.url, tmp_path, world, monkeypatch)
        model = registry.log_model()
        registry.attach(model, hosted_evidence(world, model.manifest))
        version = registry.register(model)

        _repoint(current, releases / "b")  # every key revoked as compromised, deployed by re-pointing the link
        with pytest.raises(RestException) as refused:
            registry.client.set_registered_model_alias(version.name, "production", version.version)
        assert refused.value.error_code == "PERMISSION_DENIED" and "compromised" in refused.value.message

        (releases / "a" / "keys" / "evalco.pub").write_text("not a key\n")  # a broken key file in the next release
        _repoint(current, releases / "a")
        with pytest.raises(RestException) as broken:
            registry.client.set_registered_model_alias(version.name, "production", version.version)
        assert broken.value.error_code == "PERMISSION_DENIED" and "evalco.pub" in broken.value.message

        (releases / "a" / "keys" / "evalco.pub").write_bytes(world.evaluators["evalco"].key.public.to_pem())
        registry.client.set_registered_model_alias(version.name, "production", version.version)  # recovered
        assert registry.tags(version.name, version.version)["tiergate.tier"] == "hosted"
    finally:
        server.stop()
