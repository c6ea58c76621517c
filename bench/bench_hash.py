#!/usr/bin/env python3
"""How fast does the gate compute a model's identity, against model-signing and against the hardware?

The gate hashes every file of a model before every decision, so hashing speed is its latency floor. This benchmark
puts three numbers side by side on the same warm 1 GiB directory:

- ``tiergate.core.manifest.hash_model`` (what the gate runs);
- ``model_signing.hashing.Config().use_file_serialization().hash`` (the reference OMS implementation);
- ``openssl dgst -sha256`` run as one process per core over the big files: the SHA-256 throughput the cores can
  physically deliver when every file must get its own digest (per-file SHA-256 cannot be split inside a file).

``openssl speed -evp sha256`` gives the single-core throughput for reference, and the start-up time of the CLI is
timed because a gate runs in CI on every release.

Run ``.venv/bin/python bench/bench_hash.py --help`` for options; bench/README.md explains how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MiB = 1024 * 1024
GiB = 1024 * MiB
BIG_FILES = 4
BIG_SIZE = 256 * MiB - 512 * 1024  # 4 of these plus the small files make 1 GiB
SMALL_FILES = {"config.json": 4 * 1024, "tokenizer.json": 2 * MiB - 4 * 1024}
LAYOUT_MARKER = ".bench-layout.json"
#: Targets the gate is held to (see bench/README.md).
TARGET_VS_MODEL_SIGNING = 1.0  # gate time / model-signing time must not exceed this
TARGET_VS_OPENSSL = 1.10  # gate time / parallel openssl time must not exceed this


@dataclass(frozen=True)
class Result:
    name: str
    seconds: float | None
    nbytes: int
    note: str = ""

    @property
    def gib_per_s(self) -> float | None:
        return None if not self.seconds else self.nbytes / GiB / self.seconds


# --- the test directory ----------------------------------------------------------------------------------------


def layout() -> dict[str, int]:
    """File name -> size of the benchmark model (written into a marker so a stale directory is rebuilt)."""
    files = {f"model-{i + 1:05d}-of-{BIG_FILES:05d}.safetensors": BIG_SIZE for i in range(BIG_FILES)}
    files.update(SMALL_FILES)
    return files


def ensure_model_dir(root: Path) -> Path:
    """Create the random 1 GiB model under ``root`` unless an identical layout is already there (saves ~5 s)."""
    model = root / "model"
    marker = root / LAYOUT_MARKER
    wanted = layout()
    if marker.is_file() and json.loads(marker.read_text()) == wanted and all(
        (model / name).is_file() and (model / name).stat().st_size == size for name, size in wanted.items()
    ):
        return model
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir(parents=True)
    for name, size in wanted.items():
        with open(model / name, "wb") as handle:
            left = size
            while left:
                chunk = min(left, 16 * MiB)
                handle.write(os.urandom(chunk))
                left -= chunk
    marker.write_text(json.dumps(wanted))
    return model


def warm_page_cache(model: Path) -> None:
    """Read every file once so that every timed run measures hashing, not the disk."""
    buf = bytearray(8 * MiB)
    for path in sorted(model.iterdir()):
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buf):
                pass


def big_files(model: Path) -> list[Path]:
    return sorted(p for p in model.iterdir() if p.stat().st_size >= 64 * MiB)


def total_bytes(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


# --- timing ----------------------------------------------------------------------------------------------------


def best_of(runs: int, func: Callable[[], object]) -> float:
    """Minimum wall time over ``runs``: the least disturbed run is the best estimate of the cost itself."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True)
class Contender:
    name: str
    run: Callable[[], object]
    nbytes: int
    note: str = ""


def race(contenders: Sequence[Contender], runs: int) -> list[Result]:
    """Time the contenders in interleaved rounds and keep each one's minimum.

    Interleaving matters on a shared machine: a burst of load from another process then slows one round of every
    contender instead of all the runs of one of them, and the minimum discards it.
    """
    best = {c.name: float("inf") for c in contenders}
    for _ in range(runs):
        for contender in contenders:
            start = time.perf_counter()
            contender.run()
            best[contender.name] = min(best[contender.name], time.perf_counter() - start)
    return [Result(c.name, best[c.name], c.nbytes, c.note) for c in contenders]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_pressure() -> str:
    """Linux PSI ``some avg10`` for the CPU: above a few percent, other processes compete and numbers are noisy."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return f"load average {os.getloadavg()[0]:.2f}"
    return f"cpu pressure {line.split()[1].split('=')[1]} % (some avg10), load average {os.getloadavg()[0]:.2f}"


def gate_contender(model: Path, workers: int | None) -> Contender:
    from tiergate.core.manifest import hash_model

    label = "gate hash_model" + (f" (workers={workers})" if workers else "")
    return Contender(label, lambda: hash_model(model, workers=workers), total_bytes(list(model.iterdir())))


def model_signing_contender(model: Path) -> Contender | Result:
    try:
        from model_signing import hashing
    except ImportError as exc:  # model-signing 1.1.1 also needs pyOpenSSL (defect 1)
        return Result("model-signing files/sha256", None, 0, f"skipped: {exc}")
    config = hashing.Config().use_file_serialization()
    return Contender("model-signing files/sha256", lambda: config.hash(model), total_bytes(list(model.iterdir())))


def split_round_robin(paths: Sequence[Path], parts: int) -> list[list[Path]]:
    """Largest first, each file to the currently lightest group: the split a careful shell script would make."""
    groups: list[list[Path]] = [[] for _ in range(max(1, parts))]
    loads = [0] * len(groups)
    for path in sorted(paths, key=lambda p: p.stat().st_size, reverse=True):
        index = loads.index(min(loads))
        groups[index].append(path)
        loads[index] += path.stat().st_size
    return [g for g in groups if g]


def openssl_parallel_contender(model: Path, openssl: str) -> Contender:
    files = big_files(model)
    groups = split_round_robin(files, cores())

    def run() -> None:
        procs = [
            subprocess.Popen([openssl, "dgst", "-sha256", *map(str, group)], stdout=subprocess.DEVNULL)
            for group in groups
        ]
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError("openssl dgst failed")

    return Contender(f"openssl dgst -sha256 x{len(groups)} procs", run, total_bytes(files), "big files only")


def openssl_sequential_contender(model: Path, openssl: str) -> Contender:
    files = big_files(model)
    argv = [openssl, "dgst", "-sha256", *map(str, files)]
    return Contender(
        "openssl dgst -sha256 x1 proc",
        lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, check=True),
        total_bytes(files),
        "big files only",
    )


def openssl_speed(openssl: str) -> Result:
    """Single-core SHA-256 throughput on 1 MiB buffers, from ``openssl speed -mr`` (no file I/O at all)."""
    out = subprocess.run(
        [openssl, "speed", "-mr", "-evp", "sha256", "-bytes", str(MiB), "-seconds", "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("+F:"):
            bytes_per_s = float(line.split(":")[-1])
            return Result("openssl speed -evp sha256 (1 core)", GiB / bytes_per_s, GiB, "computed for 1 GiB, no I/O")
    return Result("openssl speed -evp sha256 (1 core)", None, 0, "could not parse openssl output")


def time_command(argv: Sequence[str], runs: int) -> float | None:
    def run() -> None:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=REPO)

    try:
        run()
    except (OSError, subprocess.CalledProcessError):
        return None
    return best_of(runs, run)


def cli_start_times(runs: int) -> list[tuple[str, float | None]]:
    """Process start-up as a CI job pays it: bare interpreter, importing the CLI, ``gate --help``."""
    python = sys.executable
    gate_script = Path(python).parent / "gate"
    rows: list[tuple[str, float | None]] = [
        ("python -c pass", time_command([python, "-c", "pass"], runs)),
        ("python -c 'import tiergate.cli'", time_command([python, "-c", "import tiergate.cli"], runs)),
        ("gate --help", time_command([str(gate_script), "--help"], runs) if gate_script.exists() else None),
        ("python -c 'import model_signing'", time_command([python, "-c", "import model_signing"], runs)),
    ]
    return rows


# --- report ----------------------------------------------------------------------------------------------------


def fmt_seconds(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def print_table(results: Sequence[Result]) -> None:
    print(f"{'what':44} {'seconds':>8} {'GiB/s':>7}  note")
    for r in results:
        rate = "    n/a" if r.gib_per_s is None else f"{r.gib_per_s:7.2f}"
        print(f"{r.name:44} {fmt_seconds(r.seconds):>8} {rate}  {r.note}")


def ratio(a: Result, b: Result) -> float | None:
    """Time of a over time of b, each normalised to seconds per GiB (the runs may hash slightly different sets)."""
    if not a.seconds or not b.seconds or not a.nbytes or not b.nbytes:
        return None
    return (a.seconds / a.nbytes) / (b.seconds / b.nbytes)


def print_verdict(gate: Result, model_signing: Result, openssl_par: Result) -> bool:
    vs_ms = ratio(gate, model_signing)
    vs_ossl = ratio(gate, openssl_par)
    ok = True
    print()
    if vs_ms is not None:
        good = vs_ms <= TARGET_VS_MODEL_SIGNING
        ok &= good
        print(f"gate / model-signing time (per GiB): {vs_ms:5.2f}  target <= {TARGET_VS_MODEL_SIGNING:.2f}  "
              f"{'MET' if good else 'MISSED'}")
    if vs_ossl is not None:
        good = vs_ossl <= TARGET_VS_OPENSSL
        ok &= good
        print(f"gate / parallel openssl time (per GiB): {vs_ossl:5.2f}  target <= {TARGET_VS_OPENSSL:.2f}  "
              f"{'MET' if good else 'MISSED'}")
    return ok


def ensure_small_files(root: Path, count: int, size: int = 4096) -> Path:
    """``count`` random files of ``size`` bytes in folders of 1,000 (a dataset-like model: tokenizer shards, ...)."""
    model = root / f"small-{count}x{size}"
    if model.is_dir() and sum(1 for _ in model.rglob("*.bin")) == count:
        return model
    shutil.rmtree(model, ignore_errors=True)
    for index in range(count):
        folder = model / f"d{index // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:06d}.bin").write_bytes(os.urandom(size))
    return model


def small_files_section(root: Path, count: int, runs: int, workers: int | None, openssl: str | None) -> None:
    """The many-small-files case: per-file overhead, not SHA-256, is what is measured (bar: at most 2x openssl)."""
    from tiergate.core.manifest import hash_model

    model = ensure_small_files(root, count)
    files = sorted(str(p) for p in model.rglob("*.bin"))
    groups = [files[i::cores()] for i in range(cores())]

    def openssl_run() -> None:
        procs = [subprocess.Popen([openssl or "openssl", "dgst", "-sha256", *g], stdout=subprocess.DEVNULL)
                 for g in groups if g]
        for proc in procs:
            proc.wait()

    contenders = [Contender("gate hash_model", lambda: hash_model(model, workers=workers), count * 4096, "")]
    if openssl:
        contenders.append(Contender(f"openssl dgst -sha256 x{cores()} procs", openssl_run, count * 4096, ""))
    results = race(contenders, runs)
    print(f"\n{count} files of 4 KiB (per-file overhead):")
    for result in results:
        print(f"  {result.name:40} {fmt_seconds(result.seconds):>8}")
    if len(results) == 2 and results[0].seconds and results[1].seconds:
        print(f"  gate/openssl: {results[0].seconds / results[1].seconds:.2f} (bar: at most 2)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement; the minimum is reported")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "tiergate-bench",
        help="where the 1 GiB test model lives (reused when present)",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker threads for the gate (default: cores)")
    parser.add_argument("--skip-cli", action="store_true", help="do not time CLI start-up")
    parser.add_argument("--clean", action="store_true", help="delete the test model afterwards")
    parser.add_argument("--small-files", type=int, default=20_000, metavar="N",
                        help="also time N files of 4 KiB (per-file overhead; 0 to skip)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    openssl = shutil.which("openssl")
    model = ensure_model_dir(args.dir)
    warm_page_cache(model)
    print(f"model: {model} ({total_bytes(list(model.iterdir())) / GiB:.3f} GiB, {len(list(model.iterdir()))} files), "
          f"{cores()} cores, min of {args.runs} interleaved runs, warm page cache")
    print(f"before: {cpu_pressure()}\n")

    gate_c = gate_contender(model, args.workers)
    ms = model_signing_contender(model)
    par = openssl_parallel_contender(model, openssl) if openssl else None
    seq = openssl_sequential_contender(model, openssl) if openssl else None
    contenders = [c for c in (gate_c, ms, par, seq) if isinstance(c, Contender)]
    timed = {r.name: r for r in race(contenders, args.runs)}

    def result_of(item: Contender | Result | None, missing: str) -> Result:
        if isinstance(item, Contender):
            return timed[item.name]
        return item if isinstance(item, Result) else Result(missing, None, 0, "skipped: openssl not found")

    gate = result_of(gate_c, "gate")
    model_signing = result_of(ms, "model-signing files/sha256")
    openssl_par = result_of(par, "openssl dgst -sha256 parallel")
    results = [gate, model_signing, openssl_par, result_of(seq, "openssl dgst -sha256 x1 proc")]
    if openssl:
        results.append(openssl_speed(openssl))
    print_table(results)
    print(f"after: {cpu_pressure()}")
    ok = print_verdict(gate, model_signing, openssl_par)

    if args.small_files:
        small_files_section(args.dir, args.small_files, args.runs, args.workers, openssl)
    if not args.skip_cli:
        print(f"\n{'start-up':44} {'seconds':>8}")
        for label, seconds in cli_start_times(args.runs):
            print(f"{label:44} {fmt_seconds(seconds):>8}{'' if seconds is not None else '  (skipped: not available)'}")
    if args.clean:
        shutil.rmtree(args.dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
