"""Red-team cases against the gate's own files: duplicate YAML keys, YAML bombs, and trust that goes stale.

Configuration must be unambiguous (a duplicated key is exit 2 naming file, line and key), bounded (a bomb is refused
quickly, as exit 2), and follow the files in a long-running process (a revocation applies to the next decision).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tiergate.errors import ConfigError, GateError
from open_findings import known, params
from redteam_kit import Case, Expect, Lab, Outcome, RT_POLICY, billion_laughs, check_outcome, dumps, words

DUPLICATE = ("duplicate", "twice", "more than once")
CONFIG = Expect(2, words(DUPLICATE))


def _trust_text(lab: Lab, evaluator_lines: str) -> Outcome:
    """A trust store whose first evaluator is written by hand (to duplicate a key), the rest as usual."""
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_bio", {"acc": 0.26})
    pem = lab.signers["evalco"].key.public.to_pem().decode()
    pem_block = "\n".join("          " + line for line in pem.strip().splitlines())
    text = "version: 1\nevaluators:\n" + evaluator_lines.replace("PEM", "|\n" + pem_block)
    return lab.verify(model, lab.trust(text=text))


_EVALCO = """\
  - id: evalco
    organization: EvalCo
{extra}    kind: third_party
    keys:
      - pem: PEM
{keyextra}"""


def _trust_dup(extra: str = "", keyextra: str = "", tail: str = ""):
    return lambda lab: _trust_text(lab, _EVALCO.format(extra=extra, keyextra=keyextra) + tail)


def _trust_raw(text: str):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        lab.attest(model, "evalco", "wmdp_bio", {"acc": 0.26})
        return lab.verify(model, lab.trust(text=text))
    return run


def _policy_dup(text: str):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        return lab.check(model, "internal", lab.trust(), lab.write("dup-policy.yaml", text))
    return run


def _policy_with(old: str, new: str) -> str:
    assert old in RT_POLICY
    return RT_POLICY.replace(old, new, 1)


YAML_DUP_CASES = [
    Case("yaml-trust-duplicate-kind", "duplicate-keys", _trust_dup(extra="    kind: developer\n"),
         Expect(2, words(DUPLICATE, "kind", "line"))),
    Case("yaml-trust-duplicate-organization", "duplicate-keys", _trust_dup(extra="    organization: Acme AI\n"),
         Expect(2, words(DUPLICATE, "organization"))),
    Case("yaml-trust-duplicate-id", "duplicate-keys", _trust_dup(extra="    id: aisi\n"),
         Expect(2, words(DUPLICATE, "id"))),
    Case("yaml-trust-duplicate-scope", "duplicate-keys",
         _trust_dup(extra="    scope: [capability]\n    scope: [cbrn, cyber, misuse, capability]\n"),
         Expect(2, words(DUPLICATE, "scope"))),
    Case("yaml-trust-duplicate-compromised", "duplicate-keys",
         _trust_dup(keyextra="        revoked_at: 2026-01-01T00:00:00Z\n        compromised: true\n"
                             "        compromised: false\n"),
         Expect(2, words(DUPLICATE, "compromised"))),
    Case("yaml-trust-duplicate-revoked-at", "duplicate-keys",
         _trust_dup(keyextra="        revoked_at: 2026-01-01T00:00:00Z\n        revoked_at: 2027-01-01T00:00:00Z\n"),
         Expect(2, words(DUPLICATE, "revoked_at"))),
    Case("yaml-trust-duplicate-keys-list", "duplicate-keys",
         _trust_dup(keyextra="    keys:\n      - pem: PEM\n        valid_until: 2026-01-01T00:00:00Z\n"),
         Expect(2, words(DUPLICATE, "keys"))),
    Case("yaml-trust-duplicate-evaluators", "duplicate-keys",
         _trust_dup(tail="evaluators:\n  - id: x\n    organization: X\n    kind: developer\n    keys:\n"
                        "      - pem: PEM\n"),
         Expect(2, words(DUPLICATE, "evaluators"))),
    Case("yaml-trust-duplicate-version", "duplicate-keys", _trust_dup(tail="version: 1\n"),
         Expect(2, words(DUPLICATE, "version"))),
    Case("yaml-policy-duplicate-threshold", "duplicate-keys",
         _policy_dup(_policy_with('threshold: 0.30}', 'threshold: 0.30, threshold: 0.99}')),
         Expect(2, words(DUPLICATE, "threshold"))),
    Case("yaml-policy-duplicate-comparator", "duplicate-keys",
         _policy_dup(_policy_with('comparator: "<=", threshold: 0.10}',
                                  'comparator: "<=", threshold: 0.10, comparator: ">="}')),
         Expect(2, words(DUPLICATE, "comparator"))),
    Case("yaml-policy-duplicate-tier-name", "duplicate-keys",
         _policy_dup(_policy_with("  - name: bio\n", "  - name: bio\n    name: open\n")),
         Expect(2, words(DUPLICATE, "name"))),
    Case("yaml-policy-duplicate-requires", "duplicate-keys",
         _policy_dup(_policy_with("      formats: {allow: [safetensors, gguf]}\n",
                                  "      formats: {allow: [safetensors, gguf]}\n    requires: {}\n")),
         Expect(2, words(DUPLICATE, "requires"))),
    Case("yaml-policy-duplicate-tiers", "duplicate-keys",
         _policy_dup(RT_POLICY + "tiers:\n  - name: internal\n"), Expect(2, words(DUPLICATE, "tiers"))),
    Case("yaml-policy-duplicate-alias-target", "duplicate-keys",
         _policy_dup(RT_POLICY + "targets:\n  mlflow:\n    aliases: {production: bio, production: internal}\n"),
         Expect(2, words(DUPLICATE, "production"))),
    Case("yaml-policy-python-tag", "duplicate-keys",
         _policy_dup("!!python/object/apply:os.system ['echo pwned']\n"), Expect(2, words(("yaml", "tag")))),
    Case("yaml-policy-not-a-mapping", "duplicate-keys", _policy_dup("- 1\n- 2\n"), Expect(2)),
    # Found by the long fuzz run (docs/testing.md): JSON is YAML, and a JSON escape can hold a lone surrogate.
    Case("yaml-trust-pem-lone-surrogate", "hostile-file", _trust_raw(
        '{"version": 1, "evaluators": [{"id": "a", "organization": "A", "kind": "third_party",'
        ' "keys": [{"pem": "\\ud800"}]}]}'), Expect(2, words(("pem", "surrogate", "utf-8", "not valid")))),
]


@pytest.mark.parametrize("field", ["trust", "policy", "log"])
def test_yaml_config_duplicate_setting(lab: Lab, field: str) -> None:
    """Case ids config-duplicate-{trust,policy,log}: the gate config (GATE_CONFIG) is unambiguous too."""
    from tiergate.runtime import GateConfig

    path = lab.write("gate.yaml", f"{field}: a.yaml\n{field}: b.yaml\n")
    with pytest.raises(ConfigError) as info:
        GateConfig.from_env({"GATE_CONFIG": str(path)})
    assert any(w in str(info.value).lower() for w in DUPLICATE) and field in str(info.value)


# --- YAML bombs: refused as configuration errors, never a hang ----------------------------------------------------

BOUNDED = ("alias", "anchor", "depth", "deep", "nest", "large", "bytes", "limit", "too many")


def _bomb_policy(text: str):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        return lab.gate_subprocess("check", model, "--tier", "internal", "--policy", lab.write("bomb.yaml", text),
                                   "-q", timeout=20)
    return run


def _bomb_trust(text: str):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        return lab.gate_subprocess("check", model, "--tier", "internal", "--trust", lab.write("bomb.yaml", text),
                                   "-q", timeout=20)
    return run


def _bomb_validate(text: str):
    return lambda lab: lab.gate_subprocess("policy", "validate", lab.write("bomb.yaml", text), timeout=20)


def _deep(depth: int, kind: str = "[") -> str:
    if kind == "[":
        return "x: " + "[" * depth + "]" * depth + "\n"
    return "x: " + "{a: " * depth + "1" + "}" * depth + "\n"


def _block_deep(depth: int) -> str:
    return "".join(" " * i + "a:\n" for i in range(depth)) + " " * depth + "b: 1\n"


def _trust_bomb(lab: Lab) -> str:
    """A trust store whose key's pem is the bomb (the reader turns the value into text)."""
    return ("version: 1\nevaluators:\n  - id: evalco\n    organization: EvalCo\n    kind: third_party\n"
            "    keys:\n      - pem: " + billion_laughs() + "\n")


def _bomb_trust_of(make):
    def run(lab: Lab) -> Outcome:
        return _bomb_trust(make(lab))(lab)
    return run


POLICY_BOMB = RT_POLICY.replace("name: redteam", "name: " + billion_laughs())
POLICY_BOMB_VERSION = RT_POLICY.replace("version: 1", "version: " + billion_laughs())
TRUST_BOMB_VERSION = "version: " + billion_laughs() + "\nevaluators: []\n"

BOMB_CASES = [
    Case("bomb-policy-billion-laughs-name", "yaml-bomb", _bomb_policy(POLICY_BOMB), Expect(2, words(BOUNDED))),
    Case("bomb-policy-billion-laughs-version", "yaml-bomb", _bomb_policy(POLICY_BOMB_VERSION),
         Expect(2, words(BOUNDED))),
    Case("bomb-trust-billion-laughs-version", "yaml-bomb", _bomb_trust(TRUST_BOMB_VERSION), Expect(2, words(BOUNDED))),
    Case("bomb-trust-billion-laughs-pem", "yaml-bomb", _bomb_trust_of(_trust_bomb), Expect(2, words(BOUNDED))),
    Case("bomb-policy-validate-billion-laughs", "yaml-bomb", _bomb_validate(POLICY_BOMB), Expect(2, words(BOUNDED))),
    Case("bomb-policy-deep-flow-sequence", "yaml-bomb", _bomb_policy(_deep(100_000)), Expect(2, words(BOUNDED))),
    Case("bomb-trust-deep-flow-sequence", "yaml-bomb", _bomb_trust(_deep(100_000)), Expect(2, words(BOUNDED))),
    Case("bomb-policy-deep-flow-mapping", "yaml-bomb", _bomb_policy(_deep(20_000, "{")), Expect(2, words(BOUNDED))),
    Case("bomb-trust-deep-block-mapping", "yaml-bomb", _bomb_trust(_block_deep(1_500)), Expect(2, words(BOUNDED))),
    Case("bomb-policy-over-size-limit", "yaml-bomb", _bomb_policy("# " + "x" * (5 * 1024 * 1024) + "\nversion: 1\n"),
         Expect(2, words(BOUNDED))),
]


def test_yaml_config_bomb_is_refused(lab: Lab) -> None:
    """Case id config-billion-laughs: the gate config goes through the same bounded reader (a child process, so a
    regression shows as a bounded failure instead of a hung suite)."""
    import subprocess
    import sys

    path = lab.write("gate.yaml", "timeout: " + billion_laughs() + "\n")
    code = ("from tiergate.runtime import GateConfig\nfrom tiergate.errors import ConfigError\n"
            f"try:\n    GateConfig.from_env({{'GATE_CONFIG': {str(path)!r}}})\nexcept ConfigError as e:\n"
            "    print('ConfigError', e)\n")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the gate config reader did not finish within 20 s on a 1 KB alias bomb")
    assert done.stdout.startswith("ConfigError") and any(w in done.stdout.lower() for w in BOUNDED), done


CASES = YAML_DUP_CASES + BOMB_CASES


@pytest.mark.parametrize("case", params(CASES))
def test_attack(lab: Lab, case: Case) -> None:
    check_outcome(case, case.run(lab))


# --- stale trust: a long-running gate follows its files (issue 9, finding 9) --------------------------------------


def _loaded_gate(lab: Lab, trust: Path, policy: Path | None = None):
    from tiergate.runtime import Gate, GateConfig

    return Gate.load(GateConfig(policy=policy or lab.policy_path, trust=trust))


def _decide(gate, model: Path):
    from tiergate.core.collect import model_attestations
    from tiergate.core.manifest import hash_model
    from redteam_kit import NOW

    return gate.decide("bio", hash_model(model), model_attestations(model), now=NOW)


def _decision_or_error(gate, model: Path) -> str:
    """'allow', 'deny', or 'error' (a GateError raised: the integrations turn it into a deny)."""
    try:
        return _decide(gate, model).decision
    except GateError:
        return "error"


def _bio_model(lab: Lab) -> Path:
    model = lab.model()
    lab.attest(model, "biolab", "wmdp_bio", {"acc": 0.2})
    return model


def _revoked_entry(lab: Lab) -> list[dict]:
    entry = lab.signers["biolab"].trust_entry()
    entry["keys"][0].update(revoked_at="2026-01-01T00:00:00Z", compromised=True)
    return [entry]


@known("stale-trust-compromised-in-place")
def test_stale_trust_revocation_applies_to_next_decision(lab: Lab) -> None:
    """stale-trust-compromised-in-place: the trust file is rewritten in place to revoke the key."""
    model = _bio_model(lab)
    trust = lab.trust(lab.entries("biolab"))
    gate = _loaded_gate(lab, trust)
    assert _decide(gate, model).decision == "allow"
    trust.write_text(dumps({"version": 1, "evaluators": _revoked_entry(lab)}))
    assert _decision_or_error(gate, model) != "allow"


@known("stale-trust-key-file")
def test_stale_trust_key_file_replaced(lab: Lab) -> None:
    """stale-trust-key-file: the trust store names the key by path; the key file is swapped for another key."""
    model = _bio_model(lab)
    pub = lab.write("biolab.pub", lab.signers["biolab"].key.public.to_pem())
    entry = lab.signers["biolab"].trust_entry()
    entry["keys"] = [{"path": str(pub)}]
    gate = _loaded_gate(lab, lab.trust([entry]))
    assert _decide(gate, model).decision == "allow"
    pub.write_bytes(lab.stranger.public.to_pem())
    assert _decision_or_error(gate, model) != "allow"


@known("stale-trust-symlink")
def test_stale_trust_symlink_repointed(lab: Lab) -> None:
    """stale-trust-symlink: GATE_TRUST is a link re-pointed to a new version (the usual atomic deploy)."""
    model = _bio_model(lab)
    good = lab.trust(lab.entries("biolab"), name="trust-v1.yaml")
    revoked = lab.trust(text=dumps({"version": 1, "evaluators": _revoked_entry(lab)}), name="trust-v2.yaml")
    link = lab.path("trust.yaml")
    link.symlink_to(good)
    gate = _loaded_gate(lab, link)
    assert _decide(gate, model).decision == "allow"
    tmp = lab.path("trust.yaml.new")
    tmp.symlink_to(revoked)
    os.replace(tmp, link)
    assert _decision_or_error(gate, model) != "allow"


@known("stale-trust-broken-recovers")
def test_stale_trust_broken_then_fixed_recovers(lab: Lab) -> None:
    """stale-trust-broken-recovers: a broken new version denies; fixing it recovers without a restart."""
    model = _bio_model(lab)
    trust = lab.trust(lab.entries("biolab"))
    good = trust.read_text()
    gate = _loaded_gate(lab, trust)
    assert _decide(gate, model).decision == "allow"
    trust.write_text("version: 1\nevaluators: [\n")
    assert _decision_or_error(gate, model) != "allow"
    trust.unlink()
    assert _decision_or_error(gate, model) != "allow"
    trust.write_text(good)
    assert _decide(gate, model).decision == "allow"


@known("stale-trust-policy")
def test_stale_trust_policy_tightened(lab: Lab) -> None:
    """stale-trust-policy: the policy file changes (threshold tightened); the next decision uses it."""
    model = _bio_model(lab)
    policy = lab.write("live-policy.yaml", RT_POLICY)
    gate = _loaded_gate(lab, lab.trust(lab.entries("biolab")), policy)
    assert _decide(gate, model).decision == "allow"
    policy.write_text(RT_POLICY.replace("threshold: 0.30", "threshold: 0.10"))
    assert _decision_or_error(gate, model) != "allow"


@known("stale-trust-digest")
def test_stale_trust_decision_names_current_trust_digest(lab: Lab) -> None:
    """stale-trust-digest: decisions name the digest of the trust store they were judged against."""
    import hashlib

    model = _bio_model(lab)
    trust = lab.trust(lab.entries("biolab", "evalco"))
    gate = _loaded_gate(lab, trust)
    _decide(gate, model)
    trust.write_text(dumps({"version": 1, "evaluators": lab.entries("biolab")}))
    decision = _decide(gate, model)
    assert decision.trust_digest == "sha256:" + hashlib.sha256(trust.read_bytes()).hexdigest()
