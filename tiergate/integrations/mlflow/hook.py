"""The request side: registry calls reach the store guard, artifact writes are checked and hold the registry lock;
refusals are a 403 MLflow clients understand, never a 5xx.

A refusal is HTTP 403 with ``{"error_code": "PERMISSION_DENIED", "message": ...}``: ``MlflowClient`` raises
``RestException`` with that code and message and does not retry (it retries 408, 429 and 5xx). Any error while
deciding becomes such a refusal too: the gate fails closed, and a 5xx would make clients retry into it.

Registry calls are decided where MLflow writes them, in its registry store
(:mod:`tiergate.integrations.mlflow.registry`), under the registry lock. The route refuses, before MLflow's handler,
what the request alone shows to be refused (``tiergate.*`` or prompt-marker tags,
:func:`~tiergate.integrations.mlflow.routes.refusal`), drops a copy's copied gate tags
(:mod:`~tiergate.integrations.mlflow.copies`), and refuses any route the surface does not know to be harmless
(:mod:`~tiergate.integrations.mlflow.surface`: deny by default). Artifact writes are Flask routes, seen by a Flask
before-request hook, except the upload MLflow's FastAPI app serves itself under uvicorn
(``PUT …/mlflow-artifacts/artifacts/…``), seen by :class:`ArtifactWriteGuard`, an ASGI middleware in that app. Both
hold the registry lock shared from before the check until the write is done, so no write overlaps a gated call.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any
from collections.abc import Awaitable, Callable, Mapping

from tiergate.integrations.mlflow.artifacts import (
    EVIDENCE_LIMIT,
    ArtifactGuard,
    Evidence,
    asgi_write,
    check_evidence,
    flask_write,
    unknown_route,
)
from tiergate.integrations.mlflow.copies import copied_gate_tags, drop_request_tags
from tiergate.integrations.mlflow.gatekeeper import Deny, RegistryGate
from tiergate.integrations.mlflow.internals import artifacts as mlflow_artifacts
from tiergate.integrations.mlflow.internals import registry as mlflow_registry
from tiergate.integrations.mlflow.lock import Held, RegistryLock, registry_lock
from tiergate.integrations.mlflow.registry import StoreGuard, failure, requester
from tiergate.integrations.mlflow.routes import WATCHED, parse_call, refusal
from tiergate.integrations.mlflow.surface import REFUSED, FlaskSurface

log = logging.getLogger("tiergate.integrations.mlflow")

#: How much of a refused upload's body is read (and discarded) before answering, so that the client, still sending,
#: gets the 403 instead of a broken connection. A larger body is cut off: the connection closes after the answer.
DRAIN_LIMIT = 64 * 1024 * 1024
_HOLD = "tiergate_hold"
#: The ASGI callables an ASGI app is given (the ASGI specification's ``receive`` and ``send``).
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


def deny_response(message: str) -> Any:
    from flask import Response

    body = json.dumps({"error_code": "PERMISSION_DENIED", "message": message})
    return Response(body, status=403, mimetype="application/json")


def _unguarded_store() -> str | None:
    """Why registry writes cannot be guarded on this server, or None."""
    try:
        if mlflow_registry.guards_store():
            return None
        reason = "the server's registry store is not MLflow's SQL store, the one tiergate guards"
    except Exception as exc:  # noqa: BLE001 - a store that fails to load for any reason refuses registry writes
        reason = f"the registry store does not load ({type(exc).__name__}: {exc})"
    return (f"tiergate refused this registry write: {reason}; registry writes are refused until the server "
            "uses a SQLite or PostgreSQL backend store")


def _build_index(lock: Callable[[], RegistryLock]) -> None:
    """Bring the artifact guard's index up to date with every gated version (idempotent); until it is, artifact
    writes are checked by scanning every gated version, which is as safe and slower."""
    try:
        with lock().exclusive():
            count = mlflow_artifacts.build_index()
        log.info("artifact guard index: %d gated version(s) covered", count)
    except Exception:
        log.exception("could not build the artifact guard's index; artifact writes scan every gated version")


def install(app: Any, gatekeeper: RegistryGate | None, artifact_guard: ArtifactGuard | None = None,
            lock: Callable[[], RegistryLock] = registry_lock) -> None:
    """Install the store guard (deciding with ``gatekeeper``) and add the gate's before-request hook to MLflow's
    Flask ``app``. ``gatekeeper`` None installs the artifact checks alone (for tests of the hook)."""
    from flask import g, request

    routes = mlflow_registry.registry_routes(WATCHED)
    writes = mlflow_artifacts.artifact_write_routes()
    unknown = mlflow_artifacts.unknown_artifact_writes(app, writes)
    if gatekeeper is not None:
        refused = StoreGuard(gatekeeper, lock).install()
        if refused:
            log.warning("registry store methods tiergate does not know are refused: %s", ", ".join(refused))
        _build_index(lock)
    guard = artifact_guard or ArtifactGuard(gatekeeper.holder if gatekeeper is not None else None)  # type: ignore[arg-type]
    surface = FlaskSurface()

    def before() -> Any:
        rule = request.url_rule
        if rule is None:
            return None
        key = (request.method, rule.rule)
        rpc = routes.get(key)
        if rpc is not None:
            return _registry_call(rpc, request)  # decided in the store, when MLflow writes
        if key in writes or key in unknown:
            return _artifact_write(guard, writes.get(key), request, lock, g)
        if (route := surface.route(request.method, rule)).verdict == REFUSED:  # deny by default (surface.py)
            log.info("%s", route.refusal().removeprefix("tiergate "))
            _drain_flask(request)
            return deny_response(route.refusal())
        return None

    def teardown(_exc: BaseException | None) -> None:
        hold = g.pop(_HOLD, None)
        if hold is not None:
            hold.release()

    app.before_request(before)
    app.teardown_request(teardown)


def _registry_call(rpc: str, request: Any) -> Any:
    """Refuse what the request alone shows to be refused; everything else is decided at the store."""
    reason = _unguarded_store()
    if reason is None:
        try:
            call = parse_call(rpc, mlflow_registry.request_fields(rpc, request))
            if copied := copied_gate_tags(call):  # copy_model_version: decided afresh (copies.py)
                call = drop_request_tags(rpc, request, copied)
            reason = refusal(call)
        except Exception as exc:
            log.exception("refused %s %s after an error", request.method, request.path)
            reason = failure(exc)
    if reason is None:
        return None
    log.info("%s", reason.removeprefix("tiergate "))
    return deny_response(reason)


def _artifact_write(guard: ArtifactGuard, call: str | None, request: Any, lock: Callable[[], RegistryLock],
                    g: Any) -> Any:
    hold: Held | None = None
    try:
        if call is None:
            outcome: Deny | None = Deny(unknown_route(request.method, request.path))
        else:
            hold = lock().shared()  # held until the write is done (teardown), released at once if refused
            decided = guard.before(flask_write(call, request), requester())
            outcome = _flask_evidence(decided, request) if isinstance(decided, Evidence) else decided
    except Exception as exc:
        log.exception("refused %s %s after an error", request.method, request.path)
        outcome = Deny(failure(exc))
    if outcome is None:
        if hold is not None:
            setattr(g, _HOLD, hold)
        return None
    if hold is not None:
        hold.release()
    log.info("%s", outcome.message.removeprefix("tiergate "))
    _drain_flask(request)
    return deny_response(outcome.message)


def _flask_evidence(evidence: Evidence, request: Any) -> Deny | None:
    """Read the uploaded attestation (bounded), check it, and hand the same bytes on to MLflow's handler."""
    data = request.stream.read(EVIDENCE_LIMIT + 1)
    outcome = check_evidence(evidence, data)
    if outcome is None:
        request.environ["wsgi.input"] = io.BytesIO(data)
        request.environ["CONTENT_LENGTH"] = str(len(data))
        request.__dict__.pop("stream", None)  # werkzeug caches the stream: make it read the replayed body
    return outcome


def _drain_flask(request: Any) -> None:
    try:
        read = 0
        while read < DRAIN_LIMIT and (chunk := request.stream.read(1024 * 1024)):
            read += len(chunk)
    except Exception:  # noqa: BLE001, S110 - the answer matters, not the rest of the body
        pass


# --- the ASGI side (uvicorn): MLflow's native FastAPI artifact routes ------------------------------------------------


def _asgi_requester(scope: Mapping[str, Any]) -> dict[str, str]:
    """:func:`tiergate.integrations.mlflow.registry.requester` for an ASGI request."""
    import base64

    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
    host = headers.get("host") or ":".join(str(p) for p in scope.get("server") or ())
    who = {"server": f"{scope.get('scheme', 'http')}://{host}"}
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip()).decode("utf-8").split(":", 1)[0]
        except Exception:  # noqa: BLE001 - a malformed Authorization header names nobody
            user = ""
        if user:
            who["user"] = user
    if scope.get("client"):
        who["client"] = str(scope["client"][0])
    return who


class ArtifactWriteGuard:
    """ASGI middleware for the artifact writes MLflow's FastAPI app serves itself (not through Flask).

    Placed innermost (after MLflow's security and workspace middleware). A write request on an artifact path that one
    of the app's own routes would serve is decided in a worker thread (the decision reads the registry) under the
    registry lock held shared, which stays held until the upload is done; refused with the same 403 as in Flask; one
    the gate does not know is refused. Everything else, including the artifact writes served by Flask (which the
    Flask hook checks), goes straight through.
    """

    def __init__(self, app: Any, guard: ArtifactGuard, routes: list[Any],
                 lock: Callable[[], RegistryLock] = registry_lock) -> None:
        self.app = app
        self.guard = guard
        self.routes = routes
        self.lock = lock

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not mlflow_artifacts.is_artifact_request(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        from starlette.concurrency import run_in_threadpool

        try:
            native = mlflow_artifacts.served_natively(self.routes, scope)
        except Exception as exc:
            log.exception("refused %s %s after an error", scope["method"], scope["path"])
            await _refuse(Deny(failure(exc)), receive, send)
            return
        if not native:
            await self.app(scope, receive, send)
            return
        outcome, hold = await run_in_threadpool(self._decide, scope)
        try:
            if isinstance(outcome, Evidence):
                body, _more = await _read_asgi(receive, EVIDENCE_LIMIT + 1)  # more than the limit: refused for size
                outcome = check_evidence(outcome, body)
                receive = _replay(body, receive)
            if outcome is None:
                await self.app(scope, receive, send)
                return
        finally:
            if hold is not None:
                await run_in_threadpool(hold.release)
        await _refuse(outcome, receive, send)

    def _decide(self, scope: Any) -> tuple[Deny | Evidence | None, Held | None]:
        method, path = scope["method"], scope["path"]
        hold = None
        try:
            raw = mlflow_artifacts.native_upload_path(method, path)
            if raw is None:
                return Deny(unknown_route(method, path)), None
            hold = self.lock().shared()
            return self.guard.before(asgi_write(mlflow_artifacts.UPLOAD_ARTIFACT, raw), _asgi_requester(scope)), hold
        except Exception as exc:
            log.exception("refused %s %s after an error", method, path)
            if hold is not None:
                hold.release()
            return Deny(failure(exc)), None


async def _read_asgi(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the request body, and whether more was sent."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body") or b""
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), False
        if size >= limit:
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Mapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(outcome: Deny, receive: Receive, send: Send) -> None:
    log.info("%s", outcome.message.removeprefix("tiergate "))
    await _drain_asgi(receive)
    body = json.dumps({"error_code": "PERMISSION_DENIED", "message": outcome.message}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _drain_asgi(receive: Receive) -> None:
    read = 0
    while read < DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body") or b"")
        if not message.get("more_body"):
            return


def install_asgi(fastapi_app: Any, guard: ArtifactGuard, lock: Callable[[], RegistryLock] = registry_lock) -> None:
    """Put :class:`ArtifactWriteGuard` in front of the routes MLflow's FastAPI app serves itself (innermost
    middleware, so MLflow's workspace context is set when it decides)."""
    from starlette.middleware import Middleware

    routes = mlflow_artifacts.native_routes(fastapi_app)
    fastapi_app.user_middleware.append(Middleware(ArtifactWriteGuard, guard=guard, routes=routes, lock=lock))
