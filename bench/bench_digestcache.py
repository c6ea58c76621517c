#!/usr/bin/env python3
"""Re-checking unchanged weights: ``gate hash`` with the digest cache against reading every byte again.

A release is often checked several times (CI, then the pre-push hook, then an upload), each time on the same bytes.
This puts side by side, on the same warm model folder (default 4 GiB, in 4 files plus small ones):

- ``gate hash --no-cache`` (every byte read: the last landed behaviour);
- ``gate hash`` with a warm digest cache (one stat and one SQLite lookup per file);
- ``openssl dgst -sha256`` over the same files, one process per core: the physical limit of reading them;
- ``gate --version``: the CLI's start-up, the floor of any command.

Run ``.venv/bin/python bench/bench_digestcache.py --help``; the issue's bar is a re-check at least 10x faster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Sequence

MiB = 1024 * 1024
BLOCK = os.urandom(16 * MiB)


def ensure_model(root: Path, gib: int) -> Path:
    model = root / f"model-{gib}g"
    if (model / ".complete").exists():
        return model
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir(parents=True)
    for index in range(4):
        with open(model / f"model-{index:05d}-of-00004.bin", "wb") as handle:
            handle.writelines(BLOCK for _ in range(gib * 1024 // 4 // 16))
    (model / "config.json").write_text('{"architectures": ["Bench"]}')
    (model / ".complete").touch()
    return model


def best_of(runs: int, argv: Sequence[str], env: dict[str, str]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        best = min(best, time.perf_counter() - start)
    return best


def openssl_parallel(model: Path, runs: int) -> float | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    files = sorted(str(p) for p in model.glob("*.bin"))
    cores = max(1, len(os.sched_getaffinity(0)))
    groups = [files[i::cores] for i in range(cores) if files[i::cores]]
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        procs = [subprocess.Popen([openssl, "dgst", "-sha256", *g], stdout=subprocess.DEVNULL) for g in groups]
        for proc in procs:
            proc.wait()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=int, default=4, help="model size in GiB (default 4)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement; the best is reported")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "tiergate-bench",
                        help="where the model folder is kept between runs")
    args = parser.parse_args(argv)
    model = ensure_model(args.dir, args.gib)
    gate = [sys.executable, "-m", "tiergate"]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GATE_CACHE_DIR": cache}
        # The cache keeps no file changed within 2 s of its hash: let a just-written model settle first.
        time.sleep(2.1)
        subprocess.run(gate + ["hash", str(model)], check=True, stdout=subprocess.DEVNULL, env=env)  # warm both
        full = best_of(args.runs, gate + ["hash", "--no-cache", str(model)], env)
        cached = best_of(args.runs, gate + ["hash", str(model)], env)
        start = best_of(args.runs, gate + ["--version"], env)
    limit = openssl_parallel(model, args.runs)
    print(f"model: {args.gib} GiB in {len(list(model.iterdir())) - 1} files, page cache warm")
    print(f"{'gate hash --no-cache':<28}{full:8.3f} s")
    print(f"{'gate hash (warm cache)':<28}{cached:8.3f} s")
    print(f"{'openssl sha256 (per core)':<28}{limit:8.3f} s" if limit else "openssl: not installed")
    print(f"{'gate --version (start-up)':<28}{start:8.3f} s")
    print(f"re-check speed-up: {full / cached:.1f}x (bar: 10x); cached re-check vs reading at the SHA-256 limit: "
          f"{(limit or float('nan')) / cached:.1f}x faster; cached re-check is {cached / start:.1f}x CLI start-up")
    return 0 if full / cached >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
