"""What a full ``gate log audit`` costs: entries per second re-derived, at growing log sizes, beside the last landed
figure and the physical limit (SHA-256 of the same bytes, which any audit must read and hash at least once).

The log is what ``gate serve`` writes: a policy entry and a trust entry, then per model two attestations (two
evaluator organizations) and three decisions citing them (hosted, gated, internal). It is generated once per size
and kept under ``--cache`` (default: tmp/bench/audit under the checkout), so later runs only audit.

    PYTHONPATH=$PWD python bench/bench_audit.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from collections.abc import Sequence

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tiergate.audit.auditor import audit_log
from tiergate.audit.sources import StoreSource
from tiergate.core.attestation import Evaluation, EvaluatorRef
from tiergate.core.decision import decide
from tiergate.core.keys import PrivateKey
from tiergate.core.log.backends import open_store
from tiergate.core.log.entries import attestation_entry
from tiergate.core.manifest import FileDigest, Manifest
from tiergate.core.policy import Policy
from tiergate.core.signing import attest_evaluation
from tiergate.core.trust import TrustStore
from tiergate.core.verify import AttestationInput
from tiergate.runtime.local import RulesLog, decision_entries, source_of_logged

#: The last landed figure (issue 14): a whole-log audit of 100,000 entries on SQLite, before re-derivation.
LANDED = (100_000, 18.7)
POLICY = {"version": 1, "name": "bench", "tiers": [
    {"name": "internal"},
    {"name": "hosted", "requires": {"signers": {"min_organizations": 1}, "evaluations": [
        {"id": "sr", "benchmark": "strongreject", "metric": "score", "comparator": "<=", "threshold": 0.10}]}},
    {"name": "gated", "requires": {"signers": {"min_organizations": 2, "kinds": ["third_party"]}}},
]}
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def generate(folder: Path, size: int) -> tuple[Path, Path]:
    """A log of about ``size`` entries in ``folder`` (kept: generated once) and the trust store it was judged under."""
    db, trust_file = folder / f"log-{size}.db", folder / f"trust-{size}.yaml"
    if db.exists() and trust_file.exists():
        return db, trust_file
    folder.mkdir(parents=True, exist_ok=True)
    keys = {name: PrivateKey.generate() for name in ("evalco", "redteam")}
    trust_file.write_text(yaml.safe_dump({"version": 1, "evaluators": [
        {"id": name, "organization": name.title(), "kind": "third_party",
         "keys": [{"pem": key.public.to_pem().decode()}]} for name, key in keys.items()]}))
    policy_file = folder / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(POLICY))
    policy, trust = Policy.load(policy_file), TrustStore.load(trust_file)
    partial = db.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    with open_store(partial) as store:
        rules = RulesLog(store).basis(policy, trust, NOW)
        model = 0
        while store.size() < size:
            model += 1
            manifest = Manifest((FileDigest("model.safetensors", 8, hashlib.sha256(b"%d" % model).hexdigest()),))
            digest = manifest.root_digest
            signed = [attest_evaluation(manifest, "m", Evaluation(
                name="strongreject", benchmark="strongreject", risk_domain=None, metrics={"score": 0.02},
                sample_size=5000, evaluated_at=NOW - timedelta(days=1)), EvaluatorRef(name), [key],
                NOW - timedelta(days=1)).to_json() for name, key in keys.items()]
            first = store.append_many([attestation_entry(d, f"sha256:{digest}", NOW) for d in signed],
                                      [f"sha256:{digest}"] * 2)[0]
            held = [AttestationInput(source_of_logged(first + n), d) for n, d in enumerate(signed)]
            entries = []
            for tier in ("hosted", "gated", "internal"):
                decision = decide(policy, tier, digest, held, trust, NOW)
                entries += decision_entries(decision, {"bench": model}, [], held, lambda: rules)
            store.append_many(entries, [f"sha256:{digest}"] * len(entries))
    partial.rename(db)
    print(f"  generated {size:,} entries in {time.perf_counter() - started:.0f} s ({db})")
    return db, trust_file


def sha256_limit(db: Path) -> float:
    """Seconds to SHA-256 every entry's bytes once (read from the database in index order)."""
    with open_store(db) as store:
        started = time.perf_counter()
        for entry in store.entries():
            hashlib.sha256(entry.entry).digest()
        return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--cache", type=Path,
                        default=Path(__file__).resolve().parent.parent / "tmp" / "bench" / "audit")
    args = parser.parse_args(argv)
    print(f"audit benchmark: {os.cpu_count()} cores, SQLite; last landed: {LANDED[1]} s at {LANDED[0]:,} entries "
          f"({LANDED[0] / LANDED[1]:,.0f} entries/s, no re-derivation)")
    print(f"load average {os.getloadavg()[0]:.1f} (other sessions share the cores: wall time stretches, CPU time less)")
    print(f"{'entries':>10} {'audit s':>9} {'cpu s':>7} {'entries/s':>10} {'/cpu s':>8} {'vs landed':>10} "
          f"{'sha256 s':>9} {'x limit':>8}")
    for size in args.sizes:
        db, trust_file = generate(args.cache, size)
        limit = sha256_limit(db)
        trust = TrustStore.load(trust_file)
        with open_store(db) as store:
            started, cpu = time.perf_counter(), time.process_time()
            report = audit_log(StoreSource(store, str(db)), trust, [])
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if not report.ok:
            print(f"  audit FAILED: {report.first_bad.line() if report.first_bad else ''}")
            return 1
        rate = report.size / seconds
        print(f"{report.size:>10,} {seconds:>9.1f} {cpu:>7.1f} {rate:>10,.0f} {report.size / cpu:>8,.0f} "
              f"{rate / (LANDED[0] / LANDED[1]):>9.2f}x {limit:>9.2f} {seconds / limit:>7.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
