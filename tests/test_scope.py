"""Scope is what was measured: an attestation's risk domain comes from its benchmark (the policy's catalogue), never
from the signer's label; one key is listed once in the trust store; metric aliases are judged by their worst value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from support import NOW, World, run_gate
from tiergate.core.attestation import Evaluation, EvaluatorRef
from tiergate.core.decision import decide
from tiergate.core.manifest import Manifest
from tiergate.core.policy import Policy
from tiergate.core.signing import attest_evaluation
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import ConfigError, VerificationError

WHEN = NOW - timedelta(days=1)


def signed(world: World, manifest: Manifest, evaluator: str, benchmark: str, metrics: dict[str, float],
           risk_domain: str | None, sample_size: int = 5000) -> AttestationInput:
    """An attestation carrying exactly ``risk_domain`` as its label (None: no label), validly signed."""
    evaluation = Evaluation(name=benchmark, benchmark=benchmark, risk_domain=risk_domain, metrics=metrics,
                            sample_size=sample_size, evaluated_at=WHEN)
    envelope = attest_evaluation(manifest, "tiny", evaluation, EvaluatorRef(evaluator),
                                 [world.evaluators[evaluator].key], WHEN)
    return AttestationInput(f"{evaluator}-{benchmark}-{risk_domain}.json", envelope.to_json())


def rejection(item: AttestationInput, trust: TrustStore, manifest: Manifest, policy: Policy | None = None) -> str:
    with pytest.raises(VerificationError) as caught:
        verify_attestation(item, trust, manifest, NOW, catalogue=policy.benchmarks if policy else None)
    return str(caught.value)


@pytest.fixture
def capability_only(world: World) -> World:
    world.evaluators["evalco"].scope = ["capability"]
    return world


# --- the finding: a capability-only evaluator met bio and misuse requirements ---------------------------------


@pytest.mark.parametrize("label", ["capability", None])
def test_capability_only_evaluator_meets_no_bio_or_misuse_requirement(capability_only: World, manifest: Manifest,
                                                                      label: str | None) -> None:
    policy = Policy.load()
    items = [
        signed(capability_only, manifest, "evalco", "wmdp_bio", {"acc": 0.26}, label, 1273),
        signed(capability_only, manifest, "evalco", "strongreject", {"score": 0.01}, label, 313),
    ]
    decision = decide(policy, "open", manifest, items, capability_only.trust(), NOW)
    rows = {r.id: r for r in decision.requirements}
    for rid in ("wmdp-bio-open", "wmdp-bio-reported", "strongreject-hosted", "strongreject-open"):
        assert not rows[rid].met, (rid, rows[rid].reason)
    assert len(decision.rejected) == 2
    reasons = " | ".join(r.reason for r in decision.rejected)
    if label:
        assert "riskDomain capability contradicts benchmark 'wmdp_bio', which measures cbrn" in reasons
        assert "riskDomain capability contradicts benchmark 'strongreject', which measures misuse" in reasons
    else:
        assert ("not trusted for risk domain cbrn, which benchmark 'wmdp_bio' measures (its scope: capability)"
                in reasons)


def test_the_domain_is_the_benchmarks_and_scope_admits_it(world: World, manifest: Manifest) -> None:
    world.evaluators["aisi"].scope = ["cbrn"]
    verified = verify_attestation(signed(world, manifest, "aisi", "WMDP_Bio", {"acc": 0.26}, None), world.trust(),
                                  manifest, NOW)
    assert verified.evaluation is not None and verified.evaluation.risk_domain == "cbrn"
    assert [s.evaluator_id for s in verified.signers] == ["aisi"]


def test_unknown_benchmark_has_no_domain(world: World, manifest: Manifest) -> None:
    world.evaluators["evalco"].scope = ["capability", "cbrn", "misuse"]
    reason = rejection(signed(world, manifest, "evalco", "my_bio_suite", {"acc": 0.2}, None), world.trust(), manifest)
    assert "'my_bio_suite' is not in the policy's benchmark catalogue" in reason
    # A label cannot give it one, not even for an evaluator trusted for everything.
    reason = rejection(signed(world, manifest, "aisi", "my_bio_suite", {"acc": 0.2}, "cbrn"), world.trust(), manifest)
    assert reason.startswith("riskDomain cbrn cannot be confirmed: benchmark 'my_bio_suite' is not in")


def test_a_co_signer_out_of_scope_does_not_count(world: World, manifest: Manifest) -> None:
    world.evaluators["evalco"].scope = ["capability"]
    evaluation = Evaluation(name="wmdp_bio", benchmark="wmdp_bio", risk_domain=None, metrics={"acc": 0.26},
                            sample_size=1273, evaluated_at=WHEN)
    keys = [world.evaluators[e].key for e in ("aisi", "evalco")]
    item = AttestationInput("co.json", attest_evaluation(manifest, "tiny", evaluation, EvaluatorRef("aisi"), keys,
                                                         WHEN).to_json())
    verified = verify_attestation(item, world.trust(), manifest, NOW)
    assert [s.evaluator_id for s in verified.signers] == ["aisi"]


# --- the policy's catalogue -----------------------------------------------------------------------------------


def write_policy(tmp: Path, benchmarks: list[dict], requirement: dict) -> Path:
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "benchmarks": benchmarks, "tiers": [
        {"name": "internal"}, {"name": "hosted", "requires": {"evaluations": [requirement]}}]}))
    return path


BIO_SUITE = {"name": "my_bio_suite", "risk_domain": "cbrn", "source": "in-house, 2026"}
REQ = {"id": "bio", "benchmark": "my_bio_suite", "metric": "acc", "comparator": "<=", "threshold": 0.3}


def test_a_policy_extends_the_catalogue(world: World, manifest: Manifest, tmp_path: Path) -> None:
    world.evaluators["aisi"].scope = ["cbrn"]
    policy = Policy.load(write_policy(tmp_path, [BIO_SUITE], REQ))
    assert policy.benchmarks.domain_of("my_bio_suite") == "cbrn"
    assert policy.benchmarks.domain_of("wmdp_bio") == "cbrn"  # the built-in entries stay
    item = signed(world, manifest, "aisi", "my_bio_suite", {"acc": 0.2}, "cbrn")
    assert decide(policy, "hosted", manifest, [item], world.trust(), NOW).decision == "allow"
    # Judged with a catalogue that lacks it (gate verify without --policy), it is refused, not guessed.
    assert "cannot be confirmed" in rejection(item, world.trust(), manifest)


@pytest.mark.parametrize(("benchmarks", "requirement", "message"), [
    ([{"name": "wmdp_bio", "risk_domain": "capability"}], {**REQ, "benchmark": "wmdp_bio"},
     "benchmark 'wmdp_bio' measures cbrn in the built-in catalogue"),
    ([{"name": "bio2", "aliases": ["WMDP_BIO"], "risk_domain": "misuse"}], {**REQ, "benchmark": "wmdp_bio"},
     "measures cbrn in the built-in catalogue"),
    ([], REQ, "'my_bio_suite' is not in the benchmark catalogue"),
    ([BIO_SUITE], {**REQ, "risk_domain": "capability"}, "'capability', but benchmark 'my_bio_suite' measures cbrn"),
    ([BIO_SUITE, {"name": "My_Bio_Suite", "risk_domain": "cbrn"}], REQ, "listed twice"),
    ([{"name": "x", "risk_domain": "weather"}], REQ, "benchmarks[0].risk_domain"),
    ([{"name": "x", "risk_domain": "cbrn", "domain": "cbrn"}], REQ, "benchmarks[0].domain: unknown field"),
])
def test_catalogue_mistakes_are_configuration_errors(tmp_path: Path, benchmarks, requirement, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Policy.load(write_policy(tmp_path, benchmarks, requirement))


def test_the_default_policy_carries_the_catalogue_with_sources() -> None:
    catalogue = Policy.load().benchmarks
    assert catalogue.benchmarks and all(b.source for b in catalogue.benchmarks)
    assert catalogue.domain_of("strong_reject") == "misuse" and catalogue.domain_of("wmdp_chemistry") == "cbrn"


# --- gate attest ---------------------------------------------------------------------------------------------


def test_attest_refuses_a_domain_the_benchmark_does_not_measure(world: World, model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "evalco.key").write_bytes(world.evaluators["evalco"].key.to_pem())
    out = tmp_path / "out.json"
    base = ["attest", str(model_dir), "--key", str(tmp_path / "evalco.key"), "--evaluator", "evalco",
            "--metric", "acc=0.26", "--sample-size", "1273", "-o", str(out)]
    result = run_gate(*base, "--eval", "wmdp_bio", "--risk-domain", "capability")
    assert result.returncode == 2 and not out.exists(), result.stderr
    assert "--risk-domain capability: benchmark 'wmdp_bio' measures risk domain cbrn" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # The right domain, or none, signs; the statement carries the measured domain.
    result = run_gate(*base, "--eval", "wmdp_bio")
    assert result.returncode == 0 and '"riskDomain": "cbrn"' in _statement(out), result.stderr


def _statement(path: Path) -> str:
    import base64
    import json

    return json.dumps(json.loads(base64.b64decode(json.loads(path.read_text())["payload"])))


# --- one key, one entry --------------------------------------------------------------------------------------


@pytest.mark.parametrize("second_owner", ["evalco", "aisi"])
def test_a_key_listed_twice_is_a_configuration_error(world: World, manifest: Manifest, model_dir: Path,
                                                     second_owner: str) -> None:
    data = world.trust_dict()
    evalco = next(e for e in data["evaluators"] if e["id"] == "evalco")
    copy = {**evalco["keys"][0], "revoked_at": "2026-01-01T00:00:00Z", "compromised": True}
    next(e for e in data["evaluators"] if e["id"] == second_owner)["keys"].append(copy)
    path = world.tmp / "trust-dup.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    key_id = world.evaluators["evalco"].key.key_id
    with pytest.raises(ConfigError) as caught:
        TrustStore.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line ") and key_id in message and "is already listed at line " in message
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    (model_dir / ".attestations").mkdir()
    (model_dir / ".attestations" / "sr.json").write_bytes(item.data)
    result = run_gate("verify", str(model_dir), "--trust", str(path))
    assert result.returncode == 2 and "VALID" not in result.stdout and key_id in result.stderr


# --- aliases of one metric -----------------------------------------------------------------------------------


def test_metric_aliases_are_judged_by_their_worst_value(world: World, manifest: Manifest) -> None:
    item = world.attest(manifest, "aisi", "wmdp_bio", {"acc": 0.2, "accuracy": 0.9}, sample_size=1273)
    decision = decide(Policy.load(), "open", manifest, [item], world.trust(), NOW)
    row = next(r for r in decision.requirements if r.id == "wmdp-bio-open")
    assert not row.met and "acc = 0.9" in row.reason


def test_a_key_object_listed_twice_in_memory_is_refused_too(world: World) -> None:
    from tiergate.core.trust import Evaluator, TrustedKey

    key = TrustedKey(world.evaluators["evalco"].key.public)
    with pytest.raises(ConfigError, match="is already listed \\(evaluator e\\)"):
        TrustStore((Evaluator("e", "E", "third_party", (key, key)),))
