"""The Flask side: find the watched registry calls, refuse with a 403 MLflow clients understand, never a 5xx.

A refusal is HTTP 403 with ``{"error_code": "PERMISSION_DENIED", "message": ...}``: ``MlflowClient`` raises
``RestException`` with that code and message and does not retry (it retries 408, 429 and 5xx). Any error while
deciding becomes such a refusal too: the gate fails closed, and a 5xx would make clients retry into it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gate.errors import GateError
from gate.integrations.mlflow import internals
from gate.integrations.mlflow.gatekeeper import Deny, Publish, RegistryGate, Withdraw
from gate.integrations.mlflow.routes import WATCHED, parse_call

log = logging.getLogger("gate.integrations.mlflow")


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


def install(app: Any, gatekeeper: RegistryGate) -> None:
    """Add the gate's before-request hook to MLflow's Flask ``app``.

    Work after the call (tags, the log) is attached per request with ``after_this_request``, so calls the gate does
    not watch pay for one dictionary lookup and nothing else.
    """
    from flask import after_this_request, request

    routes = internals.registry_routes(WATCHED)

    def before() -> Any:
        rule = request.url_rule
        rpc = routes.get((request.method, rule.rule)) if rule is not None else None
        if rpc is None:
            return None
        try:
            call = parse_call(rpc, internals.request_fields(rpc, request))
            outcome = gatekeeper.before(call, _requester(request))
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


def _after(gatekeeper: RegistryGate, outcome: Publish | Withdraw, response: Any) -> Any:
    if response.status_code == 200:
        try:
            gatekeeper.after(outcome, response.get_json(silent=True))
        except Exception:  # the call has happened; failing to show or log the decision must not undo that
            log.exception("could not record the decision for %s", outcome.call.describe())
    return response
