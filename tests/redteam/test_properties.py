"""Property-based tests: no change the signers did not sign can raise a decision (tier monotonicity).

Hypothesis generates a model folder, honest attestations of it by trusted evaluators, and a trust store; the gate
decides every tier. Then one change nobody trusted signed is applied - a forged, mis-scoped, replayed or
compromised-key attestation added, an envelope's byte flipped, a duplicated key spliced in, a model file changed,
renamed or added, a key listed twice in the trust store - and the gate decides again. The change may lower what is
allowed, never raise it: every tier that needs signed evidence and was denied before stays denied, and the
satisfied tier never rises. A configuration error counts as a deny (the integrations refuse on it).

Profiles (redteam_kit.PROFILE): bounded in CI; GATE_FUZZ_LONG=1 for a long run (docs/testing.md).
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from tiergate.core.collect import model_attestations
from tiergate.core.decision import decide, evaluate_tier
from tiergate.core.manifest import hash_model
from tiergate.core.policy import Policy
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, unique_inputs, verify_all
from tiergate.errors import GateError
from redteam_kit import NOW, RT_POLICY, Lab, evil_pickle, profile, safetensors_bytes

POLICIES = {"redteam": Policy.from_bytes(RT_POLICY.encode(), "redteam.yaml"), "default": Policy.load(None)}

#: (evaluator, benchmark, metric) an honest evaluator may report; all within each evaluator's scope.
MENU = [
    ("biolab", "wmdp_bio", "acc"), ("evalco", "wmdp_bio", "accuracy"), ("redteam", "wmdp_bio", "acc"),
    ("evalco", "strongreject", "score"), ("aisi", "strong_reject", "score"), ("capco", "mmlu", "drop_vs_base"),
    ("aisi", "wmdp_chem", "acc"), ("redteam", "harmbench", "asr"), ("aisi", "risk_assessment", "completed"),
]



def _family(claim) -> str:
    """The benchmark a claim measures, aliases folded (strongreject = strong_reject)."""
    from tiergate.core.benchmarks import builtin_catalogue

    entry = builtin_catalogue().get(claim[0][1])
    return entry.name if entry else claim[0][1]


#: Honest evidence holds at most one attestation per benchmark. With two, the worst counts, and an attacker can
#: always withhold (or invalidate) the worse one: that raises a decision by construction, it is not a forgery. The
#: threat model lists withholding as not defended; these properties are about what the signers did not sign.
claims = st.lists(
    st.tuples(st.sampled_from(MENU), st.floats(0, 0.6, allow_nan=False), st.integers(0, 3000)),
    min_size=1, max_size=5, unique_by=_family,
)
names = st.text("abcdefghij_-.", min_size=1, max_size=10).filter(
    lambda n: n not in (".", "..") and not n.startswith("."))
extra_files = st.dictionaries(names.map(lambda n: n + ".json"), st.binary(max_size=64), max_size=3)


@dataclass
class Judged:
    allowed: dict[str, frozenset[str]]  # policy name -> tiers allowed
    satisfied: dict[str, int]  # policy name -> rank of the satisfied tier (-1: none)


def _judge(model: Path, items: list[AttestationInput], trust_entries: list[dict[str, Any]] | str) -> Judged:
    """Decide every tier of both policies; a configuration error is a deny of everything."""
    allowed: dict[str, frozenset[str]] = {}
    satisfied: dict[str, int] = {}
    try:
        store = (TrustStore.from_dict({"version": 1, "evaluators": trust_entries}, "trust.yaml")
                 if not isinstance(trust_entries, str) else _load_text(model, trust_entries))
        manifest = hash_model(model)
    except GateError:
        return Judged({p: frozenset() for p in POLICIES}, dict.fromkeys(POLICIES, -1))
    report = verify_all(unique_inputs(items), store, manifest, NOW)
    for pname, policy in POLICIES.items():
        # decide() gives the satisfied tier; each tier's allow is its rows over the same verified evidence.
        top = decide(policy, policy.tier_names[-1], manifest, items, store, NOW)
        rank = policy.rank(top.satisfied_tier) if top.satisfied_tier is not None else -1
        ok = {t for t in policy.tier_names
              if all(r.met for r in evaluate_tier(policy, t, report.accepted, manifest, NOW))}
        allowed[pname], satisfied[pname] = frozenset(ok), rank
    return Judged(allowed, satisfied)


def _load_text(model: Path, text: str) -> TrustStore:
    path = model.parent / "trust-mutated.yaml"
    path.write_text(text)
    return TrustStore.load(path)


def _needs_evidence(policy: Policy) -> frozenset[str]:
    """Tiers that require signed evidence. A tier with only a formats rule (or none) is decided on the files
    alone: changing a file may rightly change it, so the properties compare only the tiers evidence decides."""
    out = set()
    for name in policy.tier_names:
        tier = policy.effective(name)
        rule = tier.signers
        if tier.evaluations or rule.min_organizations or rule.min_independent or rule.required_kinds:
            out.add(name)
    return frozenset(out)


EVIDENCE_TIERS = {name: _needs_evidence(policy) for name, policy in POLICIES.items()}


def _assert_not_raised(before: Judged, after: Judged) -> None:
    for pname in POLICIES:
        gained = (after.allowed[pname] - before.allowed[pname]) & EVIDENCE_TIERS[pname]
        assert not gained, f"{pname}: tiers {sorted(gained)} became allowed by an unsigned change"
        if set(POLICIES[pname].tier_names[1:]) <= EVIDENCE_TIERS[pname]:  # every tier above the lowest needs evidence
            assert after.satisfied[pname] <= before.satisfied[pname], f"{pname}: satisfied tier rose"


# --- the unsigned changes -----------------------------------------------------------------------------------------

Mutation = Callable[[Lab, Path, list[AttestationInput], list[dict[str, Any]], st.DataObject],
                    tuple[list[AttestationInput], list[dict[str, Any]] | str]]


def _great_statement(lab: Lab, model: Path, who: str, bench: str = "wmdp_bio", metric: str = "acc",
                     domain: str | None = "auto") -> dict[str, Any]:
    return lab.statement(model, who, bench, {metric: 0.0, "score": 0.0, "accuracy": 0.0}, risk_domain=domain,
                         sample_size=100_000)


def forged(lab, model, items, trust, data):
    who = data.draw(st.sampled_from(sorted(lab.signers)))
    env = lab.envelope(_great_statement(lab, model, who), [lab.stranger])
    return items + [AttestationInput("forged.json", env)], trust


def mis_scoped(lab, model, items, trust, data):
    bench = data.draw(st.sampled_from(["wmdp_bio", "strongreject", "wmdp_chem", "harmbench", "risk_assessment"]))
    env = lab.envelope(_great_statement(lab, model, "capco", bench, domain="capability"), ["capco"])
    return items + [AttestationInput("mis-scoped.json", env)], trust


def flipped(lab, model, items, trust, data):
    if not items:
        return items, trust
    index = data.draw(st.integers(0, len(items) - 1))
    env = json.loads(items[index].data)
    part = data.draw(st.sampled_from(["payload", "sig"]))
    raw = bytearray(base64.b64decode(env["payload"] if part == "payload" else env["signatures"][0]["sig"]))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    if part == "payload":
        env["payload"] = base64.b64encode(bytes(raw)).decode()
    else:
        env["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    return items[:index] + [AttestationInput("flipped.json", json.dumps(env).encode())] + items[index + 1:], trust


def outer_duplicate(lab, model, items, trust, data):
    """Splice a forged payload into a valid envelope as a duplicate key, before or after the signed one."""
    if not items:
        return items, trust
    env = json.loads(items[0].data)
    forged_payload = base64.b64encode(json.dumps(_great_statement(lab, model, "aisi")).encode()).decode()
    signed = f'"payload": "{env["payload"]}"'
    other = f'"payload": "{forged_payload}"'
    first, second = (signed, other) if data.draw(st.booleans()) else (other, signed)
    text = ('{%s, "payloadType": "%s", %s, "signatures": %s}'  # noqa: UP031 - JSON text: its braces stay literal
            % (first, env["payloadType"], second, json.dumps(env["signatures"])))
    return items + [AttestationInput("dup.json", text.encode())], trust


def replayed(lab, model, items, trust, data):
    """A trusted evaluator's genuine attestation of *another* model."""
    other = lab.model({"model.safetensors": safetensors_bytes(8)}, name="other-model")
    who = data.draw(st.sampled_from(["biolab", "evalco", "aisi"]))
    env = lab.envelope(_great_statement(lab, other, who), [who])
    return items + [AttestationInput("replayed.json", env)], trust


def compromised(lab, model, items, trust, data):
    """A key revoked as compromised signs great scores, claiming a signing time before the revocation."""
    from datetime import timedelta

    retired = lab.signers["evalco"].trust_entry()
    retired.update(id="oldlab", organization="Old Lab", kind=data.draw(st.sampled_from(["third_party", "government"])))
    retired["keys"] = [{"pem": lab.stranger.public.to_pem().decode(), "revoked_at": "2026-10-01T00:00:00Z",
                        "compromised": True}]
    when = NOW - timedelta(days=data.draw(st.integers(1, 60)))
    statement = lab.statement(model, "oldlab", "wmdp_bio", {"acc": 0.0, "accuracy": 0.0}, sample_size=100_000,
                              when=when)
    return items + [AttestationInput("compromised.json", lab.envelope(statement, [lab.stranger]))], trust + [retired]


def trust_duplicate_key(lab, model, items, trust, data):
    """The same key listed twice for one evaluator, the copy revoked as compromised (or not)."""
    entries = [dict(e) for e in trust]
    target = data.draw(st.integers(0, len(entries) - 1))
    key = entries[target]["keys"][0]
    extra = {"revoked_at": "2026-01-01T00:00:00Z", "compromised": True} if data.draw(st.booleans()) else {}
    copy = [{**key, **extra}]
    entries[target] = {**entries[target], "keys": ([key] + copy) if data.draw(st.booleans()) else (copy + [key])}
    return items, entries


def trust_yaml_duplicate(lab, model, items, trust, data):
    """A duplicated YAML key in the trust store (a later value trying to widen scope or change kind)."""
    import yaml

    text = yaml.safe_dump({"version": 1, "evaluators": trust}, sort_keys=False)
    field = data.draw(st.sampled_from(["kind: third_party", "kind: government", "kind: developer"]))
    widened = text.replace("  scope:\n",
                           "  scope: [cbrn, cyber, misuse, tamper, capability, governance]\n  scope:\n", 1)
    mutated = widened if widened != text and data.draw(st.booleans()) else text.replace(
        "  kind: ", f"  {field}\n  kind: ", 1)
    return items, mutated


def changed_byte(lab, model, items, trust, data):
    files = sorted(p for p in model.rglob("*") if p.is_file() and ".attestations" not in p.parts)
    target = data.draw(st.sampled_from(files))
    raw = bytearray(target.read_bytes() or b"\0")
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    target.write_bytes(bytes(raw))
    return items, trust


def renamed(lab, model, items, trust, data):
    files = sorted(p for p in model.rglob("*") if p.is_file() and ".attestations" not in p.parts)
    target = data.draw(st.sampled_from(files))
    new = data.draw(st.sampled_from(["renamed.safetensors", "weights.bin", "model.pkl", "x/y.json",
                                     "pytorch_model.bin"]))
    (model / new).parent.mkdir(parents=True, exist_ok=True)
    if not (model / new).exists():
        target.rename(model / new)
    return items, trust


def added(lab, model, items, trust, data):
    name = data.draw(st.sampled_from(["extra.safetensors", "payload.bin", ".github/payload.tar", "adapter.pkl",
                                      ".attestations/adapter.json", "notes.txt", ".gitattributes"]))
    content = data.draw(st.sampled_from([evil_pickle(), safetensors_bytes(16), b"hello"]))
    (model / name).parent.mkdir(parents=True, exist_ok=True)
    (model / name).write_bytes(content)
    return items + model_attestations(model) if name.startswith(".attestations") else items, trust


MUTATIONS: dict[str, Mutation] = {
    m.__name__: m for m in (forged, mis_scoped, flipped, outer_duplicate, replayed, compromised, trust_duplicate_key,
                            trust_yaml_duplicate, changed_byte, renamed, added)
}


def _world(key_pool, files: dict[str, bytes], made: list) -> tuple[Lab, Path, list[AttestationInput], list]:
    root = Path(tempfile.mkdtemp(prefix="rt-prop-"))
    made.append(root)
    lab = Lab(root, key_pool)
    model = lab.model(files, name="m")
    return lab, model, [], lab.entries()


def _sign_claims(lab: Lab, model: Path, chosen) -> list[AttestationInput]:
    items = []
    for (who, bench, metric), value, samples in chosen:
        env = lab.envelope(lab.statement(model, who, bench, {metric: value}, sample_size=samples), [who])
        items.append(AttestationInput(f"{who}-{bench}-{len(items)}.json", env))
    return items


@pytest.fixture
def cleanup():
    import shutil

    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_unsigned_change_never_raises_a_decision(key_pool, cleanup, mutation: str) -> None:
    @profile(0.5)
    @given(chosen=claims, files=extra_files, data=st.data())
    def run(chosen, files, data) -> None:
        lab, model, _, trust = _world(key_pool, files, cleanup)
        items = _sign_claims(lab, model, chosen)
        before = _judge(model, items, trust)
        items2, trust2 = MUTATIONS[mutation](lab, model, items, trust, data)
        after = _judge(model, items2, trust2)
        note(f"before {before}\nafter {after}")
        _assert_not_raised(before, after)

    run()


@profile(0.5)
@given(chosen=claims, order=st.randoms(use_true_random=False))
def test_decision_does_not_depend_on_attestation_order(key_pool, cleanup, chosen, order) -> None:
    """Same evidence in any order (or found twice) gives the same decision: there is no best-score shopping."""
    lab, model, _, trust = _world(key_pool, {}, cleanup)
    items = _sign_claims(lab, model, chosen)
    shuffled = items + items[:1]
    order.shuffle(shuffled)
    assert _judge(model, items, trust) == _judge(model, shuffled, trust)
