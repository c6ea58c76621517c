"""Red-team cases against the evidence: scope bypass, revocation, duplicate/ambiguous JSON, hostile attestations.

Each case crafts its attack in a fresh lab and runs the real `gate` command line; the expected answer is the one
issue 9 requires (exit code, the words of the reason, the decision's rows), never what the gate happened to say.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from open_findings import params
from redteam_kit import Case, Expect, Lab, Outcome, b64, check_outcome, deep_json, key_file, words

SCOPE = ("risk domain", "riskdomain", "scope")


# --- scope: an attestation's risk domain is what its benchmark measures, never the signer's label --------------


def _verify_one(lab: Lab, evaluator: str, benchmark: str, metrics: dict[str, float], **kw: Any) -> Outcome:
    model = lab.model()
    lab.attest(model, evaluator, benchmark, metrics, **kw)
    return lab.verify(model, lab.trust())


def _check_one(lab: Lab, tier: str, evaluator: str, benchmark: str, metrics: dict[str, float], **kw: Any) -> Outcome:
    model = lab.model()
    lab.attest(model, evaluator, benchmark, metrics, **kw)
    return lab.check(model, tier, lab.trust())


def _mislabel(bench: str, metrics: dict[str, float], domain: str = "capability", who: str = "capco"):
    return lambda lab: _verify_one(lab, who, bench, metrics, risk_domain=domain)


def _cosigned(lab: Lab, named: str, others: list[str], bench: str, metrics: dict[str, float]) -> Outcome:
    model = lab.model()
    statement = lab.statement(model, named, bench, metrics)
    lab.put(model, "co.json", lab.envelope(statement, [named, *others]))
    return lab.verify(model, lab.trust())


def _test_result_scoped(lab: Lab) -> Outcome:
    model = lab.model()
    lab.put(model, "tr.json", lab.envelope(lab.test_result(model, "wmdp_bio"), ["capco"]))
    return lab.verify(model, lab.trust())


def _unknown_bench_scoped(lab: Lab) -> Outcome:
    policy = lab.write("cap-policy.yaml", """\
version: 1
tiers:
  - name: internal
  - name: capable
    requires:
      evaluations:
        - {id: any-capability, risk_domain: capability, metric: score, comparator: reported}
""")
    model = lab.model()
    lab.attest(model, "capco", "my_private_bench", {"score": 0.1}, risk_domain="capability")
    return lab.check(model, "capable", lab.trust(), policy)


def _catalogue_policy(lab: Lab, name: str, domain: str, aliases: list[str] | None = None) -> Outcome:
    """A policy whose benchmark catalogue re-scopes a built-in benchmark (directly or through an alias)."""
    entry = f"  - name: {name}\n    risk_domain: {domain}\n" + (f"    aliases: {aliases}\n" if aliases else "")
    policy = lab.write("catalogue.yaml", "version: 1\nbenchmarks:\n" + entry + "tiers:\n  - name: internal\n")
    return lab.gate("policy", "validate", policy)


def _unknown_requirement_policy(lab: Lab) -> Outcome:
    policy = lab.write("unknown.yaml", "version: 1\ntiers:\n  - name: internal\n  - name: x\n    requires:\n"
                                       "      evaluations:\n        - {id: u, benchmark: nobody_knows, metric: s,"
                                       " comparator: reported}\n")
    return lab.gate("policy", "validate", policy)


def _attest_cli(bench: str, domain: str | None, eval_name: str | None = None):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        out = lab.path("out.json")
        args = ["attest", model, "--key", key_file(lab, "evalco"), "--evaluator", "evalco",
                "--eval", eval_name or bench, "--metric", "acc=0.26", "--sample-size", "2000", "-o", out, "-q"]
        if eval_name:
            args += ["--benchmark", bench]
        if domain:
            args += ["--risk-domain", domain]
        outcome = lab.gate(*args)
        if outcome.code != 0:
            assert not out.exists(), "a refused attestation must not be written"
        return outcome
    return run


SCOPE_CASES = [
    Case("scope-wmdp-bio-as-capability", "scope", _mislabel("wmdp_bio", {"acc": 0.26}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-wmdp-chem-as-capability", "scope", _mislabel("wmdp_chem", {"acc": 0.26}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-wmdp-cyber-as-capability", "scope", _mislabel("wmdp_cyber", {"acc": 0.26}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-strongreject-as-capability", "scope", _mislabel("strongreject", {"score": 0.01}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-strong_reject-as-capability", "scope", _mislabel("strong_reject", {"score": 0.01}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-harmbench-as-capability", "scope", _mislabel("harmbench", {"asr": 0.01}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-uppercase-benchmark-as-capability", "scope", _mislabel("WMDP_BIO", {"acc": 0.26}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-tamper-as-capability", "scope", _mislabel("tamper_resistance", {"post_attack_wmdp_acc": 0.2}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-wmdp-bio-no-domain-by-capability-signer", "scope", _mislabel("wmdp_bio", {"acc": 0.26}, None),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-wmdp-bio-true-domain-outside-scope", "scope", _mislabel("wmdp_bio", {"acc": 0.26}, "cbrn"),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-unscoped-signer-mislabels-wmdp-bio", "scope", _mislabel("wmdp_bio", {"acc": 0.26}, who="evalco"),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-cbrn-signer-labels-mmlu-cbrn", "scope", _mislabel("mmlu", {"drop_vs_base": 0.0}, "cbrn", "biolab"),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-test-result-by-scoped-signer", "scope", _test_result_scoped,
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-cosigner-outside-scope-named", "scope",
         lambda lab: _cosigned(lab, "capco", ["evalco"], "wmdp_bio", {"acc": 0.26}),
         Expect(1, words(SCOPE), rejected=1, accepted=0)),
    Case("scope-mislabel-meets-bio-tier", "scope",
         lambda lab: _check_one(lab, "bio", "capco", "wmdp_bio", {"acc": 0.26}, risk_domain="capability"),
         Expect(1, words(SCOPE), rows={"wmdp-bio": "not_met"}, rejected=1)),
    Case("scope-mislabel-meets-refusal-tier", "scope",
         lambda lab: _check_one(lab, "refusal", "capco", "strongreject", {"score": 0.0}, risk_domain="capability"),
         Expect(1, words(SCOPE), rows={"strongreject": "not_met"}, rejected=1)),
    Case("scope-unknown-benchmark-has-no-domain", "scope", _unknown_bench_scoped,
         Expect(1, rows={"any-capability": "not_met"})),
    Case("scope-attest-refuses-wmdp-bio-as-capability", "scope", _attest_cli("wmdp_bio", "capability"),
         Expect(2, words(SCOPE, "wmdp_bio"))),
    Case("scope-attest-refuses-strongreject-as-capability", "scope", _attest_cli("strongreject", "capability"),
         Expect(2, words(SCOPE, "strongreject"))),
    Case("scope-attest-refuses-benchmark-option-mislabel", "scope", _attest_cli("wmdp_bio", "capability", "custom"),
         Expect(2, words(SCOPE, "wmdp_bio"))),
    Case("scope-attest-refuses-unknown-benchmark", "scope", _attest_cli("my_private_bench", None),
         Expect(2, words("my_private_bench", ("catalogue", "not one", "unknown", "does not know")))),
    Case("scope-policy-reassigns-wmdp-bio-domain", "scope",
         lambda lab: _catalogue_policy(lab, "wmdp_bio", "capability"),
         Expect(2, words("wmdp_bio", ("cbrn", "domain")))),
    Case("scope-policy-alias-steals-wmdp-bio", "scope",
         lambda lab: _catalogue_policy(lab, "my_bench", "capability", aliases=["WMDP_BIO"]),
         Expect(2, words(("wmdp_bio", "WMDP_BIO")))),
    Case("scope-policy-requires-unknown-benchmark", "scope", _unknown_requirement_policy,
         Expect(2, words("nobody_knows"))),
    # Controls: honest scoped work still counts (a fix must not turn into a deny-all).
    Case("scope-control-capability-signer-mmlu", "false-deny", _mislabel("mmlu", {"drop_vs_base": 0.01}),
         Expect(0, accepted=1, rejected=0)),
    Case("scope-control-cbrn-signer-wmdp-bio", "false-deny",
         lambda lab: _check_one(lab, "bio", "biolab", "wmdp_bio", {"acc": 0.26}),
         Expect(0, rows={"wmdp-bio": "met"}, rejected=0)),
    Case("scope-control-attest-mmlu-capability", "false-deny", _attest_cli("mmlu", "capability"), Expect(0)),
    Case("scope-control-unscoped-cosigner-named", "false-deny",
         lambda lab: _cosigned(lab, "evalco", ["capco"], "wmdp_bio", {"acc": 0.26}),
         Expect(0, accepted=1, rejected=0)),
]


# --- revocation and keys listed twice -----------------------------------------------------------------------------

COMPROMISED = {"revoked_at": "2026-01-01T00:00:00Z", "compromised": True}
DUPLICATE = ("duplicate", "twice", "more than once", "listed")


def _dup_key_trust(lab: Lab, second: dict[str, Any], first: dict[str, Any] | None = None) -> Outcome:
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_bio", {"acc": 0.26})
    entry = lab.signers["evalco"].trust_entry()
    pem = entry["keys"][0]["pem"]
    entry["keys"] = [{"pem": pem, **(first or {})}, {"pem": pem, **second}]
    return lab.verify(model, lab.trust([entry, *lab.entries("aisi")]))


def _dup_key_pem_and_path(lab: Lab) -> Outcome:
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_bio", {"acc": 0.26})
    pub = lab.write("evalco.pub", lab.signers["evalco"].key.public.to_pem())
    entry = lab.signers["evalco"].trust_entry()
    entry["keys"].append({"path": str(pub), **COMPROMISED})
    return lab.verify(model, lab.trust([entry]))


def _dup_key_reformatted_pem(lab: Lab) -> Outcome:
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_bio", {"acc": 0.26})
    entry = lab.signers["evalco"].trust_entry()
    pem = entry["keys"][0]["pem"]
    entry["keys"].append({"pem": "\n\n" + pem.replace("\n", "\r\n"), **COMPROMISED})
    return lab.verify(model, lab.trust([entry]))


def _key_two_evaluators(lab: Lab) -> Outcome:
    model = lab.model()
    lab.attest(model, "evalco", "wmdp_bio", {"acc": 0.26})
    twin = lab.signers["evalco"].trust_entry()
    twin.update(id="evalco-twin", kind="government")
    return lab.verify(model, lab.trust([lab.signers["evalco"].trust_entry(), twin]))


def _revoked(fields: dict[str, Any], **sign: Any):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        lab.attest(model, "evalco", "wmdp_bio", {"acc": 0.26}, **sign)
        entry = lab.signers["evalco"].trust_entry()
        entry["keys"][0].update(fields)
        return lab.verify(model, lab.trust([entry]))
    return run


def _compromised_cosigner_counts(lab: Lab) -> Outcome:
    model = lab.model()
    lab.put(model, "co.json", lab.envelope(lab.statement(model, "evalco", "wmdp_bio", {"acc": 0.2}),
                                           ["evalco", "redteam"]))
    redteam = lab.signers["redteam"].trust_entry()
    redteam["keys"][0].update(COMPROMISED)
    return lab.check(model, "two-orgs", lab.trust([lab.signers["evalco"].trust_entry(), redteam]))


def _stranger_claims_trusted_keyid(lab: Lab) -> Outcome:
    model = lab.model()
    data = json.loads(lab.envelope(lab.statement(model, "evalco", "wmdp_bio", {"acc": 0.2}), [lab.stranger]))
    data["signatures"][0]["keyid"] = lab.signers["evalco"].key.key_id
    lab.put(model, "forged.json", json.dumps(data).encode())
    return lab.verify(model, lab.trust())


REVOCATION_CASES = [
    Case("revocation-same-key-twice-second-compromised", "revocation",
         lambda lab: _dup_key_trust(lab, COMPROMISED), Expect(2, words(DUPLICATE, "trust.yaml"))),
    Case("revocation-same-key-twice-first-compromised", "revocation",
         lambda lab: _dup_key_trust(lab, {}, COMPROMISED), Expect(2, words(DUPLICATE, "trust.yaml"))),
    Case("revocation-same-key-twice-second-retired", "revocation",
         lambda lab: _dup_key_trust(lab, {"revoked_at": "2026-02-01T00:00:00Z"}), Expect(2, words(DUPLICATE))),
    Case("revocation-same-key-twice-identical", "revocation", lambda lab: _dup_key_trust(lab, {}),
         Expect(2, words(DUPLICATE))),
    Case("revocation-same-key-pem-and-path", "revocation", _dup_key_pem_and_path, Expect(2, words(DUPLICATE))),
    Case("revocation-same-key-reformatted-pem", "revocation", _dup_key_reformatted_pem, Expect(2, words(DUPLICATE))),
    Case("revocation-key-under-two-evaluators", "revocation", _key_two_evaluators,
         Expect(2, words(("one evaluator", "also listed", *DUPLICATE)))),
    Case("revocation-compromised-key", "revocation", _revoked(COMPROMISED),
         Expect(1, words("compromised"), rejected=1, accepted=0)),
    Case("revocation-compromised-backdated-signature", "revocation",
         _revoked({"revoked_at": "2026-10-31T23:00:00Z", "compromised": True}),
         Expect(1, words("compromised"), rejected=1, accepted=0)),
    Case("revocation-retired-before-signing", "revocation", _revoked({"revoked_at": "2026-06-01T00:00:00Z"}),
         Expect(1, words("revoked"), rejected=1, accepted=0)),
    Case("revocation-expired-before-signing", "revocation", _revoked({"valid_until": "2026-06-01T00:00:00Z"}),
         Expect(1, words(("no longer valid", "expired")), rejected=1, accepted=0)),
    Case("revocation-not-yet-valid", "revocation", _revoked({"valid_from": "2026-11-01T00:00:00Z"}),
         Expect(1, words("not yet valid"), rejected=1, accepted=0)),
    Case("revocation-compromised-cosigner-not-counted", "revocation", _compromised_cosigner_counts,
         Expect(1, rows={"signers.organizations": "not_met", "wmdp-bio-2": "met"})),
    Case("revocation-stranger-claims-trusted-keyid", "revocation", _stranger_claims_trusted_keyid,
         Expect(1, words(("bad signature", "does not verify")), rejected=1, accepted=0)),
    # Retired after the signing time it claims: nothing the signer could not choose dates it, so by default it is
    # judged at the gate's clock (after revoked_at) -- a backdate looks exactly like this.
    Case("revocation-retired-claimed-time-only", "revocation", _revoked({"revoked_at": "2026-11-01T06:00:00Z"}),
         Expect(1, words(("revoked", "gate's clock")), rejected=1, accepted=0)),
    Case("revocation-control-retired-after-signing", "false-deny",
         _revoked({"revoked_at": "2026-11-01T06:00:00Z", "self_reported_time": True}),
         Expect(0, accepted=1, rejected=0)),
]


# --- duplicate keys, non-finite and oversized numbers, metric aliases in signed JSON -----------------------------

AMBIGUOUS = ("duplicate", "ambiguous")
NUMBER = ("finite", "number", "too large", "oversized", "digits", "ambiguous", "out of range")


def _signed_text(lab: Lab, model, text: str, name: str = "crafted.json", signers=("evalco",)) -> None:
    lab.put(model, name, lab.envelope(text.encode(), list(signers)))


def _json_text(statement: dict[str, Any]) -> str:
    return json.dumps(statement)


def _dup_in_payload(splice):
    """Sign a statement whose JSON text ``splice`` rewrites (to duplicate a key) and verify it."""
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        text = _json_text(lab.statement(model, "evalco", "wmdp_bio", {"acc": 0.26}))
        crafted = splice(text, lab, model)
        assert crafted != text, "the splice did not apply"
        _signed_text(lab, model, crafted)
        return lab.verify(model, lab.trust())
    return run


def _dup_metric(text: str, lab: Lab, model) -> str:
    return text.replace('"metrics": {"acc": 0.26}', '"metrics": {"acc": 0.26, "acc": 0.9}')


def _dup_domain(text: str, lab: Lab, model) -> str:
    return text.replace('"riskDomain": "cbrn"', '"riskDomain": "cbrn", "riskDomain": "capability"')


def _dup_predicate_type(text: str, lab: Lab, model) -> str:
    return text.replace('"predicateType": ', '"predicateType": "https://example.com/other", "predicateType": ')


def _dup_subject_digest(text: str, lab: Lab, model) -> str:
    return text.replace('"digest": {"sha256": ', '"digest": {"sha256": "' + "0" * 64 + '", "sha256": ', 1)


def _dup_predicate(text: str, lab: Lab, model) -> str:
    other = json.dumps(lab.statement(model, "evalco", "wmdp_bio", {"acc": 0.99})["predicate"])
    return text[:-1] + ', "predicate": ' + other + "}"


def _dup_evaluator(text: str, lab: Lab, model) -> str:
    return text.replace('"evaluator": {"id": "evalco"}', '"evaluator": {"id": "evalco", "id": "aisi"}')


def _number_in_payload(replacement: str):
    def splice(text: str, lab: Lab, model) -> str:
        return text.replace('"acc": 0.26', f'"acc": {replacement}')
    return _dup_in_payload(splice)


def _sample_size(replacement: str):
    def splice(text: str, lab: Lab, model) -> str:
        return text.replace('"sampleSize": 5000', f'"sampleSize": {replacement}')
    return _dup_in_payload(splice)


def _outer_duplicate(lab: Lab, where: str = "folder") -> Outcome:
    """The envelope itself with two payloads: a first-wins reader and a last-wins reader verify different things."""
    model = lab.model()
    good = json.loads(lab.envelope(lab.statement(model, "evalco", "wmdp_bio", {"acc": 0.26}), ["evalco"]))
    bad = json.loads(lab.envelope(lab.statement(model, "evalco", "wmdp_bio", {"acc": 0.99}), ["evalco"]))
    text = ('{"payload": "%s", "payloadType": "%s", "payload": "%s", "signatures": %s, "signatures": %s}'  # noqa: UP031
            % (bad["payload"], good["payloadType"], good["payload"], json.dumps(bad["signatures"]),
               json.dumps(good["signatures"])))
    if where == "argument":
        return lab.verify(model, lab.trust(), lab.write("two-payloads.json", text.encode()))
    lab.put(model, "two-payloads.json", text.encode())
    return lab.verify(model, lab.trust())


def _aliases(first: str, second: str):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        lab.attest(model, "biolab", "wmdp_bio", {first: 0.2, second: 0.9})
        return lab.check(model, "bio", lab.trust())
    return run


def _aliases_two_attestations(lab: Lab) -> Outcome:
    model = lab.model()
    lab.attest(model, "biolab", "wmdp_bio", {"acc": 0.2})
    lab.attest(model, "evalco", "wmdp_bio", {"accuracy": 0.9})
    return lab.check(model, "bio", lab.trust())


JSON_CASES = [
    Case("json-duplicate-metric-key", "duplicate-keys", _dup_in_payload(_dup_metric),
         Expect(1, words(AMBIGUOUS), rejected=1, accepted=0)),
    Case("json-duplicate-risk-domain", "duplicate-keys", _dup_in_payload(_dup_domain),
         Expect(1, words(AMBIGUOUS), rejected=1, accepted=0)),
    Case("json-duplicate-predicate-type", "duplicate-keys", _dup_in_payload(_dup_predicate_type),
         Expect(1, words(AMBIGUOUS), rejected=1, accepted=0)),
    Case("json-duplicate-subject-digest", "duplicate-keys", _dup_in_payload(_dup_subject_digest),
         Expect(1, words(AMBIGUOUS), rejected=1, accepted=0)),
    Case("json-duplicate-predicate", "duplicate-keys", _dup_in_payload(_dup_predicate),
         Expect(1, words(AMBIGUOUS), rejected=1, accepted=0)),
    Case("json-duplicate-evaluator-id", "duplicate-keys", _dup_in_payload(_dup_evaluator),
         Expect(1, words(AMBIGUOUS), rejected=1, accepted=0)),
    Case("json-duplicate-envelope-payload-folder", "duplicate-keys", _outer_duplicate, Expect(1, words(AMBIGUOUS))),
    Case("json-duplicate-envelope-payload-argument", "duplicate-keys", lambda lab: _outer_duplicate(lab, "argument"),
         Expect(1, words(AMBIGUOUS), rejected=1, accepted=0)),
    Case("json-metric-nan", "duplicate-keys", _number_in_payload("NaN"),
         Expect(1, words(NUMBER + ("nan",)), rejected=1, accepted=0)),
    Case("json-metric-infinity", "duplicate-keys", _number_in_payload("-Infinity"),
         Expect(1, words(NUMBER + ("infinity",)), rejected=1, accepted=0)),
    Case("json-metric-overflows-to-inf", "duplicate-keys", _number_in_payload("1e400"),
         Expect(1, words(NUMBER), rejected=1, accepted=0)),
    Case("json-metric-5000-digit-integer", "hostile-file", _number_in_payload("9" * 5000),
         Expect(1, words(NUMBER), rejected=1, accepted=0)),
    Case("json-metric-401-digits", "hostile-file", _number_in_payload("0." + "1" * 400),
         Expect(1, words(NUMBER), rejected=1, accepted=0)),
    Case("json-sample-size-5000-digits", "hostile-file", _sample_size("7" * 5000),
         Expect(1, words(NUMBER + ("sampleSize",)), rejected=1, accepted=0)),
    Case("json-metric-aliases-judged-by-worst", "duplicate-keys", _aliases("acc", "accuracy"),
         Expect(1, words("0.9"), rows={"wmdp-bio": "not_met"})),
    Case("json-metric-aliases-judged-by-worst-reversed", "duplicate-keys", _aliases("accuracy", "acc"),
         Expect(1, words("0.9"), rows={"wmdp-bio": "not_met"})),
    Case("json-aliases-across-attestations-worst", "duplicate-keys", _aliases_two_attestations,
         Expect(1, words("0.9"), rows={"wmdp-bio": "not_met"})),
]


# --- hostile attestations: each is rejected alone, the valid one beside it is still judged -----------------------
#
# Two places a hostile file can be. Given as an ATTESTATION argument it is judged alone: rejected with its own
# reason, the valid one still counts. Inside the model's .attestations/ folder the identity rule applies first: that
# folder is left out of the digest, so it may hold only files that parse as attestation envelopes; a file that does
# not is refused by name (exit 1), never an internal error. A well-formed envelope with a hostile signed payload is
# judged alone in both places.

JUDGED = Expect(0, rows={"wmdp-bio": "met"}, rejected=1)
NOT_AN_ENVELOPE = Expect(1, words(("only attestations", "not an attestation"), "hostile"))


def _beside_valid(make, where: str):
    """A valid bio attestation in the model, and the hostile file ``make(lab, model)`` returns (bytes) either in the
    model's .attestations/ folder or passed as an argument."""
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        lab.attest(model, "biolab", "wmdp_bio", {"acc": 0.2}, name="valid.json")
        data = make(lab, model)
        if where == "folder":
            lab.put(model, "hostile.json", data)
            return lab.check(model, "bio", lab.trust())
        return lab.check(model, "bio", lab.trust(), "rt", lab.write("hostile.json", data))
    return run


def _signed_hostile(mutate):
    """A statement signed by a trusted key whose JSON text ``mutate`` makes hostile."""
    def make(lab: Lab, model) -> bytes:
        text = _json_text(lab.statement(model, "biolab", "wmdp_bio", {"acc": 0.2}))
        return lab.envelope(mutate(text).encode(), ["biolab"])
    return make


def _time(field: str, value: str):
    return _signed_hostile(lambda text: _replace_time(text, field, value))


def _replace_time(text: str, field: str, value: str) -> str:
    data = json.loads(text)
    data["predicate"][field] = value
    return json.dumps(data)


def _outer(extra: str):
    def make(lab: Lab, model) -> bytes:
        env = lab.envelope(lab.statement(model, "biolab", "wmdp_bio", {"acc": 0.2}), ["biolab"])
        return env[:-1] + b", " + extra.encode() + b"}"
    return make


def _many_signatures(lab: Lab, model) -> bytes:
    data = json.loads(lab.envelope(lab.statement(model, "biolab", "wmdp_bio", {"acc": 0.9}), [lab.stranger]))
    data["signatures"] = data["signatures"] * 300
    return json.dumps(data).encode()


def _payload(raw: bytes, payload_type: str = "application/vnd.in-toto+json"):
    return lambda lab, model: lab.envelope(raw, ["biolab"], payload_type)


def _surrogate_evaluator(text: str) -> str:
    return text.replace('"evaluator": {"id": "biolab"}', '"evaluator": {"id": "\\ud800\\udfff\\ud800"}')


def _huge_manifest_size(text: str) -> str:
    return text.replace('"size": ', '"size": ' + "9" * 5000 + ", \"x\": ", 1)


def _jsonl(lab: Lab, model) -> bytes:
    good = lab.envelope(lab.statement(model, "biolab", "wmdp_bio", {"acc": 0.9}), [lab.stranger])
    return good + b"\n" + deep_json(50_000) + b"\n"


#: (id, hostile file, whether it is shaped like an envelope, so that the folder rule lets it through to be judged)
HOSTILE_FILES = [
    ("envelope-nested-100k", lambda lab, m: deep_json(100_000), False),
    ("payload-nested-100k", lambda lab, m: lab.envelope(deep_json(100_000), ["biolab"]), True),
    ("envelope-5000-digit-integer", _outer('"x": ' + "1" * 5000), False),
    ("signed-metric-5000-digits", _signed_hostile(lambda t: t.replace('"acc": 0.2', '"acc": ' + "9" * 5000)), True),
    ("signed-metric-401-digits", _signed_hostile(lambda t: t.replace('"acc": 0.2', '"acc": 0.' + "3" * 400)), True),
    ("attested-at-overflows-utc", _time("attestedAt", "9999-12-31T23:59:59-23:59"), True),
    ("attested-at-underflows-utc", _time("attestedAt", "0001-01-01T00:00:00+23:59"), True),
    ("evaluated-at-overflows-utc", _time("evaluatedAt", "9999-12-31T23:59:59-12:00"), True),
    ("attested-at-offset-out-of-range", _time("attestedAt", "2026-10-31T12:00:00+99:00"), True),
    ("not-utf8", lambda lab, m: b"\xff\xfe\x00{\x80\x81", False),
    ("empty-file", lambda lab, m: b"", False),
    ("lone-surrogate-evaluator", _signed_hostile(_surrogate_evaluator), True),
    ("payload-not-json", _payload(b"\x00\x01binary\xff"), True),
    ("payload-json-array", _payload(b"[1, 2, 3]"), True),
    ("wrong-payload-type", lambda lab, m: lab.envelope(lab.statement(m, "biolab", "wmdp_bio", {"acc": 0.9}),
                                                       ["biolab"], "text/plain"), False),
    ("300-junk-signatures", _many_signatures, False),
    ("signature-not-base64", lambda lab, m: json.dumps({"payload": b64(b"{}"), "payloadType": "x",
                                                        "signatures": [{"keyid": 7, "sig": "%%%"}]}).encode(), False),
    ("manifest-size-5000-digits", _signed_hostile(_huge_manifest_size), True),
    ("test-result-unhashable-result", lambda lab, m: lab.envelope(
        {**lab.test_result(m, "wmdp_bio"), "predicate": {"result": [], "configuration": [{"name": "x"}]}},
        [lab.stranger]), True),
    ("test-result-configuration-not-text", lambda lab, m: lab.envelope(
        {**lab.test_result(m, "wmdp_bio"), "predicate": {"result": "PASSED", "configuration": [{"name": {"a": 1}}]}},
        ["biolab"]), True),
    ("oms-lookalike", lambda lab, m: json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                                                 "dsseEnvelope": {"payload": 5}}).encode(), False),
]

HOSTILE_CASES = [
    Case(f"hostile-{name}-{where}", "hostile-file", _beside_valid(make, where),
         JUDGED if where == "argument" or shaped else NOT_AN_ENVELOPE)
    for name, make, shaped in HOSTILE_FILES for where in ("folder", "argument")
]


def _jsonl_case(where: str):
    def run(lab: Lab) -> Outcome:
        model = lab.model()
        lab.attest(model, "biolab", "wmdp_bio", {"acc": 0.2}, name="valid.json")
        if where == "folder":
            lab.put(model, "hostile.jsonl", _jsonl(lab, model))
            return lab.check(model, "bio", lab.trust())
        return lab.check(model, "bio", lab.trust(), "rt", lab.write("hostile.jsonl", _jsonl(lab, model)))
    return run


HOSTILE_CASES += [
    Case("hostile-jsonl-with-deep-line-folder", "hostile-file", _jsonl_case("folder"), NOT_AN_ENVELOPE),
    Case("hostile-jsonl-with-deep-line-argument", "hostile-file", _jsonl_case("argument"),
         Expect(0, rows={"wmdp-bio": "met"}, rejected=2)),
]


CASES = SCOPE_CASES + REVOCATION_CASES + JSON_CASES + HOSTILE_CASES


@pytest.mark.parametrize("case", params(CASES))
def test_attack(lab: Lab, case: Case) -> None:
    check_outcome(case, case.run(lab))
