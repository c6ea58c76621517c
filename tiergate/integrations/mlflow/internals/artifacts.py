"""MLflow's artifact store as the gate guards it: which calls write files, where each writes, and which gated
versions a place belongs to (see the package docstring for why these are internals)."""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from tiergate.errors import InputError
from tiergate.integrations.mlflow.internals.registry import (
    registry_store,
    resolve_location,
    tracking_store,
)

#: MLflow's artifact-proxy calls that put or remove files (``mlflow-artifacts`` routes; both URL prefixes).
UPLOAD_ARTIFACT = "UploadArtifact"
DELETE_ARTIFACT = "DeleteArtifact"
MULTIPART_CALLS = ("CreateMultipartUpload", "CompleteMultipartUpload", "AbortMultipartUpload")
PROXY_WRITES = (UPLOAD_ARTIFACT, DELETE_ARTIFACT) + MULTIPART_CALLS
#: Direct-to-storage upload URLs for a run's or logged model's artifacts (MlflowService).
PRESIGNED_UPLOAD = "CreatePresignedUploadUrl"
#: The UI's small-file upload into a run's artifacts (a Flask route of its own, no proto).
UI_UPLOAD = "UploadArtifact (UI)"
#: Artifact routes that write nothing, so the gate leaves them alone.
ARTIFACT_READS = ("CreatePresignedDownloadUrl",)
WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})

#: What MLflow names runs (uuid4 hex) and logged models (``m-`` + uuid4 hex). MLflow puts every artifact of a run
#: under ``<experiment location>/<run id>/artifacts`` and of a logged model under
#: ``<experiment location>/models/<model id>/artifacts``.
_ENTITY_ID = re.compile(r"(?:m-)?[0-9a-f]{32}")

Place = tuple[str, ...]
#: First element of a :data:`Place` in the server's own artifact store (``--artifacts-destination``), whichever URI
#: form named it (``mlflow-artifacts:/…``, ``http(s)://…/api/2.0/mlflow-artifacts/artifacts/…`` or the destination's
#: own URI).
PROXIED = "mlflow-artifacts:"


def _rpc_paths(service: Any, names: tuple[str, ...]) -> dict[tuple[str, str], str]:
    from mlflow.protos import databricks_pb2
    from mlflow.server.handlers import _get_paths

    table: dict[tuple[str, str], str] = {}
    for method in service.DESCRIPTOR.methods:
        if method.input_type.name in names:
            for endpoint in method.GetOptions().Extensions[databricks_pb2.rpc].endpoints:
                for path in _get_paths(endpoint.path, version=endpoint.since.major):
                    table[(endpoint.method, path)] = method.input_type.name
    return table


def artifact_write_routes() -> dict[tuple[str, str], str]:
    """``(HTTP method, Flask rule) -> call`` for every artifact write the gate understands, as MLflow routes them."""
    from mlflow.protos.mlflow_artifacts_pb2 import MlflowArtifactsService
    from mlflow.protos.service_pb2 import MlflowService
    from mlflow.server.handlers import _add_static_prefix

    table = _rpc_paths(MlflowArtifactsService, PROXY_WRITES)
    table.update(_rpc_paths(MlflowService, (PRESIGNED_UPLOAD,)))
    table[("POST", _add_static_prefix("/ajax-api/2.0/mlflow/upload-artifact"))] = UI_UPLOAD
    missing = sorted({UPLOAD_ARTIFACT, DELETE_ARTIFACT} - set(table.values()))
    if missing:
        raise RuntimeError(f"this MLflow has no REST route for {', '.join(missing)}; the gate cannot tell artifact "
                           "writes apart (tiergate supports mlflow 3.3 to 3.17)")
    return table


def _is_artifact_write(path: str, methods: Any) -> bool:
    return bool(WRITE_METHODS.intersection(methods or ())) and "artifact" in path.lower()


def unknown_artifact_writes(flask_app: Any, known: Mapping[tuple[str, str], str]) -> frozenset[tuple[str, str]]:
    """Flask routes that look like artifact writes but are none the gate understands (a newer MLflow's): refused, so
    that a new way to write artifacts cannot go around the freeze."""
    from mlflow.protos.service_pb2 import MlflowService

    reads = set(_rpc_paths(MlflowService, ARTIFACT_READS))
    found = set()
    for rule in flask_app.url_map.iter_rules():
        if not _is_artifact_write(rule.rule, rule.methods):
            continue
        for method in WRITE_METHODS & set(rule.methods or ()):
            if (method, rule.rule) not in known and (method, rule.rule) not in reads:
                found.add((method, rule.rule))
    return frozenset(found)


#: The artifact write MLflow's FastAPI app serves itself under uvicorn (``mlflow/server/artifact_router.py``): a
#: streaming upload, ``PUT /api/2.0/mlflow-artifacts/artifacts/{artifact_path:path}`` and its ``/ajax-api`` twin, not
#: under ``--static-prefix``. ``artifact_path`` is the rest of the decoded path, as FastAPI's path convertor reads it.
_NATIVE_UPLOAD = re.compile(r"/(?:api|ajax-api)/2\.0/mlflow-artifacts/artifacts/(.*)", re.DOTALL)


def native_routes(fastapi_app: Any) -> list[Any]:
    """The routes MLflow's FastAPI app serves itself: everything but the mount of the Flask app (at ``/``), which it
    tries last. A request that one of these matches never reaches Flask, nor the gate's Flask hook."""
    from starlette.routing import Mount

    return [route for route in fastapi_app.routes if not isinstance(route, Mount)]


def served_natively(routes: list[Any], scope: Mapping[str, Any]) -> bool:
    from starlette.routing import Match

    return any(route.matches(scope)[0] == Match.FULL for route in routes)


def is_artifact_request(method: str, path: str) -> bool:
    """A request that may write artifacts: a write method on a path about artifacts."""
    return _is_artifact_write(path, (method,))


def native_upload_path(method: str, path: str) -> str | None:
    """The artifact path of a request to MLflow's native FastAPI upload route, None for any other request."""
    match = _NATIVE_UPLOAD.fullmatch(path)
    return match.group(1) if method == "PUT" and match else None


def proxied_path(raw: str) -> str:
    """The path in the server's artifact store that an ``mlflow-artifacts`` route writes: MLflow's own validation
    (no ``..``, no absolute paths) and workspace scoping, as the handlers apply them."""
    from mlflow.server.handlers import _get_workspace_scoped_repo_path_if_enabled
    from mlflow.utils.uri import validate_path_is_safe

    return _get_workspace_scoped_repo_path_if_enabled(validate_path_is_safe(raw)) or ""


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in posixpath.normpath("/" + path).split("/") if part and part != ".")


def _direct_place(uri: str) -> Place:
    import os

    from mlflow.utils.file_utils import local_file_uri_to_path
    from mlflow.utils.uri import is_local_uri

    if is_local_uri(uri, is_tracking_or_registry_uri=False):
        return ("file", "") + _segments(os.path.realpath(local_file_uri_to_path(uri)).replace(os.sep, "/"))
    parsed = urllib.parse.urlsplit(uri)
    return (parsed.scheme.lower(), parsed.netloc.lower()) + _segments(parsed.path)


def _destination() -> Place | None:
    import os

    from mlflow.server.constants import ARTIFACTS_DESTINATION_ENV_VAR

    destination = os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR)
    return _direct_place(destination) if destination else None


def place(uri: str) -> Place:
    """Where an artifact URI points, comparable with where a write goes (see :func:`proxied_place`)."""
    from mlflow.server import handlers

    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "mlflow-artifacts" or (
            parsed.scheme in ("http", "https") and "/api/2.0/mlflow-artifacts/artifacts/" in parsed.path):
        path = handlers._get_proxied_run_artifact_destination_path(uri)
        return proxied_place(handlers._get_workspace_scoped_repo_path_if_enabled(path) or "")
    direct = _direct_place(uri)
    destination = _destination()
    if destination is not None and direct[:len(destination)] == destination:
        return (PROXIED,) + direct[len(destination):]
    return direct


def proxied_place(path: str) -> Place:
    """The place of a path in the server's artifact store (as :func:`proxied_path` gives it)."""
    return (PROXIED,) + _segments(path)


def entity_ids(where: Place) -> frozenset[str]:
    """The run and logged-model ids in a place's path."""
    return frozenset(part for part in where if _ENTITY_ID.fullmatch(part))


def multipart_file(call: str, flask_request: Any) -> str:
    """The file name a multipart-upload call is about (the folder is in its URL): MLflow's stores write
    ``<folder>/<basename of path>``."""
    from mlflow.protos import mlflow_artifacts_pb2
    from mlflow.server.handlers import _get_request_message

    message = _get_request_message(getattr(mlflow_artifacts_pb2, call)(), flask_request=flask_request)
    path: str = message.path
    name = posixpath.basename(path.replace("\\", "/"))
    if not name:
        raise InputError(f"{call} request has no file 'path'")
    return name


def presigned_upload_place(flask_request: Any) -> tuple[str, Place]:
    """Where a presigned upload URL would let its holder write: ``<run or logged model artifacts>/<path>``."""
    from mlflow.protos.service_pb2 import CreatePresignedUploadUrl
    from mlflow.server.handlers import _get_request_message
    from mlflow.utils.uri import validate_path_is_safe

    message = _get_request_message(CreatePresignedUploadUrl(), flask_request=flask_request)
    path = validate_path_is_safe(message.path)
    if message.run_id:
        root = str(tracking_store().get_run(message.run_id).info.artifact_uri)
    elif message.model_id:
        root = str(tracking_store().get_logged_model(message.model_id).artifact_location)
    else:
        raise InputError(f"{PRESIGNED_UPLOAD} request names neither a run_id nor a model_id")
    return path, place(root.rstrip("/") + "/" + path)


def ui_upload_place(flask_request: Any) -> tuple[str, Place]:
    """Where the UI's upload route writes, computed as its handler does (for proxied runs it writes under
    ``<experiment id>/<run id>/artifacts``, whatever the run's artifact URI says)."""
    from mlflow.server import handlers
    from mlflow.utils.uri import validate_path_is_safe

    run_id, path = flask_request.args.get("run_uuid"), flask_request.args.get("path")
    if not run_id or not path:
        raise InputError("the UI's upload-artifact request needs run_uuid and path")
    path = validate_path_is_safe(path)
    run = tracking_store().get_run(run_id)
    if handlers._is_servable_proxied_run_artifact_root(run.info.artifact_uri):
        target = posixpath.join(run.info.experiment_id, run.info.run_id, "artifacts", path)
        return path, proxied_place(handlers._get_workspace_scoped_repo_path_if_enabled(target) or "")
    return path, place(str(run.info.artifact_uri).rstrip("/") + "/" + path)


@dataclass(frozen=True)
class GatedVersion:
    """A model version carrying the gate's digest tag: its weights are frozen."""

    name: str
    version: str
    digest: str
    uri: str  # MLflow's storage location for it (its source if it has none)
    run_id: str | None = None


def gated_versions(ids: frozenset[str] | None) -> list[GatedVersion]:
    """Gated versions whose storage location, source or run mentions one of ``ids`` (all of them for None).

    Read from the registry's tables in one query (any workspace, deleted versions left out): through the gate's index
    of the ids each gated version mentions when it is complete (a lookup, flat in the registry's size), else by
    scanning every gated version. A registry that is not MLflow's SQL store is paged through its search API instead.
    """
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    store = registry_store()
    if not isinstance(store, SqlAlchemyStore):
        return _gated_versions_searched(store, ids)
    if ids is not None and _index_complete(store):
        models = _indexed_models(store, ids)
        return _gated_versions_sql(store, ids, models=models) if models else []
    return _gated_versions_sql(store, ids)


# --- the index of gated models by the ids their versions mention -------------------------------------------------
# MLflow's tables have no index that answers "which versions mention run or model X" (the ids sit inside source and
# storage-location URIs), so at 50,000 gated versions every artifact upload scanned them all. The gate keeps its own
# table, in the registry's database, of (id, workspace, model name) for every id a version it gates mentions (its
# source, run and storage location, and where the gate found its files), written under the exclusive registry lock
# *before* the version's digest tag; artifact writes read it under the shared lock, so no write can see a gated
# version whose model is missing from it. A lookup then runs the former scan restricted to those models, so it finds
# exactly what the scan found. Rows are never deleted (extra rows only add candidates, each checked precisely). A
# state row says every gated version is covered: set by the start-up backfill, dropped if a version could not be
# indexed; without it lookups scan everything as before.

_INDEX_TABLE = "tiergate_gated_ids"
_STATE_TABLE = "tiergate_gated_ids_state"
_MENTIONED_ID = re.compile(r"(?<![0-9a-f])(?:m-)?[0-9a-f]{32}(?![0-9a-f])", re.IGNORECASE)


def _index_tables() -> tuple[Any, Any]:
    from sqlalchemy import Column, MetaData, String, Table

    meta = MetaData()
    index = Table(_INDEX_TABLE, meta, Column("entity_id", String(64), primary_key=True),
                  Column("workspace", String(256), primary_key=True), Column("name", String(256), primary_key=True))
    state = Table(_STATE_TABLE, meta, Column("key", String(32), primary_key=True), Column("value", String(64)))
    return index, state


def mentioned_ids(*texts: str | None) -> frozenset[str]:
    """The run and logged-model ids that URIs and run ids mention (lower case)."""
    return frozenset(found.group(0).lower() for text in texts if text for found in _MENTIONED_ID.finditer(text))


def _index_complete(store: Any) -> bool:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    _, state = _index_tables()
    try:
        with store.engine.connect() as connection:  # the primary, never a read replica that may lag
            row = connection.execute(select(state.c.value).where(state.c.key == "complete")).first()
    except SQLAlchemyError:  # no index (yet): scan
        return False
    return row is not None and row[0] == "1"


def _indexed_models(store: Any, ids: frozenset[str]) -> list[tuple[str, str]]:
    from sqlalchemy import select

    index, _ = _index_tables()
    with store.engine.connect() as connection:
        rows = connection.execute(select(index.c.workspace, index.c.name).distinct()
                                  .where(index.c.entity_id.in_(sorted(one.lower() for one in ids)))).all()
    return [(str(w), str(n)) for w, n in rows]


def _add_to_index(store: Any, rows: set[tuple[str, str, str]]) -> None:
    """Add the (id, workspace, model name) ``rows`` that are not there yet (under the exclusive registry lock: no
    other writer of the table)."""
    from sqlalchemy import select

    index, _ = _index_tables()
    with store.engine.begin() as connection:
        index.create(connection, checkfirst=True)
        ordered = sorted(rows)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            have = {(str(e), str(w), str(n)) for e, w, n in connection.execute(
                select(index.c.entity_id, index.c.workspace, index.c.name)
                .where(index.c.entity_id.in_(sorted({row[0] for row in chunk})))).all()}
            fresh = [{"entity_id": e, "workspace": w, "name": n} for e, w, n in chunk if (e, w, n) not in have]
            if fresh:
                connection.execute(index.insert(), fresh)


def index_version(name: str, version: str | None, *texts: str | None) -> None:
    """Record that ``version`` of registered model ``name`` (None: a version being created), in whichever workspace
    holds the model, is gated with the ids it mentions: its source, storage location and run, and ``texts`` (URIs,
    run ids: where the gate found its files). Call it under the exclusive registry lock, before the digest tag is
    written. Raises on any database error (the caller refuses)."""
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion as V
    from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModel as M
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import select

    store = registry_store()
    if not isinstance(store, SqlAlchemyStore):
        return
    with store.engine.connect() as connection:
        found: Any = connection.execute(select(M.workspace).where(M.name == name)).all()
        workspaces = [str(w) for (w,) in found]
        if version is not None:
            stored: Any = connection.execute(select(V.source, V.storage_location, V.run_id)
                                             .where(V.name == name, V.version == int(version))).all()
            for row in stored:
                texts = (*texts, *row)
    ids = mentioned_ids(*texts)
    if ids:
        _add_to_index(store, {(one, w, name) for one in ids for w in workspaces})


def rename_in_index(old: str, new: str) -> None:
    """Registered model ``old`` is now ``new`` (MLflow renames its versions with it): its rows are copied to the new
    name, in every workspace that had them (extra rows only add candidates). Under the exclusive lock."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import select

    store = registry_store()
    if isinstance(store, SqlAlchemyStore) and old != new:
        index, _ = _index_tables()
        with store.engine.begin() as connection:
            index.create(connection, checkfirst=True)
            rows = connection.execute(select(index.c.entity_id, index.c.workspace).where(index.c.name == old)).all()
        _add_to_index(store, {(str(e), str(w), new) for e, w in rows})


def index_unsure() -> None:
    """A gated version may be missing from the index: lookups scan everything until the next start-up rebuilds it."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    store = registry_store()
    if isinstance(store, SqlAlchemyStore):
        _, state = _index_tables()
        with store.engine.begin() as connection:
            state.create(connection, checkfirst=True)
            connection.execute(state.delete().where(state.c.key == "complete"))


def build_index() -> int:
    """Index every gated version (idempotent) and mark the index complete; the number of gated versions. Call it
    under the exclusive registry lock (at start-up)."""
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion as V
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersionTag as T
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import and_, select

    from tiergate.integrations.mlflow.tags import DIGEST

    store = registry_store()
    if not isinstance(store, SqlAlchemyStore):
        return 0
    with store.engine.connect() as connection:
        gated: Any = connection.execute(
            select(V.workspace, V.name, V.source, V.storage_location, V.run_id)
            .join(T, and_(T.workspace == V.workspace, T.name == V.name, T.version == V.version))
            .where(T.key == DIGEST)).all()
    _add_to_index(store, {(one, str(w), str(n)) for w, n, source, location, run in gated
                          for one in mentioned_ids(source, location, run)})
    _, state = _index_tables()
    with store.engine.begin() as connection:
        state.create(connection, checkfirst=True)
        connection.execute(state.delete().where(state.c.key == "complete"))
        connection.execute(state.insert(), [{"key": "complete", "value": "1"}])
    return len(gated)


def _gated_versions_sql(store: Any, ids: frozenset[str] | None, name: str | None = None,
                        models: list[tuple[str, str]] | None = None) -> list[GatedVersion]:
    """The scan: gated versions mentioning ``ids`` (all for None), of model ``name`` or of ``models`` ((workspace,
    name) pairs) if given."""
    from mlflow.entities.model_registry.model_version_stages import (
        STAGE_DELETED_INTERNAL,
    )
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion as V
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersionTag as T
    from sqlalchemy import and_, or_

    from tiergate.integrations.mlflow.tags import DIGEST

    join = [T.name == V.name, T.version == V.version]
    if hasattr(V, "workspace") and hasattr(T, "workspace"):
        join.append(T.workspace == V.workspace)
    with store.ManagedSessionMaker() as session:
        query = (session.query(V.name, V.version, V.source, V.storage_location, V.run_id, T.value)
                 .join(T, and_(*join))
                 .filter(T.key == DIGEST, V.current_stage != STAGE_DELETED_INTERNAL))
        if ids is not None:
            mentions = [V.run_id.in_(sorted(ids))]
            for one in sorted(ids):
                mentions += [V.source.contains(one, autoescape=True), V.storage_location.contains(one, autoescape=True)]
            query = query.filter(or_(*mentions))
        if name is not None:
            query = query.filter(V.name == name)
        if models is not None:
            query = query.filter(or_(*(and_(V.workspace == w, V.name == n) for w, n in models)))
        rows = query.all()
    return [GatedVersion(name, str(version), str(digest or ""), str(location or source or ""), run_id)
            for name, version, source, location, run_id, digest in rows]


def gated_versions_of(name: str, version: str | None = None) -> list[GatedVersion]:
    """The gated versions of registered model ``name`` (only ``version``, if given)."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    store = registry_store()
    if not isinstance(store, SqlAlchemyStore):
        raise InputError("the registry store is not MLflow's SQL store; tiergate cannot guard it")
    return [v for v in _gated_versions_sql(store, None, name) if version is None or v.version == version]


def _gated_versions_searched(store: Any, ids: frozenset[str] | None) -> list[GatedVersion]:
    from tiergate.integrations.mlflow.tags import DIGEST

    found: list[GatedVersion] = []
    token = None
    while True:
        page = store.search_model_versions(filter_string=f"tags.`{DIGEST}` LIKE 'sha256:%'", max_results=1000,
                                           page_token=token)
        for mv in page:
            uri = store.get_model_version_download_uri(mv.name, mv.version) or mv.source or ""
            if ids is None or mv.run_id in ids or any(one in uri or one in (mv.source or "") for one in ids):
                found.append(GatedVersion(mv.name, str(mv.version), str(mv.tags.get(DIGEST, "")), uri, mv.run_id))
        token = page.token
        if not token:
            return found


def version_place(version: GatedVersion) -> Place | None:
    """Where a gated version's weights are; None if the run or logged model holding them no longer exists (nothing
    left to protect)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        return place(resolve_location(version.uri))
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
