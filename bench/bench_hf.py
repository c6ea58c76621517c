"""Benchmark: `gate hf check` from Hub metadata vs downloading and hashing the weights, on a 20 GiB model.

A stand-in Hub (tests/hf/hub_standin.py) runs in its own process on 127.0.0.1 and serves a model repository of
``--shards`` LFS files totalling ``--size-gib`` GiB (synthetic content: a safetensors header, then one generated
block repeated, so the repository costs no disk; every shard has the same real sha256, computed once), plus
config/tokenizer files and two attestations that clear the test policy's 'open' tier.

Measured, each with wall time and bytes the server sent:

1. ``gate hf check REPO --tier open`` as a user runs it (a subprocess, Python start-up included);
2. the same check in-process (median of ``--repeat`` runs): read metadata, hash small files, classify each weight
   file from ranged reads of its first and last bytes (reported as ``ranged_bytes``), decide;
3. the alternative: download every LFS file through huggingface_hub's HTTP session, hashing while reading
   (a lower bound for ``hf download`` + ``gate check``: nothing is written to disk), then decide. It stops after
   ``--download-budget`` seconds and extrapolates linearly to the full size if it had to stop; the output says so.

Loopback is far faster than any real link to the Hub: the download figure is a best case.

4. containment (``--part containment``): a private repository whose history is ``--commits`` long (50, 200, 1000 by
   default) is made public behind the gate's back; the webhook request (``handle_webhook``: secret, payload,
   containment) runs against the stand-in answering every request ``--hub-latency-ms`` late (50 ms, a Hub round
   trip). Measured: webhook-to-narrowed (the request arrives -> the settings change that makes the repository
   private reaches the Hub), then the time to verify every commit and restore access.

Xet is on, as users get it (hf_xet installed, ``HF_HUB_DISABLE_XET`` unset). Run:
``.venv/bin/python bench/bench_hf.py`` (defaults: 20 GiB in 10 shards, 150 s download budget, then containment).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

GIB = 1024 ** 3
NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)
POLICY = """\
version: 1
name: bench
tiers:
  - name: internal
  - name: gated
    requires:
      signers: {kinds: [third_party]}
      evaluations:
        - {id: strongreject-gated, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.2}
  - name: open
    requires:
      signers: {min_organizations: 2, kinds: [third_party, government]}
      formats: {allow: [safetensors]}
      evaluations:
        - {id: strongreject-open, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.05}
targets:
  huggingface: {private: internal, gated_manual: gated, gated_auto: open, public: open}
"""


# --- the server process ---------------------------------------------------------------------------------------


def serve(spec_path: str) -> None:
    """Child process: build the repository from the spec, print the endpoint, serve until stdin closes."""
    from hf.hub_standin import HubStandin

    spec = json.loads(Path(spec_path).read_text())
    hub = HubStandin()
    for oid, (seed, size) in spec["synthetic"].items():
        hub.add_synthetic_lfs(seed, size, oid)
    hub.create_repo(spec["repo"], private=False,
                    files={p: base64.b64decode(d) for p, d in spec["files"].items()},
                    lfs_files={p: (o, s) for p, (o, s) in spec["lfs"].items()})
    print(hub.start(), flush=True)
    sys.stdin.read()
    hub.stop()


# --- the measuring process ------------------------------------------------------------------------------------


def sign_evidence(manifest: Any, workdir: Path) -> tuple[dict[str, bytes], Path, Path]:
    """Two attestations over ``manifest`` that clear the bench policy's 'open' tier, and the trust store and policy
    files that make them so."""
    import yaml

    from tiergate.core.attestation import Evaluation, EvaluatorRef
    from tiergate.core.keys import PrivateKey
    from tiergate.core.signing import attest_evaluation

    evaluators = {"evalco": ("EvalCo", "third_party"), "aisi": ("UK AI Security Institute", "government")}
    keys = {name: PrivateKey.generate("ed25519") for name in evaluators}
    trust = {"version": 1, "evaluators": [
        {"id": name, "organization": org, "kind": kind, "keys": [{"pem": keys[name].public.to_pem().decode()}]}
        for name, (org, kind) in evaluators.items()]}
    files = {}
    for n, (name, score) in enumerate((("evalco", 0.03), ("aisi", 0.04))):
        evaluation = Evaluation(name="strongreject", benchmark="strongreject", risk_domain="misuse",
                                metrics={"score": score}, sample_size=5000, evaluated_at=NOW - timedelta(days=1))
        envelope = attest_evaluation(manifest, "big", evaluation, EvaluatorRef(name), [keys[name]],
                                     NOW - timedelta(days=1))
        files[f".attestations/eval-{n}.json"] = envelope.to_json()
    trust_path, policy_path = workdir / "trust.yaml", workdir / "policy.yaml"
    trust_path.write_text(yaml.safe_dump(trust))
    policy_path.write_text(POLICY)
    return files, trust_path, policy_path


def build_spec(size_gib: float, shards: int, workdir: Path) -> tuple[dict[str, Any], Path, Path]:
    """Shard digests, the manifest, evidence signed over it, and the trust store and policy files."""
    from tiergate.core.manifest import FileDigest, Manifest
    from hf.hub_standin import synthetic_sha256

    shard_size = int(size_gib * GIB) // shards
    t0 = time.perf_counter()
    oid = synthetic_sha256(7, shard_size)
    print(f"  shard digest computed once ({shard_size / GIB:.2f} GiB) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    small = {"config.json": b'{"architectures": ["BigModel"], "hidden_size": 8192}',
             "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}'}
    lfs = {f"model-{i + 1:05d}-of-{shards:05d}.safetensors": (oid, shard_size) for i in range(shards)}
    manifest = Manifest(files=tuple(
        [FileDigest(p, s, o) for p, (o, s) in lfs.items()]
        + [FileDigest(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in small.items()]))
    evidence, trust_path, policy_path = sign_evidence(manifest, workdir)
    files = {**small, **evidence}
    spec = {"repo": "org/big", "synthetic": {oid: (7, shard_size)},
            "files": {p: base64.b64encode(d).decode() for p, d in files.items()}, "lfs": lfs,
            "manifest_digest": manifest.digest}
    return spec, trust_path, policy_path


def bench_containment(history: int, latency: float, workdir: Path) -> dict[str, Any]:
    """Webhook-to-narrowed and the whole containment, for a repository with ``history`` commits made public."""
    from huggingface_hub import HfApi

    from tiergate.core.manifest import FileDigest, Manifest
    from tiergate.integrations.hf.containment import MemorySeen, handle_webhook
    from tiergate.runtime import Gate, GateConfig
    from hf.hub_standin import GITATTRIBUTES, HubStandin, webhook_payload

    small = {"config.json": b'{"hidden_size": 16}', "model.safetensors": b"\x00" * 4096}
    manifest = Manifest(files=tuple(FileDigest(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in small.items()))
    evidence, trust_path, policy_path = sign_evidence(manifest, workdir)
    gate = Gate.load(GateConfig(policy=policy_path, trust=trust_path))
    hub = HubStandin()
    endpoint = hub.start()
    try:
        hub.create_repo("org/long", private=True, files={**small, **evidence})  # commits 1 and 2
        for n in range(history - 2):  # outside the model's identity: every commit is the attested model
            hub.push_commit("org/long", {".gitattributes": GITATTRIBUTES + f"# {n}\n".encode()}, message=f"c{n}")
        assert len(hub.history("org/long")) == history
        hub.set_visibility("org/long", private=False)  # someone flips it public in the web UI
        body = json.dumps(webhook_payload("org/long", scope="repo.config", updated_config={"private": False},
                                          endpoint=endpoint)).encode()
        narrowed: list[float] = []

        def watch(method: str, path: str) -> None:
            if method == "PUT" and path.endswith("/settings") and not narrowed:
                narrowed.append(time.perf_counter())

        hub.on_request = watch
        hub.delay = latency
        api = HfApi(endpoint=endpoint, token="hf_bench")
        hub.reset_requests()
        t0 = time.perf_counter()
        answer = handle_webhook({"X-Webhook-Secret": "bench-secret"}, body, "bench-secret", api, gate,
                                seen=MemorySeen(), now=NOW)
        total = time.perf_counter() - t0
        assert answer.status == 200, answer.body
        assert narrowed, answer.body
        results = answer.body["results"]
        assert all(r["decision"] == "allow" for r in results)
        assert hub.repo("org/long").private is False
        return {"commits": history, "latency_ms": latency * 1000, "to_narrowed_s": narrowed[0] - t0,
                "total_s": total, "requests": len(hub.requests), "decided": len(results),
                "head_actions": results[0]["actions"]}
    finally:
        hub.stop()


def stats(endpoint: str, reset: bool = False) -> dict[str, int]:
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/_stats", method="POST" if reset else "GET")  # noqa: S310 - as below
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def check_in_process(endpoint: str, gate: Any) -> tuple[Any, float]:
    from huggingface_hub import HfApi

    from tiergate.integrations.hf import remote

    api = HfApi(endpoint=endpoint, token="hf_bench")
    t0 = time.perf_counter()
    rev = remote.read_revision(api, "org/big")
    manifest = remote.revision_manifest(api, rev)
    attestations = remote.revision_attestations(api, rev)
    decision = gate.decide("open", manifest, attestations, {"bench": True}, now=NOW)
    return decision, time.perf_counter() - t0


def download_and_hash(endpoint: str, gate: Any, budget: float, workers: int) -> dict[str, Any]:
    """Download every LFS file (hashing as it streams), then hash the small files and decide. Stops at ``budget``."""
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.utils import get_session

    from tiergate.core.manifest import FileDigest, Manifest
    from tiergate.integrations.hf import remote

    api = HfApi(endpoint=endpoint, token="hf_bench")
    rev = remote.read_revision(api, "org/big")
    total = sum(f.size for f in rev.files.values() if f.is_lfs)
    deadline = time.perf_counter() + budget
    t0 = time.perf_counter()
    done = [0]

    def fetch(item: Any) -> FileDigest | None:
        hasher = hashlib.sha256()
        size = 0
        url = hf_hub_url("org/big", item.path, revision=rev.sha, endpoint=endpoint)
        with get_session().stream("GET", url) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                hasher.update(chunk)
                size += len(chunk)
                done[0] += len(chunk)
                if time.perf_counter() > deadline:
                    return None
        return FileDigest(item.path, size, hasher.hexdigest())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(fetch, [f for f in rev.files.values() if f.is_lfs]))
    elapsed = time.perf_counter() - t0
    complete = all(r is not None for r in results)
    out: dict[str, Any] = {"bytes": done[0], "seconds": elapsed, "complete": complete, "total_bytes": total}
    if complete:
        small = remote.file_digests(api, rev, [p for p in remote.identity_paths(rev) if not rev.files[p].is_lfs])
        manifest = Manifest(files=tuple([r for r in results if r] + list(small.values())))
        decision = gate.decide("open", manifest, remote.revision_attestations(api, rev), {"bench": True}, now=NOW)
        out["decision"] = decision.decision
        out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=20.0)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--download-budget", type=float, default=150.0, help="seconds")
    parser.add_argument("--workers", type=int, default=2, help="parallel downloads")
    parser.add_argument("--part", choices=["check", "containment", "all"], default="all")
    parser.add_argument("--commits", type=int, nargs="+", default=[50, 200, 1000], help="history lengths")
    parser.add_argument("--hub-latency-ms", type=float, default=50.0, help="added to every stand-in request")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    os.environ.pop("HF_HUB_DISABLE_XET", None)  # Xet on, as users get it
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="bench-hf-home-")
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if args.part in ("check", "all"):
        bench_check(args)
    if args.part in ("containment", "all"):
        from huggingface_hub.utils._runtime import is_xet_available

        print(f"containment at {args.hub_latency_ms:g} ms per Hub request (xet available: {is_xet_available()}):")
        for history in args.commits:
            workdir = Path(tempfile.mkdtemp(prefix="bench-hf-contain-"))
            row = bench_containment(history, args.hub_latency_ms / 1000, workdir)
            print(json.dumps(row))
            print(f"  {history:5d} commits: webhook-to-narrowed {row['to_narrowed_s'] * 1000:.0f} ms; every commit "
                  f"verified and access restored after {row['total_s']:.1f} s ({row['requests']} Hub requests)",
                  flush=True)


def bench_check(args: argparse.Namespace) -> None:
    """Parts 1-3: the metadata check against downloading and hashing a large model."""
    from tiergate.runtime import Gate, GateConfig

    workdir = Path(tempfile.mkdtemp(prefix="bench-hf-"))
    print(f"building a {args.size_gib:g} GiB repository in {args.shards} LFS shards ...", file=sys.stderr)
    spec, trust_path, policy_path = build_spec(args.size_gib, args.shards, workdir)
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(spec_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        gate = Gate.load(GateConfig(policy=policy_path, trust=trust_path))
        results: dict[str, Any] = {"model_bytes": spec["lfs"] and sum(s for _, s in spec["lfs"].values()),
                                   "shards": args.shards}

        env = {**os.environ, "GATE_POLICY": str(policy_path), "GATE_TRUST": str(trust_path),
               "GATE_NOW": "2026-11-01T12:00:00Z", "HF_ENDPOINT": endpoint, "HF_TOKEN": "hf_bench",
               "GATE_CONFIG": "", "GATE_SERVER": "", "GATE_LOG": ""}
        stats(endpoint, reset=True)
        t0 = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "tiergate", "hf", "check", "org/big", "--tier", "open", "--json"],
                             capture_output=True, text=True, env=env, timeout=300)
        cli_seconds = time.perf_counter() - t0
        assert cli.returncode == 0, cli.stderr
        cli_decision = json.loads(cli.stdout)
        assert cli_decision["model_digest"] == spec["manifest_digest"], "metadata manifest differs from the model's"
        served = stats(endpoint)
        results["cli"] = {"seconds": cli_seconds, "bytes": served["bytes_out"], "ranged_bytes": served["bytes_ranged"],
                          "decision": cli_decision["decision"]}

        times, sent, ranged = [], [], []
        for _ in range(args.repeat):
            stats(endpoint, reset=True)
            decision, seconds = check_in_process(endpoint, gate)
            assert decision.decision == "allow"
            times.append(seconds)
            served = stats(endpoint)
            sent.append(served["bytes_out"])
            ranged.append(served["bytes_ranged"])
        results["in_process"] = {"seconds_median": statistics.median(times), "seconds_min": min(times),
                                 "bytes": statistics.median(sent), "ranged_bytes": statistics.median(ranged)}

        stats(endpoint, reset=True)
        print(f"downloading (budget {args.download_budget:g} s) ...", file=sys.stderr)
        download = download_and_hash(endpoint, gate, args.download_budget, args.workers)
        download["served_bytes"] = stats(endpoint)["bytes_out"]
        if not download["complete"]:
            rate = download["bytes"] / download["seconds"]
            download["extrapolated_seconds"] = download["total_bytes"] / rate
        results["download"] = download
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)

    d = results["download"]
    rate = d["bytes"] / d["seconds"] / 1e6
    full = d.get("extrapolated_seconds", d["seconds"])
    print(json.dumps(results, indent=2))
    print(f"\n{results['model_bytes'] / GIB:g} GiB model in {args.shards} LFS shards, stand-in Hub on loopback:")
    print(f"  gate hf check (CLI, incl. Python start-up): {results['cli']['seconds']:.2f} s, "
          f"{results['cli']['bytes'] / 1024:.1f} KiB transferred, {results['cli']['decision']}; of which "
          f"{results['cli']['ranged_bytes'] / 1024:.1f} KiB are ranged reads of the weights' first and last bytes "
          "(formats judged by content)")
    print(f"  same check in-process (median of {args.repeat}): "
          f"{results['in_process']['seconds_median'] * 1000:.0f} ms, {results['in_process']['bytes'] / 1024:.1f} KiB")
    how = "measured" if d["complete"] else f"extrapolated from {d['bytes'] / GIB:.2f} GiB in {d['seconds']:.0f} s"
    print(f"  download + hash + decide: {full:.1f} s ({how}), {d['total_bytes'] / GIB:g} GiB transferred, "
          f"{rate:.0f} MB/s on loopback")
    for mbps in (1000, 100):
        print(f"    at a {mbps} MB/s link the download alone would take {d['total_bytes'] / (mbps * 1e6):.0f} s")


if __name__ == "__main__":
    main()
