#!/usr/bin/env python3
"""What does the tiergate MLflow plugin cost?

Two questions, answered in one run on the same machine:

1. Overhead on calls the gate does not gate. A plain ``mlflow server`` and one with ``--app-name tiergate`` run
   side by side (same MLflow, SQLite backends, one worker each); ``log_metric`` and ``search_runs`` are timed
   against both in interleaved rounds, so drift of the machine hits both alike. Target: at most 5 % slower.
2. Time to decide on a 1 GiB model. The bare ``hash_model`` time of the folder is the floor; registration is the
   first time the server sees the weights (hash + verify + decide + record); an alias change on the same, unchanged
   weights must not hash them again. The same calls on the plain server show what MLflow itself takes.

Run ``.venv/bin/python bench/bench_mlflow.py --help``; the figures in docs/mlflow.md ("Performance") come from it.
The server helpers are the end-to-end tests' own (tests/mlflow/mlflow_e2e.py), so the bench runs what CI tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from collections.abc import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "mlflow")]

from tiergate.core.keys import PrivateKey  # noqa: E402
from tiergate.core.manifest import hash_model  # noqa: E402
from mlflow_e2e import Server, hosted_evidence, safetensors_bytes, session_world, start_server  # noqa: E402

GiB = 1024 ** 3
CHUNK = 64 * 1024 * 1024
TARGET_OVERHEAD = 0.05
WARMUP_CALLS = 20
DEFAULT_DB_DIR = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --- 1. overhead on ungated calls -------------------------------------------------------------------------------


def ungated_overhead(plain: Any, gated: Any, calls: int) -> dict[str, dict[str, float]]:
    """Per-call milliseconds on each server: median and mean of ``calls`` calls, the two servers alternating call by
    call (which one goes first alternates too), so that the machine's drift and noise hit both alike."""
    setups = {}
    for label, client in (("plain", plain), ("gated", gated)):
        experiment = client.create_experiment(f"bench-{label}-{time.time_ns()}")
        setups[label] = (client, experiment, client.create_run(experiment).info.run_id)
    operations = {
        "log_metric": lambda c, e, r, i: c.log_metric(r, "loss", 1.0 / (i + 1), step=i),
        "search_runs": lambda c, e, r, i: c.search_runs([e], max_results=10),
    }
    result = {}
    for op, call in operations.items():
        samples: dict[str, list[float]] = {"plain": [], "gated": []}
        for i in range(calls + WARMUP_CALLS):
            for label in (("plain", "gated") if i % 2 else ("gated", "plain")):
                client, experiment, run = setups[label]
                seconds = timed(lambda: call(client, experiment, run, i))
                if i >= WARMUP_CALLS:
                    samples[label].append(seconds * 1000)
        plain_ms, gated_ms = statistics.median(samples["plain"]), statistics.median(samples["gated"])
        paired = statistics.median(g / p for g, p in zip(samples["gated"], samples["plain"], strict=True)) - 1
        result[op] = {"calls": float(calls), "plain_ms": plain_ms, "gated_ms": gated_ms,
                      "overhead": gated_ms / plain_ms - 1, "paired_overhead": paired,
                      "plain_mean_ms": statistics.fmean(samples["plain"]),
                      "gated_mean_ms": statistics.fmean(samples["gated"])}
    return result


def hook_cost(calls: int) -> float:
    """Microseconds the gate's before-request hook takes on an ungated call, timed directly (best of 5 rounds).

    The end-to-end comparison cannot resolve a few microseconds on a shared 2-core machine; this can.
    """
    from flask import Flask

    from tiergate.integrations.mlflow.gatekeeper import RegistryGate
    from tiergate.integrations.mlflow.holder import GateHolder
    from tiergate.integrations.mlflow.hook import install

    path = "/api/2.0/mlflow/runs/log-metric"
    flask_app = Flask("bench")
    flask_app.add_url_rule(path, "log_metric", lambda: "{}", methods=["POST"])
    install(flask_app, RegistryGate(GateHolder(environ={})))
    hook = flask_app.before_request_funcs[None][-1]
    with flask_app.test_request_context(path, method="POST", json={}):  # routed: request.url_rule is set
        assert hook() is None
        best = min(timed(lambda: [hook() for _ in range(calls)]) for _ in range(5))
    return best / calls * 1e6


# --- 2. deciding on a 1 GiB model -------------------------------------------------------------------------------


def write_big_model(root: Path, size: int) -> Path:
    """One safetensors file of ``size`` bytes (random data: nothing compresses or dedupes it) and a config."""
    root.mkdir(parents=True, exist_ok=True)
    data_size = size - 4096
    header_only = safetensors_bytes({"w": ("U8", [data_size], b"")})
    with open(root / "model.safetensors", "wb") as out:
        out.write(header_only)
        left = data_size
        while left:
            n = min(CHUNK, left)
            out.write(os.urandom(n))
            left -= n
    (root / "config.json").write_text(json.dumps({"architectures": ["Big"], "bytes": size}))
    return root


def warm_up(plain: Any, gated: Any, world: Any, tmp: Path) -> None:
    """One small registration and alias on each server first, so one-off imports in the worker (signature
    verification, the registry's code paths) are not counted as the big model's decision time."""
    import mlflow

    from mlflow_e2e import write_tiny_model

    small = write_tiny_model(tmp / "warm-up")
    for label, client in (("plain", plain), ("gated", gated)):
        experiment = client.create_experiment(f"bench-warm-{label}-{time.time_ns()}")
        model = client.create_logged_model(experiment, name="warm-up")
        client.log_model_artifacts(model.model_id, str(small))
        mlflow.set_tracking_uri(client._registry_uri)
        mlflow.set_registry_uri(client._registry_uri)
        name = f"warm-{label}-{time.time_ns()}"
        version = mlflow.register_model(f"models:/{model.model_id}", name).version
        client.set_registered_model_alias(name, "candidate", version)


def big_model_timings(plain: Any, gated: Any, world: Any, tmp: Path, size: int) -> dict[str, float]:
    import mlflow

    warm_up(plain, gated, world, tmp)
    model_dir = write_big_model(tmp / "big", size)
    hash_model(model_dir)  # warm the page cache, as the server's copy is warm after its upload
    bare = min(timed(lambda: hash_model(model_dir)) for _ in range(3))
    manifest = hash_model(model_dir)
    out: dict[str, float] = {"bare_hash_s": bare, "bytes": float(manifest.total_size)}
    for label, client in (("plain", plain), ("gated", gated)):
        experiment = client.create_experiment(f"bench-big-{label}-{time.time_ns()}")
        model = client.create_logged_model(experiment, name="big")
        out[f"{label}_upload_s"] = timed(lambda: client.log_model_artifacts(model.model_id, str(model_dir)))
        if label == "gated":
            attestations = tmp / "attestations"
            attestations.mkdir()
            for item in hosted_evidence(world, manifest):
                (attestations / Path(item.source).name).write_bytes(item.data)
            client.log_model_artifacts(model.model_id, str(attestations), artifact_path=".attestations")
        mlflow.set_tracking_uri(client._registry_uri)
        mlflow.set_registry_uri(client._registry_uri)
        name = f"big-{label}-{time.time_ns()}"
        versions: list[Any] = []
        out[f"{label}_register_s"] = timed(
            lambda: versions.append(mlflow.register_model(f"models:/{model.model_id}", name)))
        version = versions[0].version
        out[f"{label}_alias_s"] = timed(lambda: client.set_registered_model_alias(name, "production", version))
        out[f"{label}_second_alias_s"] = timed(lambda: client.set_registered_model_alias(name, "champion", version))
    return out


# --- running -----------------------------------------------------------------------------------------------------


def start_both(workdir: Path, db_dir: Path, trust: Path, calibrate: bool) -> tuple[Server, Server]:
    """The plain and the gated server; with ``calibrate`` the "gated" one is plain too (an A/A run shows the noise)."""
    gated_app = None if calibrate else "tiergate"
    with ThreadPoolExecutor(2) as pool:
        plain = pool.submit(start_server, workdir / "plain", f"sqlite:///{db_dir / 'plain.db'}", {}, None)
        gated = pool.submit(start_server, workdir / "gated", f"sqlite:///{db_dir / 'gated.db'}",
                            {"GATE_TRUST": str(trust)}, gated_app)
        return plain.result(), gated.result()


def report(overhead: dict[str, dict[str, float]], hook_us: float, big: dict[str, float] | None,
           gate_lines: list[str]) -> bool:
    ok = True
    print(f"\nthe gate's hook on an ungated call, timed directly: {hook_us:.2f} us per call")
    print(f"\nungated calls, ms per call (median; mean in brackets); target <= {TARGET_OVERHEAD:.0%} overhead;\n"
          "  overhead = median gated / median plain - 1, paired = median over call pairs of gated / plain - 1")
    print(f"  {'call':<12} {'plain':>16} {'gated':>16} {'overhead':>9} {'paired':>8}")
    for op, row in overhead.items():
        verdict = "ok" if row["overhead"] <= TARGET_OVERHEAD else "OVER TARGET"
        ok &= row["overhead"] <= TARGET_OVERHEAD
        plain = f"{row['plain_ms']:.2f} ({row['plain_mean_ms']:.2f})"
        gated = f"{row['gated_ms']:.2f} ({row['gated_mean_ms']:.2f})"
        print(f"  {op:<12} {plain:>16} {gated:>16} {row['overhead']:>+9.1%} {row['paired_overhead']:>+8.1%}  "
              f"{verdict}   n={row['calls']:.0f}")
    if big:
        gib = big["bytes"] / GiB
        print(f"\n{gib:.2f} GiB model (warm page cache)")
        print(f"  bare hash_model                      {big['bare_hash_s']:7.2f} s")
        print(f"  register, plain server               {big['plain_register_s']:7.2f} s")
        print(f"  register, gated (hash+decide+log)    {big['gated_register_s']:7.2f} s")
        print(f"  alias 'production', plain server     {big['plain_alias_s']:7.3f} s")
        print(f"  alias 'production', gated (hosted)   {big['gated_alias_s']:7.3f} s   "
              "weights unchanged: not re-hashed")
        print(f"  alias 'champion', gated (hosted)     {big['gated_second_alias_s']:7.3f} s")
        print(f"  (uploads, not part of any decision: plain {big['plain_upload_s']:.1f} s, "
              f"gated {big['gated_upload_s']:.1f} s)")
    if gate_lines:
        print("\nthe gated server's log (server-side time of each decision at the end of the line):")
        for line in gate_lines:
            print("  " + line.split("tiergate: ", 1)[-1])
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="ungated calls per operation and server (default 500)")
    parser.add_argument("--hook-calls", type=int, default=100_000, help="direct calls of the hook per round")
    parser.add_argument("--size-gib", type=float, default=1.0, help="model size for the decision timing (0: skip)")
    parser.add_argument("--db-dir", type=Path, default=DEFAULT_DB_DIR,
                        help=f"where the servers' SQLite databases go (default {DEFAULT_DB_DIR}: in memory, so that "
                             "disk flushes do not drown the difference being measured)")
    parser.add_argument("--calibrate", action="store_true",
                        help="A/A run: both servers plain, to see the machine's noise floor for the overhead figure")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp_name:
        tmp = Path(tmp_name)
        world = session_world(tmp / "world", lambda name, algorithm="ed25519": PrivateKey.generate(algorithm))
        db_dir = Path(tempfile.mkdtemp(prefix="bench-mlflow-db-", dir=args.db_dir))
        plain_server, gated_server = start_both(tmp / "servers", db_dir, world.trust_path(), args.calibrate)
        try:
            plain = MlflowClient(plain_server.url, plain_server.url)
            gated = MlflowClient(gated_server.url, gated_server.url)
            overhead = ungated_overhead(plain, gated, args.calls)
            big = (big_model_timings(plain, gated, world, tmp, int(args.size_gib * GiB))
                   if args.size_gib and not args.calibrate else None)
        finally:
            plain_server.stop()
            gated_server.stop()
            shutil.rmtree(db_dir, ignore_errors=True)
        gate_lines = [line for line in gated_server.log_text().splitlines() if "model 'big-" in line]
    hook_us = hook_cost(args.hook_calls)
    ok = report(overhead, hook_us, big, gate_lines)
    if args.json_path:
        figures = {"ungated": overhead, "hook_us": hook_us, "big_model": big}
        args.json_path.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
