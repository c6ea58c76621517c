"""The first hour: `gate init` writes a configuration that works as written; `gate trust add` edits it safely."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tiergate.core.trust import TrustStore
from support import run_gate, write_model


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    result = run_gate("init", str(tmp_path / "conf"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "conf"


def test_init_writes_a_configuration_every_command_accepts(configured: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in configured.iterdir()) == ["gate.key", "gate.pub", "gate.yaml", "policy.yaml",
                                                           "trust.yaml"]
    assert configured.joinpath("gate.key").stat().st_mode & 0o077 == 0
    assert "#" in configured.joinpath("trust.yaml").read_text()
    env = {"GATE_CONFIG": str(configured / "gate.yaml")}
    model = write_model(tmp_path / "model")
    allowed = run_gate("check", str(model), "--tier", "internal", env=env)
    assert allowed.returncode == 0, allowed.stderr
    denied = run_gate("check", str(model), "--tier", "hosted", env=env)
    assert denied.returncode == 1, denied.stderr
    assert run_gate("policy", "validate", str(configured / "policy.yaml")).returncode == 0


def test_init_never_overwrites(configured: Path) -> None:
    before = configured.joinpath("trust.yaml").read_bytes()
    again = run_gate("init", str(configured))
    assert again.returncode == 2 and "already exist" in again.stderr
    assert configured.joinpath("trust.yaml").read_bytes() == before


def _evaluator_key(tmp_path: Path, name: str) -> Path:
    assert run_gate("keygen", str(tmp_path / name)).returncode == 0
    return tmp_path / f"{name}.pub"


def test_trust_add_appends_an_evaluator_and_keeps_the_comments(configured: Path, tmp_path: Path) -> None:
    trust = configured / "trust.yaml"
    pub = _evaluator_key(tmp_path, "aisi")
    result = run_gate("trust", "add", str(trust), "--id", "uk-aisi", "--organization", "UK AI Security Institute",
                      "--kind", "government", "--pub", str(pub), "--scope", "cbrn", "--scope", "cyber",
                      "--valid-from", "2026-01-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    second = _evaluator_key(tmp_path, "lab")
    assert run_gate("trust", "add", str(trust), "--id", "lab", "--organization", "A \"quoted\": lab",
                    "--kind", "developer", "--pub", str(second)).returncode == 0
    text = trust.read_text()
    assert text.startswith("# tiergate trust store")
    store = TrustStore.load(trust)
    aisi, lab = store.evaluators
    assert (aisi.id, aisi.kind, aisi.scope, lab.organization) == ("uk-aisi", "government",
                                                                   frozenset({"cbrn", "cyber"}), 'A "quoted": lab')
    assert aisi.keys[0].valid_from is not None


@pytest.mark.parametrize(("change", "words"), [
    (["--id", "uk-aisi"], "already listed"),           # the same evaluator again
    (["--id", "other", "--same-key"], "already listed for evaluator"),  # one key, two evaluators
    (["--id", "x", "--valid-from", "yesterday"], "--valid-from"),
])
def test_trust_add_refuses_mistakes_and_changes_nothing(configured: Path, tmp_path: Path, change: list[str],
                                                        words: str) -> None:
    trust = configured / "trust.yaml"
    pub = _evaluator_key(tmp_path, "aisi")
    base = ["trust", "add", str(trust), "--organization", "O", "--kind", "government"]
    assert run_gate(*base, "--id", "uk-aisi", "--pub", str(pub)).returncode == 0
    before = trust.read_bytes()
    key = pub if "--same-key" in change else _evaluator_key(tmp_path, "fresh")
    args = [a for a in change if a != "--same-key"]
    result = run_gate(*base, *args, "--pub", str(key))
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert trust.read_bytes() == before


def test_trust_add_refuses_a_store_it_cannot_append_to(tmp_path: Path) -> None:
    trust = tmp_path / "trust.yaml"
    trust.write_text("evaluators: []  # none yet\nversion: 1\n")
    add = ["trust", "add", str(trust), "--organization", "O", "--kind", "government"]
    first = run_gate(*add, "--id", "a", "--pub", str(_evaluator_key(tmp_path, "a")))
    assert first.returncode == 0, first.stderr  # an empty flow list is replaced wherever it stands
    assert TrustStore.load(trust).evaluators[0].id == "a" and "# none yet" in trust.read_text()
    before = trust.read_bytes()
    second = run_gate(*add, "--id", "b", "--pub", str(_evaluator_key(tmp_path, "b")))
    assert second.returncode == 2 and "last setting" in second.stderr, second.stderr
    assert trust.read_bytes() == before


def test_trust_add_takes_sigstore_and_x509_identities(configured: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from helpers_pki import make_ca

    trust = configured / "trust.yaml"
    added = run_gate("trust", "add", str(trust), "--id", "ibm", "--organization", "IBM", "--kind", "developer",
                     "--sigstore-issuer", "https://sigstore.verify.ibm.com/oauth2",
                     "--sigstore-identity-pattern", r"[a-z]+@us\.ibm\.com")
    assert added.returncode == 0 and "Sigstore identity /[a-z]+@us\\.ibm\\.com/" in added.stderr, added.stderr
    root = tmp_path / "pki" / "root.pem"
    root.parent.mkdir()
    root.write_bytes(make_ca("P-256").root.public_bytes(serialization.Encoding.PEM))
    added = run_gate("trust", "add", str(trust), "--id", "evalco", "--organization", "EvalCo", "--kind",
                     "third_party", "--x509-root", str(root), "--x509-san", "signer@evalco.example",
                     "--valid-until", "2027-01-01T00:00:00Z")
    assert added.returncode == 0, added.stderr
    ibm, evalco = TrustStore.load(trust).evaluators
    assert ibm.keys[0].key_id.startswith("sigstore:") and evalco.keys[0].key_id.startswith("x509:")
    assert root.resolve() in {p.resolve() for p in TrustStore.load(trust).files}  # written relative to trust.yaml
    before = trust.read_bytes()
    for wrong in (["--sigstore-identity", "x"], ["--pub", str(root), "--x509-root", str(root)],
                  ["--sigstore-issuer", "https://i", "--sigstore-identity", "a", "--sigstore-identity-pattern", "b"]):
        refused = run_gate("trust", "add", str(trust), "--id", "new", "--organization", "O", "--kind", "developer",
                           *wrong)
        assert refused.returncode == 2, refused.stderr
    assert trust.read_bytes() == before


def test_init_names_next_steps_that_run_where_it_was_run(tmp_path: Path) -> None:
    # `gate init conf` in a folder: the trust store to add to is conf/trust.yaml, not a trust.yaml beside you.
    (tmp_path / "my conf").mkdir()
    result = run_gate("init", "my conf/gate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    add = next(line.split("gate trust add ", 1)[1] for line in result.stderr.splitlines() if "gate trust add" in line)
    assert add.startswith("'my conf/gate/trust.yaml' --id"), add
    export = next(line for line in result.stderr.splitlines() if "export GATE_CONFIG=" in line)
    assert export.endswith("GATE_CONFIG=" + shlex.quote(str((tmp_path / "my conf" / "gate" / "gate.yaml").resolve())))
