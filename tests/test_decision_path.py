"""One decision path: every command and integration decides through a :class:`tiergate.runtime.Decider`, with one
configuration (``GATE_CONFIG`` and ``GATE_*``) read the same way everywhere."""

from __future__ import annotations

import ast
import json
import socket
from pathlib import Path

import pytest
import yaml

from support import NOW, World, run_gate, write_model
from tiergate.core.keys import PrivateKey
from tiergate.core.log.backends import open_store
from tiergate.core.log.checkpoint import NoteSigner
from tiergate.core.manifest import hash_model
from tiergate.runtime import Gate, GateConfig, LocalDecider
from tiergate.runtime.transport import GateServiceError

GATE = Path(__file__).resolve().parent.parent / "tiergate"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def attested(tmp_path: Path, world: World) -> tuple[Path, Path]:
    """A model whose .attestations/ clear the shipped policy's lowest tiers, and a trust store."""
    model = write_model(tmp_path / "tiny")
    (model / ".attestations").mkdir()
    item = world.attest(hash_model(model), "evalco", "strongreject", {"score": 0.02})
    (model / ".attestations" / "sr.json").write_bytes(item.data)
    return model, world.trust_path()


def test_gate_check_honours_an_unreachable_server_in_gate_config_and_denies(attested, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The finding: with `server:` in GATE_CONFIG the integrations denied while `gate check` allowed locally."""
    model, trust = attested
    config = tmp_path / "gate.yaml"
    config.write_text(f"trust: {trust}\nserver: http://127.0.0.1:{closed_port()}\ntimeout: 5\n")
    env = {"GATE_CONFIG": str(config), "GATE_TOKEN": "a-token"}
    keyless = run_gate("check", str(model), "--tier", "internal", env=env)  # no key to check answers: denied too
    assert keyless.returncode == 1 and "no key to check the gate service's signed answers" in keyless.stderr
    (tmp_path / "gate.vkey").write_text(NoteSigner("gate.example/log", PrivateKey.generate()).verifier.vkey() + "\n")
    config.write_text(f"trust: {trust}\nserver: http://127.0.0.1:{closed_port()}\ntimeout: 5\nserver_key: gate.vkey\n")
    result = run_gate("check", str(model), "--tier", "internal", env=env)
    assert result.returncode == 1, result.stderr
    assert "unreachable" in result.stderr and "the publish is denied" in result.stderr
    assert "Traceback" not in result.stderr
    # The integrations' gate says the same.
    monkeypatch.setenv("GATE_TOKEN", "a-token")
    gate = Gate.load(environ={"GATE_CONFIG": str(config)})
    with pytest.raises(GateServiceError, match="unreachable"):
        gate.decide("internal", hash_model(model), ())
    replay = run_gate("check", str(model), "--tier", "internal", "--now", "2026-11-01T12:00:00Z", env=env)
    assert replay.returncode == 2 and "--now are local-only" in replay.stderr
    # Without the server the same check allows: the deny above came from the configuration, not the model.
    config.write_text(f"trust: {trust}\n")
    assert run_gate("check", str(model), "--tier", "internal", env=env).returncode == 0


def test_gate_check_reads_trust_policy_and_log_from_gate_config(attested, tmp_path: Path) -> None:
    model, trust = attested
    log = tmp_path / "decisions.db"
    config = tmp_path / "gate.yaml"
    config.write_text(f"trust: {trust}\nlog: {log}\n")
    result = run_gate("check", str(model), "--tier", "internal", "--json", env={"GATE_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["trust"]["source"] == str(trust)
    # A replay (--now) is judged as of then and recorded nowhere: the log holds decisions timed by the gate's clock.
    replay = run_gate("check", str(model), "--tier", "internal", "--now", "2026-11-01T12:00:00Z",
                      env={"GATE_CONFIG": str(config)})
    assert replay.returncode == 0, replay.stderr
    store = open_store(str(log))
    try:
        assert store.size() == 1  # the first check, recorded as every integration records
    finally:
        store.close()
    # An option still wins over the file.
    other = tmp_path / "other-trust.yaml"
    other.write_bytes(trust.read_bytes())
    result = run_gate("check", str(model), "--tier", "internal", "--json", "--trust", str(other),
                      env={"GATE_CONFIG": str(config)})
    assert json.loads(result.stdout)["trust"]["source"] == str(other)


def test_a_broken_gate_config_stops_gate_check_with_exit_2(attested, tmp_path: Path) -> None:
    model, _ = attested
    config = tmp_path / "gate.yaml"
    config.write_text("trust: trust.yaml\nsurprise: 1\n")
    result = run_gate("check", str(model), "--tier", "internal", env={"GATE_CONFIG": str(config)})
    assert result.returncode == 2 and "surprise" in result.stderr and "Traceback" not in result.stderr


def test_the_local_decider_is_the_core_decision(world: World, manifest) -> None:
    """The Gate's answer is exactly the core's for the same inputs (nothing re-implemented on the way)."""
    from tiergate.core.decision import decide
    from tiergate.core.policy import Policy

    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.02})
    gate = Gate.load(GateConfig(trust=world.trust_path()))
    recorded = gate.decide_recorded("hosted", manifest, [item], now=NOW)
    assert recorded.log_index is None
    direct = decide(Policy.load(None), "hosted", manifest, [item], gate.trust, NOW)
    assert recorded.decision == direct
    assert LocalDecider(gate.policy, gate.trust).decide("hosted", manifest, [item], now=NOW).decision == direct


def test_only_the_local_decider_calls_the_core_decision() -> None:
    """Every other path (CLI, service, webhook, MLflow, Hub, git) goes through a Decider, never the core directly."""
    callers = []
    for path in GATE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "tiergate.core.decision" and \
                    any(alias.name == "decide" for alias in node.names):
                callers.append(str(path.relative_to(GATE.parent)))
    assert callers == ["tiergate/runtime/local.py"]


def test_yaml_in_gate_config_is_the_one_configuration(tmp_path: Path, world: World) -> None:
    """GateConfig reads GATE_CONFIG for every process the same way: relative paths from the file's folder."""
    (tmp_path / "conf").mkdir()
    trust = world.trust_path()
    (tmp_path / "conf" / "trust.yaml").write_bytes(trust.read_bytes())
    (tmp_path / "conf" / "gate.yaml").write_text(yaml.safe_dump({"trust": "trust.yaml", "timeout": 7}))
    config = GateConfig.from_env({"GATE_CONFIG": str(tmp_path / "conf" / "gate.yaml")})
    assert config.trust == (tmp_path / "conf" / "trust.yaml").resolve() and config.timeout == 7


def test_long_running_code_loads_trust_and_policy_only_through_the_reloader() -> None:
    """The service, the webhook and the integrations never read a trust store or policy themselves: a copy loaded
    once would go stale (the finding: `gate serve` never re-read its trust store)."""
    loads = []
    for part in ("service", "integrations", "audit"):
        for path in (GATE / part).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("load", "from_bytes") and \
                        isinstance(node.value, ast.Name) and node.value.id in ("TrustStore", "Policy"):
                    loads.append(f"{path.relative_to(GATE.parent)}:{node.lineno} {node.value.id}.{node.attr}")
    assert loads == []


def test_the_reading_commands_take_trust_and_policy_from_gate_config_too(attested, tmp_path: Path) -> None:
    """`gate verify`, `gate policy explain` and `gate log audit` read the same configuration as the deciding ones."""
    model, trust = attested
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "name": "configured-policy", "tiers": [{"name": "only"}]}))
    config = tmp_path / "gate.yaml"
    config.write_text(f"trust: {trust}\npolicy: {policy}\n")
    env = {"GATE_CONFIG": str(config)}
    verified = run_gate("verify", str(model), env=env)
    assert verified.returncode == 0 and "VALID" in verified.stdout, verified.stderr
    explained = run_gate("policy", "explain", env=env)
    assert explained.returncode == 0 and "configured-policy" in explained.stdout
    missing = run_gate("verify", str(model), env={"GATE_CONFIG": "", "GATE_TRUST": ""})
    assert missing.returncode == 2 and "gate verify needs --trust FILE" in missing.stderr
    audit = run_gate("log", "audit", "--log", str(tmp_path / "none.db"), env={"GATE_CONFIG": "", "GATE_TRUST": ""})
    assert audit.returncode == 2 and "gate log audit needs --trust FILE" in audit.stderr
