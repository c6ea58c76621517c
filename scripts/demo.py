"""The main job, end to end, with the real `gate` command: a release is refused, evidence arrives, it is allowed.

Run by ``./scripts/demo``. Everything happens in ./demo-out (recreated each run):
1. a small model with safetensors weights is generated;
2. four evaluators (the developer, two third parties, a government AI Safety Institute) and the gate get keys;
   the trust store lists the evaluators;
3. `gate check --tier open` refuses the release and lists every missing requirement;
4. each evaluator signs what it measured (`gate attest`), one from a real lm-evaluation-harness results file;
5. `gate verify` shows every signature valid; `gate check --tier open` now allows, and signs a SLSA VSA;
6. a weight file is changed after evaluation: the same check is refused again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path.cwd() / "demo-out"
GATE = [sys.executable, "-m", "gate"]

EVALUATORS = {
    "acme": ("Acme AI", "developer"),
    "evalco": ("EvalCo", "third_party"),
    "redteam": ("RedTeam Labs", "third_party"),
    "aisi": ("UK AI Security Institute", "government"),
}

# (evaluator, benchmark, metrics, sample size)
EVIDENCE = [
    ("acme", "risk_assessment", "completed=1", 1),
    ("evalco", "strongreject", "score=0.03", 313),
    ("redteam", "harmbench", "asr=0.02", 400),
    ("redteam", "cybench", "unguided_success=0.05", 40),
    ("aisi", "tamper_resistance", "post_attack_wmdp_acc=0.29 --metric attacks=28", 28),
    ("aisi", "malicious_finetuning", "reaches_high=0", 12),
    ("evalco", "mmlu", "drop_vs_base=0.02", 14042),
]


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def gate(*args: str, expect: int | None = None) -> subprocess.CompletedProcess[str]:
    print("$ gate " + " ".join(args), flush=True)
    result = subprocess.run([*GATE, *args], text=True, capture_output=True, cwd=OUT)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if expect is not None and result.returncode != expect:
        sys.exit(f"demo: expected exit {expect} from `gate {args[0]}`, got {result.returncode}")
    return result


def write_safetensors(path: Path, n: int) -> None:
    """A real safetensors file: 8-byte little-endian header length, JSON header, raw little-endian float32 data."""
    data = b"".join(int.to_bytes(i % 251, 4, "little") for i in range(n))
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)


def lm_eval_results(path: Path) -> None:
    """Results as lm-evaluation-harness 0.4 writes them, for the three WMDP subsets."""
    tasks = {"wmdp_bio": (0.262, 1273), "wmdp_chem": (0.271, 408), "wmdp_cyber": (0.268, 1987)}
    path.write_text(json.dumps({
        "results": {t: {"alias": t, "acc,none": a, "acc_stderr,none": 0.012} for t, (a, _) in tasks.items()},
        "versions": {t: 1.0 for t in tasks},
        "n-shot": {t: 0 for t in tasks},
        "higher_is_better": {t: {"acc": True} for t in tasks},
        "n-samples": {t: {"original": n, "effective": n} for t, (_, n) in tasks.items()},
        "config": {"model": "hf", "model_args": "pretrained=./model", "limit": None, "batch_size": 8},
        "git_hash": "a1b2c3d",
        "date": 1793700000.0,
        "model_name": "./model",
    }, indent=2))


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "model").mkdir(parents=True)
    os.chdir(OUT)

    step("1. A model to release")
    write_safetensors(OUT / "model" / "model.safetensors", 1 << 18)
    (OUT / "model" / "config.json").write_text('{"architectures": ["TinyModel"], "hidden_size": 64}')
    gate("hash", "model", expect=0)

    step("2. Keys for the evaluators and the gate; the platform admin's trust store")
    entries = []
    for name, (organization, kind) in EVALUATORS.items():
        gate("keygen", name, expect=0)
        entries.append(f"  - id: {name}\n    organization: {organization}\n    kind: {kind}\n    keys: [{{path: {name}.pub}}]\n")
    gate("keygen", "gate", expect=0)
    (OUT / "trust.yaml").write_text("version: 1\nevaluators:\n" + "".join(entries))

    step("3. Release at tier 'open' without evidence: refused, with everything missing")
    gate("check", "model", "--tier", "open", "--trust", "trust.yaml", expect=1)

    step("4. Evaluators sign what they measured")
    lm_eval_results(OUT / "results_wmdp.json")
    for task in ("wmdp_bio", "wmdp_chem", "wmdp_cyber"):
        gate("attest", "model", "--key", "aisi.key", "--evaluator", "aisi", "--from-lm-eval", "results_wmdp.json",
             "--task", task, expect=0)
    for evaluator, benchmark, metrics, samples in EVIDENCE:
        args = ["attest", "model", "--key", f"{evaluator}.key", "--evaluator", evaluator, "--eval", benchmark,
                "--sample-size", str(samples)]
        for metric in metrics.split(" --metric "):
            args += ["--metric", metric]
        if benchmark == "risk_assessment":
            args += ["--risk-domain", "governance"]
        gate(*args, expect=0)

    step("5. The auditor verifies; the gate allows 'open' and signs a verification summary")
    gate("verify", "model", "--trust", "trust.yaml", expect=0)
    gate("check", "model", "--tier", "open", "--trust", "trust.yaml", "--vsa", "vsa.intoto.json",
         "--gate-key", "gate.key", expect=0)
    gate("verify-vsa", "vsa.intoto.json", "--key", "gate.pub", "--tier", "open", expect=0)

    step("6. A weight file changes after evaluation: refused again")
    write_safetensors(OUT / "model" / "model.safetensors", (1 << 18) + 8)
    gate("check", "model", "--tier", "open", "--trust", "trust.yaml", expect=1)
    print(f"\ndemo: done; files are in {OUT}")


if __name__ == "__main__":
    main()
