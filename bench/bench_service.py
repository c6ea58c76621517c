#!/usr/bin/env python3
"""How many release decisions per second does one `gate serve` take, and how long does each wait?

Starts a real ``gate serve`` on 127.0.0.1 (SQLite log, and PostgreSQL when reachable), gives it two attestations
for a model, then has 1, 8 and 64 concurrent clients (threads with keep-alive sessions) post decisions by digest at
a tier that needs both. Each decision therefore re-verifies two Ed25519-signed attestations, evaluates the policy
and appends one entry to the log (committed to disk) before it is answered. Reported per cell: decisions per second
and p50/p99 latency.

Beside it, the attestation verification rate in-process (``verify_attestation``: parse, signature, statement,
trust checks) against a bare ``cryptography`` Ed25519 verify loop over the same signed bytes: the floor the gate's
verification could reach.

Every cell is bounded by a request count and a time limit, so the whole run takes about a minute.
Run ``.venv/bin/python bench/bench_service.py --help`` for options. Figures are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from collections.abc import Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
import yaml  # noqa: E402

from tiergate.core.attestation import Evaluation, EvaluatorRef  # noqa: E402
from tiergate.core.keys import PrivateKey, write_keypair  # noqa: E402
from tiergate.core.manifest import FileDigest, Manifest  # noqa: E402
from tiergate.core.signing import attest_evaluation  # noqa: E402
from tiergate.core.timeutil import utcnow  # noqa: E402
from tiergate.service.tokens import hash_token  # noqa: E402

PG_URL = os.environ.get("GATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CONCURRENCY = (1, 8, 64)
POLICY = {"version": 1, "name": "bench", "tiers": [
    {"name": "internal"},
    {"name": "hosted", "requires": {"signers": {"min_organizations": 2}, "evaluations": [
        {"id": "sr", "benchmark": "strongreject", "metric": "score", "comparator": "<=", "threshold": 0.1},
        {"id": "wmdp", "benchmark": "wmdp_bio", "metric": "acc", "comparator": "reported"}]}},
]}


@dataclass(frozen=True)
class Cell:
    backend: str
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class Setup:
    """Keys, trust store, tokens, policy and two attestations for one (synthetic) model, in a temp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = secrets.token_urlsafe(24)
        (root / "tokens.txt").write_text(hash_token(self.token) + "  bench\n")
        (root / "policy.yaml").write_text(yaml.safe_dump(POLICY))
        write_keypair(PrivateKey.generate(), root / "gate")
        self.manifest = Manifest((FileDigest("model.safetensors", 1, "a" * 64), FileDigest("config.json", 1, "b" * 64)))
        evaluators, self.attestations = [], []
        for n, (name, bench, metrics) in enumerate((("evalco", "strongreject", {"score": 0.05}),
                                                    ("redteam", "wmdp_bio", {"acc": 0.3}))):
            key = PrivateKey.generate()
            evaluators.append({"id": name, "organization": f"Org {n}", "kind": "third_party",
                               "keys": [{"pem": key.public.to_pem().decode()}]})
            evaluation = Evaluation(name=bench, benchmark=bench, risk_domain=None, metrics=metrics,
                                    sample_size=1000, evaluated_at=utcnow() - timedelta(hours=1))
            envelope = attest_evaluation(self.manifest, "bench", evaluation, EvaluatorRef(name), [key],
                                         utcnow() - timedelta(hours=1))
            self.attestations.append(envelope.to_json())
        (root / "trust.yaml").write_text(yaml.safe_dump({"version": 1, "evaluators": evaluators}))

    def serve(self, log: str, namespace: str | None) -> tuple[subprocess.Popen[bytes], str]:
        args = [sys.executable, "-m", "tiergate", "serve", "--port", "0", "--trust", str(self.root / "trust.yaml"),
                "--key", str(self.root / "gate.key"), "--tokens", str(self.root / "tokens.txt"),
                "--policy", str(self.root / "policy.yaml"), "--log", log]
        if namespace:
            args += ["--log-namespace", namespace]
        stderr = self.root / f"serve-{secrets.token_hex(3)}.stderr"
        with open(stderr, "wb") as handle:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=handle, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"serving on (http://\S+)", stderr.read_text())
            if match:
                return proc, match.group(1)
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        raise SystemExit(f"gate serve did not start: {stderr.read_text()}")


def run_cell(url: str, token: str, digest: str, clients: int, max_requests: int, max_seconds: float,
             backend: str) -> Cell:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + max_seconds
    body = json.dumps({"tier": "hosted", "model": {"digest": digest}, "context": {"bench": True}}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def worker() -> None:
        with requests.Session() as http:
            while time.monotonic() < deadline:
                with lock:
                    if issued[0] >= max_requests:
                        return
                    issued[0] += 1
                started = time.perf_counter()
                answer = http.post(f"{url}/v1/decisions", data=body, headers=headers, timeout=60)
                elapsed = time.perf_counter() - started
                with lock:
                    if answer.status_code == 200 and answer.json()["decision"] == "allow":
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ordered = sorted(latencies) or [0.0]
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Cell(backend, clients, len(latencies), wall, statistics.median(ordered) * 1000, p99 * 1000, errors[0])


def bench_backend(setup: Setup, backend: str, log: str, namespace: str | None, args: argparse.Namespace) -> list[Cell]:
    proc, url = setup.serve(log, namespace)
    try:
        with requests.Session() as http:
            for data in setup.attestations:
                answer = http.post(f"{url}/v1/attestations", json={"attestation": base64.b64encode(data).decode()},
                                   headers={"Authorization": f"Bearer {setup.token}"}, timeout=30)
                answer.raise_for_status()
        cells = []
        for clients in args.clients:
            run_cell(url, setup.token, setup.manifest.digest, clients, clients * 5, 2.0, backend)  # warm-up
            cell = run_cell(url, setup.token, setup.manifest.digest, clients, args.requests, args.seconds, backend)
            cells.append(cell)
            print(f"  {backend:<10} {clients:>3} clients: {cell.rate:7.0f} decisions/s  p50 {cell.p50_ms:6.1f} ms  "
                  f"p99 {cell.p99_ms:6.1f} ms  ({cell.requests} decisions, {cell.errors} errors)", flush=True)
        return cells
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def verification_rates(setup: Setup, seconds: float) -> tuple[float, float]:
    """(verify_attestation per second, bare Ed25519 verify per second) over the same envelope."""
    from tiergate.core.dsse import Envelope
    from tiergate.core.trust import TrustStore
    from tiergate.core.verify import AttestationInput, verify_attestation

    trust = TrustStore.load(setup.root / "trust.yaml")
    item = AttestationInput("bench", setup.attestations[0])
    now = utcnow()

    def rate(step: object) -> float:
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            for _ in range(100):
                step()  # type: ignore[operator]
            count += 100
        return count / (time.perf_counter() - began)

    gate_rate = rate(lambda: verify_attestation(item, trust, setup.manifest.root_digest, now))
    envelope = Envelope.from_json(setup.attestations[0])
    message, signature = envelope.pae(), envelope.signatures[0].sig
    public = next(k for k in trust if k.verify(signature, message)).key  # the raw cryptography key
    bare_rate = rate(lambda: public.verify(signature, message))
    return gate_rate, bare_rate


def postgres_namespace() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return f"gate_bench_{secrets.token_hex(4)}"
    except Exception as exc:  # noqa: BLE001 - any failure means: skip the PostgreSQL cells, loudly
        print(f"  PostgreSQL at {PG_URL} unreachable ({type(exc).__name__}); its cells are skipped", flush=True)
        return None


def drop_namespace(namespace: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=list(CONCURRENCY), help="concurrency levels")
    parser.add_argument("--requests", type=int, default=2000, help="decisions per cell at most")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per cell at most")
    parser.add_argument("--verify-seconds", type=float, default=2.0, help="seconds per verification-rate loop")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gate-bench-service-") as tmp:
        setup = Setup(Path(tmp))
        print(f"gate service benchmark: {os.cpu_count()} cores, decisions by digest at tier 'hosted' "
              "(2 logged attestations re-verified per decision)", flush=True)
        cells = bench_backend(setup, "sqlite", str(Path(tmp) / "log.db"), None, args)
        namespace = None if args.skip_postgres else postgres_namespace()
        if namespace:
            try:
                cells += bench_backend(setup, "postgresql", PG_URL, namespace, args)
            finally:
                drop_namespace(namespace)
        gate_rate, bare_rate = verification_rates(setup, args.verify_seconds)
    print(f"  attestation verification: verify_attestation {gate_rate:,.0f}/s, bare Ed25519 verify "
          f"{bare_rate:,.0f}/s (gate at {gate_rate / bare_rate:.0%} of the bare rate)")
    if args.json:
        args.json.write_text(json.dumps({
            "cells": [{**c.__dict__, "rate": c.rate} for c in cells],
            "verify_attestation_per_s": gate_rate, "ed25519_verify_per_s": bare_rate}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
