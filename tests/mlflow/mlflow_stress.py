"""A randomised concurrency driver against a real plugin server: rounds of registry calls and artifact uploads sent at
the same moment from several threads, the invariant (:mod:`mlflow_invariant`) checked after every round.

Operations: version creation (plain and at a release tier), aliases, release tags, stages, renames, deletes of
models and versions, re-creates, copies, withdrawals, weight uploads into logged models and evidence uploads. One
round in three is a scripted race known to have broken the gate before (a gated call against a rename/re-create
swapping the name under it; a creation at a tier against a weight upload into its files); the rest are random.
Most calls are refused or fail (no evidence, no such version, a name taken): what matters is what is left.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import requests

from tiergate.core.manifest import hash_model
from mlflow_e2e import Published, Registry, hosted_evidence, write_tiny_model
from mlflow_invariant import GatedState, Invariant

ALIASES = ("production", "champion", "public", "gated", "candidate")
TIERS = ("internal", "hosted", "gated", "open")
STAGES = ("Staging", "Production", "Archived", "None")


@dataclass
class Stress:
    registry: Registry
    invariant: Invariant
    server_url: str
    rng: random.Random
    names: list[str]
    models: list[Published] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    _seed: list[int] = field(default_factory=lambda: [10_000])

    @property
    def client(self) -> Any:
        return self.registry.client

    def setup(self, models: int = 6) -> None:
        """Logged models, half of them with hosted evidence for their bytes."""
        for i in range(models):
            model = self.registry.log_model(seed=self._next_seed())
            if i % 2 == 0:
                self.registry.attach(model, hosted_evidence(self.registry.world, model.manifest))
            self.models.append(model)

    def _next_seed(self) -> int:
        self._seed[0] += 1
        return self._seed[0]

    # --- operations -------------------------------------------------------------------------------------------

    def _name(self) -> str:
        return self.rng.choice(self.names)

    def _version(self) -> str:
        return str(self.rng.randint(1, 4))

    def random_op(self) -> tuple[str, Callable[[], Any]]:
        c, r = self.client, self.rng
        name, version, model = self._name(), self._version(), r.choice(self.models)
        ops: list[tuple[str, Callable[[], Any]]] = [
            ("create", lambda: c.create_model_version(name, model.uri, model_id=model.model_id)),
            ("create-at-tier", lambda: c.create_model_version(name, model.uri, model_id=model.model_id,
                                                                 tags={"release.tier": r.choice(TIERS)})),
            ("alias", lambda: c.set_registered_model_alias(name, r.choice(ALIASES), version)),
            ("tier-tag", lambda: c.set_model_version_tag(name, version, "release.tier", r.choice(TIERS))),
            ("stage", lambda: c.transition_model_version_stage(name, version, r.choice(STAGES))),
            ("rename", lambda: c.rename_registered_model(name, self._name())),
            ("delete-model", lambda: c.delete_registered_model(name)),
            ("delete-version", lambda: c.delete_model_version(name, version)),
            ("create-model", lambda: c.create_registered_model(name)),
            ("copy", lambda: c.copy_model_version(f"models:/{name}/{version}", self._name())),
            ("delete-alias", lambda: c.delete_registered_model_alias(name, r.choice(ALIASES))),
            ("delete-tag", lambda: c.delete_model_version_tag(name, version, "release.tier")),
            ("upload-weights", lambda: self.upload_weights(model)),
            ("attach-evidence", lambda: self.attach_evidence(model)),
        ]
        weights = [3, 3, 4, 3, 2, 3, 1, 1, 3, 2, 1, 1, 3, 1]
        return r.choices(ops, weights)[0]

    def upload_weights(self, model: Published) -> None:
        """New weights into a logged model (refused once a version of it is gated), half the time with evidence
        for the files the model then holds."""
        seed = self._next_seed()
        staged = self.registry.tmp / f"w{seed}"
        shutil.copytree(model.local, staged)
        weights = write_tiny_model(self.registry.tmp / f"w{seed}-new", seed) / "model.safetensors"
        shutil.copyfile(weights, staged / "model.safetensors")
        self.client.log_model_artifact(model.model_id, str(staged / "model.safetensors"))
        if self.rng.random() < 0.5:
            self.registry.attach(model, hosted_evidence(self.registry.world, hash_model(staged)))

    def attach_evidence(self, model: Published) -> None:
        self.registry.attach(model, hosted_evidence(self.registry.world, model.manifest))

    def race_op(self) -> list[tuple[str, Callable[[], Any]]]:
        """A scripted race: a gated call on X while X is renamed away and another model renamed (or re-created)
        to X; or a creation at a release tier while new weights are uploaded into its files."""
        c, r = self.client, self.rng
        x, other, parked = r.sample(self.names, 3)
        model = r.choice(self.models)
        if r.random() < 0.5:
            gated = r.choice([
                ("alias", lambda: c.set_registered_model_alias(x, r.choice(("production", "champion")), "1")),
                ("tier-tag", lambda: c.set_model_version_tag(x, "1", "release.tier", "hosted")),
                ("stage", lambda: c.transition_model_version_stage(x, "1", "Production")),
                ("copy", lambda: c.create_model_version(x, f"models:/{x}/1")),
            ])
            return [gated, ("rename", lambda: c.rename_registered_model(x, parked)),
                    ("rename", lambda: (time.sleep(0.01), c.rename_registered_model(other, x)))]
        return [("create-at-tier", lambda: c.create_model_version(x, model.uri, model_id=model.model_id,
                                                                     tags={"release.tier": "hosted"})),
                ("upload-weights", lambda: (time.sleep(r.random() * 0.05), self.upload_weights(model)))]

    # --- rounds -----------------------------------------------------------------------------------------------

    def run_round(self, width: int, race: bool) -> int:
        ops = self.race_op() if race else [self.random_op() for _ in range(width)]
        barrier = threading.Barrier(len(ops))

        def run(label: str, op: Callable[[], Any]) -> None:
            barrier.wait()
            try:
                op()
                outcome = "ok"
            except Exception:
                outcome = "refused"
            with self._lock:
                key = f"{label}:{outcome}"
                self.counts[key] = self.counts.get(key, 0) + 1

        threads = [threading.Thread(target=run, args=op) for op in ops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(ops)

    _lock = threading.Lock()

    def check(self, step: int) -> None:
        found = self.invariant.violations()
        states = self.invariant.gated_states()
        if states:
            found += self.frozen_probe(self.rng.choice(states))
        self.violations += [f"step {step}: {line}" for line in found]

    def frozen_probe(self, state: GatedState) -> list[str]:
        """Try to add a file to a gated version's folder through the artifact API: it must be refused."""
        relative = state.files.relative_to(self.invariant.artifacts).as_posix()
        response = requests.put(f"{self.server_url}/api/2.0/mlflow-artifacts/artifacts/{relative}/probe.bin",
                                data=b"not evaluated", timeout=60)
        if response.status_code == 403:
            return []
        return [(f"{state.name}/{state.version}: an upload into its files answered {response.status_code}, "
                 "not 403 (its files are not frozen)")]

    def run(self, operations: int, width: int = 4) -> None:
        done = step = 0
        while done < operations:
            step += 1
            done += self.run_round(width, race=step % 3 == 0)
            self.check(step)
            if self.violations:
                return  # the first broken state is the one worth reading


def stress_names(registry: Registry, count: int = 5) -> list[str]:
    """Registered-model names for one run (few, so that calls collide)."""
    return [registry.unique("s") for _ in range(count)]
