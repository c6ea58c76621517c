"""Which operation answers which method and path, with the query parameters checked and turned into values.

Reading the log is public (auditors need no account); submitting attestations and asking for decisions need a
bearer token (``auth=True``), because both write to the log. The Hugging Face webhook is authenticated by its shared
secret instead (``admit``). Both checks, and the route's own body limit (``max_body``), come before a byte of the
body is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Mapping

from tiergate.core.answer import ANSWER_HEADER
from tiergate.core.log.tiles import TilePath
from tiergate.service.app import MAX_FIND, GateService
from tiergate.service.bodies import model_digest, parse_decision_request, parse_submission
from tiergate.service.openapi import openapi_document
from tiergate.service.responses import ApiError, Response, bad_request

MAX_INDEX = (1 << 63) - 1
CHECKPOINT_TYPE = "text/plain; charset=utf-8"
#: Body limits below the service's --max-body. An attestation entry holds at most 1 MiB (base64 included), so no
#: submission much larger can be logged; a Hub webhook payload is a few kilobytes.
MAX_ATTESTATION_BODY = 2 * 1024 * 1024
MAX_WEBHOOK_BODY = 1024 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    body: bytes
    client: str | None  # the name of the token that authenticated the request, if any
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case; the first of repeated ones


Handler = Callable[[GateService, Request], Response]
#: Checks a request's headers before its body is read; raises :class:`ApiError` to refuse it.
Admission = Callable[[GateService, Mapping[str, str]], None]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    auth: bool = False  # a bearer token is required (checked before the body is read)
    max_body: int | None = None  # bytes; None: the service's --max-body (a route's limit never exceeds it)
    admit: Admission | None = None  # run after routing and auth, before the body is read
    prefix: bool = False  # the route answers every path under ``path`` (the tlog-tiles tree)


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad_request(f"query parameter {name!r} given {len(values)} times")
    return values[0]


def _int(query: Mapping[str, list[str]], name: str, default: int | None = None, required: bool = False) -> int | None:
    text = _one(query, name)
    if text is None or text == "":
        if required:
            raise bad_request(f"missing query parameter {name!r}")
        return default
    if not text.isdigit() or not text.isascii() or len(text) > 19 or int(text) > MAX_INDEX:
        raise bad_request(f"query parameter {name!r} must be a non-negative integer, not {text[:40]!r}")
    return int(text)


def _model(query: Mapping[str, list[str]]) -> str:
    text = _one(query, "model")
    if text is None:
        raise bad_request("missing query parameter 'model' (sha256:<hex>)")
    return model_digest(text)


def submit_attestation(service: GateService, request: Request) -> Response:
    status, receipt = service.submit_attestation(parse_submission(request.body))
    return Response.json(status, receipt)


def list_attestations(service: GateService, request: Request) -> Response:
    return Response.json(200, service.attestations(_model(request.query)))


def post_decision(service: GateService, request: Request) -> Response:
    asked = parse_decision_request(request.body)
    logged = service.decide(asked, requested_by=request.client)
    # Exactly what `gate check --json` prints; the log index and the signed answer binding that body to this request
    # (its nonce, model, tier or target) travel in headers so the body stays that document.
    body = logged.decision.to_json().encode("utf-8")
    return Response(200, body, headers={"X-Gate-Log-Index": str(logged.index),
                                        ANSWER_HEADER: service.sign_answer(asked, logged, body)})


def checkpoint(service: GateService, request: Request) -> Response:
    return Response(200, service.checkpoint(), CHECKPOINT_TYPE, {"Cache-Control": "no-store"})


#: tlog-tiles: full tiles never change; the checkpoint changes at most every --checkpoint-interval seconds.
IMMUTABLE = "public, max-age=31536000, immutable"
BRIEFLY = "public, max-age=1"
TILE_TYPE = "application/octet-stream"


def tlog_checkpoint(service: GateService, request: Request) -> Response:
    """``/checkpoint`` of the tlog-tiles layout: the published checkpoint, cacheable for a second."""
    return Response(200, service.checkpoint(), CHECKPOINT_TYPE, {"Cache-Control": BRIEFLY})


def tile(service: GateService, request: Request) -> Response:
    """``/tile/<L>/<N>[.p/<W>]`` and ``/tile/entries/<N>[.p/<W>]`` (C2SP tlog-tiles)."""
    parsed = TilePath.parse(request.path.lstrip("/"))
    if parsed is None:
        raise ApiError(404, f"not a tile path: {request.path[:120]} (tile/<L>/<N>[.p/<W>] or tile/entries/<N>...)")
    cache = BRIEFLY if parsed.partial else IMMUTABLE  # a partial tile is replaced by the full one soon
    return Response(200, service.tile(parsed), TILE_TYPE, {"Cache-Control": cache})


def entries(service: GateService, request: Request) -> Response:
    start = _int(request.query, "start", 0)
    assert start is not None
    return Response.json(200, service.entries(start, _int(request.query, "end")))


def inclusion(service: GateService, request: Request) -> Response:
    index = _int(request.query, "index", required=True)
    assert index is not None
    return Response.json(200, service.inclusion(index, _int(request.query, "size")))


def consistency(service: GateService, request: Request) -> Response:
    old = _int(request.query, "old", required=True)
    assert old is not None
    return Response.json(200, service.consistency(old, _int(request.query, "new")))


def find(service: GateService, request: Request) -> Response:
    limit = _int(request.query, "limit", MAX_FIND)
    assert limit is not None
    if not 1 <= limit <= MAX_FIND:
        raise bad_request(f"limit must be from 1 to {MAX_FIND}")
    start = _int(request.query, "start", 0)
    assert start is not None
    return Response.json(200, service.find(_model(request.query), start, limit))


def health(service: GateService, request: Request) -> Response:
    return Response.json(200, service.health())


def policy(service: GateService, request: Request) -> Response:
    return Response.json(200, service.policy_summary())


def openapi(service: GateService, request: Request) -> Response:
    return Response.json(200, openapi_document())


def admit_huggingface_webhook(service: GateService, headers: Mapping[str, str]) -> None:
    """Before the body is read: the webhook must be enabled (else 404) and X-Webhook-Secret right (else 401)."""
    if service.hf_webhook is None:
        raise ApiError(404, "the Hugging Face webhook is not enabled on this service "
                            "(start it with --hf-webhook-secret-env VAR)")
    service.hf_webhook.authenticate(headers)


def huggingface_webhook(service: GateService, request: Request) -> Response:
    """Authenticated by the webhook's shared secret (X-Webhook-Secret), not a bearer token: the Hub sends the former."""
    admit_huggingface_webhook(service, request.headers)
    webhook = service.hf_webhook
    assert webhook is not None  # admitted: the webhook is enabled
    return webhook.handle(request.headers, request.body)


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/attestations", submit_attestation, auth=True, max_body=MAX_ATTESTATION_BODY),
    Route("GET", "/v1/attestations", list_attestations),
    Route("POST", "/v1/decisions", post_decision, auth=True),
    Route("GET", "/v1/log/checkpoint", checkpoint),
    Route("GET", "/v1/log/entries", entries),
    Route("GET", "/v1/log/proof/inclusion", inclusion),
    Route("GET", "/v1/log/proof/consistency", consistency),
    Route("GET", "/v1/log/find", find),
    Route("GET", "/checkpoint", tlog_checkpoint),
    Route("GET", "/tile/", tile, prefix=True),
    Route("GET", "/v1/healthz", health),
    Route("GET", "/v1/policy", policy),
    Route("GET", "/openapi.json", openapi),
    Route("POST", "/v1/webhooks/huggingface", huggingface_webhook, max_body=MAX_WEBHOOK_BODY,
          admit=admit_huggingface_webhook),
)


def route_for(method: str, path: str) -> Route:
    """The route for ``method path``; 404 for an unknown path, 405 (with ``Allow``) for a known path's wrong method."""
    methods = {r.method: r for r in ROUTES if r.path == path or (r.prefix and path.startswith(r.path))}
    if not methods:
        raise ApiError(404, f"no such endpoint: {path[:200]} (see /openapi.json)")
    if method not in methods:
        error = ApiError(405, f"{method} is not allowed on {path}; use {' or '.join(sorted(methods))}")
        error.headers["Allow"] = ", ".join(sorted(methods))
        raise error
    return methods[method]
