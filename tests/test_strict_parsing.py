"""Configuration is unambiguous and bounded: one strict YAML loader for every file the gate reads, one strict JSON
reader for what is signed or decided. Duplicate keys, alias bombs, deep nesting, non-finite or oversized numbers are
refused with a one-line reason (exit 2 for the gate's own files)."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from support import NOW, World, run_gate
from tiergate.core.attestation import Statement
from tiergate.core.dsse import Envelope, sign
from tiergate.core.files import StrictJSONError, line_of, parse_json, parse_yaml
from tiergate.core.policy import Policy
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput, verify_attestation
from tiergate.errors import ConfigError, VerificationError
from tiergate.runtime import GateConfig
from tiergate.service.tokens import TokenSet

# ~1 KB: nine aliases per level, nine levels (9^9 nodes expanded).
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
DEEP = "x: " + "[" * 10_000 + "]" * 10_000 + "\n"


# --- YAML ------------------------------------------------------------------------------------------------------


def test_duplicate_yaml_keys_name_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(b"version: 1\nthreshold: 0.10\nthreshold: 0.99\n", "p.yaml")
    assert str(caught.value) == ("p.yaml: line 3: duplicate key 'threshold' (first at line 2); "
                                 "a key may appear once in a mapping")
    with pytest.raises(ConfigError, match="line 4: duplicate key 'kind'"):
        parse_yaml(b"evaluators:\n  - id: a\n    kind: developer\n    kind: government\n", "t.yaml")


def test_yaml_bounds() -> None:
    assert len(BOMB) < 1100
    with pytest.raises(ConfigError, match="more than 200000 YAML nodes with aliases expanded"):
        parse_yaml(BOMB, "bomb.yaml")
    with pytest.raises(ConfigError, match="nested more than 64 levels deep"):
        parse_yaml(DEEP, "deep.yaml")
    with pytest.raises(ConfigError, match="line 2: alias \\*a refers to a node that contains it"):
        parse_yaml("x: 1\na: &a [1, *a]\n", "cycle.yaml")
    with pytest.raises(ConfigError, match="larger than"):
        parse_yaml(b"a: 1\n" * 10, "big.yaml", limit=20)
    # A few aliases are fine (YAML users share blocks), and mappings remember their line.
    data = parse_yaml(b"base: &b {metric: acc}\nuse:\n  - *b\n  - <<: *b\n    comparator: reported\n", "ok.yaml")
    assert data["use"][1] == {"metric": "acc", "comparator": "reported"} and line_of(data) == 1


def test_yaml_keys_are_text() -> None:
    for text in ("aliases: {1: hosted, '1': open}\n", "on: hosted\n", "? [a]\n: x\n", "~: x\n"):
        with pytest.raises(ConfigError, match="line [12]: the key .* not text; write it in quotes"):
            parse_yaml(text, "k.yaml")
    assert parse_yaml(b"'1': a\n'on': b\n", "k.yaml") == {"1": "a", "on": "b"}


@pytest.mark.parametrize("text", ["t: 2026-02-30T00:00:00Z\n", "t: 2026-13-01\n"])
def test_yaml_values_that_cannot_be_built_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_yaml(text, "t.yaml")


def _trust_text(world: World) -> str:
    return yaml.safe_dump(world.trust_dict(), sort_keys=False)


def test_trust_store_kind_given_twice(world: World, tmp_path: Path) -> None:
    text = _trust_text(world).replace("kind: developer\n", "kind: developer\n  kind: government\n", 1)
    path = tmp_path / "trust.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"trust.yaml: line \d+: duplicate key 'kind'"):
        TrustStore.load(path)


@pytest.mark.parametrize("case", ["duplicate", "bomb", "deep"])
@pytest.mark.parametrize("which", ["policy", "trust"])
def test_cli_refuses_ambiguous_or_hostile_yaml_with_exit_2(world: World, model_dir: Path, tmp_path: Path,
                                                           case: str, which: str) -> None:
    trust, policy = tmp_path / "trust.yaml", tmp_path / "policy.yaml"
    trust.write_text(_trust_text(world))
    policy.write_text("version: 1\ntiers:\n  - name: internal\n")
    target = policy if which == "policy" else trust
    if case == "duplicate":
        target.write_text(target.read_text() + "version: 1\n")
    else:
        target.write_text(BOMB if case == "bomb" else DEEP)
    result = run_gate("check", str(model_dir), "--tier", "internal", "--trust", str(trust), "--policy", str(policy))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert str(target) in result.stderr


def test_policy_threshold_given_twice(tmp_path: Path) -> None:
    text = resources.files("tiergate.data").joinpath("default-policy.yaml").read_text()
    edited = text.replace("threshold: 0.10\n", "threshold: 0.10\n          threshold: 0.99\n", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(edited)
    result = run_gate("policy", "validate", str(path))
    assert result.returncode == 2 and "duplicate key 'threshold'" in result.stderr, result.stderr


def test_gate_config_and_tokens_use_the_strict_loader(tmp_path: Path) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text("timeout: 5\ntimeout: 500\n")
    with pytest.raises(ConfigError, match="line 2: duplicate key 'timeout'"):
        GateConfig.from_env({"GATE_CONFIG": str(config)})
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - name: a\n    sha256: {'0' * 64}\n    sha256: {'1' * 64}\n")
    with pytest.raises(ConfigError, match="line 4: duplicate key 'sha256'"):
        TokenSet.load(tokens)


def test_durations_and_thresholds_that_overflow_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ntiers:\n  - name: a\n    requires: {max_age: 99999999999999d}\n")
    with pytest.raises(ConfigError, match="longer than any duration"):
        Policy.load(path)
    path.write_text("version: 1\ntiers:\n  - name: a\n    requires:\n      evaluations:\n"
                    "        - {id: x, benchmark: mmlu, metric: acc, comparator: '<=', threshold: .inf}\n")
    with pytest.raises(ConfigError, match="must be a finite number"):
        Policy.load(path)


# --- JSON ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("document", "reason"), [
    (b'{"a": 1, "a": 2}', "has the key 'a' twice in one object"),
    (b'{"a": ' + b"1" * 5000 + b"}", "has an integer of 5000 digits, beyond 64 bits"),
    (b'{"a": ' + b"9" * 21 + b"}", "beyond 64 bits"),
    (b'{"a": 0.' + b"1" * 401 + b"}", "has a number written with 403 characters"),
    (b'{"a": 1e400}', "has the number 1e400, too large for a 64-bit float"),
    (b'{"a": NaN}', "has NaN"),
    (b'{"a": -Infinity}', "has -Infinity"),
    (b"[" * 100_000 + b"]" * 100_000, "nests more than 64 levels deep"),
    (b'{"\\ud800": 1}', "unpaired surrogate"),
    (b'{"a": ["x", "\\udfff\\ud800"]}', "has text with an unpaired surrogate"),
    (b'\xff{}', "is not UTF-8"),
    (b'{"a": 1', "is not valid JSON"),
])
def test_strict_json_refuses_what_readers_could_read_differently(document: bytes, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        parse_json(document)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_strict_json_reads_ordinary_documents() -> None:
    assert parse_json(b'{"a": [1, 2.5, "[{\\"", -18446744073709551615], "b": {"c": null}}') == {
        "a": [1, 2.5, '[{"', -(2**64 - 1)], "b": {"c": None}}
    assert parse_json(b"[" * 64 + b"]" * 64) is not None
    assert parse_json(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]  # a pair; an escaped backslash


def _signed_payload(world: World, payload: bytes) -> AttestationInput:
    return AttestationInput("forged.json", sign(payload, "application/vnd.in-toto+json",
                                                [world.evaluators["evalco"].key]).to_json())


def _payload(item: AttestationInput) -> bytes:
    return Envelope.from_json(item.data).payload


def test_signed_statement_with_duplicate_metric_is_ambiguous(world: World, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    payload = _payload(item).replace(b'"score":0.05', b'"score":0.9,"score":0.05')
    with pytest.raises(VerificationError, match="malformed statement: the payload has the key 'score' twice"):
        verify_attestation(_signed_payload(world, payload), world.trust(), manifest, NOW)


def test_envelope_with_duplicate_payload_is_ambiguous(world: World, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    envelope = json.loads(item.data)
    text = json.dumps(envelope)
    doubled = text.replace('"payload": ', f'"payload": "{base64.b64encode(b"{}").decode()}", "payload": ', 1)
    with pytest.raises(VerificationError, match="malformed JSON: the envelope has the key 'payload' twice"):
        verify_attestation(AttestationInput("x", doubled.encode()), world.trust(), manifest, NOW)


def test_statement_round_trip_is_unchanged(world: World, manifest) -> None:
    item = world.attest(manifest, "evalco", "strongreject", {"score": 0.05})
    statement = Statement.from_json(_payload(item))
    assert Statement.from_json(statement.to_json()) == statement


# --- fuzz: no input gets past the readers as anything but their own error ---------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSONISH = st.text(alphabet='{}[]":,0123456789.eE+-\\ untrfalsNIiy', max_size=200)
_YAMLISH = st.text(alphabet="{}[]:,-&*!<>|'\"\n #abk12.eE", max_size=200)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _JSONISH.map(str.encode)))
def test_fuzz_strict_json_raises_only_its_error(data: bytes) -> None:
    try:
        parse_json(data)
    except StrictJSONError as exc:
        assert "\n" not in str(exc)  # noqa: PT017 - an error may come, need not: when it does, it is one line


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _YAMLISH.map(str.encode)))
def test_fuzz_strict_yaml_raises_only_config_errors(data: bytes) -> None:
    try:
        parse_yaml(data, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml:") and "\n" not in str(exc)  # noqa: PT017 - as above


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), insert=st.binary(min_size=0, max_size=12), cut=st.integers(0, 8))
def test_fuzz_a_signed_mangled_statement_is_rejected_with_a_reason(world: World, manifest, position: int,
                                                                   insert: bytes, cut: int) -> None:
    payload = _payload(world_item(world, manifest))
    at = position % (len(payload) + 1)
    mangled = payload[:at] + insert + payload[at + cut:]
    try:
        verify_attestation(_signed_payload(world, mangled), world.trust(), manifest, NOW)
    except VerificationError as exc:
        assert "\n" not in str(exc)  # noqa: PT017 - as above


_ITEMS: dict[str, AttestationInput] = {}


def world_item(world: World, manifest) -> AttestationInput:
    key = manifest.root_digest
    if key not in _ITEMS:
        _ITEMS[key] = world.attest(manifest, "evalco", "strongreject", {"score": 0.05}, sample_size=313)
    return _ITEMS[key]
