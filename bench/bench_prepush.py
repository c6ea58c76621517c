#!/usr/bin/env python3
"""What does the pre-push hook add to a push, now that it decides every commit the push sends?

A repository of N commits (a model: 8 MiB of weights, config and tokenizer; each commit changes the config, so each
is a model state of its own) is pushed as a new branch to a local bare remote, twice: with the hook (tier
``internal``, so every commit is decided and allowed) and with ``--no-verify`` (the peer: git alone). The
difference is what the gate costs; per commit it is the price of "history is the unit". N defaults to 100 and to
1000, the most one push may send (``GATE_GIT_MAX_COMMITS``).

Run ``.venv/bin/python bench/bench_prepush.py --help``; results go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = 8 * 1024 * 1024


def git(cwd: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def build(root: Path, commits: int, env: dict[str, str]) -> Path:
    work = root / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    (work / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + os.urandom(WEIGHTS))
    (work / "tokenizer.json").write_bytes(b'{"version": "1.0"}')
    for n in range(commits):
        (work / "config.json").write_text(f'{{"hidden_size": 16, "revision": {n}}}')
        git(work, "add", "-A", env=env)
        git(work, "commit", "-q", "-m", f"c{n}", env=env)
    subprocess.run([sys.executable, "-m", "tiergate", "hooks", "install", str(work), "--tier", "internal"],
                   check=True, env=env, capture_output=True)
    return work


def timed_push(work: Path, remote: Path, env: dict[str, str], *extra: str) -> float:
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True, env=env)
    started = time.perf_counter()
    result = subprocess.run(["git", "push", *extra, str(remote), "main"], cwd=work, env=env, capture_output=True,
                            text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"push failed: {result.stderr.strip().splitlines()[-1:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    print(f"{'commits':>8} {'git alone':>10} {'with hook':>10} {'hook adds':>10} {'per commit':>11}")
    for commits in args.commits:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "home").mkdir()
            env = {**os.environ, "HOME": str(root / "home"), "GIT_CONFIG_NOSYSTEM": "1",
                   "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
                   "GIT_COMMITTER_EMAIL": "b@b", "PYTHONPATH": str(REPO), "GATE_CONFIG": "", "GATE_SERVER": "",
                   "GATE_LOG": "", "GATE_GIT_MAX_COMMITS": str(max(commits, 1000))}
            work = build(root, commits, env)
            bare = timed_push(work, root / "plain.git", env, "--no-verify")
            hooked = timed_push(work, root / "gated.git", env)
            added = hooked - bare
            print(f"{commits:>8} {bare:>9.2f}s {hooked:>9.2f}s {added:>9.2f}s {added / commits * 1000:>9.1f}ms")


if __name__ == "__main__":
    main()
