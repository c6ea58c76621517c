"""The command line as a user meets it: exit codes 0/1/2, one-line errors, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import World, run_gate, write_model


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


@pytest.fixture
def setup(tmp_path: Path, world: World):
    model = write_model(tmp_path / "tiny")
    for name in ("evalco", "aisi"):
        key = world.evaluators[name].key
        (tmp_path / f"{name}.key").write_bytes(key.to_pem())
    return model, world.trust_path(), tmp_path


def test_help_lists_commands_without_importing_integrations() -> None:
    code = ("import sys; from tiergate.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "assert 'mlflow' not in sys.modules and 'huggingface_hub' not in sys.modules, 'heavy import'\n"
            "assert 'requests' not in sys.modules, 'requests imported at start-up'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "attest" in result.stdout and "check" in result.stdout


def test_hash_does_not_import_heavy_packages(model_dir: Path) -> None:
    code = ("import sys; from tiergate.cli import main\n"
            f"try: main(['hash', {str(model_dir)!r}])\nexcept SystemExit as e: assert e.code in (0, None)\n"
            "assert not {'mlflow', 'huggingface_hub', 'requests', 'yaml'} & set(sys.modules), 'heavy import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sha256:")


def test_keygen_attest_verify_check_round_trip(setup) -> None:
    model, trust, tmp = setup
    out = tmp / "sr.json"
    result = run_gate("attest", str(model), "--key", str(tmp / "evalco.key"), "--evaluator", "evalco",
                      "--eval", "strongreject", "--metric", "score=0.04", "--sample-size", "400", "-o", str(out))
    assert result.returncode == 0, result.stderr
    result = run_gate("verify", str(model), str(out), "--trust", str(trust), "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)["attestations"][0]
    assert row["valid"] and row["evaluator"] == "evalco" and row["metrics"] == {"score": 0.04}
    # Default output lands in the model's .attestations folder, which `check` reads by itself.
    result = run_gate("attest", str(model), "--key", str(tmp / "aisi.key"), "--evaluator", "aisi",
                      "--eval", "wmdp_bio", "--metric", "acc=0.26", "--sample-size", "1273")
    assert result.returncode == 0 and (model / ".attestations" / "aisi-wmdp_bio.intoto.json").exists()
    result = run_gate("check", str(model), str(out), "--tier", "hosted", "--trust", str(trust))
    assert result.returncode == 1, result.stdout
    assert "strongreject-hosted" in result.stdout and "met" in result.stdout
    assert "harmbench-hosted" in result.stderr  # the one-paragraph summary names what is missing


def test_keygen_writes_private_key_0600(tmp_path: Path) -> None:
    result = run_gate("keygen", "gatekey", "--algorithm", "ecdsa-p256", cwd=tmp_path)
    assert result.returncode == 0 and len(result.stdout.strip()) == 64
    assert (tmp_path / "gatekey.key").stat().st_mode & 0o777 == 0o600
    again = run_gate("keygen", "gatekey", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_verify_reports_invalid_with_reason_and_exit_1(setup) -> None:
    model, trust, tmp = setup
    bad = tmp / "bad.json"
    bad.write_text("{not json")
    result = run_gate("verify", str(model), str(bad), "--trust", str(trust))
    assert result.returncode == 1 and "INVALID" in result.stdout and "malformed JSON" in result.stdout
    assert_clean(result)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["check", "{model}", "--tier", "public"], 2, "unknown tier 'public'"),
        (["check", "{model}", "--tier", "open", "--trust", "{tmp}/nope.yaml"], 2, "trust store not found"),
        (["check", "{model}", "--tier", "open", "--policy", "{tmp}/bad-policy.yaml"], 2, "bad-policy.yaml"),
        (["check", "{model}", "--tier", "open", "--now", "tomorrow"], 2, "--now"),
        (["hash", "{tmp}/missing"], 2, "does not exist"),
        (["attest", "{model}", "--key", "{tmp}/evalco.key", "--evaluator", "evalco", "--eval", "x",
          "--metric", "score=abc"], 2, "'abc' is not a number"),
        (["attest", "{model}", "--key", "{tmp}/evalco.key", "--evaluator", "evalco", "--eval", "mystery",
          "--metric", "score=1"], 2, "is not in the benchmark catalogue"),
        (["attest", "{model}", "--key", "{tmp}/missing.key", "--evaluator", "e", "--eval", "x"], 2, "missing.key"),
        (["policy", "validate", "{tmp}/bad-policy.yaml"], 2, "tiers[0] (a).extends: unknown tier 'b'"),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_bad_input_gets_one_line_and_the_right_exit_code(setup, args, code, words) -> None:
    model, _trust, tmp = setup
    (tmp / "bad-policy.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": [{"name": "a", "extends": "b"}]}))
    result = run_gate(*[a.format(model=model, tmp=tmp) for a in args])
    assert result.returncode == code, (result.stdout, result.stderr)
    assert words in result.stderr, result.stderr
    assert_clean(result)


def test_symlink_escaping_the_model_is_refused(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    (tmp_path / "secret").write_text("x")
    (model / "link.safetensors").symlink_to(tmp_path / "secret")
    result = run_gate("hash", str(model))
    assert result.returncode == 1 and "points outside the model directory" in result.stderr
    assert_clean(result)


def test_check_json_is_replayable_with_now(setup, world: World) -> None:
    model, trust, _tmp = setup
    args = ["check", str(model), "--tier", "gated", "--trust", str(trust), "--json", "--now", "2026-11-01T12:00:00Z"]
    first, second = run_gate(*args), run_gate(*args)
    assert first.returncode == 1 and first.stdout == second.stdout
    assert json.loads(first.stdout)["time"] == "2026-11-01T12:00:00Z"


def test_vsa_round_trip(setup, tmp_path: Path) -> None:
    model, trust, tmp = setup
    assert run_gate("keygen", str(tmp / "gate")).returncode == 0
    vsa = tmp / "vsa.json"
    result = run_gate("check", str(model), "--tier", "internal", "--trust", str(trust), "--vsa", str(vsa),
                      "--gate-key", str(tmp / "gate.key"))
    assert result.returncode == 0, result.stderr
    digest = run_gate("hash", str(model)).stdout.strip()
    ok = run_gate("verify-vsa", str(vsa), "--key", str(tmp / "gate.pub"), "--digest", digest, "--tier", "internal")
    assert ok.returncode == 0 and "PASSED" in ok.stdout, ok.stderr
    # Tiers are cumulative: a summary for 'hosted' evidence also vouches for 'internal'.
    assert "verified levels: TIERGATE_TIER_INTERNAL;" in ok.stdout
    wrong_tier = run_gate("verify-vsa", str(vsa), "--key", str(tmp / "gate.pub"), "--tier", "open")
    assert wrong_tier.returncode == 1 and "not among its verified levels" in wrong_tier.stderr
    assert run_gate("keygen", str(tmp / "other")).returncode == 0
    forged = run_gate("verify-vsa", str(vsa), "--key", str(tmp / "other.pub"))
    assert forged.returncode == 1 and "bad signature" in forged.stderr
    assert_clean(forged)


def test_markdown_summary_is_appended(setup) -> None:
    model, trust, tmp = setup
    summary = tmp / "summary.md"
    summary.write_text("# earlier step\n")
    result = run_gate("check", str(model), "--tier", "hosted", "--trust", str(trust),
                      "--markdown-summary", str(summary))
    assert result.returncode == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "| :x: not met | `strongreject-hosted`" in text


def test_policy_explain_speaks_plainly() -> None:
    result = run_gate("policy", "explain", "--tier", "gated")
    assert result.returncode == 0
    assert "Includes everything 'hosted' requires." in result.stdout
    assert "independent of the model developer" in result.stdout


LM_EVAL = Path(__file__).parent / "evidence" / "data" / "lm_eval" / "results_2025-03-14T09-41-27.512843.json"
INSPECT_HEADER = Path(__file__).parent / "evidence" / "data" / "inspect" / "wmdp_bio.header.json"


def test_attest_from_lm_eval_signs_the_log_digest(setup) -> None:
    import hashlib

    model, _trust, tmp = setup
    several = run_gate("attest", str(model), "--key", str(tmp / "aisi.key"), "--evaluator", "aisi",
                       "--from-lm-eval", str(LM_EVAL))
    assert several.returncode == 2 and "choose one with --task" in several.stderr
    out = tmp / "bio.json"
    result = run_gate("attest", str(model), "--key", str(tmp / "aisi.key"), "--evaluator", "aisi",
                      "--from-lm-eval", str(LM_EVAL), "--task", "wmdp_bio", "-o", str(out))
    assert result.returncode == 0, result.stderr
    from tiergate.core.dsse import Envelope

    predicate = json.loads(Envelope.from_json(out.read_bytes()).payload)["predicate"]
    assert predicate["evidence"]["digest"]["sha256"] == hashlib.sha256(LM_EVAL.read_bytes()).hexdigest()
    assert predicate["evaluation"]["riskDomain"] == "cbrn" and predicate["results"]["sampleSize"] == 1273
    assert predicate["evaluation"]["harness"]["name"] == "lm-evaluation-harness"


def test_attest_refuses_an_incomplete_lm_eval_run(setup) -> None:
    model, _trust, tmp = setup
    data = json.loads(LM_EVAL.read_text())
    data["config"]["limit"] = 100
    partial = tmp / "results_partial.json"
    partial.write_text(json.dumps(data))
    result = run_gate("attest", str(model), "--key", str(tmp / "aisi.key"), "--evaluator", "aisi",
                      "--from-lm-eval", str(partial), "--task", "wmdp_bio")
    assert result.returncode == 1 and "limit" in result.stderr
    assert not (model / ".attestations").exists()
    assert_clean(result)


def test_attest_from_inspect_json_log(setup) -> None:
    model, trust, tmp = setup
    header = json.loads(INSPECT_HEADER.read_text())
    log = tmp / "wmdp.json"
    log.write_text(json.dumps({**header, "samples": []}))
    result = run_gate("attest", str(model), "--key", str(tmp / "aisi.key"), "--evaluator", "aisi",
                      "--from-inspect", str(log), "-o", str(tmp / "i.json"))
    assert result.returncode == 0, result.stderr
    verified = run_gate("verify", str(model), str(tmp / "i.json"), "--trust", str(trust), "--json")
    assert json.loads(verified.stdout)["attestations"][0]["evaluation"].endswith("wmdp_bio")


def test_gate_verify_accepts_a_real_model_signing_signature(tmp_path: Path) -> None:
    """A directory signed with model-signing (EC P-256) passes `gate verify`; its defect 4 does not."""
    from helpers_models import ms_sign, ms_verify, write_ec_keypair

    model = write_model(tmp_path / "signed")
    private, public = write_ec_keypair(tmp_path)
    trust = tmp_path / "trust.yaml"
    trust.write_text(yaml.safe_dump({"version": 1, "evaluators": [
        {"id": "lab", "organization": "Lab", "kind": "developer", "keys": [{"path": str(public)}]}]}))
    signature = tmp_path / "model.sig"
    ms_sign(model, signature, private, ignore_paths=["extras"])
    ok = run_gate("verify", str(model), str(signature), "--trust", str(trust))
    assert ok.returncode == 0 and "VALID" in ok.stdout and "OMS signature" in ok.stdout, ok.stdout + ok.stderr
    # model-signing 1.1.1 still verifies with an unsigned pickle under the ignored path; the gate does not.
    (model / "extras").mkdir()
    (model / "extras" / "evil.pkl").write_bytes(b"\x80\x04cos\nsystem\n.")
    ms_verify(model, signature, public)
    bad = run_gate("verify", str(model), str(signature), "--trust", str(trust))
    assert bad.returncode == 1 and "extras/evil.pkl" in bad.stdout, bad.stdout
    assert_clean(bad)


def test_attest_from_log_refuses_manual_facts(setup) -> None:
    model, _trust, tmp = setup
    result = run_gate("attest", str(model), "--key", str(tmp / "aisi.key"), "--evaluator", "aisi",
                      "--from-lm-eval", str(LM_EVAL), "--task", "wmdp_bio", "--sample-size", "99999")
    assert result.returncode == 2
    assert "--sample-size cannot be combined with --from-inspect/--from-lm-eval" in result.stderr


def test_policy_explain_cites_requirement_sources(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "tiers": [{"name": "internal"}, {"name": "open", "requires": {
        "evaluations": [{"id": "sr", "benchmark": "strongreject", "metric": "score", "comparator": "<=",
                         "threshold": 0.05, "source": "Souly et al. 2024"}]}}]}))
    result = run_gate("policy", "explain", str(policy))
    assert result.returncode == 0 and "Source: Souly et al. 2024." in result.stdout
