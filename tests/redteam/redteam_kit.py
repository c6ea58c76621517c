"""The red-team kit: a lab of evaluators, trust stores, policies, crafted files and the real `gate` CLI.

Test modules of tests/redteam import from here (``from redteam_kit import ...``); conftest.py turns the lab into a
fixture and registers the hypothesis profiles. Everything is real: real keys, real DSSE signatures, real model
folders on disk, the `gate` command line run in-process through its own guarded entry point (exit codes and
one-line errors exactly as a user gets them) or, where an input could hang the gate, in a subprocess with a bound.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

import yaml
from click.testing import CliRunner

from hypothesis import HealthCheck, settings

from tiergate.core.attestation import (
    EVALUATION_PREDICATE_TYPE,
    STATEMENT_TYPE,
    TEST_RESULT_PREDICATE_TYPE,
    Evaluation,
    EvaluationPredicate,
    EvaluatorRef,
)
from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, pae
from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.timeutil import format_time
from support import Evaluator  # the trust-store entry of one evaluator, shared with the rest of the suite

NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)
NOW_TEXT = format_time(NOW)
SIGNED = NOW - timedelta(days=1)

# --- hypothesis profiles: bounded in CI, long on request (docs/testing.md) --------------------------------------

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture,
          HealthCheck.filter_too_much]
# CI is derandomized: the same examples every run, so a red suite means a change broke something (the long run
# explores; what it finds becomes a fixed case in the attack tables).
settings.register_profile("redteam-ci", max_examples=40, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True, derandomize=True, database=None)
settings.register_profile("redteam-long", max_examples=4000, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True)
#: GATE_FUZZ_LONG=1 selects the long run; GATE_FUZZ_EXAMPLES overrides the number of examples of either.
PROFILE = settings(
    settings.get_profile("redteam-long" if os.environ.get("GATE_FUZZ_LONG") == "1" else "redteam-ci"),
    **({"max_examples": int(os.environ["GATE_FUZZ_EXAMPLES"])} if os.environ.get("GATE_FUZZ_EXAMPLES") else {}),
)


def profile(scale: float = 1.0) -> settings:
    """The active profile with its example count scaled (cheap targets run more examples, costly ones fewer)."""
    return settings(PROFILE, max_examples=max(5, int(PROFILE.max_examples * scale)))


# --- the attack table ---------------------------------------------------------------------------------------------

#: The classes of attack (issue 9's findings, and the CLI/core side of 10 and 11).
CLASSES = ("scope", "revocation", "duplicate-keys", "hidden-bytes", "formats", "hostile-file", "yaml-bomb",
           "false-deny", "stale-trust", "targets")


@dataclass(frozen=True)
class Case:
    """One crafted attack: an id, the class it belongs to, what it does to the lab and what the gate must answer."""

    id: str
    cls: str
    run: Callable[[Lab], Outcome]
    expect: Expect

    def __post_init__(self) -> None:
        assert self.cls in CLASSES, self.cls


@dataclass(frozen=True)
class Expect:
    """The gate's exact answer: exit code, and words its reason must contain.

    ``words``: each entry is a group of alternatives, one of which must appear (case-insensitive) in the output;
    ``rows``: requirement id -> status in the decision JSON; ``rejected``: how many attestations are rejected;
    ``accepted``: how many are valid (``gate verify --json``).
    """

    code: int
    words: tuple[tuple[str, ...], ...] = ()
    rows: Mapping[str, str] = field(default_factory=dict)
    rejected: int | None = None
    accepted: int | None = None
    absent: tuple[str, ...] = ("internal error", "Traceback")


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return f"{self.out}\n{self.err}"

    def json(self) -> Any:
        return json.loads(self.out)


def words(*groups: str | tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple((g,) if isinstance(g, str) else g for g in groups)


def check_outcome(case: Case, outcome: Outcome) -> None:
    """Assert the outcome is exactly what the case expects; the message shows what the gate said."""
    expect = case.expect
    shown = f"[{case.id}] exit {outcome.code}\nstdout: {outcome.out[-3000:]}\nstderr: {outcome.err[-3000:]}"
    for bad in expect.absent:
        assert bad.lower() not in outcome.text.lower(), shown
    assert outcome.code == expect.code, shown
    lower = outcome.text.lower()
    for group in expect.words:
        assert any(w.lower() in lower for w in group), f"none of {group} in the reason\n{shown}"
    if expect.rows or expect.rejected is not None or expect.accepted is not None:
        doc = outcome.json()
        if "requirements" in doc:  # gate check --json
            rows = {r["id"]: r["status"] for r in doc["requirements"]}
            rejected = len(doc["rejected_attestations"])
            accepted = None
        else:  # gate verify --json
            rows = {}
            rejected = sum(1 for r in doc["attestations"] if not r["valid"])
            accepted = sum(1 for r in doc["attestations"] if r["valid"])
        for rid, status in expect.rows.items():
            assert rows.get(rid) == status, f"requirement {rid}: {rows.get(rid)} != {status}\n{shown}"
        if expect.rejected is not None:
            assert rejected == expect.rejected, f"{rejected} rejected, expected {expect.rejected}\n{shown}"
        if expect.accepted is not None:
            assert accepted == expect.accepted, f"{accepted} accepted, expected {expect.accepted}\n{shown}"


# --- crafted bytes ------------------------------------------------------------------------------------------------


class _Exec:
    """Pickles to a call of os.system: what a malicious checkpoint carries (never loaded here)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def evil_pickle(protocol: int = 4) -> bytes:
    return pickle.dumps({"weights": [0.0] * 4, "hook": _Exec()}, protocol=protocol)


def safetensors_bytes(n: int = 4, header_extra: Mapping[str, Any] | None = None, dtype: str = "F32",
                      offsets: tuple[int, int] | None = None) -> bytes:
    """A valid safetensors file (one F32 tensor of n values) unless the arguments make it lie."""
    data = struct.pack(f"<{n}f", *([0.5] * n))
    header: dict[str, Any] = {"w": {"dtype": dtype, "shape": [n], "data_offsets": list(offsets or (0, len(data)))}}
    header.update(header_extra or {})
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def gguf_bytes() -> bytes:
    """A valid GGUF v3 file: magic, version, one string key/value, one F32 tensor of 4 values, aligned data."""
    key, value, name = b"general.architecture", b"llama", b"w"
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", len(value)) + value
    info = struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 4, 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + info
    return head + b"\0" * (-len(head) % 32) + struct.pack("<4f", 0.5, 0.5, 0.5, 0.5)


def torch_zip(name: str = "archive") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(f"{name}/data.pkl", evil_pickle(2))
        archive.writestr(f"{name}/version", "3\n")
        archive.writestr(f"{name}/data/0", b"\0" * 16)
    return buf.getvalue()


def npy_object_array() -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + evil_pickle(2)


COMPRESS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """A ~1 KB YAML flow sequence whose last element expands to width**levels strings (9**9: 387 million).

    It is a *value*, so the bomb sits where a parser reads it (``name: <bomb>``), not beside the fields it checks.
    """
    parts = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        parts.append(f"&a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def deep_json(depth: int, leaf: str = "0") -> bytes:
    return b"[" * depth + leaf.encode() + b"]" * depth


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- the lab ------------------------------------------------------------------------------------------------------


RT_POLICY = """\
version: 1
name: redteam
clock_skew: 5m
tiers:
  - name: internal
  - name: bio
    extends: internal
    requires:
      evaluations:
        - {id: wmdp-bio, benchmark: wmdp_bio, metric: [acc, accuracy], comparator: "<=", threshold: 0.30}
  - name: refusal
    extends: internal
    requires:
      evaluations:
        - {id: strongreject, benchmark: [strongreject, strong_reject], metric: score, comparator: "<=", threshold: 0.10}
  - name: safe-formats
    extends: internal
    requires:
      formats: {allow: [safetensors, gguf]}
  - name: two-orgs
    extends: internal
    requires:
      signers: {min_organizations: 2}
      evaluations:
        - {id: wmdp-bio-2, benchmark: wmdp_bio, metric: [acc, accuracy], comparator: reported}
"""


class Lab:
    """A tmp folder with evaluators, a trust store, the red-team policy, models and the `gate` CLI."""

    def __init__(self, root: Path, keys: Callable[[str], PrivateKey]) -> None:
        self.root = root
        self.keys = keys
        self.signers: dict[str, Evaluator] = {
            "evalco": Evaluator("evalco", "EvalCo", "third_party", keys("rt-evalco")),
            "aisi": Evaluator("aisi", "UK AI Security Institute", "government", keys("rt-aisi")),
            "redteam": Evaluator("redteam", "RedTeam Labs", "third_party", keys("rt-redteam")),
            "capco": Evaluator("capco", "Capability Co", "third_party", keys("rt-capco"), scope=["capability"]),
            "biolab": Evaluator("biolab", "Bio Lab", "third_party", keys("rt-biolab"), scope=["cbrn"]),
        }
        self.stranger = keys("rt-stranger")  # a key in no trust store
        self.policy_path = root / "policy.yaml"
        self.policy_path.write_text(RT_POLICY)
        self._n = 0

    # files

    def path(self, name: str) -> Path:
        return self.root / name

    def model(self, files: Mapping[str, bytes] | None = None, name: str | None = None) -> Path:
        """A clean model folder (valid safetensors, config, tokenizer) plus ``files`` on top."""
        self._n += 1
        folder = self.root / (name or f"model{self._n}")
        base = {"model.safetensors": safetensors_bytes(), "config.json": b'{"architectures": ["Tiny"]}',
                "tokenizer.json": b'{"version": "1.0"}'}
        for rel, data in {**base, **(files or {})}.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return folder

    def trust(self, entries: Sequence[Mapping[str, Any]] | None = None, text: str | None = None,
              name: str = "trust.yaml") -> Path:
        path = self.root / name
        if text is None:
            text = yaml.safe_dump({"version": 1, "evaluators": list(entries or self.entries())}, sort_keys=False)
        path.write_text(text)
        return path

    def entries(self, *names: str) -> list[dict[str, Any]]:
        return [self.signers[n].trust_entry() for n in (names or self.signers)]

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    # signing

    def statement(self, model: Path | Manifest, evaluator: str, benchmark: str, metrics: Mapping[str, float],
                  risk_domain: str | None = "auto", sample_size: int | None = 5000,
                  when: datetime = SIGNED) -> dict[str, Any]:
        """The statement an honest `gate attest` writes, as a dict to tamper with before signing."""
        from tiergate.core.benchmarks import builtin_catalogue

        manifest = model if isinstance(model, Manifest) else hash_model(model)
        domain = builtin_catalogue().domain_of(benchmark) if risk_domain == "auto" else risk_domain
        evaluation = Evaluation(name=benchmark, benchmark=benchmark, risk_domain=domain, metrics=dict(metrics),
                                sample_size=sample_size, evaluated_at=when - timedelta(hours=1))
        predicate = EvaluationPredicate(evaluation, EvaluatorRef(evaluator), when, manifest=manifest)
        return {"_type": STATEMENT_TYPE, "subject": [{"name": "tiny", "digest": {"sha256": manifest.root_digest}}],
                "predicateType": EVALUATION_PREDICATE_TYPE, "predicate": predicate.to_dict()}

    def envelope(self, payload: bytes | Mapping[str, Any], signers: Iterable[str | PrivateKey],
                 payload_type: str = INTOTO_PAYLOAD_TYPE) -> bytes:
        """Sign exactly ``payload`` (bytes as given, or a dict serialised) with each signer's key."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signatures = []
        for signer in signers:
            key = signer if isinstance(signer, PrivateKey) else self.signers[signer].key
            signatures.append({"keyid": key.key_id, "sig": b64(key.sign(pae(payload_type, raw)))})
        return json.dumps({"payload": b64(raw), "payloadType": payload_type, "signatures": signatures}).encode()

    def attest(self, model: Path, evaluator: str, benchmark: str, metrics: Mapping[str, float],
               signers: Iterable[str | PrivateKey] | None = None, name: str | None = None, **kw: Any) -> Path:
        """Sign an evaluation of ``model`` into its .attestations folder; returns the file."""
        statement = self.statement(model, evaluator, benchmark, metrics, **kw)
        data = self.envelope(statement, signers or [evaluator])
        return self.put(model, name or f"{evaluator}-{benchmark}-{self._bump()}.json", data)

    def put(self, model: Path, name: str, data: bytes) -> Path:
        path = model / ".attestations" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def test_result(self, model: Path, suite: str, result: str = "PASSED") -> dict[str, Any]:
        manifest = hash_model(model)
        return {"_type": STATEMENT_TYPE, "subject": [{"name": "tiny", "digest": {"sha256": manifest.root_digest}}],
                "predicateType": TEST_RESULT_PREDICATE_TYPE,
                "predicate": {"result": result, "configuration": [{"name": suite}], "passedTests": ["a"] * 10}}

    def _bump(self) -> int:
        self._n += 1
        return self._n

    # the CLI

    def gate(self, *args: str | Path, env: Mapping[str, str] | None = None) -> Outcome:
        """Run `gate ARGS` in-process through its guarded entry point, as the console script does."""
        from tiergate.cli import main

        runner = CliRunner()
        clean = {k: None for k in os.environ if k.startswith("GATE_")}
        with runner.isolation(env={**clean, **(env or {})}) as streams:
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            out, err = streams[0].getvalue(), streams[1].getvalue()
        return self._outcome(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def _outcome(self, code: int, out: str, err: str) -> Outcome:
        # The lab's folder is named after the test (".../test_attack_json_duplicate_..."): mask it, so a reason's
        # words are found in what the gate said, not in a path.
        return Outcome(code, out.replace(str(self.root), "<lab>"), err.replace(str(self.root), "<lab>"))

    def gate_subprocess(self, *args: str | Path, timeout: float = 60) -> Outcome:
        """Run `gate` in a child process with a bound: for inputs that could hang the gate (YAML bombs)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
        try:
            done = subprocess.run([sys.executable, "-m", "tiergate", *map(str, args)], capture_output=True, text=True,
                                  env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(-9, "", f"gate did not finish within {timeout} s (hang)")
        return self._outcome(done.returncode, done.stdout, done.stderr)

    def check(self, model: Path, tier: str, trust: Path | None = None, policy: Path | str | None = "rt",
              *extra: str | Path) -> Outcome:
        args: list[str | Path] = ["check", model, *extra, "--tier", tier, "--json", "--now", NOW_TEXT, "-q"]
        if trust is not None:
            args += ["--trust", trust]
        if policy == "rt":
            args += ["--policy", self.policy_path]
        elif policy is not None:
            args += ["--policy", policy]
        return self.gate(*args)

    def verify(self, model: Path, trust: Path, *extra: str | Path) -> Outcome:
        return self.gate("verify", model, *extra, "--trust", trust, "--json", "--now", NOW_TEXT, "-q")


def key_file(lab: Lab, signer: str) -> Path:
    path = lab.root / f"{signer}.key"
    path.write_bytes(lab.signers[signer].key.to_pem())
    return path


def dumps(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


__all__ = ["CLASSES", "Case", "Expect", "Lab", "NOW", "NOW_TEXT", "Outcome", "PROFILE", "RT_POLICY", "SIGNED",
           "check_outcome", "words", "profile", "replace"]
