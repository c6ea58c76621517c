"""The main job: the gate in front of a real MLflow model registry, catching a real publish.

Run by ``./scripts/demo``. Everything happens in ./demo-out (recreated each run), on the embedded defaults: a local
``mlflow server --app-name tiergate`` on SQLite, and the gate's decision log in a SQLite file.

1. evaluators and the gate get keys; the platform admin writes the trust store;
2. the MLflow server starts with the tiergate plugin in front of its registry;
3. a small model (safetensors weights) is logged and registered: allowed at tier 'internal';
4. promoting it (alias 'production' = tier 'hosted') is refused with 403 PERMISSION_DENIED naming what is missing;
5. evaluators sign what they measured (one from a real lm-evaluation-harness results file) and upload the
   attestations into the model's artifacts; the same promotion is allowed and the version shows the decision;
6. re-uploading changed weights to the published model is refused (403 PERMISSION_DENIED: its files are frozen);
   a change made directly on the server's disk is caught at the next promotion, which is refused;
7. an auditor reads the decisions in the log and audits it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

OUT = Path.cwd() / "demo-out"
MODEL_NAME = "tiny-llm"

EVALUATORS = {
    "acme": ("Acme AI", "developer"),
    "evalco": ("EvalCo", "third_party"),
    "redteam": ("RedTeam Labs", "third_party"),
    "aisi": ("UK AI Security Institute", "government"),
}

# What the default policy's 'hosted' tier asks for besides WMDP: (evaluator, benchmark, metric, samples, domain)
EVIDENCE = [
    ("acme", "risk_assessment", "completed=1", 1, "governance"),
    ("evalco", "strongreject", "score=0.03", 313, None),
    ("redteam", "harmbench", "asr=0.02", 400, None),
]


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def gate(*args: str, expect: int | None = None) -> subprocess.CompletedProcess[str]:
    print("$ gate " + " ".join(args), flush=True)
    result = subprocess.run([sys.executable, "-m", "tiergate", *args], text=True, capture_output=True, cwd=OUT,
                            check=False)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if expect is not None and result.returncode != expect:
        sys.exit(f"demo: expected exit {expect} from `gate {args[0]}`, got {result.returncode}")
    return result


def write_safetensors(path: Path, seed: int) -> None:
    """A real safetensors file: u64 little-endian header length, JSON header (space-padded), float32 data."""
    values = [((i * 7 + seed) % 97) / 97.0 for i in range(64 * 64)]
    data = struct.pack(f"<{len(values)}f", *values)
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "layer0.weight": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, len(data)]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def lm_eval_results(path: Path) -> None:
    """Results as lm-evaluation-harness 0.4 writes them for the three WMDP subsets, from a run an hour ago."""
    tasks = {"wmdp_bio": (0.262, 1273), "wmdp_chem": (0.271, 408), "wmdp_cyber": (0.268, 1987)}
    path.write_text(json.dumps({
        "results": {t: {"alias": t, "acc,none": a, "acc_stderr,none": 0.012} for t, (a, _) in tasks.items()},
        "versions": dict.fromkeys(tasks, 1.0),
        "n-shot": dict.fromkeys(tasks, 0),
        "higher_is_better": {t: {"acc": True} for t in tasks},
        "n-samples": {t: {"original": n, "effective": n} for t, (_, n) in tasks.items()},
        "config": {"model": "hf", "model_args": "pretrained=./model", "limit": None, "batch_size": 8},
        "git_hash": "a1b2c3d",
        "date": time.time() - 3600,
        "model_name": "./model",
    }, indent=2))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GATE_TRUST": str(OUT / "trust.yaml"), "GATE_LOG": str(OUT / "gate-log.db"),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "tiergate",
               "--backend-store-uri", f"sqlite:///{OUT / 'mlflow.db'}",
               "--artifacts-destination", str(OUT / "mlartifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    print("$ " + " ".join(command[2:]), flush=True)
    log = open(OUT / "mlflow-server.log", "wb")  # noqa: SIM115 - the server's output, open while it runs
    process = subprocess.Popen(command, cwd=OUT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    import requests

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"demo: mlflow server exited with {process.returncode}; see {OUT / 'mlflow-server.log'}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                print(f"mlflow server with tiergate is up at http://127.0.0.1:{port}")
                return process
        except requests.RequestException:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    sys.exit("demo: mlflow server did not become healthy within 120 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def promote(client: Any, version: str, alias: str) -> bool:
    """Set an alias as a release engineer would; print what the registry answers."""
    from mlflow.exceptions import RestException

    print(f">>> client.set_registered_model_alias({MODEL_NAME!r}, {alias!r}, {version!r})")
    try:
        client.set_registered_model_alias(MODEL_NAME, alias, version)
    except RestException as exc:
        print(f"RestException {exc.error_code} (HTTP {exc.get_http_status_code()}):\n  {exc.message}")
        return False
    print("alias set")
    return True


def upload(client: Any, model_id: str, folder: Path) -> bool:
    """Re-upload the model's files to the same logged model; print what the server answers."""
    import requests

    print(f">>> client.log_model_artifacts({model_id!r}, {str(folder.relative_to(OUT))!r})")
    try:
        client.log_model_artifacts(model_id, str(folder))
    except requests.HTTPError as exc:  # MLflow's client raises HTTPError, not RestException, for artifact calls
        body = exc.response.json() if exc.response is not None else {}
        status = exc.response.status_code if exc.response is not None else "?"
        print(f"HTTPError {body.get('error_code')} (HTTP {status}):\n  {body.get('message')}")
        return False
    print("uploaded")
    return True


def show_tags(client: Any, version: str) -> None:
    tags = client.get_model_version(MODEL_NAME, version).tags
    for key in sorted(k for k in tags if k.startswith("tiergate.")):
        print(f"  {key} = {tags[key]}")


def attest_all(model: Path) -> Path:
    folder = OUT / "attestations"
    lm_eval_results(OUT / "results_wmdp.json")
    for task in ("wmdp_bio", "wmdp_chem", "wmdp_cyber"):
        gate("attest", str(model), "--key", "aisi.key", "--evaluator", "aisi", "--from-lm-eval", "results_wmdp.json",
             "--task", task, "-o", str(folder / f"aisi-{task}.intoto.json"), expect=0)
    for evaluator, benchmark, metric, samples, domain in EVIDENCE:
        args = ["attest", str(model), "--key", f"{evaluator}.key", "--evaluator", evaluator, "--eval", benchmark,
                "--metric", metric, "--sample-size", str(samples),
                "-o", str(folder / f"{evaluator}-{benchmark}.intoto.json")]
        gate(*args, *(["--risk-domain", domain] if domain else []), expect=0)
    return folder


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    os.chdir(OUT)

    step("1. Keys for the evaluators and the gate; the platform admin's trust store")
    entries = []
    for name, (organization, kind) in EVALUATORS.items():
        gate("keygen", name, expect=0)
        entries.append(f"  - id: {name}\n    organization: {organization}\n    kind: {kind}\n"
                       f"    keys: [{{path: {name}.pub}}]\n")
    (OUT / "trust.yaml").write_text("version: 1\nevaluators:\n" + "".join(entries))
    gate("policy", "explain", "--tier", "hosted", expect=0)

    step("2. An MLflow server with the release gate in front of its registry (SQLite, local artifacts)")
    port = free_port()
    server = start_mlflow(port)
    try:
        run(f"http://127.0.0.1:{port}")
    finally:
        stop(server)


def run(tracking: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    mlflow.set_tracking_uri(tracking)
    client = MlflowClient(tracking)

    step("3. Log a small model (safetensors weights) and register it: tier 'internal'")
    model = OUT / "model"
    model.mkdir()
    write_safetensors(model / "model.safetensors", seed=1)
    (model / "config.json").write_text('{"architectures": ["TinyLM"], "hidden_size": 64}')
    experiment = client.create_experiment("tiergate-demo")
    logged = client.create_logged_model(experiment, name=MODEL_NAME)
    client.log_model_artifacts(logged.model_id, str(model))
    version = mlflow.register_model(f"models:/{logged.model_id}", MODEL_NAME).version
    print(f"registered {MODEL_NAME} version {version}")
    show_tags(client, version)

    step("4. Promote it to production (tier 'hosted') without evidence: refused")
    if promote(client, version, "production"):
        sys.exit("demo: the gate should have refused this promotion")

    step("5. Evaluators sign what they measured and attach it to the model; the same promotion is allowed")
    folder = attest_all(model)
    gate("verify", "model", str(folder), "--trust", "trust.yaml", expect=0)
    client.log_model_artifacts(logged.model_id, str(folder), artifact_path=".attestations")
    if not promote(client, version, "production"):
        sys.exit("demo: the gate should have allowed this promotion")
    show_tags(client, version)

    step("6. Changing the weights after evaluation: the upload is refused; "
         "a change on disk is caught at the next promotion")
    write_safetensors(model / "model.safetensors", seed=2)
    if upload(client, logged.model_id, model):
        sys.exit("demo: the gate should have refused overwriting the published weights")
    # Someone with access to the server's artifact store on disk goes around the API:
    stored = (OUT / "mlartifacts" / urllib.parse.urlparse(logged.artifact_location).path.lstrip("/")
              / "model.safetensors")
    shutil.copyfile(model / "model.safetensors", stored)
    print(f"(changed {stored.relative_to(OUT)} on the server's disk)")
    if promote(client, version, "champion"):
        sys.exit("demo: the gate should have refused the changed weights")

    step("7. The auditor's view: every decision is in the append-only log")
    digest = client.get_model_version(MODEL_NAME, version).tags["tiergate.digest"]
    gate("log", "find", "--log", "gate-log.db", "--model", digest, expect=0)
    gate("log", "audit", "--log", "gate-log.db", "--trust", "trust.yaml", "--unsigned-ok", expect=0)
    print(f"\ndemo: done; files are in {OUT} (server log: mlflow-server.log)")


if __name__ == "__main__":
    main()
