"""Fetching a registered version's files on the client side, for ``gate mlflow check`` in CI.

Uses only MLflow's public client API, so it works against any tracking server, with or without the plugin.
"""

from __future__ import annotations

from pathlib import Path

from tiergate.errors import UsageError


def download_version(model_uri: str, dst: Path, tracking_uri: str | None) -> Path:
    """Download ``models:/NAME/VERSION`` (or ``models:/NAME@ALIAS``) into ``dst``; return the model folder.

    The tracking server must be named: MLflow's fallback (a local database in the current folder) would create
    files in a CI checkout and then report that the model does not exist.
    """
    if not model_uri.startswith("models:/"):
        raise UsageError(f"{model_uri}: expected a registry URI, models:/NAME/VERSION or models:/NAME@ALIAS")
    if not tracking_uri:
        raise UsageError("no tracking server: pass --tracking-uri URL or set MLFLOW_TRACKING_URI")
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst),
                                                    tracking_uri=tracking_uri)
    except MlflowException as exc:
        raise UsageError(f"cannot download {model_uri} from {tracking_uri}: {exc.message}") from None
    path = Path(local)
    if not path.is_dir():
        raise UsageError(f"{model_uri} is a single file, not a model folder; "
                         "register the folder that holds the weights")
    return path
