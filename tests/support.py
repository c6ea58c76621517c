"""Shared test support: small real models, evaluator keys, trust stores, signed attestations, running `gate`.

Test modules import helpers from here (`from support import ...`); the fixtures are re-exported by conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
import yaml

from tiergate.core.attestation import Evaluation, EvaluatorRef
from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import Manifest, hash_model
from tiergate.core.signing import attest_evaluation
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput

from content_samples import safetensors_bytes

NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parent.parent


def write_model(root: Path, files: dict[str, bytes] | None = None) -> Path:
    """A small model folder: safetensors weights, config, tokenizer."""
    files = files or {
        "model.safetensors": safetensors_bytes({"w": ("U8", [4096], os.urandom(4096))}),  # judged by content
        "config.json": b'{"architectures": ["TinyModel"], "hidden_size": 16}',
        "tokenizer.json": b'{"version": "1.0"}',
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@dataclass
class Evaluator:
    id: str
    organization: str
    kind: str
    key: PrivateKey
    scope: list[str] | None = None
    key_fields: dict[str, Any] = field(default_factory=dict)

    def trust_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": self.id, "organization": self.organization, "kind": self.kind,
            "keys": [{"pem": self.key.public.to_pem().decode(), **self.key_fields}],
        }
        if self.scope is not None:
            entry["scope"] = self.scope
        return entry


@dataclass
class World:
    """Evaluators, a trust store file, and helpers to sign evaluations of a model."""

    tmp: Path
    evaluators: dict[str, Evaluator]

    def trust_dict(self) -> dict[str, Any]:
        return {"version": 1, "evaluators": [e.trust_entry() for e in self.evaluators.values()]}

    def trust_path(self) -> Path:
        path = self.tmp / "trust.yaml"
        path.write_text(yaml.safe_dump(self.trust_dict()))
        return path

    def trust(self) -> TrustStore:
        return TrustStore.from_dict(self.trust_dict(), source="trust.yaml")

    def attest(
        self,
        manifest: Manifest,
        evaluator: str,
        benchmark: str,
        metrics: dict[str, float],
        *,
        risk_domain: str | None = None,
        sample_size: int | None = 5000,
        when: datetime = NOW - timedelta(days=1),
        signers: list[str] | None = None,
    ) -> AttestationInput:
        from tiergate.core.benchmarks import builtin_catalogue

        # As `gate attest` writes it: the domain the benchmark measures (none for one the catalogue lacks).
        evaluation = Evaluation(
            name=benchmark, benchmark=benchmark, risk_domain=risk_domain or builtin_catalogue().domain_of(benchmark),
            metrics=metrics, sample_size=sample_size, evaluated_at=when,
        )
        keys = [self.evaluators[s].key for s in (signers or [evaluator])]
        envelope = attest_evaluation(manifest, "tiny", evaluation, EvaluatorRef(evaluator), keys, when)
        name = f"{evaluator}-{benchmark}-{len(metrics)}-{when.timestamp():.0f}.json"
        return AttestationInput(name, envelope.to_json())


@pytest.fixture(scope="session")
def key_pool() -> Callable[[str], PrivateKey]:
    """Keys are cheap but not free: one per name per session."""
    cache: dict[str, PrivateKey] = {}

    def get(name: str, algorithm: str = "ed25519") -> PrivateKey:
        if (name, algorithm) not in cache:
            cache[name, algorithm] = PrivateKey.generate(algorithm)  # type: ignore[index]
        return cache[name, algorithm]  # type: ignore[index]

    return get


@pytest.fixture
def world(tmp_path: Path, key_pool: Callable[..., PrivateKey]) -> World:
    evaluators = {
        "acme-internal": Evaluator("acme-internal", "Acme AI", "developer", key_pool("acme-internal")),
        "evalco": Evaluator("evalco", "EvalCo", "third_party", key_pool("evalco")),
        "evalco-2": Evaluator("evalco-2", "EvalCo", "third_party", key_pool("evalco-2")),
        "redteam": Evaluator("redteam", "RedTeam Labs", "third_party", key_pool("redteam")),
        "aisi": Evaluator("aisi", "UK AI Security Institute", "government", key_pool("aisi")),
        # Claims to be a third party but belongs to the developer's own organization.
        "acme-shadow": Evaluator("acme-shadow", "Acme AI", "third_party", key_pool("acme-shadow")),
    }
    return World(tmp_path, evaluators)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model(tmp_path / "tiny")


@pytest.fixture
def manifest(model_dir: Path) -> Manifest:
    return hash_model(model_dir)


def run_gate(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             input: bytes | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002 - as subprocess.run
    """Run the real console entry point in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tiergate", *args], capture_output=True, text=True, env=full_env, cwd=cwd,
        input=input.decode() if input else None, timeout=120,
    )


#: The key stand-in services (HTTP stubs in tests) sign their answers with; clients in those tests trust its public key.
ANSWER_KEY = PrivateKey.generate()


def signed_answer(request: bytes, body: bytes, key: PrivateKey = ANSWER_KEY, index: int = 7,
                  when: datetime | None = None, origin: str = "stub.tiergate.local/log") -> str:
    """The X-Gate-Answer header a real service would send with ``body`` to the decision ``request`` (its JSON body,
    or a whole HTTP request ending in it): signed over the request's nonce, model, tier or target."""
    import json

    from tiergate.core.answer import AnswerRequest, SignedAnswer, body_digest
    from tiergate.core.timeutil import utcnow

    asked = json.loads(request.rpartition(b"\r\n\r\n")[2] or request)
    model = asked["model"]
    digest = model["digest"] if "digest" in model else Manifest.from_dict(model["manifest"]).digest
    try:
        decided = json.loads(body)
        outcome, tier = str(decided["decision"]), str(decided["requested_tier"])
    except (ValueError, KeyError, TypeError, RecursionError):  # not a decision: signed all the same
        outcome, tier = "deny", "?"
    return SignedAnswer(AnswerRequest(asked.get("nonce"), digest, asked.get("tier"), asked.get("target")),
                        outcome, tier, body_digest(body), origin, index, when or utcnow()).sign(key)
