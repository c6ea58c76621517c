#!/usr/bin/env python3
"""What an artifact upload pays to find the gated versions it might touch, as the registry grows.

Every artifact write through the MLflow plugin asks "which gated versions have files where this write goes?". The
answer used to come from scanning every gated version's source and storage location (``LIKE '%id%'``); now the
plugin keeps an index of the run and logged-model ids each gated version mentions. This fills a SQLite registry with
N gated versions (MLflow's own tables, rows written in bulk) and times one lookup both ways, side by side with a bare
primary-key lookup of one version in the same database (the floor of any query there).

Run ``.venv/bin/python bench/bench_mlflow_index.py --help``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_hash import best_of  # the same timing rule as every benchmark here: the best of N runs
from collections.abc import Sequence


def fill(db: Path, count: int) -> tuple[object, list[str]]:
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion, SqlModelVersionTag, SqlRegisteredModel
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import insert

    store = SqlAlchemyStore(f"sqlite:///{db}")
    runs = [uuid.uuid4().hex for _ in range(count)]
    now = int(time.time() * 1000)
    with store.engine.begin() as connection:
        models = [{"workspace": "default", "name": f"model-{i // 10}", "creation_time": now,
                   "last_updated_time": now} for i in range(0, count, 10)]
        connection.execute(insert(SqlRegisteredModel), models)
        versions = [{"workspace": "default", "name": f"model-{i // 10}", "version": i % 10 + 1, "creation_time": now,
                     "last_updated_time": now, "current_stage": "None", "status": "READY",
                     "source": f"mlflow-artifacts:/1/{run}/artifacts/model", "run_id": run,
                     "storage_location": f"mlflow-artifacts:/1/{run}/artifacts/model"}
                    for i, run in enumerate(runs)]
        connection.execute(insert(SqlModelVersion), versions)
        tags = [{"workspace": "default", "name": v["name"], "version": v["version"], "key": "tiergate.digest",
                 "value": "sha256:" + "1" * 64} for v in versions]
        connection.execute(insert(SqlModelVersionTag), tags)
    return store, runs


def measure(size: int, runs: int) -> tuple[float, float, float]:
    """Seconds for one lookup by scan, by index, and one primary-key read, in a registry of ``size`` gated versions."""
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion
    from sqlalchemy import select

    from tiergate.integrations.mlflow.internals import artifacts

    with tempfile.TemporaryDirectory() as tmp:
        store, run_ids = fill(Path(tmp) / "registry.db", size)
        artifacts.registry_store = lambda: store  # type: ignore[assignment]  # the bench's registry
        artifacts.build_index()
        ids = frozenset({run_ids[size // 2]})
        assert [v.run_id for v in artifacts.gated_versions(ids)] == [run_ids[size // 2]]

        def pk() -> None:
            with store.engine.connect() as connection:  # type: ignore[attr-defined]
                connection.execute(select(SqlModelVersion.source).where(
                    SqlModelVersion.workspace == "default", SqlModelVersion.name == "model-0",
                    SqlModelVersion.version == 1)).all()

        return (best_of(runs, lambda: artifacts._gated_versions_sql(store, ids)),
                best_of(runs, lambda: artifacts.gated_versions(ids)), best_of(runs, pk))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--runs", type=int, default=20, help="timed lookups per measurement; the best is reported")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(f"{'gated versions':>15} {'scan (ms)':>10} {'index (ms)':>11} {'pk lookup (ms)':>15} {'scan/index':>11}")
    for size in args.sizes:
        scan, indexed, floor = measure(size, args.runs)
        print(f"{size:>15} {scan * 1e3:>10.2f} {indexed * 1e3:>11.2f} {floor * 1e3:>15.2f} "
              f"{scan / indexed:>10.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
