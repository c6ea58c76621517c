"""Refusing to start ``mlflow server`` when the gate's configuration is broken, with one clear message.

The place to refuse is the ``mlflow server`` command itself, before it spawns any worker: it imports the plugin's
module there to see whether ``create_app`` is a factory (``mlflow.server._is_factory``). Refusing later, in the
worker's factory, does not stop the server: uvicorn's supervisor restarts a worker whose factory raises, forever.
So the check runs when this module is imported by the ``mlflow server`` command (and only then: not in workers,
which MLflow marks with ``_MLFLOW_SGI_NAME``, and not in tests or other programs importing the plugin).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from tiergate.errors import ConfigError, GateError
from tiergate.runtime import Gate, GateConfig

EXIT_CONFIG = 2
#: The MLflow releases the plugin is tested on (CI runs the floor and the newest); pyproject declares exactly these.
MLFLOW_FLOOR, MLFLOW_NEWEST = "3.17.0", "3.17.2"
#: Set to the exact MLflow version to run the gate on an untested MLflow anyway (the administrator's decision).
UNTESTED_ENV = "GATE_MLFLOW_UNTESTED"
#: ``GATE_MLFLOW_AUTH=basic-auth``: serve MLflow's basic-auth app with the gate installed on it.
AUTH_ENV, BASIC_AUTH = "GATE_MLFLOW_AUTH", "basic-auth"


def deployment_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the plugin must not serve in this environment (an untested MLflow, an unknown ``GATE_MLFLOW_AUTH``), None
    if it may."""
    env = os.environ if environ is None else environ
    auth = env.get(AUTH_ENV)
    if auth not in (None, "", BASIC_AUTH):
        return f"{AUTH_ENV}={auth!r} is not an app tiergate can serve beside; use {AUTH_ENV}={BASIC_AUTH} or unset it"
    return untested_mlflow(environ=env)


def untested_mlflow(version: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the installed MLflow (or ``version``) is not one to gate, None if it is (or the administrator opted in for
    exactly this version)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from packaging.version import InvalidVersion, Version

    env = os.environ if environ is None else environ
    try:
        found = version or installed("mlflow")
        if Version(MLFLOW_FLOOR) <= Version(found) <= Version(MLFLOW_NEWEST):
            return None
    except (PackageNotFoundError, InvalidVersion):
        found = version or "unknown"
    if env.get(UNTESTED_ENV) == found:
        return None
    return (f"mlflow {found} is not a version tiergate is tested with ({MLFLOW_FLOOR} to {MLFLOW_NEWEST}), so it "
            f"cannot vouch that every route that writes the registry is gated; install mlflow {MLFLOW_NEWEST} or a "
            f"tiergate that supports {found}, or set {UNTESTED_ENV}={found} to run it anyway")


def _in_mlflow_server_command() -> bool:
    if os.environ.get("_MLFLOW_SGI_NAME"):
        return False  # a server worker: its factory handles a broken configuration by refusing every publish
    import click

    ctx = click.get_current_context(silent=True)
    callback = getattr(getattr(ctx, "command", None), "callback", None)
    return ctx is not None and ctx.info_name == "server" and getattr(callback, "__module__", "").startswith("mlflow")


def describe(gate: Gate) -> str:
    """One line saying what the server will gate with, for its start-up output."""
    trust = f"{len(gate.trust.evaluators)} evaluator(s) from {gate.trust.source}" if gate.config.trust else \
        f"no trust store (only tier '{gate.policy.tier_names[0]}' can be allowed)"
    record = gate.config.server or gate.config.log or "not recorded (no GATE_LOG or GATE_SERVER)"
    return (f"gating the model registry with policy {gate.policy.uri} ({gate.policy.digest[:19]}), "
            f"{trust}; decisions: {record}")


def check_before_server_start() -> None:
    """Exit ``mlflow server`` with status 2 and the reason if the configuration does not load."""
    if not _in_mlflow_server_command():
        return
    problem = deployment_problem()
    if problem is not None:
        sys.stderr.write(f"tiergate: refusing to start the MLflow server: {problem}\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CONFIG)
    if os.environ.get(UNTESTED_ENV):
        sys.stderr.write(f"tiergate: warning: running on mlflow {os.environ[UNTESTED_ENV]}, which it is not tested "
                         f"with ({UNTESTED_ENV} is set)\n")
    try:
        gate = Gate.load(GateConfig.from_env())
        _check_mlflow()
    except GateError as exc:
        sys.stderr.write(f"tiergate: refusing to start the MLflow server: {exc}\n"
                         "tiergate: fix the gate configuration (GATE_CONFIG, GATE_POLICY, GATE_TRUST, GATE_LOG, "
                         "GATE_KEY) and start it again.\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CONFIG) from None
    sys.stderr.write(f"tiergate: {describe(gate)}\n")


def _check_mlflow() -> None:
    """This MLflow must serve every call the gate watches as a Flask route; otherwise a publish could go around it."""
    from mlflow.server import app as flask_app

    from tiergate.integrations.mlflow.internals.artifacts import artifact_write_routes
    from tiergate.integrations.mlflow.internals.registry import registry_routes, unserved_routes
    from tiergate.integrations.mlflow.routes import WATCHED
    from tiergate.integrations.mlflow.surface import REFUSED, FlaskSurface

    try:
        routes = registry_routes(WATCHED)
        artifact_write_routes()  # the artifact writes the gate freezes gated versions' files against
    except RuntimeError as exc:
        raise ConfigError(str(exc)) from None
    unserved = unserved_routes(routes, flask_app)
    if unserved:
        raise ConfigError(f"this MLflow does not serve {', '.join(unserved)} through Flask, where the gate's hook "
                          f"runs, so it cannot guard them (tiergate supports mlflow {MLFLOW_FLOOR} to "
                          f"{MLFLOW_NEWEST})")
    refused = [r for r in FlaskSurface().routes(flask_app) if r.verdict == REFUSED]
    sys.stderr.write(f"tiergate: {len(refused)} route(s) refused because they write past the gate; "
                     "`gate mlflow routes` lists every route\n")
