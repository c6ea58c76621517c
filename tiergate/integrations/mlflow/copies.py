"""``MlflowClient.copy_model_version``: a copy is a new version, decided afresh.

MLflow copies a version client-side, as ``CreateModelVersion(source="models:/NAME/VERSION", tags=<all the source's
tags>)``. The source's tags include the gate's ``tiergate.*`` tags, which no client may set, so every copy of a
decided version was refused, and MLflow wrapped the refusal in "the current model registry backend may not yet
support model version URI sources". A copy's ``tiergate.*`` tags say what the gate decided about *another*
version; they are dropped from the request (only when they are exactly the source version's, i.e. a copy), and the
gate decides the new version as any other: at registration, or at the tier its other copied tags (``release.tier``)
name. Any other ``tiergate.*`` tag in a create is still refused.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from tiergate.integrations.mlflow.internals import registry as mlflow_registry
from tiergate.integrations.mlflow.routes import CREATE_VERSION, Call, parse_call
from tiergate.integrations.mlflow.tags import is_reserved


def copied_gate_tags(call: Call) -> frozenset[str]:
    """The reserved tag keys of a ``CreateModelVersion`` that copies ``models:/NAME/VERSION`` and carries exactly
    that version's reserved tags; empty when the call is no such copy."""
    reserved = {key: value for key, value in call.tags if is_reserved(key)}
    if call.rpc != CREATE_VERSION or not reserved or not call.source:
        return frozenset()
    parsed = urllib.parse.urlparse(call.source)
    parts = parsed.path.strip("/").split("/") if parsed.scheme == "models" and not parsed.netloc else []
    if len(parts) != 2 or not parts[1].isdigit():
        return frozenset()
    source_tags = mlflow_registry.get_version(parts[0], parts[1]).tags
    if {key: value for key, value in source_tags.items() if is_reserved(key)} != reserved:
        return frozenset()
    return frozenset(reserved)


def drop_request_tags(rpc: str, flask_request: Any, keys: frozenset[str]) -> Call:
    """Remove the tags ``keys`` from the request's JSON body, as MLflow's handler will read it, and return the call
    re-read from the request. Raises ``ValueError`` if they could not be removed."""
    body = flask_request.get_json(force=True, silent=True)
    if isinstance(body, str):  # a double-encoded body, which MLflow decodes again
        body = json.loads(body)
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise ValueError("the request's tags are not where MLflow reads them")
    body["tags"] = [tag for tag in body["tags"] if not (isinstance(tag, dict) and tag.get("key") in keys)]
    flask_request._cached_json = (body, body)  # werkzeug's cache of get_json, which the handler reads
    call = parse_call(rpc, mlflow_registry.request_fields(rpc, flask_request))
    if any(key in keys for key, _ in call.tags):
        raise ValueError("the copied tiergate.* tags are still in the request")
    return call
