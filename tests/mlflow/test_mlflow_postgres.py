"""The plugin on a PostgreSQL backend store, in a fresh database per run.

Skipped, with the reason in the summary, when PostgreSQL is not reachable on 127.0.0.1:5432; with
GATE_REQUIRE_POSTGRES=1 (CI) an unreachable database fails the test instead. MLflow is given the URI with the
``psycopg`` (3) driver, which tiergate's ``postgres`` extra installs: a bare ``postgresql://`` URI makes
SQLAlchemy look for psycopg2.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest

from mlflow_e2e import hosted_evidence, own_registry, session_world, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ADMIN_URI = os.environ.get("GATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _admin_connection() -> Any:
    try:
        import psycopg

        return psycopg.connect(ADMIN_URI, autocommit=True, connect_timeout=5)
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {ADMIN_URI} ({type(exc).__name__}: {exc})"
        if os.environ.get("GATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}; GATE_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(f"PostgreSQL backend NOT TESTED: {reason}; set GATE_REQUIRE_POSTGRES=1 to make this a failure")


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database of its own for this run, dropped afterwards; yields its SQLAlchemy URI for MLflow."""
    admin = _admin_connection()
    name = f"gate_mlflow_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = ADMIN_URI.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_the_gate_on_a_postgresql_backend_store(fresh_database: str, tmp_path: Path,
                                                 key_pool: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import RestException

    world = session_world(tmp_path / "world", key_pool)
    server = start_server(tmp_path / "server", fresh_database, {"GATE_TRUST": str(world.trust_path())})
    try:
        registry = own_registry(server.url, tmp_path, world, monkeypatch)
        model = registry.log_model()
        version = registry.register(model)
        assert registry.tags(version.name, version.version)["tiergate.digest"] == model.manifest.digest
        with pytest.raises(RestException) as excinfo:
            registry.client.set_registered_model_alias(version.name, "production", version.version)
        assert excinfo.value.error_code == "PERMISSION_DENIED" and "risk-assessment" in excinfo.value.message
        registry.attach(model, hosted_evidence(world, model.manifest))
        registry.client.set_registered_model_alias(version.name, "production", version.version)
        assert registry.tags(version.name, version.version)["tiergate.tier"] == "hosted"
    finally:
        server.stop()


def test_the_registry_lock_is_an_advisory_lock_every_worker_of_the_database_shares(
        fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiergate.integrations.mlflow import lock as lock_module
    from tiergate.integrations.mlflow.lock import LockTimeout, RegistryLock, backend_for

    monkeypatch.setattr(lock_module, "WAIT_SECONDS", 0.2)
    worker, other = RegistryLock(backend_for(fresh_database)), RegistryLock(backend_for(fresh_database))
    with worker.exclusive(), pytest.raises(LockTimeout):
        other.shared()
    upload = worker.shared()
    other.shared().release()  # shared holds coexist
    with pytest.raises(LockTimeout), other.exclusive():
        pass
    upload.release()
    with other.exclusive():  # released, also when its connection went back to the pool
        pass
