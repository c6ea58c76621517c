"""``gate mlflow``: the registry gate from the client side, for CI against any MLflow tracking server."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from gate.cli._options import hash_with_progress, now_option, quiet_option, resolve_now
from gate.cli.check import load_trust, policy_option, report
from gate.core.collect import model_attestations
from gate.core.decision import decide
from gate.core.policy import Policy


@click.group("mlflow")
def mlflow_group() -> None:
    """Gate MLflow model-registry publishes.

    The server side is an MLflow plugin: mlflow server --app-name release-gate (see docs/mlflow.md).
    """


@mlflow_group.command("check")
@click.argument("model_uri", metavar="models:/NAME/VERSION")
@click.option("--tier", required=True, help="The tier the release is going to (e.g. internal, hosted, gated, open).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking server (env MLFLOW_TRACKING_URI).")
@click.option("--trust", "trust_path", type=click.Path(dir_okay=False, path_type=Path), envvar="GATE_TRUST",
              help="Trust store YAML (env GATE_TRUST).")
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

    policy = Policy.load(policy_path)
    policy.tier(tier)  # an unknown tier is a usage error before any download
    trust = load_trust(trust_path)
    now = resolve_now(now_text)
    with tempfile.TemporaryDirectory(prefix="gate-mlflow-") as tmp:
        model_dir = download_version(model_uri, Path(tmp), tracking_uri)
        manifest = hash_with_progress(model_dir, quiet)
        decision = decide(policy, tier, manifest, model_attestations(model_dir), trust, now)
    report(decision, as_json, markdown_path)
