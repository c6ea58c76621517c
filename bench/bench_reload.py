"""What following the configuration files costs a decision: one :class:`tiergate.runtime.Reloader` check, beside its
physical limit (a bare ``os.stat`` of the same files) and what it saves (loading the trust store and policy again).

Every decision of ``gate serve``, its webhook and the MLflow plugin starts with one check. The files: a policy and a
trust store naming K evaluator key files by path, behind a symlinked release folder (the usual deploy).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable, Sequence

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tiergate.core.keys import PrivateKey
from tiergate.runtime import Reloader, load_rules


def per_call(step: Callable[[], object], seconds: float) -> float:
    """Seconds per call of ``step``, the best of 5 rounds of about ``seconds / 5`` each."""
    best = float("inf")
    for _ in range(5):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 5:
            for _ in range(100):
                step()
            calls += 100
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def deploy(root: Path, keys: int) -> Path:
    """releases/1 with a policy and a trust store naming ``keys`` key files; ``current`` links to it."""
    release = root / "releases" / "1"
    (release / "keys").mkdir(parents=True)
    evaluators = []
    for n in range(keys):
        (release / "keys" / f"e{n}.pub").write_bytes(PrivateKey.generate().public.to_pem())
        evaluators.append({"id": f"e{n}", "organization": f"Org {n}", "kind": "third_party",
                           "keys": [{"path": f"keys/e{n}.pub"}]})
    (release / "trust.yaml").write_text(yaml.safe_dump({"version": 1, "evaluators": evaluators}))
    policy = {"version": 1, "name": "bench", "tiers": [{"name": "internal"}]}
    (release / "policy.yaml").write_text(yaml.safe_dump(policy))
    (root / "current").symlink_to(release)
    return root / "current"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 10, 100], help="key files named by the trust store")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per row")
    args = parser.parse_args(argv)
    print(f"reloader benchmark: {os.cpu_count()} cores; per decision, best of 5")
    for keys in args.keys:
        with tempfile.TemporaryDirectory(prefix="gate-bench-reload-") as tmp:
            current = deploy(Path(tmp), keys)
            policy, trust = current / "policy.yaml", current / "trust.yaml"
            reloader = Reloader(lambda: load_rules(policy, trust))
            files = load_rules(policy, trust).files
            check = per_call(reloader.current, args.seconds)
            bare = per_call(lambda: [os.stat(f) for f in files], args.seconds)
            reload = per_call(lambda: load_rules(policy, trust), args.seconds)
            print(f"  {len(files):>4} files: reloader check {check * 1e6:8.1f} us   bare os.stat of each "
                  f"{bare * 1e6:8.1f} us (x{check / bare:.2f})   loading them again {reload * 1e6:9.1f} us "
                  f"(x{reload / check:.0f} the check)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
