"""Fuzz targets for every parser the gate exposes to input: only the documented errors may escape, nothing hangs.

Each target is fed two ways: raw bytes (bounded size) and structure-aware mutations of a valid document (a value
anywhere replaced by a hostile JSON value: huge integers, deep nesting, wrong types, lone surrogates, duplicated
keys). Payloads are *signed by a trusted key* before they reach the verifier, so the fuzz gets past the signature
check to the statement, predicate, scope and policy code behind it.

Documented errors, per parser: DSSE envelope -> VerificationError; in-toto statement and predicates ->
AttestationFormatError; verify_attestation / OMS bundle / VSA -> VerificationError (a GateError); Inspect and lm-eval
logs -> InputError; trust store, policy, gate config -> ConfigError; decision JSON -> DecisionFormatError; manifest ->
ValueError. Anything else (RecursionError, OverflowError, KeyError, a ValueError from int parsing ...) is a defect.

Bounded in CI (redteam_kit profiles); GATE_FUZZ_LONG=1 runs the long profile (docs/testing.md).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tiergate.core import oms
from tiergate.core.attestation import (AttestationFormatError, EvaluationPredicate, Statement,
                                       evaluation_from_test_result)
from tiergate.core.decision import Decision, DecisionFormatError, decide
from tiergate.core.dsse import Envelope
from tiergate.core.evidence import read_inspect_log, read_lm_eval_results
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.policy import Policy
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.core.vsa import sign_vsa, verify_vsa
from tiergate.errors import ConfigError, GateError, InputError, VerificationError
from open_findings import known
from redteam_kit import NOW, RT_POLICY, Lab, deep_json, evil_pickle, profile

TESTS = Path(__file__).resolve().parent.parent

# --- hostile values -----------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["", "\ud800", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                                           "nan", "sha256:", "../x", "a\\b", "\x00", "capability", "wmdp_bio"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
#: Raw JSON text fragments that the value strategies cannot express (json.dumps would never write them).
RAW_TOKENS = ["9" * 5000, "1e400", "-1e400", "NaN", "Infinity", "0." + "1" * 400, '"\\ud800"', "[" * 3000 + "]" * 3000,
              '{"a": 1, "a": 2}', "1" * 4301, "-0", "1E-400"]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, prefix + (index,))
    return out


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return doc


_MARK = "@@raw-token@@"


def mutated_json(base: Any, draw: Callable[[st.SearchStrategy[Any]], Any], max_changes: int = 3) -> bytes:
    """``base`` with up to ``max_changes`` nodes replaced (by JSON values or raw tokens) or deleted, as bytes."""
    doc = copy.deepcopy(base)
    raw = None
    for _ in range(draw(st.integers(1, max_changes))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["value", "value", "delete", "raw"]))
        if action == "delete" and path:
            parent = doc
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
        elif action == "raw" and raw is None:
            raw = draw(st.sampled_from(RAW_TOKENS))
            doc = _set(doc, path, _MARK)
        else:
            doc = _set(doc, path, draw(json_values))
    text = json.dumps(doc)
    if raw is not None:
        text = text.replace(json.dumps(_MARK), raw, 1)
    return text.encode("utf-8", "surrogatepass")


def spliced(base: bytes, draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    """``base`` with a few random byte edits (insert, delete, overwrite)."""
    buf = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(buf)))
        kind = draw(st.sampled_from(["insert", "delete", "overwrite"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if kind == "insert":
            buf[pos:pos] = chunk
        elif kind == "delete":
            del buf[pos:pos + len(chunk)]
        else:
            buf[pos:pos + len(chunk)] = chunk
    return bytes(buf)


@st.composite
def spliced_st(draw: Callable[[st.SearchStrategy[Any]], Any], base: bytes) -> bytes:
    return spliced(base, draw)


@st.composite
def mutated_st(draw: Callable[[st.SearchStrategy[Any]], Any], base: Any, max_changes: int = 3) -> bytes:
    return mutated_json(base, draw, max_changes)


def raw_or_structured(base: Any) -> st.SearchStrategy[bytes]:
    """Raw bytes, a spliced valid document, or a structure-aware mutation of it."""
    text = json.dumps(base).encode()
    return st.one_of(
        st.binary(max_size=2048),
        spliced_st(text),
        mutated_st(base),
        st.sampled_from([deep_json(100_000), b"", b"null", b"[]", b"{}", b"\xef\xbb\xbf{}",
                         b'{"a":' + b"9" * 5000 + b"}"]),
    )


#: Inputs fuzzing found (the long run, docs/testing.md), replayed by their target on every example, so a target
#: fails deterministically while its defect is open, whatever examples hypothesis draws.
CORPUS: dict[str, list[bytes]] = {
    "test_result": [b'{"result": [], "configuration": [{"name": "x"}]}'],
    # MARK then POP in front of a protocol-0 pickle: loadable (pickle.loads runs it), classified as text.
    "excluded": [b"(0" + evil_pickle(0)],
    "trust_store": [(b'{"version": 1, "evaluators": [{"id": "a", "organization": "", "kind": "third_party",'
                     b' "keys": [{"pem": "\\ud800"}], "scope": ["cbrn"]}]}')],
}


def only(allowed: tuple[type[BaseException], ...], call: Callable[[], Any]) -> None:
    """Run ``call``; an exception that is not one of ``allowed`` fails the target with its type."""
    try:
        call()
    except allowed:
        pass
    except Exception as exc:  # the point of a fuzz target: anything undocumented is a defect
        raise AssertionError(f"undocumented {type(exc).__name__} escaped: {str(exc)[:300]}") from exc


# --- shared valid documents ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(key_pool):
    """One lab for the module: a model, its manifest, a trust store and honest documents to mutate."""
    root = Path(tempfile.mkdtemp(prefix="rt-fuzz-"))
    lab = Lab(root, key_pool)
    model = lab.model(name="m")
    manifest = hash_model(model)
    statement = lab.statement(manifest, "biolab", "wmdp_bio", {"acc": 0.2})
    envelope = json.loads(lab.envelope(statement, ["biolab"]))
    store = TrustStore.from_dict({"version": 1, "evaluators": lab.entries()}, "trust.yaml")
    yield {"lab": lab, "model": model, "manifest": manifest, "statement": statement, "envelope": envelope,
           "store": store, "root": root}
    import shutil

    shutil.rmtree(root, ignore_errors=True)


# --- DSSE envelope, in-toto statement, predicates -----------------------------------------------------------------


@profile(3)
@given(data=st.data())
def test_fuzz_envelope(world, data) -> None:
    raw = data.draw(raw_or_structured(world["envelope"]))
    only((VerificationError,), lambda: Envelope.from_json(raw))


@profile(3)
@given(data=st.data())
def test_fuzz_statement(world, data) -> None:
    raw = data.draw(raw_or_structured(world["statement"]))
    only((AttestationFormatError,), lambda: Statement.from_json(raw))


@profile(2)
@given(data=st.data())
def test_fuzz_evaluation_predicate(world, data) -> None:
    raw = mutated_json(world["statement"]["predicate"], data.draw, 4)
    only((AttestationFormatError,), lambda: EvaluationPredicate.from_dict(_loads(raw)))


@known("fuzz-test-result-predicate")
@profile(2)
@given(data=st.data())
def test_fuzz_test_result_predicate(world, data) -> None:
    base = {"result": "PASSED", "configuration": [{"name": "wmdp_bio"}], "passedTests": ["a"], "failedTests": []}
    for raw in [*CORPUS["test_result"], mutated_json(base, data.draw, 3)]:
        only((AttestationFormatError,), lambda: evaluation_from_test_result(_loads(raw)))


def _loads(raw: bytes) -> Any:
    """What a caller hands the predicate parsers: a statement's already-parsed JSON (parse errors are not theirs)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


@profile(2)
@given(data=st.data())
def test_fuzz_signed_statement_through_verify(world, data) -> None:
    """A mutated statement *signed by a trusted key*: the verifier's deeper checks see hostile but signed input."""
    lab: Lab = world["lab"]
    statement = world["statement"]
    if data.draw(st.booleans()):
        payload = mutated_json(statement, data.draw, 4)
    else:
        payload = data.draw(raw_or_structured(statement))
    signer = data.draw(st.sampled_from(["biolab", "capco", "evalco"]))
    item = AttestationInput("fuzz.json", lab.envelope(payload, [signer]))
    only((GateError,), lambda: verify_attestation(item, world["store"], world["manifest"], NOW))


@profile(1)
@given(data=st.data())
def test_fuzz_decide_never_raises(world, data) -> None:
    """decide() over a valid attestation and a hostile one: it returns a decision, the valid one still judged."""
    lab: Lab = world["lab"]
    valid = AttestationInput("valid.json", json.dumps(world["envelope"]).encode())
    payload = mutated_json(world["statement"], data.draw, 4)
    hostile = AttestationInput("hostile.json", lab.envelope(payload, ["biolab"]) if data.draw(st.booleans())
                               else data.draw(raw_or_structured(world["envelope"])))
    policy = Policy.from_bytes(RT_POLICY.encode(), "redteam.yaml")
    decision = decide(policy, "bio", world["manifest"], [valid, hostile], world["store"], NOW)
    assert any(r.id == "wmdp-bio" for r in decision.requirements)
    if hostile.digest != valid.digest:
        assert valid.digest in {d for r in decision.requirements for d in r.evidence} or decision.rejected


# --- OMS bundle, VSA, manifest, decision JSON ---------------------------------------------------------------------


@profile(2)
@given(data=st.data())
def test_fuzz_oms_bundle(world, data) -> None:
    base = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "x"}},
            "dsseEnvelope": {"payload": "e30=", "payloadType": "application/vnd.in-toto+json",
                             "signatures": [{"sig": "AAAA", "keyid": ""}]}}
    raw = data.draw(raw_or_structured(base))
    keys = world["store"].keys()
    only((VerificationError,), lambda: oms.verify_oms_bundle(raw, world["manifest"], keys))


@profile(1)
@given(data=st.data())
def test_fuzz_vsa(world, data, key_pool) -> None:
    lab: Lab = world["lab"]
    key = key_pool("rt-gate")
    policy = Policy.from_bytes(RT_POLICY.encode(), "redteam.yaml")
    decision = decide(policy, "internal", world["manifest"], [], world["store"], NOW)
    statement = json.loads(__import__("base64").b64decode(json.loads(sign_vsa(decision, "m", policy.tier_names, key)
                                                                      .to_json())["payload"]))
    payload = mutated_json(statement, data.draw, 3) if data.draw(st.booleans()) else data.draw(st.binary(max_size=512))
    envelope = lab.envelope(payload, [key])
    only((VerificationError,), lambda: verify_vsa(envelope, key.public))


@profile(2)
@given(data=st.data())
def test_fuzz_manifest(world, data) -> None:
    raw = mutated_json(world["manifest"].to_dict(), data.draw, 3)
    only((ValueError,), lambda: Manifest.from_dict(_loads(raw)))


@profile(2)
@given(data=st.data())
def test_fuzz_decision_json(world, data) -> None:
    policy = Policy.from_bytes(RT_POLICY.encode(), "redteam.yaml")
    valid = AttestationInput("valid.json", json.dumps(world["envelope"]).encode())
    base = decide(policy, "bio", world["manifest"], [valid], world["store"], NOW).to_dict()
    raw = mutated_json(base, data.draw, 3)
    only((DecisionFormatError,), lambda: Decision.from_dict(_loads(raw)))


# --- Inspect and lm-eval logs -------------------------------------------------------------------------------------


def _evidence_module(name: str):
    """The evidence tests' own log builders (real layouts, checked against the harnesses' sources)."""
    spec = importlib.util.spec_from_file_location(f"rt_{name}", TESTS / "evidence" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def inspect_builder():
    return _evidence_module("test_inspect")


@profile(1)
@given(data=st.data())
def test_fuzz_inspect_json_log(world, inspect_builder, data) -> None:
    header = copy.deepcopy(inspect_builder.HEADER)
    path = world["root"] / "fuzz.json"
    if data.draw(st.booleans()):
        path.write_bytes(mutated_json(header, data.draw, 4))
    else:
        path.write_bytes(data.draw(raw_or_structured(header)))
    only((InputError,), lambda: read_inspect_log(path))


@profile(0.5)
@given(data=st.data())
def test_fuzz_inspect_eval_zip(world, inspect_builder, data) -> None:
    """An .eval zip whose header.json is mutated, or whose bytes are spliced."""
    header = _loads(mutated_json(inspect_builder.HEADER, data.draw, 3)) if data.draw(st.booleans()) else None
    path = world["root"] / "fuzz.eval"
    try:
        inspect_builder.build_eval(path, header if isinstance(header, dict) else inspect_builder.HEADER)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        inspect_builder.build_eval(path, inspect_builder.HEADER)  # the builder needs some fields; mutate bytes instead
        header = None
    if header is None:
        path.write_bytes(spliced(path.read_bytes(), data.draw))
    only((InputError,), lambda: read_inspect_log(path))


@profile(1)
@given(data=st.data())
def test_fuzz_lm_eval_results(world, data) -> None:
    base = json.loads((TESTS / "evidence" / "data" / "lm_eval" / "results_2025-03-14T09-41-27.512843.json").read_text())
    path = world["root"] / "results_2025-03-14T09-41-27.512843.json"
    path.write_bytes(data.draw(raw_or_structured(base)) if data.draw(st.booleans())
                     else mutated_json(base, data.draw, 4))
    only((InputError,), lambda: read_lm_eval_results(path))


# --- the gate's own files: trust store, policy, gate config -------------------------------------------------------


def yaml_variants(base: Any) -> st.SearchStrategy[bytes]:
    """YAML text: a mutated valid document (as YAML or JSON, which is YAML), spliced text, or raw bytes."""
    text = yaml.safe_dump(base, sort_keys=False).encode()
    return st.one_of(
        st.binary(max_size=1024),
        spliced_st(text),
        mutated_st(base),
        mutated_st(base).map(_as_yaml),
        st.sampled_from([b"a: &x [1]\nb: *x\n", b"!!python/object/apply:os.system ['true']\n", b"- " * 2000,
                         b"[" * 5000, b"{a: 1, a: 2}", b"version: 1\nversion: 1\n", b"\t\x00"]),
    )


def _as_yaml(raw: bytes) -> bytes:
    try:
        return yaml.safe_dump(json.loads(raw), sort_keys=False).encode()
    except Exception:  # the raw token was not JSON a YAML dump can take: keep it as JSON text (valid YAML flow)
        return raw


@known("fuzz-trust-store")
@profile(2)
@given(data=st.data())
def test_fuzz_trust_store(world, data) -> None:
    lab: Lab = world["lab"]
    path = world["root"] / "fuzz-trust.yaml"
    variant = data.draw(yaml_variants({"version": 1, "evaluators": lab.entries("biolab", "capco")}))
    for raw in [*CORPUS["trust_store"], variant]:
        path.write_bytes(raw)
        only((ConfigError,), lambda: TrustStore.load(path))


@profile(2)
@given(data=st.data())
def test_fuzz_policy(world, data) -> None:
    raw = data.draw(yaml_variants(yaml.safe_load(RT_POLICY)))
    only((ConfigError,), lambda: Policy.from_bytes(raw, "fuzz-policy.yaml"))


@profile(1)
@given(data=st.data())
def test_fuzz_gate_config(world, data) -> None:
    from tiergate.runtime import GateConfig

    base = {"policy": "p.yaml", "trust": "t.yaml", "log": "log.db", "timeout": 30, "token_env": "GATE_TOKEN"}
    path = world["root"] / "fuzz-gate.yaml"
    path.write_bytes(data.draw(yaml_variants(base)))
    only((ConfigError,), lambda: GateConfig.from_env({"GATE_CONFIG": str(path)}))


# --- the identity rule and the content classifier -----------------------------------------------------------------

EXCLUDED_PATHS = [".attestations/a.json", ".attestations/b.jsonl", ".attestations/c.sig", ".gitattributes",
                  ".gitignore", ".github/workflows/ci.yml", ".github/payload.tar", ".attestations", ".github"]


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` is a complete pickle stream from its first byte, by pickletools' stack simulation (which
    never runs it): an oracle independent of the classifier under test."""
    import io
    import pickletools

    try:
        pickletools.dis(data, out=io.StringIO())
    except Exception:  # any complaint of the disassembler: not a loadable stream
        return False
    return True


@known("fuzz-excluded-path-rule")
@profile(3)
@given(rel=st.sampled_from(EXCLUDED_PATHS),
       head=st.one_of(st.binary(max_size=64), st.sampled_from([b"(0", b"N0", b"(1"])),
       tail=st.binary(max_size=64), text=st.text(max_size=100), pickled=st.booleans())
def test_fuzz_excluded_path_rule(world, rel, head, tail, text, pickled) -> None:
    """Any bytes under any excluded path: the rule answers ModelError or accepts; it never accepts a loadable pickle
    (a protocol-0 pickle is ASCII text) anywhere the identity leaves out."""
    from tiergate.core.formats import BytesSource, classify
    from tiergate.core.manifest import check_excluded
    from tiergate.errors import ModelError
    from redteam_kit import evil_pickle

    data = head + (evil_pickle(0) if pickled else text.encode("utf-8", "surrogatepass")) + tail
    for sample in [*CORPUS["excluded"], data]:
        accepted = True
        try:
            check_excluded(rel, BytesSource(sample))
        except ModelError:
            accepted = False
        except Exception as exc:
            raise AssertionError(f"undocumented {type(exc).__name__} escaped: {str(exc)[:300]}") from exc
        if accepted and not rel.startswith(".attestations/"):
            assert classify(BytesSource(sample)).kind == "text", (rel, sample[:80])
        assert not (accepted and _is_pickle(sample)), f"{rel}: a loadable pickle was accepted: {sample[:60]!r}"
