"""Trust follows the files: a running gate notices every change of its trust store, the key files it names and its
policy, by content, with symlinks resolved at every check; a broken version refuses until it is fixed.

These drive :class:`tiergate.runtime.Gate` (what every integration holds) and :class:`tiergate.runtime.Reloader`
directly; the long-running processes are in tests/service/test_reload_serve.py (``gate serve``) and
tests/mlflow/test_mlflow_reload.py (the MLflow plugin).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import NOW, World, write_model
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.trust import TrustStore
from tiergate.runtime import ConfigurationBroken, Gate, GateConfig, Reloader
from tiergate.runtime.reload import Loaded

POLICY = {
    "version": 1, "name": "reload-tests",
    "tiers": [
        {"name": "internal"},
        {"name": "hosted", "requires": {"signers": {"min_organizations": 1}, "evaluations": [
            {"id": "sr", "benchmark": "strongreject", "metric": "score", "comparator": "<=", "threshold": 0.10}]}},
    ],
}
REVOKED = {"revoked_at": "2026-01-01T00:00:00Z", "compromised": True}


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` the way deploy tools do: write beside it, rename over it (a new inode)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def repoint(link: Path, target: Path) -> None:
    """Re-point a symlink atomically (a new link renamed over the old one)."""
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def trust_yaml(world: World, key_paths: dict[str, str], **key_fields: Any) -> bytes:
    """A trust store naming each evaluator's key by path (relative to the store)."""
    evaluators = []
    for evaluator_id, path in key_paths.items():
        e = world.evaluators[evaluator_id]
        evaluators.append({"id": e.id, "organization": e.organization, "kind": e.kind,
                           "keys": [{"path": path, **key_fields}]})
    return yaml.safe_dump({"version": 1, "evaluators": evaluators}).encode()


class Setup:
    """A folder with a policy, a trust store naming evalco's key file, a model and evalco's attestation of it."""

    def __init__(self, root: Path, world: World) -> None:
        self.root, self.world = root, world
        self.policy = root / "policy.yaml"
        self.policy.write_text(yaml.safe_dump(POLICY))
        self.keys = root / "keys"
        self.keys.mkdir()
        self.write_key("evalco", "evalco")
        self.trust = root / "trust.yaml"
        self.trust.write_bytes(trust_yaml(world, {"evalco": "keys/evalco.pub"}))
        self.manifest: Manifest = hash_model(write_model(root / "model"))
        self.evidence = [world.attest(self.manifest, "evalco", "strongreject", {"score": 0.02})]

    def write_key(self, file: str, evaluator: str, folder: Path | None = None) -> Path:
        path = (folder or self.keys) / f"{file}.pub"
        atomic_write(path, self.world.evaluators[evaluator].key.public.to_pem())
        return path

    def gate(self, trust: Path | None = None) -> Gate:
        return Gate.load(GateConfig(policy=self.policy, trust=trust or self.trust))

    def decide(self, gate: Gate) -> Any:
        return gate.decide("hosted", self.manifest, self.evidence, now=NOW)


@pytest.fixture
def setup(tmp_path: Path, world: World) -> Setup:
    return Setup(tmp_path, world)


def test_a_trust_store_replaced_on_disk_is_used_by_the_next_decision(setup: Setup) -> None:
    gate = setup.gate()
    first = setup.decide(gate)
    assert first.allowed
    atomic_write(setup.trust, trust_yaml(setup.world, {"evalco": "keys/evalco.pub"}, **REVOKED))
    second = setup.decide(gate)
    assert not second.allowed and "compromised" in second.rejected[0].reason
    assert second.trust_digest != first.trust_digest
    assert second.trust_digest == TrustStore.load(setup.trust).digest


def test_a_trust_store_rewritten_in_place_is_used_too(setup: Setup) -> None:
    gate = setup.gate()
    assert setup.decide(gate).allowed
    with open(setup.trust, "wb") as handle:  # same inode, new content
        handle.write(trust_yaml(setup.world, {"evalco": "keys/evalco.pub"}, **REVOKED))
    assert not setup.decide(gate).allowed


@pytest.mark.parametrize("style", ["file link", "folder link"])
def test_a_re_pointed_symlink_is_followed(setup: Setup, style: str) -> None:
    """The usual atomic deploy: releases/<n>/ written in full, then a link re-pointed to it."""
    releases = setup.root / "releases"
    for name, extra in (("a", {}), ("b", REVOKED)):
        folder = releases / name
        (folder / "keys").mkdir(parents=True)
        setup.write_key("evalco", "evalco", folder / "keys")
        (folder / "trust.yaml").write_bytes(trust_yaml(setup.world, {"evalco": "keys/evalco.pub"}, **extra))
    if style == "file link":
        link = setup.root / "current-trust.yaml"
        link.symlink_to(releases / "a" / "trust.yaml")
        trust, new_target = link, releases / "b" / "trust.yaml"
    else:
        link = setup.root / "current"
        link.symlink_to(releases / "a")
        trust, new_target = link / "trust.yaml", releases / "b"
    gate = setup.gate(trust)
    assert setup.decide(gate).allowed
    repoint(link, new_target)
    assert not setup.decide(gate).allowed
    repoint(link, releases / "a" if style == "folder link" else releases / "a" / "trust.yaml")
    assert setup.decide(gate).allowed


def test_a_symlink_named_by_gate_trust_is_not_frozen_when_the_environment_is_read(setup: Setup) -> None:
    """The MLflow plugin's finding: GATE_TRUST was resolved once, so re-pointing its link went unnoticed."""
    revoked = setup.root / "revoked.yaml"
    revoked.write_bytes(trust_yaml(setup.world, {"evalco": "keys/evalco.pub"}, **REVOKED))
    link = setup.root / "trust-link.yaml"
    link.symlink_to(setup.trust)
    gate = Gate.load(environ={"GATE_TRUST": str(link), "GATE_POLICY": str(setup.policy)})
    assert gate.config.trust == link
    assert setup.decide(gate).allowed
    repoint(link, revoked)
    assert not setup.decide(gate).allowed


def test_a_key_file_swapped_under_an_unchanged_trust_store_is_noticed_and_changes_the_digest(setup: Setup) -> None:
    gate = setup.gate()
    before = setup.decide(gate)
    assert before.allowed
    trust_bytes = setup.trust.read_bytes()
    setup.write_key("evalco", "aisi")  # another key under the same name: evalco's signature no longer verifies
    after = setup.decide(gate)
    assert setup.trust.read_bytes() == trust_bytes
    assert not after.allowed
    assert after.trust_digest != before.trust_digest
    assert after.trust_digest == TrustStore.load(setup.trust).digest


def test_the_trust_digest_covers_the_key_files(setup: Setup) -> None:
    first = TrustStore.load(setup.trust)
    assert first.files == (setup.trust, setup.keys / "evalco.pub")
    setup.write_key("evalco", "aisi")
    assert TrustStore.load(setup.trust).digest != first.digest
    setup.write_key("evalco", "evalco")
    assert TrustStore.load(setup.trust).digest == first.digest
    inline = setup.root / "inline.yaml"
    inline.write_text(yaml.safe_dump(setup.world.trust_dict()))
    import hashlib

    assert TrustStore.load(inline).digest == "sha256:" + hashlib.sha256(inline.read_bytes()).hexdigest()


def test_a_broken_trust_store_refuses_every_decision_naming_the_file_then_recovers(setup: Setup) -> None:
    gate = setup.gate()
    good = setup.trust.read_bytes()
    assert setup.decide(gate).allowed
    atomic_write(setup.trust, b"version: 1\nevaluators: [{id: x}]\n")
    with pytest.raises(ConfigurationBroken, match=str(setup.trust)):
        setup.decide(gate)
    assert gate.error is not None and str(setup.trust) in str(gate.error)
    with pytest.raises(ConfigurationBroken):
        gate.policy  # noqa: B018  (nothing of a broken configuration is handed out)
    atomic_write(setup.trust, good)
    assert gate.error is None and setup.decide(gate).allowed


def test_a_key_file_that_vanishes_refuses_naming_it_until_it_is_back(setup: Setup) -> None:
    gate = setup.gate()
    key = setup.keys / "evalco.pub"
    data = key.read_bytes()
    key.unlink()
    with pytest.raises(ConfigurationBroken, match="evalco.pub"):
        setup.decide(gate)
    atomic_write(key, data)
    assert setup.decide(gate).allowed


def test_a_link_that_dangles_for_a_moment_recovers_without_a_restart(setup: Setup) -> None:
    link = setup.root / "trust-link.yaml"
    link.symlink_to(setup.trust)
    gate = setup.gate(link)
    assert setup.decide(gate).allowed
    repoint(link, setup.root / "not-yet-deployed.yaml")
    with pytest.raises(ConfigurationBroken, match="not found"):
        setup.decide(gate)
    repoint(link, setup.trust)
    assert setup.decide(gate).allowed


def test_a_policy_change_reaches_the_next_decision(setup: Setup) -> None:
    gate = setup.gate()
    assert setup.decide(gate).allowed
    stricter = yaml.safe_load(setup.policy.read_text())
    stricter["tiers"][1]["requires"]["evaluations"][0]["threshold"] = 0.01
    atomic_write(setup.policy, yaml.safe_dump(stricter).encode())
    decision = setup.decide(gate)
    assert not decision.allowed and decision.policy_digest == gate.policy.digest


def test_the_gate_config_file_is_followed_too(setup: Setup, world: World) -> None:
    revoked = setup.root / "revoked.yaml"
    revoked.write_bytes(trust_yaml(world, {"evalco": "keys/evalco.pub"}, **REVOKED))
    config = setup.root / "gate.yaml"
    config.write_text("policy: policy.yaml\ntrust: trust.yaml\n")
    gate = Gate.load(environ={"GATE_CONFIG": str(config)})
    assert setup.decide(gate).allowed
    atomic_write(config, b"policy: policy.yaml\ntrust: revoked.yaml\n")
    assert not setup.decide(gate).allowed
    atomic_write(config, b"policy: policy.yaml\ntrust: revoked.yaml\nsurprise: 1\n")
    with pytest.raises(ConfigurationBroken, match="surprise"):
        setup.decide(gate)
    atomic_write(config, b"policy: policy.yaml\ntrust: trust.yaml\n")
    assert setup.decide(gate).allowed


def test_one_version_is_kept_for_a_whole_call(setup: Setup) -> None:
    """``current()`` pins the files as they are: a host that reads the policy, then decides, uses one version."""
    gate = setup.gate()
    pinned = gate.current()
    atomic_write(setup.trust, trust_yaml(setup.world, {"evalco": "keys/evalco.pub"}, **REVOKED))
    assert setup.decide(pinned).allowed
    assert not setup.decide(gate).allowed


# --- the reloader itself ------------------------------------------------------------------------------------------


def counting_loader(path: Path, during: Any = None) -> tuple[Any, list[bytes]]:
    reads: list[bytes] = []

    def load() -> Loaded[bytes]:
        data = path.read_bytes()
        reads.append(data)
        if during is not None:
            during(len(reads))
        return Loaded(data, (path,))

    return load, reads


def test_a_touch_that_changes_no_content_does_not_reload(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"one")
    load, reads = counting_loader(path)
    reloader = Reloader(load, clock=lambda: 0.0)
    loads = len(reads)
    os.utime(path, ns=(1, 1))
    assert reloader.current() == b"one" and len(reads) == loads
    path.write_bytes(b"two")
    assert reloader.current() == b"two"


def test_a_file_changed_while_it_is_being_loaded_is_loaded_again(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old")

    def change(count: int) -> None:
        if count == 1:
            path.write_bytes(b"new")  # after the loader read "old"

    load, reads = counting_loader(path, change)
    reloader = Reloader(load, clock=lambda: 0.0)
    assert reloader.current() == b"new" and reads[0] == b"old"


def test_a_rewrite_that_keeps_the_stat_is_caught_by_the_periodic_hash(tmp_path: Path, monkeypatch) -> None:
    """Some filesystems (and copies that keep times) show no stat change: the content is hashed on an interval."""
    import tiergate.runtime.reload as reload_module

    path = tmp_path / "file"
    path.write_bytes(b"aaa")
    now = [0.0]
    load, _ = counting_loader(path)
    frozen = reload_module._stat(path)
    monkeypatch.setattr(reload_module, "_stat", lambda p: frozen)  # a filesystem whose stat never changes
    reloader = Reloader(load, rehash_every=2.0, clock=lambda: now[0])
    path.write_bytes(b"bbb")
    now[0] = 1.0
    assert reloader.current() == b"aaa"  # not yet due: the stat is what is checked on every call
    now[0] = 2.5
    assert reloader.current() == b"bbb"


def test_a_broken_load_is_retried_on_the_interval_even_without_a_change(tmp_path: Path) -> None:
    """A transient failure (a file system hiccup) must not leave the gate refusing until some file changes."""
    path = tmp_path / "file"
    path.write_bytes(b"x")
    failing = [True]
    now = [0.0]

    def load() -> Loaded[str]:
        if failing[0]:
            from tiergate.errors import ConfigError

            raise ConfigError(f"{path}: cannot read it right now")
        return Loaded("ok", (path,))

    reloader = Reloader(load, lambda: [path], clock=lambda: now[0])
    with pytest.raises(ConfigurationBroken, match="cannot read it right now"):
        reloader.current()
    failing[0] = False
    now[0] = 10.0
    assert reloader.current() == "ok"


def test_the_operator_is_told_of_each_change_once(tmp_path: Path) -> None:
    """on_change: each reload and each new breakage once, not every retry of the same broken state."""
    path = tmp_path / "file"
    path.write_bytes(b"one")
    now = [0.0]
    told: list[str] = []

    def load() -> Loaded[bytes]:
        data = path.read_bytes()
        if data == b"broken":
            from tiergate.errors import ConfigError

            raise ConfigError(f"{path}: broken")
        return Loaded(data, (path,))

    reloader = Reloader(load, lambda: [path], clock=lambda: now[0],
                        on_change=lambda value, error: told.append(str(error) if error else value.decode()))
    assert told == []  # the first load is the start-up's to report
    path.write_bytes(b"two")
    reloader.current()
    path.write_bytes(b"broken")
    for step in range(1, 4):  # retried every interval, told once
        now[0] = 10.0 * step
        with pytest.raises(ConfigurationBroken):
            reloader.current()
    path.write_bytes(b"three")
    assert reloader.current() == b"three"
    assert told[0] == "two" and "broken" in told[1] and told[2:] == ["three"]
