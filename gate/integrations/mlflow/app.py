"""The ``mlflow.app`` plugin: ``mlflow server --app-name release-gate`` serves MLflow with the gate in front of the
model registry.

Under uvicorn (MLflow's default server) the factory returns MLflow's FastAPI wrapper around the Flask app, as the
built-in basic-auth app does; returning the bare Flask app there makes every request fail. The gate itself is a
Flask before-request hook, because every registry route is a Flask route; the artifact upload MLflow's FastAPI app
serves itself is checked by an ASGI middleware in that app (:mod:`gate.integrations.mlflow.hook`).

The factory never raises: a raising factory sends uvicorn's worker supervisor into an endless restart loop. A
configuration that does not load is reported by the ``mlflow server`` command before any worker starts
(:mod:`gate.integrations.mlflow.startup`); if it breaks later, the worker starts and refuses every registry publish
with the reason until the files are fixed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gate.integrations.mlflow.startup import check_before_server_start, describe

log = logging.getLogger("gate.integrations.mlflow")


def _configure_logging() -> None:
    """MLflow configures its own loggers only; without a handler the gate's decisions would not reach the log."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s release-gate: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def create_app() -> Any:
    """Build MLflow's server app with the gate installed (the entry point ``mlflow.app: release-gate``)."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME
    from mlflow.server import app as flask_app

    from gate.integrations.mlflow.artifacts import ArtifactGuard
    from gate.integrations.mlflow.gatekeeper import RegistryGate
    from gate.integrations.mlflow.holder import GateHolder
    from gate.integrations.mlflow.hook import install, install_asgi

    _configure_logging()
    holder = GateHolder()
    if holder.error is not None:
        log.error("the gate configuration does not load (%s); every registry publish is refused until it is "
                  "fixed", holder.error)
    else:
        log.info("%s", describe(holder.current()))
    guard = ArtifactGuard(holder)
    install(flask_app, RegistryGate(holder), guard)
    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        fastapi_app = create_fastapi_app(flask_app)
        install_asgi(fastapi_app, guard)  # the artifact upload it serves itself, outside Flask
        return fastapi_app
    return flask_app


check_before_server_start()
