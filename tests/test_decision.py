"""The decision: every requirement kind met and unmet, inheritance, signers, freshness, revocation, modes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from content_samples import safetensors_bytes, torch_zip_bytes
from support import NOW, World, write_model
from tiergate.core.decision import decide
from tiergate.core.manifest import hash_model
from tiergate.core.policy import Policy

POLICY = {
    "version": 1,
    "name": "unit",
    "tiers": [
        {"name": "internal"},
        {"name": "hosted", "requires": {"max_age": "30d", "signers": {"min_organizations": 1}, "evaluations": [
            {"id": "sr", "benchmark": "strongreject", "metric": "score", "comparator": "<=", "threshold": 0.10,
             "min_samples": 300},
            {"id": "wmdp-reported", "benchmark": "wmdp_bio", "metric": "acc", "comparator": "reported"},
        ]}},
        {"name": "gated", "requires": {"signers": {"min_organizations": 2, "min_independent": 1,
                                                   "kinds": ["third_party"]}}},
        {"name": "open", "requires": {"signers": {"kinds": ["government"]}, "formats": {"allow": ["safetensors"]},
                                      "evaluations": [
            {"id": "attacks", "benchmark": "tamper_resistance", "metric": "attacks", "comparator": ">=",
             "threshold": 28},
            {"id": "post-attack", "benchmark": "tamper_resistance", "metric": "acc", "comparator": "<",
             "threshold": 0.35},
            {"id": "mft", "benchmark": "malicious_finetuning", "metric": "reaches_high", "comparator": "==",
             "threshold": 0},
            {"id": "mmlu", "benchmark": "mmlu", "metric": "acc", "comparator": ">", "threshold": 0.5},
        ]}},
    ],
}


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    return Policy.load(path)


def rows(decision) -> dict[str, object]:
    return {r.id: r for r in decision.requirements}


def hosted_evidence(world: World, manifest, evaluator: str = "evalco", **kw):
    return [
        world.attest(manifest, evaluator, "strongreject", {"score": 0.05}, sample_size=313, **kw),
        world.attest(manifest, evaluator, "wmdp_bio", {"acc": 0.26}, sample_size=1273, **kw),
    ]


def full_evidence(world: World, manifest):
    return hosted_evidence(world, manifest) + [
        world.attest(manifest, "redteam", "tamper_resistance", {"attacks": 28, "acc": 0.30}, risk_domain="tamper"),
        world.attest(manifest, "aisi", "malicious_finetuning", {"reaches_high": 0}, risk_domain="tamper"),
        world.attest(manifest, "aisi", "mmlu", {"acc": 0.7}),
    ]


def test_no_attestations_allows_internal_and_lists_everything_missing_above(policy, manifest, world) -> None:
    trust = world.trust()
    assert decide(policy, "internal", manifest, [], trust, NOW).decision == "allow"
    denied = decide(policy, "open", manifest, [], trust, NOW)
    assert denied.decision == "deny" and denied.satisfied_tier == "internal"
    missing = {r.id for r in denied.missing}
    assert {"sr", "wmdp-reported", "attacks", "post-attack", "mft", "mmlu", "signers.organizations",
            "signers.independent", "signers.kind.third_party", "signers.kind.government"} <= missing
    assert "formats" not in " ".join(missing)  # safetensors only: that requirement is met
    assert "sr: no valid attestation reports strongreject score <= 0.1" in denied.summary()


def test_full_evidence_allows_open(policy, manifest, world) -> None:
    decision = decide(policy, "open", manifest, full_evidence(world, manifest), world.trust(), NOW)
    assert decision.decision == "allow", decision.summary()
    assert decision.satisfied_tier == "open"
    assert all(r.evidence for r in decision.requirements if r.id in {"sr", "attacks", "mft"})


@pytest.mark.parametrize(
    ("benchmark", "metrics", "req", "extra"),
    [
        ("strongreject", {"score": 0.11}, "sr", {}),  # <= unmet
        ("tamper_resistance", {"attacks": 27, "acc": 0.30}, "attacks", {"risk_domain": "tamper"}),  # >= unmet
        ("tamper_resistance", {"attacks": 28, "acc": 0.35}, "post-attack", {"risk_domain": "tamper"}),  # < unmet: edge
        ("malicious_finetuning", {"reaches_high": 1}, "mft", {"risk_domain": "tamper"}),  # == unmet
        ("mmlu", {"acc": 0.5}, "mmlu", {}),  # > unmet at the edge
    ],
)
def test_each_comparator_unmet(policy, manifest, world, benchmark, metrics, req, extra) -> None:
    evidence = [a for a in full_evidence(world, manifest) if benchmark not in a.source]
    evidence.append(world.attest(manifest, "aisi", benchmark, metrics, **extra))
    decision = decide(policy, "open", manifest, evidence, world.trust(), NOW)
    assert decision.decision == "deny"
    assert [r.id for r in decision.missing] == [req], decision.summary()


def test_reported_requirement_needs_the_metric(policy, manifest, world) -> None:
    evidence = [world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, sample_size=313),
                world.attest(manifest, "evalco", "wmdp_bio", {"accuracy_other": 0.26})]
    decision = decide(policy, "hosted", manifest, evidence, world.trust(), NOW)
    assert [r.id for r in decision.missing] == ["wmdp-reported"]


def test_min_sample_size(policy, manifest, world) -> None:
    evidence = [world.attest(manifest, "evalco", "strongreject", {"score": 0.01}, sample_size=299),
                world.attest(manifest, "evalco", "wmdp_bio", {"acc": 0.26})]
    row = rows(decide(policy, "hosted", manifest, evidence, world.trust(), NOW))["sr"]
    assert row.status == "not_met" and "has sample size 299, below the 300 required" in row.reason


def test_worst_result_counts_when_several_attest(policy, manifest, world) -> None:
    evidence = hosted_evidence(world, manifest) + [
        world.attest(manifest, "redteam", "strongreject", {"score": 0.20}, sample_size=400)]
    row = rows(decide(policy, "hosted", manifest, evidence, world.trust(), NOW))["sr"]
    assert row.status == "not_met" and "0.2 (worst of 2)" in row.reason
    assert len(row.evidence) == 2


def test_two_keys_of_one_organization_count_once(policy, manifest, world) -> None:
    evidence = (hosted_evidence(world, manifest, "evalco")
                + hosted_evidence(world, manifest, "evalco-2", when=NOW - timedelta(days=2)))
    decision = decide(policy, "gated", manifest, evidence, world.trust(), NOW)
    row = rows(decision)["signers.organizations"]
    assert row.status == "not_met" and "1 organization(s): EvalCo" in row.reason
    evidence.append(world.attest(manifest, "redteam", "strongreject", {"score": 0.01}, sample_size=500))
    assert decide(policy, "gated", manifest, evidence, world.trust(), NOW).decision == "allow"


def test_developer_organization_is_not_independent(policy, manifest, world) -> None:
    # Two organizations, but the "third party" belongs to the developer: neither independence nor kind is met.
    evidence = hosted_evidence(world, manifest, "acme-shadow") + [
        world.attest(manifest, "acme-internal", "strongreject", {"score": 0.0}, sample_size=500)]
    decision = decide(policy, "gated", manifest, evidence, world.trust(), NOW)
    assert {r.id for r in decision.missing} == {"signers.organizations", "signers.independent",
                                                "signers.kind.third_party"}
    assert rows(decision)["signers.independent"].reason == "independent: none"


def test_freshness_one_second_too_old_denies(policy, manifest, world) -> None:
    edge = NOW - timedelta(days=30)
    ok = hosted_evidence(world, manifest, when=edge)
    assert decide(policy, "hosted", manifest, ok, world.trust(), NOW).decision == "allow"
    stale = hosted_evidence(world, manifest, when=edge - timedelta(seconds=1))
    decision = decide(policy, "hosted", manifest, stale, world.trust(), NOW)
    assert decision.decision == "deny"
    assert "not counted:" in rows(decision)["sr"].reason and "older than 30d" in rows(decision)["sr"].reason
    assert "max_age" not in rows(decision)


def test_old_attestation_beside_fresh_evidence_does_not_deny(policy, manifest, world) -> None:
    evidence = hosted_evidence(world, manifest) + [
        world.attest(manifest, "redteam", "mmlu", {"acc": 0.9}, when=NOW - timedelta(days=365))]
    assert decide(policy, "hosted", manifest, evidence, world.trust(), NOW).decision == "allow"


def test_key_revoked_after_signing_keeps_old_signatures(policy, manifest, world) -> None:
    # Only a time the entry accepts dates a signature: by default nothing but a trusted time does (the log, Rekor) ...
    world.evaluators["evalco"].key_fields = {"revoked_at": "2026-10-20T00:00:00Z"}
    before = hosted_evidence(world, manifest, when=NOW - timedelta(days=20))  # signed 2026-10-12, it says
    judged_now = decide(policy, "hosted", manifest, before, world.trust(), NOW)
    assert judged_now.decision == "deny" and all("(the gate's clock)" in r.reason for r in judged_now.rejected)
    # ... and where the entry explicitly takes the signer's word, signatures claimed before revoked_at stay valid.
    world.evaluators["evalco"].key_fields = {"revoked_at": "2026-10-20T00:00:00Z", "self_reported_time": True}
    assert decide(policy, "hosted", manifest, before, world.trust(), NOW).decision == "allow"
    after = hosted_evidence(world, manifest, when=NOW - timedelta(days=5))  # signed 2026-10-27
    decision = decide(policy, "hosted", manifest, after, world.trust(), NOW)
    assert decision.decision == "deny"
    assert all("revoked at 2026-10-20T00:00:00Z, before the signing time" in r.reason for r in decision.rejected)


def test_compromised_key_invalidates_everything(policy, manifest, world) -> None:
    world.evaluators["evalco"].key_fields = {"revoked_at": "2026-10-20T00:00:00Z", "compromised": True}
    before = hosted_evidence(world, manifest, when=NOW - timedelta(days=20))
    decision = decide(policy, "hosted", manifest, before, world.trust(), NOW)
    assert decision.decision == "deny" and "compromised" in decision.rejected[0].reason


def test_rejected_attestation_counts_as_absent_and_is_listed(policy, manifest, world, tmp_path) -> None:
    evidence = hosted_evidence(world, manifest)
    other = hash_model(write_model(tmp_path / "other"))
    evidence[0] = world.attest(other, "evalco", "strongreject", {"score": 0.05}, sample_size=313)
    decision = decide(policy, "hosted", manifest, evidence, world.trust(), NOW)
    assert decision.decision == "deny" and [r.id for r in decision.missing] == ["sr"]
    assert "subject mismatch" in decision.rejected[0].reason


def test_format_requirement_refuses_pickle(policy, world, tmp_path) -> None:
    model = hash_model(write_model(tmp_path / "m", {"model.safetensors": safetensors_bytes(),
                                                    "extra/pytorch_model.bin": torch_zip_bytes()}))
    decision = decide(policy, "open", model, full_evidence(world, model), world.trust(), NOW)
    assert [r.id for r in decision.missing] == ["formats"]
    assert "extra/pytorch_model.bin" in decision.missing[0].reason


def test_warn_mode_reports_but_allows(tmp_path, manifest, world) -> None:
    data = yaml.safe_load(yaml.safe_dump(POLICY))
    data["tiers"][1]["mode"] = "warn"
    path = tmp_path / "warn.yaml"
    path.write_text(yaml.safe_dump(data))
    decision = decide(Policy.load(path), "hosted", manifest, [], world.trust(), NOW)
    assert decision.decision == "deny" and decision.mode == "warn" and decision.allowed
    data["mode"] = "warn"
    del data["tiers"][1]["mode"]
    path.write_text(yaml.safe_dump(data))
    assert decide(Policy.load(path), "open", manifest, [], world.trust(), NOW).allowed


def test_decision_json_is_byte_identical_for_same_inputs(policy, manifest, world) -> None:
    evidence = hosted_evidence(world, manifest)
    a = decide(policy, "gated", manifest, evidence, world.trust(), NOW).to_json()
    b = decide(policy, "gated", manifest, list(reversed(evidence)), world.trust(), NOW).to_json()
    assert a == b
    data = json.loads(a)
    assert set(data) >= {"decision", "requested_tier", "satisfied_tier", "model_digest", "policy", "trust",
                         "requirements", "rejected_attestations", "time"}


def test_decision_by_digest_only_cannot_prove_formats(policy, manifest, world) -> None:
    decision = decide(policy, "open", manifest.root_digest, full_evidence(world, manifest), world.trust(), NOW)
    assert [r.id for r in decision.missing] == ["formats"]


def test_decision_names_the_trust_store_it_used(policy, manifest, world) -> None:
    from tiergate.core.trust import TrustStore

    store = TrustStore.load(world.trust_path())
    data = json.loads(decide(policy, "internal", manifest, [], store, NOW).to_json())
    assert data["trust"]["source"].endswith("trust.yaml") and data["trust"]["digest"].startswith("sha256:")


def test_small_samples_ignored_are_mentioned(policy, manifest, world) -> None:
    evidence = hosted_evidence(world, manifest) + [
        world.attest(manifest, "redteam", "strongreject", {"score": 0.9}, sample_size=10)]
    row = rows(decide(policy, "hosted", manifest, evidence, world.trust(), NOW))["sr"]
    assert row.status == "met" and "1 attestation(s) not counted" in row.reason and "sample size 10" in row.reason


def test_with_conditions_must_hold_in_the_same_attestation(tmp_path, manifest, world) -> None:
    """The TAR score counts only from an attestation whose own attack suite is large enough."""
    data = {"version": 1, "tiers": [{"name": "internal"}, {"name": "open", "requires": {"evaluations": [
        {"id": "tar", "benchmark": "tamper_resistance", "metric": "acc", "comparator": "<=", "threshold": 0.35,
         "with": [{"metric": "attacks", "comparator": ">=", "threshold": 28}]}]}}]}
    path = tmp_path / "with.yaml"
    path.write_text(yaml.safe_dump(data))
    policy = Policy.load(path)
    # A good score from a small suite and a big suite without a score do not add up to evidence.
    split = [world.attest(manifest, "redteam", "tamper_resistance", {"acc": 0.2, "attacks": 3}, risk_domain="tamper"),
             world.attest(manifest, "aisi", "tamper_resistance", {"attacks": 40, "other": 1.0}, risk_domain="tamper")]
    row = rows(decide(policy, "open", manifest, split, world.trust(), NOW))["tar"]
    assert row.status == "not_met" and "has attacks = 3 (needs attacks >= 28)" in row.reason
    together = [world.attest(manifest, "redteam", "tamper_resistance", {"acc": 0.3, "attacks": 28},
                             risk_domain="tamper")]
    assert decide(policy, "open", manifest, together, world.trust(), NOW).decision == "allow"


def test_default_policy_reads_inspect_and_lm_eval_metric_names(manifest, world) -> None:
    """UK AISI's Inspect writes `accuracy` and `strong_reject`; lm-evaluation-harness writes `acc`."""
    policy = Policy.load()
    evidence = [world.attest(manifest, "aisi", "wmdp_bio", {"accuracy": 0.26}, sample_size=1273),
                world.attest(manifest, "aisi", "wmdp_chem", {"acc": 0.27}, sample_size=408),
                world.attest(manifest, "evalco", "strong_reject", {"score": 0.2}, sample_size=313)]
    result = rows(decide(policy, "hosted", manifest, evidence, world.trust(), NOW))
    assert result["wmdp-bio-reported"].status == "met" and result["wmdp-chem-reported"].status == "met"
    assert result["strongreject-hosted"].status == "not_met" and "score = 0.2" in result["strongreject-hosted"].reason


def test_decision_pins_file_names_beside_the_content_digest(policy, world, tmp_path) -> None:
    """Renaming model.pkl to model.safetensors keeps the OMS digest; the decision's files_digest tells them apart."""
    pickle = hash_model(write_model(tmp_path / "a", {"model.pkl": b"weights"}))
    renamed = hash_model(write_model(tmp_path / "b", {"model.safetensors": b"weights"}))
    assert pickle.digest == renamed.digest
    a = decide(policy, "internal", pickle, [], world.trust(), NOW)
    b = decide(policy, "internal", renamed, [], world.trust(), NOW)
    assert a.model_digest == b.model_digest and a.files_digest != b.files_digest
    assert decide(policy, "internal", pickle.root_digest, [], world.trust(), NOW).files_digest is None
