"""Every route of the MLflow server and what the gate does with it: deny by default.

At start-up the plugin enumerates the routes of the app it serves (the Flask ``url_map`` and the routes MLflow's
FastAPI app serves itself under uvicorn) and gives each a verdict:

- ``gated``: the gate sees it (registry calls: refused or parsed by the request hook, then decided, recorded or
  checked at MLflow's registry store by the store guard, ``registry``; artifact writes: frozen against gated
  versions' files by the artifact guard);
- ``read-only``: it reads (GET/HEAD/OPTIONS not known to write, or a POST this MLflow uses to read);
- ``passes``: it writes, but only tracking data the registry does not depend on (runs, traces, experiments,
  datasets, the AI gateway's configuration, ...): listed here one by one, by handler;
- ``refused``: it can change the registry or a registered version's files past the gate's hook (the demo
  generator, jobs, the assistant, workspace deletion), or it writes and the gate does not know it. Answered with
  403 ``PERMISSION_DENIED``.

The lists are written against MLflow 3.17 (the version range the plugin starts on, see ``startup``): a route a new
MLflow adds that writes is refused until someone reads its code and lists it, so a new release cannot add an ungated
writer silently. ``gate mlflow routes`` prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Mapping

GATED, READ_ONLY, PASSES, REFUSED = "gated", "read-only", "passes", "refused"
VERDICTS = (GATED, READ_ONLY, PASSES, REFUSED)
FLASK, ASGI = "flask", "asgi"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Flask handlers that write past the gate's hook: refused, with why.
REFUSED_HANDLERS: Mapping[str, str] = {
    "_generate_demo": "the demo generator registers prompts and sets aliases through an in-process client, past "
                      "the gate's hook",
    "_delete_demo": "the demo generator deletes registry entries through an in-process client, past the gate's hook",
    "_create_prompt_optimization_job": "a prompt-optimization job registers prompt versions in a job process, past "
                                       "the gate's hook",
    "_delete_workspace_handler": "deleting a workspace deletes (CASCADE) or moves (SET_DEFAULT) every registered "
                                 "model in it, past the gate's hook",
}

#: Flask handlers that make the server run scorers. With ``MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS`` on, a scorer may
#: carry client-written code that a job process executes, and that code can write the registry past the gate's
#: hook: they are refused then (and pass otherwise: built-in scorers only judge traces).
CUSTOM_CODE_HANDLERS = frozenset({
    "_register_scorer", "_invoke_scorer_handler", "_upsert_online_scoring_config", "_invoke_genai_evaluate_handler",
})

#: Flask handlers that write only tracking data (runs, traces, experiments, datasets, scorers, the AI gateway's
#: configuration, webhooks, review queues, telemetry): nothing a registered version resolves to or serves. A run or a
#: logged model deleted here is only marked deleted; its files stay until an administrator runs ``mlflow gc``.
PASSING_HANDLERS = frozenset({
    "_add_dataset_to_experiments_handler", "_add_guardrail_to_endpoint", "_add_items_to_review_queue",
    "_attach_model_to_gateway_endpoint", "_cancel_job", "_cancel_prompt_optimization_job", "_create_assessment",
    "_create_budget_policy", "_create_dataset_handler", "_create_experiment", "_create_gateway_endpoint",
    "_create_gateway_endpoint_binding", "_create_gateway_guardrail", "_create_gateway_model_definition",
    "_create_gateway_secret", "_create_issue", "_create_label_schema", "_create_logged_model", "_create_review_queue",
    "_create_run", "_create_webhook", "_create_workspace_handler", "_delete_assessment", "_delete_budget_policy",
    "_delete_dataset_handler", "_delete_dataset_records_handler", "_delete_dataset_tag_handler", "_delete_experiment",
    "_delete_experiment_tag", "_delete_gateway_endpoint", "_delete_gateway_endpoint_binding",
    "_delete_gateway_endpoint_tag", "_delete_gateway_guardrail", "_delete_gateway_model_definition",
    "_delete_gateway_secret", "_delete_label_schema", "_delete_logged_model", "_delete_logged_model_tag",
    "_delete_prompt_optimization_job", "_delete_review_queue", "_delete_run", "_delete_scorer", "_delete_tag",
    "_delete_trace_tag", "_delete_trace_tag_v3", "_delete_traces", "_delete_webhook", "_deprecated_end_trace_v2",
    "_deprecated_start_trace_v2", "_detach_model_from_gateway_endpoint", "_finalize_logged_model",
    "_get_or_create_user_queue", "_invoke_genai_evaluate_handler", "_invoke_issue_detection_handler",
    "_invoke_scorer_handler", "_link_prompts_to_trace", "_link_traces_to_run", "_log_batch", "_log_inputs",
    "_log_logged_model_params", "_log_metric", "_log_model", "_log_outputs", "_log_param", "_register_scorer",
    "_remove_dataset_from_experiments_handler", "_remove_guardrail_from_endpoint", "_remove_items_from_review_queue",
    "_restore_experiment", "_restore_run", "_set_dataset_tags_handler", "_set_experiment_tag",
    "_set_gateway_endpoint_tag", "_set_logged_model_tags", "_set_review_queue_item_status", "_set_tag",
    "_set_trace_tag", "_set_trace_tag_v3", "_start_trace_v3", "_test_webhook", "_update_assessment",
    "_update_budget_policy", "_update_endpoint_guardrail_config", "_update_experiment", "_update_gateway_endpoint",
    "_update_gateway_model_definition", "_update_gateway_secret", "_update_issue", "_update_label_schema",
    "_update_review_queue", "_update_run", "_update_webhook", "_update_workspace_handler",
    "_upsert_dataset_records_handler", "_upsert_online_scoring_config", "serve_create_promptlab_run",
    "serve_gateway_proxy", "serve_post_ui_telemetry",
})

#: The basic-auth app's handlers (``mlflow server --app-name tiergate-basic-auth``): they write its own database
#: of users, roles and permissions, which decides who may call the registry, not what it holds.
AUTH_HANDLERS = frozenset({
    "create_user", "update_user_password", "update_user_admin", "delete_user", "add_role_permission",
    "assign_role", "create_role", "delete_role", "grant_user_permission", "remove_role_permission",
    "revoke_user_permission", "unassign_role", "update_role", "update_role_permission",
})

#: The basic-auth sign-up form's route, whose handler is a lambda (so known by its path).
AUTH_SIGNUP_FORM = "/mlflow/users/create-ui"

#: Flask handlers that read although reached by POST (searches, batch gets), or answer 501. GraphQL's mutation type
#: in this MLflow holds two searches only.
READING_HANDLERS = frozenset({
    "_batch_get_trace_infos", "_calculate_trace_filter_correlation", "_create_presigned_download_url",
    "_get_latest_versions", "_graphql", "_not_implemented", "_query_trace_metrics",
    "_search_evaluation_datasets_handler", "_search_experiments", "_search_issues", "_search_logged_models",
    "_search_prompt_optimization_jobs", "_search_runs", "_search_traces_v3", "serve_search_datasets",
})

#: Flask handlers reached by GET that write (none in this MLflow's Flask app; the assistant's stream, a FastAPI
#: route, is in :data:`ASGI_HANDLERS`).
WRITING_GETS: frozenset[str] = frozenset()

#: Routes MLflow's FastAPI app serves itself (``module.endpoint``), other than the artifact upload the artifact guard
#: checks: what each does.
ASGI_HANDLERS: Mapping[str, tuple[str, str]] = {
    "mlflow.server.otel_api.export_traces": (PASSES, "OpenTelemetry trace ingest"),
    "mlflow.server.job_api.submit_job": (REFUSED, ("a job runs a server function in a job process, past the gate's "
                                                   "hook (prompt optimization registers prompt versions)")),
    "mlflow.server.job_api.cancel_job": (PASSES, "cancels a job"),
    "mlflow.server.job_api.search_jobs": (READ_ONLY, "searches jobs"),
    "mlflow.server.assistant.api.send_message": (REFUSED, ("the assistant runs an agent on the server that can write "
                                                           "the registry without passing the gate's hook")),
    "mlflow.server.assistant.api.stream_response": (REFUSED, ("a GET that runs the assistant's agent on the pending "
                                                              "message")),
    "mlflow.server.assistant.api.patch_session": (REFUSED, "drives the assistant's agent"),
    "mlflow.server.assistant.api.resolve_permission": (REFUSED, "grants the assistant's agent a permission"),
    "mlflow.server.assistant.api.resolve_client_tool_result": (REFUSED, "drives the assistant's agent"),
    "mlflow.server.assistant.api.update_config": (REFUSED, "configures the assistant's agent"),
    "mlflow.server.assistant.api.install_skills_endpoint": (REFUSED, "installs code for the assistant's agent"),
}
#: FastAPI modules whose every route writes tracking data only: the AI gateway's LLM endpoints (usage and traces)
#: and the MCP server catalogue (its own tables in the tracking store).
ASGI_PASSING_MODULES = frozenset({"mlflow.server.gateway_api", "mlflow.server.mcp_server_api"})
#: The artifact routes MLflow's FastAPI app serves itself.
ASGI_ARTIFACTS = "mlflow.server.artifact_router"


@dataclass(frozen=True)
class Route:
    """One route of the server: who serves it, method, path as routed, handler, what the gate does, why."""

    server: str
    method: str
    path: str
    handler: str
    verdict: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def refusal(self) -> str:
        """The 403 message for a request to this route."""
        return (f"tiergate refused {self.method} {self.path}: {self.reason}. The gate refuses routes that can "
                "change the model registry or a registered version's files without passing it (see `gate mlflow "
                "routes`)")


def _flask_verdict(method: str, handler: str, gated: Mapping[tuple[str, str], str],
                   key: tuple[str, str]) -> tuple[str, str]:
    if key in gated:
        return GATED, gated[key]
    if handler in REFUSED_HANDLERS:
        return REFUSED, REFUSED_HANDLERS[handler]
    if handler in CUSTOM_CODE_HANDLERS and _custom_scorers_enabled():
        return REFUSED, ("MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS is on, so scorers run client-written code in job "
                         "processes, which can write the registry past the gate's hook")
    if handler in WRITING_GETS:
        return REFUSED, "a GET that writes, and the gate does not know it"
    if method in READ_METHODS or handler in READING_HANDLERS:
        return READ_ONLY, "reads"
    if handler in PASSING_HANDLERS:
        return PASSES, "writes tracking data only"
    if handler in AUTH_HANDLERS or (handler == "<lambda>" and key[1].endswith(AUTH_SIGNUP_FORM)):
        return PASSES, "writes the basic-auth app's users and permissions"
    return REFUSED, f"a route that writes ({handler}) that tiergate does not know"


def _custom_scorers_enabled() -> bool:
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS

    return bool(MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS.get())


class FlaskSurface:
    """The verdicts on the routes of MLflow's Flask app, worked out per route when first asked, so that a route
    another plugin adds after the gate was installed (the basic-auth app's) is judged too.

    ``gated`` maps the routes the gate's hook handles to what it does there; by default the registry calls it
    watches and the artifact writes it checks.
    """

    def __init__(self, gated: Mapping[tuple[str, str], str] | None = None) -> None:
        if gated is None:
            from tiergate.integrations.mlflow.internals import artifacts as mlflow_artifacts
            from tiergate.integrations.mlflow.internals import registry as mlflow_registry
            from tiergate.integrations.mlflow.routes import ROLE, WATCHED

            gated = {key: ROLE[rpc] for key, rpc in mlflow_registry.registry_routes(WATCHED).items()}
            gated.update({key: f"{call}: checked (refused into a gated version's files)"
                          for key, call in mlflow_artifacts.artifact_write_routes().items()})
        self._gated = dict(gated)
        self._seen: dict[tuple[str, str], Route] = {}

    def route(self, method: str, rule: Any) -> Route:
        """The verdict on ``method`` at the Flask ``rule``."""
        key = (method, rule.rule)
        found = self._seen.get(key)
        if found is None:
            verdict, reason = _flask_verdict(method, rule.endpoint, self._gated, key)
            found = self._seen[key] = Route(FLASK, method, rule.rule, rule.endpoint, verdict, reason)
        return found

    def routes(self, flask_app: Any) -> list[Route]:
        """Every (method, rule) of ``flask_app`` with its verdict."""
        found = [self.route(method, rule) for rule in flask_app.url_map.iter_rules()
                 for method in sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"})]
        return sorted(found, key=lambda r: (r.path, r.method))


def _asgi_verdict(method: str, handler: str, module: str) -> tuple[str, str]:
    if module == ASGI_ARTIFACTS:
        if method in READ_METHODS:
            return READ_ONLY, "reads"
        if handler == f"{ASGI_ARTIFACTS}.upload_artifact" and method == "PUT":
            return GATED, "artifact upload: refused into a gated version's files"
    if handler in ASGI_HANDLERS:
        return ASGI_HANDLERS[handler]
    if method in READ_METHODS:
        return READ_ONLY, "reads"
    if module in ASGI_PASSING_MODULES:
        return PASSES, "writes tracking data only"
    return REFUSED, f"a route that writes ({handler}) that tiergate does not know"


def native_route_items(fastapi_app: Any) -> Iterable[tuple[Any, str, tuple[str, ...], str]]:
    """(route, path, methods, handler) for each route MLflow's FastAPI app serves itself (not the Flask mount),
    included routers flattened."""
    from starlette.routing import Mount

    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routers are already flattened into app.routes
        contexts: Iterable[Any] = fastapi_app.routes
    else:
        contexts = iter_route_contexts(fastapi_app.routes)
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, Mount):
            continue
        endpoint = getattr(route, "endpoint", None)
        handler = f"{getattr(endpoint, '__module__', '?')}.{getattr(endpoint, '__name__', '?')}"
        methods = tuple(sorted(set(getattr(context, "methods", None) or getattr(route, "methods", None) or ())))
        yield context, str(getattr(context, "path", None) or getattr(route, "path", "")), methods or ("GET",), handler


def asgi_routes(fastapi_app: Any) -> list[Route]:
    """Every route MLflow's FastAPI app serves itself, with its verdict."""
    found = []
    for _, path, methods, handler in native_route_items(fastapi_app):
        module = handler.rpartition(".")[0]
        for method in methods:
            if method in ("HEAD", "OPTIONS"):
                continue
            verdict, reason = _asgi_verdict(method, handler, module)
            found.append(Route(ASGI, method, path, handler, verdict, reason))
    return sorted(found, key=lambda r: (r.path, r.method))


class RefusedNativeRoutes:
    """ASGI middleware refusing, with 403 ``PERMISSION_DENIED``, requests to the native FastAPI routes the surface
    refuses (outermost, so nothing of them runs)."""

    def __init__(self, app: Any, fastapi_app: Any, refuse_all: str | None = None) -> None:
        from starlette.routing import compile_path

        self.app = app
        self.refuse_all = refuse_all
        self.refused = [(compile_path(route.path)[0], route) for route in asgi_routes(fastapi_app)
                        if route.verdict == REFUSED]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = self._refusal(scope) if scope["type"] == "http" else None
        if message is None:
            await self.app(scope, receive, send)
            return
        import json
        import logging

        logging.getLogger("tiergate.integrations.mlflow").info("%s", message.removeprefix("tiergate "))
        body = json.dumps({"error_code": "PERMISSION_DENIED", "message": message}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _refusal(self, scope: Mapping[str, Any]) -> str | None:
        if self.refuse_all is not None:
            return self.refuse_all if scope["method"] not in READ_METHODS else None
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        paths = {path, path[len(root):] if root and path.startswith(root + "/") else path}  # as routed, and raw
        return next((route.refusal() for regex, route in self.refused
                     if route.method == scope["method"] and any(regex.match(p) for p in paths)), None)


def install_asgi(fastapi_app: Any, refuse_all: str | None = None) -> None:
    """Put :class:`RefusedNativeRoutes` in front of MLflow's FastAPI app (refusing every write with ``refuse_all``
    if given)."""
    from starlette.middleware import Middleware

    fastapi_app.user_middleware.insert(0, Middleware(RefusedNativeRoutes, fastapi_app=fastapi_app,
                                                     refuse_all=refuse_all))
