"""``gate mlflow``: the registry gate from the client side, for CI against any MLflow tracking server."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from gate.cli._gate import check, load_gate, policy_option, report, trust_option
from gate.cli._options import hash_with_progress, now_option, quiet_option, resolve_now
from gate.core.collect import model_attestations


@click.group("mlflow")
def mlflow_group() -> None:
    """Gate MLflow model-registry publishes.

    The server side is an MLflow plugin: mlflow server --app-name release-gate (see docs/mlflow.md).
    """


@mlflow_group.command("check")
@click.argument("model_uri", metavar="models:/NAME/VERSION")
@click.option("--tier", required=True, help="The tier the release is going to (e.g. internal, hosted, gated, open).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking server (env MLFLOW_TRACKING_URI).")
@trust_option
@policy_option
@now_option
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON (stable schema, replayable).")
@click.option("--markdown-summary", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Append a Markdown table (e.g. $GITHUB_STEP_SUMMARY).")
@quiet_option
def check_command(model_uri: str, tier: str, tracking_uri: str | None, trust_path: Path | None,
                  policy_path: Path | None, now_text: str | None, as_json: bool, markdown_path: Path | None,
                  quiet: bool) -> None:
    """Decide whether a registered model version may be released at --tier.

    Downloads the version's files, hashes them, verifies the attestations in their .attestations/ folder and
    evaluates the policy, as `gate check` does for a folder. Exit 0 allow, 1 deny, 2 usage or configuration error.
    """
    from gate.integrations.mlflow.download import download_version

    gate = load_gate(policy_path, trust_path).current()
    if gate.config.server is None:
        gate.policy.tier(tier)  # an unknown tier is a usage error before any download
    now = resolve_now(now_text) if now_text else None
    with tempfile.TemporaryDirectory(prefix="gate-mlflow-") as tmp:
        model_dir = download_version(model_uri, Path(tmp), tracking_uri)
        manifest = hash_with_progress(model_dir, quiet)
        context = {"client": "gate mlflow check", "model_uri": model_uri}
        decision = check(gate, tier, manifest, model_attestations(model_dir), context, now)
    report(decision, as_json, markdown_path)
