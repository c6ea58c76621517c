"""The example workflow (docs/examples/release-weights.yml) runs as written, step by step, as a runner would run it.

No runner exists here, so this test plays one: it checks out a repository laid out as the workflow expects (model/
with attestations, release/trust.yaml and release/policy.yaml), resolves the `${{ ... }}` expressions the workflow
uses (an unknown one fails the test), runs each `run:` step with bash as GitHub does (`bash -e -o pipefail`) and the
tiergate Action through its own run.sh (the script its composite step runs, as tests/test_ci_action.py does), and
stops at the first failing step, as a job does. `pip install` is a stand-in that only records the requirement (the
checkout's `gate` is already installed): the requirement must name the repository and tag of the `uses:` line.
`gate hf upload` talks to the Hub stand-in, where my-org/my-model is a gated (manual approval) repository.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO, World, write_model

from tiergate.core.keys import PrivateKey
from tiergate.core.manifest import hash_model

WORKFLOW = REPO / "docs" / "examples" / "release-weights.yml"
ACTION = REPO / ".github" / "actions" / "tiergate"
_EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")

# A policy of the test repository: `gated` needs a third party's StrongREJECT score.
POLICY = """\
version: 1
name: release-test
tiers:
  - name: internal
  - name: hosted
  - name: gated
    requires:
      signers: {kinds: [third_party]}
      evaluations:
        - {id: strongreject-gated, benchmark: strongreject, metric: score, comparator: "<=", threshold: 0.1}
  - name: open
    requires:
      signers: {min_organizations: 2}
targets:
  huggingface: {private: internal, gated_manual: gated}
"""

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub() -> Iterator[Any]:
    from hf.hub_standin import HubStandin

    standin = HubStandin()
    standin.start()
    standin.create_repo("my-org/my-model", gated="manual")
    yield standin
    standin.stop()


class Runner:
    """Just enough of a GitHub runner for this workflow: expressions, step env, run steps, the local Action."""

    def __init__(self, checkout: Path, temp: Path, secrets: dict[str, str], hub_endpoint: str) -> None:
        self.checkout, self.temp, self.secrets = checkout, temp, secrets
        self.pip_log = temp / "pip-installs.txt"
        shims = temp / "bin"
        shims.mkdir()
        pip = shims / "pip"
        pip.write_text(f'#!/bin/sh\necho "$@" >> "{self.pip_log}"\n')
        pip.chmod(pip.stat().st_mode | stat.S_IEXEC)
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_", "HF_", "PYTEST_"))}
        self.base = {**keep, "PATH": f"{shims}:{Path(sys.executable).parent}:{keep.get('PATH', '/usr/bin:/bin')}",
                     "PYTHONPATH": str(REPO), "RUNNER_TEMP": str(temp), "HF_ENDPOINT": hub_endpoint,
                     "HF_HOME": str(temp / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                     "GITHUB_STEP_SUMMARY": str(temp / "summary.md"), "GITHUB_OUTPUT": str(temp / "output.txt")}
        self.env: dict[str, str] = {}

    def resolve(self, value: Any) -> str:
        def one(match: re.Match[str]) -> str:
            scope, _, name = match.group(1).partition(".")
            if scope == "secrets":
                return self.secrets[name]
            if scope == "env":
                return self.env[name]
            if match.group(1) == "runner.temp":
                return str(self.temp)
            raise AssertionError(f"the test runner does not know the expression {match.group(0)}")

        return _EXPRESSION.sub(one, str(value))

    def run_step(self, step: dict[str, Any]) -> subprocess.CompletedProcess[str] | None:
        env = {**self.base, **self.env, **{k: self.resolve(v) for k, v in (step.get("env") or {}).items()}}
        uses = step.get("uses", "")
        if uses.startswith(("actions/checkout@", "actions/setup-python@")):
            return None  # the checkout is prepared; this interpreter is the job's Python
        if "/.github/actions/tiergate@" in uses:
            inputs = {k: self.resolve(v) for k, v in (step.get("with") or {}).items()}
            action = yaml.safe_load((ACTION / "action.yml").read_text())
            unknown = set(inputs) - set(action["inputs"])
            assert not unknown, f"the workflow passes inputs the Action does not have: {unknown}"
            env |= {f"INPUT_{k.upper().replace('-', '_')}": v for k, v in inputs.items()}
            env["GATE"] = str(Path(sys.executable).parent / "gate")
            command = ["bash", str(ACTION / "run.sh")]
        else:
            assert "run" in step and not uses, f"a step this runner cannot run: {step}"
            command = ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", self.resolve(step["run"])]
        return subprocess.run(command, cwd=self.checkout, env=env, capture_output=True, text=True, timeout=180,
                              check=False)

    def run_job(self, workflow: dict[str, Any]) -> list[tuple[str, subprocess.CompletedProcess[str] | None]]:
        self.env = {k: self.resolve(v) for k, v in (workflow.get("env") or {}).items()}
        (job,) = workflow["jobs"].values()
        done = []
        for step in job["steps"]:
            result = self.run_step(step)
            done.append((step.get("name") or step.get("uses", ""), result))
            if result is not None and result.returncode != 0:
                break  # later steps are skipped, as in a job
        return done


def _checkout(root: Path, world: World, evidence: bool) -> Path:
    model = write_model(root / "model")
    if evidence:
        (model / ".attestations").mkdir()
        attestation = world.attest(hash_model(model), "evalco", "strongreject", {"score": 0.04})
        (model / ".attestations" / "evalco-strongreject.intoto.json").write_bytes(attestation.data)
    (root / "release").mkdir()
    (root / "release" / "trust.yaml").write_text(world.trust_path().read_text())
    (root / "release" / "policy.yaml").write_text(POLICY)
    return root


def _runner(tmp_path: Path, world: World, hub: Any, evidence: bool) -> tuple[Runner, PrivateKey]:
    gate_key = PrivateKey.generate("ed25519")
    checkout = _checkout(tmp_path / "repo", world, evidence)
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    secrets = {"GATE_SIGNING_KEY": gate_key.to_pem().decode(), "HF_TOKEN": "hf_test"}
    return Runner(checkout, temp, secrets, hub.endpoint), gate_key


def test_the_example_workflow_releases_attested_weights(tmp_path: Path, world: World, hub: Any) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    runner, gate_key = _runner(tmp_path, world, hub, evidence=True)
    done = runner.run_job(workflow)
    failed = [(name, r.stdout + r.stderr) for name, r in done if r is not None and r.returncode != 0]
    assert not failed, "\n".join(f"{n}:\n{o}" for n, o in failed)
    assert len(done) == len(next(iter(workflow["jobs"].values()))["steps"])
    # The gate step signed a VSA with the key the earlier step wrote, for the tier the workflow releases at.
    (runner.checkout / "gate.pub").write_bytes(gate_key.public.to_pem())
    verify = subprocess.run([str(Path(sys.executable).parent / "gate"), "verify-vsa", "gate-vsa.intoto.json",
                             "--key", "gate.pub", "--tier", runner.env["RELEASE_TIER"]],
                            cwd=runner.checkout, env=runner.base, capture_output=True, text=True, timeout=60,
                            check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "decision=allow" in (runner.temp / "output.txt").read_text()
    # The push installed tiergate from the repository and tag the Action came from, and the weights are on the Hub.
    steps = next(iter(workflow["jobs"].values()))["steps"]
    uses = next(s["uses"] for s in steps if "actions/tiergate@" in s.get("uses", ""))
    owner_repo, tag = uses.split("/.github/")[0], uses.rsplit("@", 1)[1]
    assert f"git+https://github.com/{owner_repo}@{tag}" in runner.pip_log.read_text()
    assert "model.safetensors" in hub.head_tree("my-org/my-model")


def test_without_evidence_the_job_stops_at_the_gate(tmp_path: Path, world: World, hub: Any) -> None:
    runner, _ = _runner(tmp_path, world, hub, evidence=False)
    done = runner.run_job(yaml.safe_load(WORKFLOW.read_text()))
    name, result = done[-1]
    assert "actions/tiergate@" in name and result is not None and result.returncode == 1, done
    assert "::error title=tiergate::release denied at tier gated" in result.stdout
    assert "model.safetensors" not in hub.head_tree("my-org/my-model")


def test_the_release_engineer_guide_quotes_the_workflow_as_it_is() -> None:
    guide = (REPO / "docs" / "release-engineer.md").read_text()
    (quoted,) = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL) if "actions/tiergate@" in b]
    assert quoted in WORKFLOW.read_text()
