"""The request side: find the watched registry calls and artifact writes, refuse with a 403 MLflow clients
understand, never a 5xx.

A refusal is HTTP 403 with ``{"error_code": "PERMISSION_DENIED", "message": ...}``: ``MlflowClient`` raises
``RestException`` with that code and message and does not retry (it retries 408, 429 and 5xx). Any error while
deciding becomes such a refusal too: the gate fails closed, and a 5xx would make clients retry into it.

Registry calls and most artifact writes are Flask routes, seen by a Flask before-request hook. Under uvicorn (MLflow's
default server) MLflow's FastAPI app serves the artifact upload (``PUT …/mlflow-artifacts/artifacts/…``) itself,
streaming, without going through Flask: :class:`ArtifactWriteGuard`, an ASGI middleware in that app, checks those.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from gate.core.targets import TargetError
from gate.errors import GateError
from gate.integrations.mlflow import internals
from gate.integrations.mlflow.artifacts import ArtifactGuard, asgi_write, flask_write, unknown_route
from gate.integrations.mlflow.gatekeeper import Deny, Publish, RegistryGate, Withdraw
from gate.integrations.mlflow.copies import copied_gate_tags, drop_request_tags
from gate.integrations.mlflow.routes import WATCHED, parse_call, refusal
from gate.integrations.mlflow.surface import REFUSED, FlaskSurface

log = logging.getLogger("gate.integrations.mlflow")

#: How much of a refused upload's body is read (and discarded) before answering, so that the client, still sending,
#: gets the 403 instead of a broken connection. A larger body is cut off: the connection closes after the answer.
DRAIN_LIMIT = 64 * 1024 * 1024


def deny_response(message: str) -> Any:
    from flask import Response

    body = json.dumps({"error_code": "PERMISSION_DENIED", "message": message})
    return Response(body, status=403, mimetype="application/json")


def _requester(request: Any) -> dict[str, str]:
    """Who asked, as far as the server knows. ``user`` is the HTTP basic-auth name: verified only behind basic-auth
    or an authenticating proxy, claimed otherwise."""
    who = {"server": request.host_url.rstrip("/")}
    if request.authorization is not None and request.authorization.username:
        who["user"] = request.authorization.username
    if request.remote_addr:
        who["client"] = request.remote_addr
    return who


def _failure(exc: BaseException) -> str:
    if isinstance(exc, GateError):
        reason = str(exc)
    else:
        reason = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    return (f"release-gate could not decide on this call, so it is refused (the gate fails closed): {reason}. "
            "If this persists, an administrator finds the details in the MLflow server's log.")


def install(app: Any, gatekeeper: RegistryGate, artifact_guard: ArtifactGuard | None = None) -> None:
    """Add the gate's before-request hook to MLflow's Flask ``app``.

    Work after the call (tags, the log) is attached per request with ``after_this_request``, so calls the gate does
    not watch pay for two dictionary lookups and nothing else.
    """
    from flask import after_this_request, request

    routes = internals.registry_routes(WATCHED)
    writes = internals.artifact_write_routes()
    unknown = internals.unknown_artifact_writes(app, writes)
    surface = FlaskSurface()
    guard = artifact_guard or ArtifactGuard(gatekeeper.holder)

    def before() -> Any:
        rule = request.url_rule
        if rule is None:
            return None
        key = (request.method, rule.rule)
        rpc = routes.get(key)
        if rpc is None:
            if key in writes or key in unknown:
                return _artifact_write(guard, writes.get(key), request)
            if (route := surface.route(request.method, rule)).verdict == REFUSED:  # deny by default (surface.py)
                log.info("%s", route.refusal().removeprefix("release-gate "))
                _drain_flask(request)
                return deny_response(route.refusal())
            return None
        try:
            call = parse_call(rpc, internals.request_fields(rpc, request))
            if copied := copied_gate_tags(call):  # copy_model_version: decided afresh (copies.py)
                call = drop_request_tags(rpc, request, copied)
            refused_call = refusal(call)
            outcome = Deny(refused_call) if refused_call else gatekeeper.before(call, _requester(request))
        except TargetError as exc:  # a look-alike of a release target (gate.core.targets): refused, saying why
            outcome = Deny(f"release-gate refused {request.method} {request.path}: {exc}")
        except Exception as exc:
            log.exception("refused %s %s after an error", request.method, request.path)
            return deny_response(_failure(exc))
        if isinstance(outcome, Deny):
            log.info("%s", outcome.message.removeprefix("release-gate "))
            return deny_response(outcome.message)
        if outcome is not None:
            after_this_request(lambda response: _after(gatekeeper, outcome, response))
        return None

    app.before_request(before)


def _artifact_write(guard: ArtifactGuard, call: str | None, request: Any) -> Any:
    try:
        if call is None:
            outcome: Deny | None = Deny(unknown_route(request.method, request.path))
        else:
            outcome = guard.before(flask_write(call, request), _requester(request))
    except Exception as exc:
        log.exception("refused %s %s after an error", request.method, request.path)
        outcome = Deny(_failure(exc))
    if outcome is None:
        return None
    log.info("%s", outcome.message.removeprefix("release-gate "))
    _drain_flask(request)
    return deny_response(outcome.message)


def _drain_flask(request: Any) -> None:
    try:
        read = 0
        while read < DRAIN_LIMIT and (chunk := request.stream.read(1024 * 1024)):
            read += len(chunk)
    except Exception:  # the answer matters, not the rest of the body
        pass


def _after(gatekeeper: RegistryGate, outcome: Publish | Withdraw, response: Any) -> Any:
    if response.status_code == 200:
        try:
            gatekeeper.after(outcome, response.get_json(silent=True))
        except Exception:  # the call has happened; failing to show or log the decision must not undo that
            log.exception("could not record the decision for %s", outcome.call.describe())
    return response


# --- the ASGI side (uvicorn): MLflow's native FastAPI artifact routes ------------------------------------------------


def _asgi_requester(scope: Mapping[str, Any]) -> dict[str, str]:
    """:func:`_requester` for an ASGI request."""
    import base64

    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
    host = headers.get("host") or ":".join(str(p) for p in scope.get("server") or ())
    who = {"server": f"{scope.get('scheme', 'http')}://{host}"}
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip()).decode("utf-8").split(":", 1)[0]
        except Exception:
            user = ""
        if user:
            who["user"] = user
    if scope.get("client"):
        who["client"] = str(scope["client"][0])
    return who


class ArtifactWriteGuard:
    """ASGI middleware for the artifact writes MLflow's FastAPI app serves itself (not through Flask).

    Placed innermost (after MLflow's security and workspace middleware). A write request on an artifact path that one
    of the app's own routes would serve is decided in a worker thread (the decision reads the registry) and refused
    with the same 403 as in Flask; one the gate does not know is refused. Everything else, including the artifact
    writes served by Flask (which the Flask hook checks), goes straight through.
    """

    def __init__(self, app: Any, guard: ArtifactGuard, routes: list[Any]) -> None:
        self.app = app
        self.guard = guard
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not internals.is_artifact_request(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            native = internals.served_natively(self.routes, scope)
        except Exception as exc:
            log.exception("refused %s %s after an error", scope["method"], scope["path"])
            native, message = True, _failure(exc)
        else:
            message = None
        if not native:
            await self.app(scope, receive, send)
            return
        if message is None:
            from starlette.concurrency import run_in_threadpool

            message = await run_in_threadpool(self._decide, scope)
        if message is None:
            await self.app(scope, receive, send)
            return
        await _drain_asgi(receive)
        body = json.dumps({"error_code": "PERMISSION_DENIED", "message": message}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _decide(self, scope: Any) -> str | None:
        method, path = scope["method"], scope["path"]
        try:
            raw = internals.native_upload_path(method, path)
            if raw is None:
                return unknown_route(method, path)
            outcome = self.guard.before(asgi_write(internals.UPLOAD_ARTIFACT, raw), _asgi_requester(scope))
        except Exception as exc:
            log.exception("refused %s %s after an error", method, path)
            return _failure(exc)
        if outcome is None:
            return None
        log.info("%s", outcome.message.removeprefix("release-gate "))
        return outcome.message


async def _drain_asgi(receive: Any) -> None:
    read = 0
    while read < DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body") or b"")
        if not message.get("more_body"):
            return


def install_asgi(fastapi_app: Any, guard: ArtifactGuard) -> None:
    """Put :class:`ArtifactWriteGuard` in front of the routes MLflow's FastAPI app serves itself (innermost
    middleware, so MLflow's workspace context is set when it decides)."""
    from starlette.middleware import Middleware

    routes = internals.native_routes(fastapi_app)
    fastapi_app.user_middleware.append(Middleware(ArtifactWriteGuard, guard=guard, routes=routes))
