"""A randomised concurrency stress test against a real plugin server with two workers sharing the backend store,
on SQLite and on PostgreSQL (issue #10: "a stress test that would find the next race").

Rounds of registry calls and artifact uploads are sent at the same moment from several threads (:mod:`mlflow_stress`);
after every round the invariant is checked over the whole registry (:mod:`mlflow_invariant`) and one gated version's
folder is probed with an upload that must be refused. Zero violations are allowed.

Bounded for CI: ``GATE_STRESS_OPS`` operations per backend (default 2000, about 3 minutes each on 2 cores);
``GATE_STRESS_SEED`` replays a run (the seed is printed, and is in the failure message). A longer run:
``GATE_STRESS_OPS=20000``.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from mlflow_e2e import make_registry, session_world, start_server
from mlflow_invariant import Invariant
from mlflow_stress import Stress, stress_names
from test_mlflow_postgres import fresh_database  # noqa: F401  (the fixture: a database of its own, dropped after)

pytestmark = [pytest.mark.e2e]

OPERATIONS = int(os.environ.get("GATE_STRESS_OPS", "2000"))
WORKERS = 2


def _seed() -> int:
    return int(os.environ.get("GATE_STRESS_SEED") or random.SystemRandom().randrange(2**32))


def _stress(tmp_path: Path, backend_uri: str, key_pool: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from tiergate.runtime import Gate, GateConfig

    seed = _seed()
    print(f"stress seed {seed} ({backend_uri.split(':', 1)[0]}, {OPERATIONS} operations, {WORKERS} workers); "
          f"replay with GATE_STRESS_SEED={seed}")
    world = session_world(tmp_path / "world", key_pool)
    log = tmp_path / "gate-log.db"
    server = start_server(tmp_path / "server", backend_uri,
                          {"GATE_TRUST": str(world.trust_path()), "GATE_LOG": str(log)}, workers=WORKERS)
    try:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        registry = make_registry(server.url, tmp_path, world)
        policy = Gate.load(GateConfig.from_env({"GATE_TRUST": str(world.trust_path())})).policy
        invariant = Invariant(backend_uri, tmp_path / "server" / "mlartifacts", log, policy)
        stress = Stress(registry, invariant, server.url, random.Random(seed), stress_names(registry))
        stress.setup()
        started = time.monotonic()
        try:
            stress.run(OPERATIONS)
        finally:
            invariant.close()
        print(f"stress done in {time.monotonic() - started:.0f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(stress.counts.items())))
        published = sum(v for k, v in stress.counts.items() if k.endswith(":ok") and k.split(":")[0] in
                        ("alias", "tier-tag", "stage", "create-at-tier"))
        assert published > 0, "no gated call was ever allowed: the run tested nothing but refusals"
        assert stress.violations == [], f"seed {seed}: " + "\n".join(stress.violations[:20])
    finally:
        server.stop()


def test_stress_on_sqlite(tmp_path: Path, key_pool: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _stress(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", key_pool, monkeypatch)


@pytest.mark.postgres
def test_stress_on_postgresql(tmp_path: Path, fresh_database: str, key_pool: Callable[..., Any],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    _stress(tmp_path, fresh_database, key_pool, monkeypatch)
