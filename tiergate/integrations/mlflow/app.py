"""The ``mlflow.app`` plugin: ``mlflow server --app-name tiergate`` serves MLflow with the gate in front of the
model registry.

Under uvicorn (MLflow's default server) the factory returns MLflow's FastAPI wrapper around the Flask app, as the
built-in basic-auth app does; returning the bare Flask app there makes every request fail. The gate itself is a
Flask before-request hook, because every registry route is a Flask route; the artifact upload MLflow's FastAPI app
serves itself is checked by an ASGI middleware in that app (:mod:`tiergate.integrations.mlflow.hook`).

The factory never raises: a raising factory sends uvicorn's worker supervisor into an endless restart loop. A
configuration that does not load is reported by the ``mlflow server`` command before any worker starts
(:mod:`tiergate.integrations.mlflow.startup`); if it breaks later, the worker starts and refuses every registry publish
with the reason until the files are fixed.

Beside MLflow's basic-auth app: ``mlflow server`` serves one app, so the gate builds basic-auth's when
``GATE_MLFLOW_AUTH=basic-auth`` is set, and installs itself on it afterwards. Basic-auth's checks then run first (an
unauthenticated or unauthorised call gets basic-auth's 401/403 and never reaches the gate), and the ``user`` the gate
records with a decision is the authenticated one.

On an MLflow outside the tested range the ``mlflow server`` command refuses to start (``startup``); a worker started
some other way refuses every write instead, unless the administrator opted in (``GATE_MLFLOW_UNTESTED``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from tiergate.integrations.mlflow.startup import (AUTH_ENV, BASIC_AUTH, check_before_server_start, deployment_problem,
                                                  describe)

log = logging.getLogger("tiergate.integrations.mlflow")


def _configure_logging() -> None:
    """MLflow configures its own loggers only; without a handler the gate's decisions would not reach the log."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s tiergate: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def create_app() -> Any:
    """Build MLflow's server app with the gate installed (the entry point ``mlflow.app: tiergate``)."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME
    from mlflow.server import app as flask_app

    from tiergate.integrations.mlflow.artifacts import ArtifactGuard
    from tiergate.integrations.mlflow.gatekeeper import RegistryGate
    from tiergate.integrations.mlflow.holder import GateHolder
    from tiergate.integrations.mlflow.hook import install, install_asgi

    from tiergate.integrations.mlflow import surface

    _configure_logging()
    served: Any = flask_app
    if os.environ.get(AUTH_ENV) == BASIC_AUTH:
        from mlflow.server.auth import create_app as basic_auth_app

        served = basic_auth_app(flask_app)  # its hooks first: the gate sees authenticated, authorised calls only
    uvicorn = _MLFLOW_SGI_NAME.get() == "uvicorn"
    if uvicorn and served is flask_app:
        from mlflow.server.fastapi_app import create_fastapi_app

        served = create_fastapi_app(flask_app)
    problem = deployment_problem()
    if problem is not None:
        log.error("%s; every write to this server is refused", problem)
        _refuse_writes(flask_app, served if uvicorn else None, problem)
        return served
    holder = GateHolder()
    if holder.error is not None:
        log.error("the gate configuration does not load (%s); every registry publish is refused until it is "
                  "fixed", holder.error)
    else:
        log.info("%s", describe(holder.current()))
    guard = ArtifactGuard(holder)
    install(flask_app, RegistryGate(holder), guard)
    if uvicorn:
        install_asgi(served, guard)  # the artifact upload it serves itself, outside Flask
        surface.install_asgi(served)  # the routes it serves itself that write past the gate
    return served


def _refuse_writes(flask_app: Any, fastapi_app: Any, reason: str) -> None:
    """Every request but GET/HEAD/OPTIONS answered 403 with ``reason``, in Flask and in the FastAPI app."""
    from tiergate.integrations.mlflow import surface
    from tiergate.integrations.mlflow.hook import deny_response

    def before() -> Any:
        from flask import request

        if request.method not in surface.READ_METHODS:
            return deny_response(f"tiergate refused {request.method} {request.path}: {reason}")
        return None

    flask_app.before_request(before)
    if fastapi_app is not None:
        surface.install_asgi(fastapi_app, refuse_all=f"tiergate refused this write: {reason}")


check_before_server_start()
