"""``gate mlflow``: the registry gate from the client side, for CI against any MLflow tracking server."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from tiergate.cli._gate import check, load_gate, policy_option, report, trust_option
from tiergate.cli._options import (decision_json_option, hash_with_progress, markdown_summary_option, now_option,
                                   quiet_option, resolve_now)
from tiergate.core.collect import model_attestations


@click.group("mlflow")
def mlflow_group() -> None:
    """Gate MLflow model-registry publishes.

    The server side is an MLflow plugin: mlflow server --app-name tiergate (see docs/mlflow.md).
    """


@mlflow_group.command("check")
@click.argument("model_uri", metavar="models:/NAME/VERSION")
@click.option("--tier", required=True, help="The tier the release is going to (e.g. internal, hosted, gated, open).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking server (env MLFLOW_TRACKING_URI).")
@trust_option
@policy_option
@now_option
@decision_json_option
@markdown_summary_option
@quiet_option
def check_command(model_uri: str, tier: str, tracking_uri: str | None, trust_path: Path | None,
                  policy_path: Path | None, now_text: str | None, as_json: bool, markdown_path: Path | None,
                  quiet: bool) -> None:
    """Decide whether a registered model version may be released at --tier.

    Downloads the version's files, hashes them, verifies the attestations in their .attestations/ folder and
    evaluates the policy, as `gate check` does for a folder. Exit 0 allow, 1 deny, 2 usage or configuration error.
    """
    from tiergate.integrations.mlflow.download import download_version

    gate = load_gate(policy_path, trust_path).current()
    if gate.config.server is None:
        gate.policy.tier(tier)  # an unknown tier is a usage error before any download
    now = resolve_now(now_text) if now_text else None
    server = _server_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="gate-mlflow-") as tmp:
        model_dir = download_version(model_uri, Path(tmp), server)
        manifest = hash_with_progress(model_dir, quiet)
        context = {"client": "gate mlflow check", "model_uri": model_uri}
        decision = check(gate, tier, manifest, model_attestations(model_dir), context, now)
    report(decision, as_json, markdown_path)


def _server_uri(tracking_uri: str | None) -> str | None:
    """The tracking server to ask, made MLflow's tracking *and* registry URI for this process.

    MLflow resolves ``models:/`` URIs with the registry URI, which does not follow a tracking URI passed to a call:
    left unset it is a ``mlflow.db`` in the current folder, and a same-named model there would be checked instead
    of the server's. A URI that is not an HTTP(S) server is refused for the same reason.
    """
    if not tracking_uri:
        return None  # download_version says how to name one
    from urllib.parse import urlparse

    from tiergate.errors import UsageError

    if urlparse(tracking_uri).scheme not in ("http", "https"):
        raise UsageError(f"--tracking-uri {tracking_uri}: name the MLflow tracking server (http:// or https://), not "
                         "a local store")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return tracking_uri


@mlflow_group.command("routes")
@click.option("--verdict", type=click.Choice(["gated", "read-only", "passes", "refused"]), multiple=True,
              help="Show only routes with this verdict (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the routes as JSON.")
def routes_command(verdict: tuple[str, ...], as_json: bool) -> None:
    """List every route of the MLflow server and what the gate does with it.

    gated: the gate decides, records or checks it; read-only: it reads; passes: it writes tracking data only;
    refused: it could change the registry or a registered version's files past the gate, or it writes and the gate
    does not know it (403). Covers the Flask app and the routes MLflow's FastAPI app serves itself (uvicorn).
    """
    import json
    import os

    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # listing routes starts no job runner
    import warnings

    from mlflow.server import app as flask_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's deprecation of the WSGI middleware MLflow uses
        from mlflow.server.fastapi_app import create_fastapi_app

    from tiergate.integrations.mlflow.startup import untested_mlflow
    from tiergate.integrations.mlflow.surface import FlaskSurface, asgi_routes

    routes = FlaskSurface().routes(flask_app) + asgi_routes(create_fastapi_app(flask_app))
    shown = [r for r in routes if not verdict or r.verdict in verdict]
    if as_json:
        click.echo(json.dumps([{"server": r.server, "method": r.method, "path": r.path, "handler": r.handler,
                                "verdict": r.verdict, "reason": r.reason} for r in shown], indent=2))
    else:
        for r in shown:
            click.echo(f"{r.verdict:<9}  {r.server:<5}  {r.method:<6}  {r.path}  ({r.reason})")
        counts = {v: sum(1 for r in routes if r.verdict == v) for v in ("gated", "read-only", "passes", "refused")}
        click.echo(", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(routes)} routes", err=True)
    problem = untested_mlflow()
    if problem is not None:
        click.echo(f"gate: warning: {problem}", err=True)
