"""MLflow's model registry as the gate uses it: its routes and request parser, versions, tags, and where a
version's files are (see the package docstring for why these are internals)."""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Mapping

from tiergate.errors import InputError

#: How many ``models:/name/version`` hops are followed to find a copied version's weights.
MAX_SOURCE_HOPS = 8


def registry_routes(rpcs: frozenset[str]) -> dict[tuple[str, str], str]:
    """``(HTTP method, Flask rule) -> RPC name`` for ``rpcs``, from the same proto options MLflow routes by.

    Built from the protos rather than written out, so both URL prefixes (``/api/2.0/mlflow`` and
    ``/ajax-api/2.0/mlflow``) and a ``--static-prefix`` are covered exactly as MLflow registers them.
    """
    from mlflow.protos import databricks_pb2
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.server.handlers import _get_paths

    table: dict[tuple[str, str], str] = {}
    for method in ModelRegistryService.DESCRIPTOR.methods:
        rpc = method.input_type.name
        if rpc not in rpcs:
            continue
        for endpoint in method.GetOptions().Extensions[databricks_pb2.rpc].endpoints:
            for path in _get_paths(endpoint.path, version=endpoint.since.major):
                table[(endpoint.method, path)] = rpc
    missing = sorted(rpcs - set(table.values()))
    if missing:
        raise RuntimeError(f"this MLflow has no REST route for {', '.join(missing)}; the gate cannot guard it "
                           "(tiergate supports mlflow 3.3 to 3.17)")
    return table


def unserved_routes(routes: Mapping[tuple[str, str], str], flask_app: Any) -> list[str]:
    """Watched routes that are not Flask rules of ``flask_app``: the before-request hook would never see them (an
    MLflow release that moved a registry route to FastAPI would route it around the gate)."""
    served = {(method, rule.rule) for rule in flask_app.url_map.iter_rules() for method in rule.methods or ()}
    return sorted(f"{method} {path}" for method, path in routes if (method, path) not in served)


def request_fields(rpc: str, flask_request: Any) -> dict[str, Any]:
    """The request's fields exactly as the MLflow handler will read them (same parser), by proto field name."""
    from google.protobuf.json_format import MessageToDict
    from mlflow.protos import model_registry_pb2
    from mlflow.server.handlers import _get_request_message

    message = _get_request_message(getattr(model_registry_pb2, rpc)(), flask_request=flask_request)
    return MessageToDict(message, preserving_proto_field_name=True)


def is_prompt(tags: Mapping[str, str] | tuple[tuple[str, str], ...], source: str | None) -> bool:
    """A prompt version: tagged as a prompt *and* with a prompt placeholder as its source.

    The tag alone would let anyone label weights a prompt to get past the gate; the placeholder source (which MLflow
    requires of prompts) means there are no weights to check.
    """
    from mlflow.prompt.constants import _PROMPT_SOURCE_PLACEHOLDERS, IS_PROMPT_TAG_KEY

    values = dict(tags)
    return values.get(IS_PROMPT_TAG_KEY, "false").lower() == "true" and source in _PROMPT_SOURCE_PLACEHOLDERS


@dataclass(frozen=True)
class Version:
    """A registered model version: its source, MLflow's download URI for it (``models:/``, ``runs:/`` or an
    artifact URI; :func:`resolve_location` finds the files) and its tags."""

    name: str
    version: str
    source: str
    download_uri: str
    tags: Mapping[str, str] = field(default_factory=dict)


def registry_store() -> Any:
    from mlflow.server.handlers import _get_model_registry_store

    return _get_model_registry_store()


def tracking_store() -> Any:
    from mlflow.server.handlers import _get_tracking_store

    return _get_tracking_store()


def get_version(name: str, version: str) -> Version:
    """Raises MLflow's RESOURCE_DOES_NOT_EXIST error if there is no such version."""
    store = registry_store()
    mv = store.get_model_version(name, version)
    download_uri = store.get_model_version_download_uri(name, version) or mv.source or ""
    return Version(name, str(mv.version), mv.source or "", download_uri, dict(mv.tags or {}))


def version_by_alias(name: str, alias: str) -> Version | None:
    from mlflow.exceptions import MlflowException

    try:
        mv = registry_store().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return get_version(name, str(mv.version))


def set_tags(name: str, version: str, tags: Mapping[str, str]) -> None:
    """Written through the store, not the REST API: the gate's own writes do not pass its hook."""
    from mlflow.entities.model_registry import ModelVersionTag

    store = registry_store()
    for key, value in tags.items():
        store.set_model_version_tag(name, version, ModelVersionTag(key=key, value=value))


def restore_tags(name: str, version: str, existing: Mapping[str, str], written: Mapping[str, str]) -> None:
    """Put the tags ``written`` back to their values in ``existing`` (deleted where they had none)."""
    from mlflow.entities.model_registry import ModelVersionTag

    store = registry_store()
    for key in written:
        if key in existing:
            store.set_model_version_tag(name, version, ModelVersionTag(key=key, value=existing[key]))
        else:
            store.delete_model_version_tag(name, version, key)


def guards_store() -> bool:
    """Whether the server's registry store is MLflow's SQL store, the one the store guard wraps."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    return isinstance(registry_store(), SqlAlchemyStore)


def new_version_location(source: str, model_id: str | None, run_id: str | None) -> str:
    """Where the weights of a version about to be created are, after MLflow's own checks of its source.

    The hook runs before the handler, so the handler's source validation (a local path must lie inside the run's or
    logged model's artifacts, no ``..``) is applied here first: a request must not make the gate read whatever
    path it names.
    """
    from mlflow.server import handlers

    handlers._validate_artifact_uri_scheme(source, "source")
    source, run_id, model_id = handlers._resolve_registered_model_source_lineage(
        source, run_id or "", model_id or "", has_run_id=run_id is not None, has_model_id=model_id is not None)
    if model_id:
        handlers._validate_source_model(source, model_id)
    else:
        # Annotated `run_id: str`, yet MLflow's own handler passes this str | None and the function checks `if run_id`.
        handlers._validate_source_run(source, run_id)  # type: ignore[arg-type]
    if model_id and urllib.parse.urlparse(source).scheme == "models":
        return str(tracking_store().get_logged_model(model_id).artifact_location)
    return resolve_location(source)


def resolve_location(uri: str) -> str:
    """Follow ``models:/`` and ``runs:/`` URIs to the artifact URI that holds the files."""
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
    from mlflow.store.artifact.utils.models import (
        _parse_model_uri,
        get_model_name_and_version,
    )

    for _ in range(MAX_SOURCE_HOPS):
        scheme = urllib.parse.urlparse(uri).scheme
        if scheme == "models":
            parsed = _parse_model_uri(uri)
            if parsed.model_id is not None:
                return str(tracking_store().get_logged_model(parsed.model_id).artifact_location)
            name, version = get_model_name_and_version(registry_store(), uri)
            uri = registry_store().get_model_version_download_uri(name, version)
        elif scheme == "runs":
            run_id, path = RunsArtifactRepository.parse_runs_uri(uri)
            root = str(tracking_store().get_run(run_id).info.artifact_uri)
            return posixpath.join(root, path) if path else root
        else:
            return uri
    raise InputError(f"{uri}: more than {MAX_SOURCE_HOPS} models:/ hops to find the weights; "
                     "register from the original")


@contextlib.contextmanager
def local_copy(location: str) -> Iterator[tuple[Path, bool]]:
    """The model folder at ``location`` on this machine: ``(path, True)`` in place, or ``(path, False)`` downloaded.

    Artifacts the server stores on its own disk (the default ``--artifacts-destination``) are hashed where they lie;
    anything else is downloaded to a temporary folder that is removed afterwards.
    """
    from mlflow.server import handlers
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.utils.file_utils import local_file_uri_to_path
    from mlflow.utils.uri import is_local_uri

    if handlers._is_servable_proxied_run_artifact_root(location):
        repo = handlers._get_artifact_repo_mlflow_artifacts()
        path = handlers._get_workspace_scoped_repo_path_if_enabled(
            handlers._get_proxied_run_artifact_destination_path(location))
        if isinstance(repo, LocalArtifactRepository):
            yield Path(repo.get_local_path(path or "")), True
            return
        with tempfile.TemporaryDirectory(prefix="tiergate-") as tmp:
            yield Path(repo.download_artifacts(path, tmp)), False
        return
    if is_local_uri(location, is_tracking_or_registry_uri=False):
        yield Path(local_file_uri_to_path(location)), True
        return
    repo = handlers._get_artifact_repository_for_uri(location)
    with tempfile.TemporaryDirectory(prefix="tiergate-") as tmp:
        yield Path(repo.download_artifacts("", tmp)), False
