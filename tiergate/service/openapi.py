"""The OpenAPI 3.1 document of the gate service, written by hand so it says exactly what the handlers do.

tests/service/test_openapi.py checks it against the routes table and against real answers.
"""

from __future__ import annotations

from typing import Any

from tiergate import __version__


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _int_param(name: str, description: str, required: bool) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}}


_MODEL_PARAM = {"name": "model", "in": "query", "required": True, "description": "Model digest, sha256:<hex> or hex.",
                "schema": {"type": "string", "pattern": "^(sha256:)?[0-9a-fA-F]{64}$"}}
_B64 = {"type": "string", "contentEncoding": "base64"}
_HASHES: dict[str, Any] = {"type": "object", "required": ["hashes"], "properties": {
    "hashes": {"type": "array", "items": _B64, "description": "RFC 9162 proof, leaf-to-root, base64 SHA-256 hashes."}}}


def openapi_document() -> dict[str, Any]:
    bad = _error("Malformed request; `error` says what is wrong.")
    unavailable = _error("The log store is unavailable (nothing was decided or recorded).")
    auth_errors = {
        "400": bad,
        "401": _error("No or unknown bearer token."),
        "408": _error("The request (headers and body) did not arrive within the service's --request-timeout "
                      "(default 60 s), or a read waited 30 s for bytes. The connection is closed."),
        "411": _error("No Content-Length (chunked bodies are not accepted)."),
        "413": _error("Body larger than the service's limit (--max-body, default 16 MiB; attestations 2 MiB), an "
                      "attestation too large for a log entry (1 MiB once base64-encoded), or a decision too large "
                      "to log (64 KiB: too many attestations sent along)."),
        "415": _error("Body is not application/json."),
        "503": _error("The log store is unavailable (nothing was decided or recorded), the service's trust store, "
                      "a key file it names or its policy changed into something that does not load (every decision "
                      "and submission is refused, naming the file, until it is fixed), or the service is serving "
                      "as many connections as it allows (--max-connections; Retry-After is set)."),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tiergate service",
            "version": __version__,
            "description": (
                "Decides whether model weights may be released at a tier, from signed evaluation attestations and a "
                "tier policy, and records every accepted attestation and every decision in an RFC 6962 transparency "
                "log with C2SP signed checkpoints. Reading the log is public; writing needs a bearer token. Every "
                "error is JSON {\"error\": ...}."),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token whose SHA-256 is in the service's tokens file."}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"},
                    "reason": {"type": "string", "description": "For a rejected attestation: the verification failure."}}},
                "Envelope": {"type": "object", "required": ["payload", "payloadType", "signatures"],
                             "description": "A DSSE envelope (stored in canonical JSON form when sent as an object)."},
                "Attestation": {"oneOf": [
                    {**_B64, "description": "Base64 of the attestation file's exact bytes (keeps its digest)."},
                    {"$ref": "#/components/schemas/Envelope"}]},
                "AttestationSubmission": {"oneOf": [
                    {"type": "object", "required": ["attestation"], "additionalProperties": False, "properties": {
                        "attestation": {"$ref": "#/components/schemas/Attestation"},
                        "model": {"type": "string", "description":
                                  "sha256:<hex> the attestation is for; default: its single sha256 subject."}}},
                    {"$ref": "#/components/schemas/Envelope"}]},
                "AttestationReceipt": {"type": "object", "required": ["digest", "model", "index", "status"], "properties": {
                    "digest": {"type": "string", "description": "sha256:<hex> of the attestation bytes."},
                    "model": {"type": "string"},
                    "index": {"type": "integer", "description": "Log index of its attestation entry."},
                    "status": {"enum": ["stored", "already stored"]},
                    "evaluator": {"type": "string"},
                    "predicate_type": {"type": "string"}}},
                "AttestationList": {"type": "object", "required": ["model", "attestations"], "properties": {
                    "model": {"type": "string"},
                    "attestations": {"type": "array", "items": {"type": "object", "required": ["digest", "index", "data"],
                                                                "properties": {"digest": {"type": "string"},
                                                                               "index": {"type": "integer"},
                                                                               "data": _B64}}}}},
                "DecisionRequest": {"type": "object", "required": ["model"], "additionalProperties": False,
                                    "description": "Exactly one of tier and target.",
                                    "properties": {
                    "tier": {"type": "string", "description": "A tier of the policy, e.g. internal, hosted, gated, open."},
                    "target": {"type": "string", "description": (
                        "A publish target resolved by the policy's targets: huggingface:{private,gated_manual,"
                        "gated_auto,public}, mlflow:registration, mlflow:alias:<name>, mlflow:stage:<name>, "
                        "mlflow:tag:<key>=<value>.")},
                    "model": {"oneOf": [
                        {"type": "object", "required": ["digest"], "additionalProperties": False,
                         "properties": {"digest": {"type": "string"}}},
                        {"type": "object", "required": ["manifest"], "additionalProperties": False,
                         "properties": {"manifest": {"type": "object", "description": "Manifest.to_dict() (gate hash --json)."}}}]},
                    "attestations": {"type": "array", "maxItems": 256,
                                     "items": {"$ref": "#/components/schemas/Attestation"},
                                     "description": ("Sent along, besides those the log holds for the model. In the "
                                                     "decision they are named request:attestations[i]; logged ones "
                                                     "log:<index>. Accepted ones are logged.")},
                    "nonce": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}$", "description": (
                        "A fresh random value (e.g. 32 random bytes, URL-safe base64) the answer is signed over "
                        "(X-Gate-Answer), so a client can tell its answer from a replayed one.")},
                    "context": {"type": "object", "description": (
                        "Publish context recorded with the decision (<= 64 KiB). The service sets its key "
                        "requested_by to the name of the token that authenticated the request; requested_by and "
                        "webhook_entry are reserved (a request setting either is refused with a 400).")}}},
                "Decision": {"type": "object", "description": "Decision.to_dict(): exactly what `gate check --json` prints.",
                             "required": ["schema", "decision", "mode", "requested_tier", "satisfied_tier", "model_digest",
                                          "policy", "requirements", "rejected_attestations", "inputs", "time"],
                             "properties": {
                    "schema": {"const": "https://tiergate.dev/decision/v1"},
                    "decision": {"enum": ["allow", "deny"]},
                    "mode": {"enum": ["enforce", "warn"]},
                    "requested_tier": {"type": "string"},
                    "satisfied_tier": {"type": ["string", "null"]},
                    "model_digest": {"type": "string"},
                    "policy": {"type": "object", "properties": {"uri": {"type": "string"}, "digest": {"type": "string"}}},
                    "requirements": {"type": "array", "items": {"type": "object"}},
                    "rejected_attestations": {"type": "array", "items": {"type": "object"}},
                    "inputs": {"type": "array", "items": {"type": "object"}},
                    "time": {"type": "string", "format": "date-time"}}},
                "EntryPage": {"type": "object", "required": ["start", "end", "tree_size", "entries"], "properties": {
                    "start": {"type": "integer"},
                    "end": {"type": "integer", "description": "Exclusive; may be below the requested end (page limit)."},
                    "tree_size": {"type": "integer"},
                    "entries": {"type": "array", "items": {"type": "object", "required": ["index", "data"], "properties": {
                        "index": {"type": "integer"},
                        "data": {**_B64, "description": (
                            "The entry: canonical JSON, kind attestation, decision, webhook or containment.")}}}}}},
                "InclusionProof": {**_HASHES, "required": ["index", "size", "hashes"],
                                   "properties": {**_HASHES["properties"], "index": {"type": "integer"},
                                                  "size": {"type": "integer"}}},
                "ConsistencyProof": {**_HASHES, "required": ["old", "new", "hashes"],
                                     "properties": {**_HASHES["properties"], "old": {"type": "integer"},
                                                    "new": {"type": "integer"}}},
                "FindResult": {"type": "object", "required": ["model", "entries", "next"], "properties": {
                    "model": {"type": "string"},
                    "entries": {"type": "array", "items": {"type": "object", "properties": {
                        "index": {"type": "integer"},
                        "kind": {"enum": ["attestation", "decision", "webhook", "containment", "malformed"]}}}},
                    "next": {"type": ["integer", "null"], "description": "start of the next page, if any."}}},
                "HfWebhookPayload": {"type": "object", "required": ["event", "repo"], "description": (
                    "A Hugging Face Hub webhook payload (version 3), as the Hub sends it. Read: event.scope and "
                    "event.action, repo.type and repo.name, updatedRefs[].ref/newSha, updatedConfig."), "properties": {
                    "event": {"type": "object", "properties": {"action": {"type": "string"},
                                                               "scope": {"type": "string"}}},
                    "repo": {"type": "object", "properties": {"type": {"type": "string"}, "name": {"type": "string"},
                                                              "headSha": {"type": ["string", "null"]}}},
                    "updatedRefs": {"type": "array", "items": {"type": "object", "properties": {
                        "ref": {"type": "string"}, "oldSha": {"type": "string"}, "newSha": {"type": "string"}}}},
                    "updatedConfig": {"type": "object"},
                    "webhook": {"type": "object", "properties": {"id": {"type": "string"},
                                                                 "version": {"type": "integer"}}}}},
                "HfWebhookResult": {"type": "object", "description": (
                    "What became of each revision the event concerns. For an event that cannot publish: "
                    "{status: ignored, reason}."), "properties": {
                    "status": {"const": "ignored"}, "reason": {"type": "string"},
                    "webhook_entry": {"type": "integer", "description": "Log index of the webhook entry."},
                    "error": {"type": "string", "description": "With a 502 or 503: why, and that the Hub should retry."},
                    "results": {"type": "array", "items": {"type": "object", "properties": {
                        "repo": {"type": "string"}, "ref": {"type": "string"}, "commit": {"type": "string"},
                        "tier": {"type": "string", "description": "The tier the repository's state required."},
                        "state": {"type": "string", "description": "The repository's state when checked."},
                        "decision": {"enum": ["allow", "deny", None]},
                        "outcome": {"enum": ["allowed", "contained", "denied", "skipped", "failed"]},
                        "missing": {"type": "array", "items": {"type": "string"}},
                        "actions": {"type": "array", "items": {"type": "string"},
                                    "description": "What was done on the Hub, in order (access is narrowed before "
                                                   "verifying and restored if every commit is cleared)."},
                        "history": {"type": "boolean", "description": "A commit in the history of `ref`."},
                        "pull_request": {"type": ["integer", "null"], "description": (
                            "Reachable only from this pull request: contained on it (closed), not on the repository.")},
                        "state_after": {"type": ["string", "null"]}, "skipped": {"type": ["string", "null"]},
                        "decision_index": {"type": ["integer", "null"]},
                        "log_index": {"type": "integer", "description": "Log index of the containment entry."}}}}}},
                "PolicySummary": {"type": "object", "required": ["uri", "digest", "tiers", "targets"], "description": (
                    "The service's policy as far as a client needs it to check a decision asked for by target: "
                    "the decision's policy.digest must be this digest and its requested_tier what `targets` maps "
                    "the target to."), "properties": {
                    "uri": {"type": "string"}, "digest": {"type": "string", "description": "sha256:<hex> of the file."},
                    "tiers": {"type": "array", "items": {"type": "string"}, "description": "Lowest first."},
                    "target_forms": {"type": "array", "items": {"type": "string"}},
                    "targets": {"type": "object", "properties": {
                        "huggingface": {"type": "object", "additionalProperties": {"type": "string"}, "description":
                                        "private, gated_manual, gated_auto, public -> tier."},
                        "mlflow": {"type": "object", "description": (
                            "registration -> tier; aliases, stages: name -> tier; tags: key -> value -> tier. An "
                            "alias, stage or tag not listed needs the registration tier.")}}}}},
                "Health": {"type": "object", "required": ["status", "origin", "tree_size"], "properties": {
                    "status": {"const": "ok"}, "origin": {"type": "string"}, "tree_size": {"type": "integer"},
                    "log_key": {"type": "string", "description": "Checkpoint verifier key (vkey); pin it out of band."},
                    "rules": {"type": "object", "description": (
                        "What decisions are judged against now: trust_source, trust_digest (covers the key files the "
                        "trust store names), policy_uri, policy_digest; or error, while the trust store or policy "
                        "does not load (every decision is refused until it is fixed).")}}},
            },
        },
        "paths": {
            "/v1/attestations": {
                "post": {
                    "summary": "Submit an attestation: verified against the trust store, then logged.",
                    "security": [{"bearer": []}],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/AttestationSubmission"}}}},
                    "responses": {"201": _json("AttestationReceipt", "Verified and logged."),
                                  "200": _json("AttestationReceipt", "Already logged for this model; nothing added."),
                                  **auth_errors, "400": _error("Malformed, or the attestation does not verify "
                                                              "(`reason` is the verification failure).")}},
                "get": {
                    "summary": "The attestations the log holds for a model.",
                    "parameters": [_MODEL_PARAM],
                    "responses": {"200": _json("AttestationList", "Distinct attestations, oldest first."), "400": bad,
                                  "503": unavailable}},
            },
            "/v1/decisions": {"post": {
                "summary": "Decide on a release and log the decision (fails closed: no log entry, no decision).",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/DecisionRequest"}}}},
                "responses": {"200": {**_json("Decision", (
                    "The decision (allow or deny), exactly as logged: reasons and sources over 400 characters are "
                    "cut, ending in an ellipsis.")), "headers": {
                    "X-Gate-Log-Index": {"schema": {"type": "integer"}, "description": "Log index of the decision entry."},
                    "X-Gate-Answer": {"schema": {"type": "string"}, "description": (
                        "Base64 of a DSSE envelope, signed with the log key, over an in-toto statement of predicate "
                        "type https://tiergate.dev/answer/v1 binding this body (its SHA-256) to the request's nonce, "
                        "model, tier or target, the log index and the time (docs/formats.md).")}}},
                    **auth_errors, "503": unavailable}}},
            "/v1/log/checkpoint": {"get": {
                "summary": "The current signed checkpoint (C2SP tlog-checkpoint signed note, Ed25519).",
                "responses": {"200": {"description": "origin, size, base64 root, blank line, signature line.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}, "503": unavailable}}},
            "/checkpoint": {"get": {
                "summary": "C2SP tlog-tiles: the published checkpoint with any witness cosignatures (cacheable 1 s).",
                "responses": {"200": {"description": "The signed note, log signature first, then cosignatures.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}, "503": unavailable}}},
            "/tile/": {"get": {
                "summary": "C2SP tlog-tiles, every path below /tile/: hash tiles tile/<L>/<N>[.p/<W>] and entry "
                           "bundles tile/entries/<N>[.p/<W>] (<N> in x-prefixed 3-digit groups, e.g. x001/234). Full "
                           "ones are immutable (Cache-Control: public, max-age=31536000, immutable).",
                "responses": {"200": {"description": "Concatenated 32-byte hashes, or 16-bit length-prefixed entries.",
                                      "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                          "format": "binary"}}}},
                              "404": {"description": "Not a tile path, not yet covered by the log, or a bundle "
                                                     "holding an entry over 65,535 bytes (read /v1/log/entries)."},
                              "503": unavailable}}},
            "/v1/log/entries": {"get": {
                "summary": "Log entries [start, end), at most 256 or 1 MiB per page.",
                "parameters": [_int_param("start", "First index (default 0).", False),
                               _int_param("end", "Exclusive end (default: the tree size).", False)],
                "responses": {"200": _json("EntryPage", "A page; ask again from `end` for more."), "400": bad,
                              "503": unavailable}}},
            "/v1/log/proof/inclusion": {"get": {
                "summary": "RFC 9162 inclusion proof of entry `index` in the tree of `size` entries.",
                "parameters": [_int_param("index", "Entry index.", True),
                               _int_param("size", "Tree size (default: current).", False)],
                "responses": {"200": _json("InclusionProof", "The proof."), "400": bad, "503": unavailable}}},
            "/v1/log/proof/consistency": {"get": {
                "summary": "RFC 9162 consistency proof between tree sizes `old` and `new`.",
                "parameters": [_int_param("old", "Older tree size (> 0).", True),
                               _int_param("new", "Newer tree size (default: current).", False)],
                "responses": {"200": _json("ConsistencyProof", "The proof."), "400": bad, "503": unavailable}}},
            "/v1/log/find": {"get": {
                "summary": "Log entries about a model (attestations and decisions), in index order.",
                "parameters": [_MODEL_PARAM, _int_param("start", "Smallest index to return (default 0).", False),
                               {**_int_param("limit", "At most this many (1-1000, default 1000).", False)}],
                "responses": {"200": _json("FindResult", "Matching entries (fewer than `limit` when they add up to "
                                                         "1 MiB; `next` says where to go on)."), "400": bad,
                              "503": unavailable}}},
            "/v1/healthz": {"get": {
                "summary": "Liveness, the log's size, and whether the log can be written.",
                "responses": {"200": _json("Health", "Serving, and the log can be written."), "503": _error(
                    "The log cannot be written, so nothing can be decided: a hole in the log, the database "
                    "unreachable or read-only, a full disk, or the last append failed (`error` says which; "
                    "`status` is unavailable).")}}},
            "/v1/policy": {"get": {
                "summary": "The policy's digest, tiers and publish targets (what a client checks a decision by target "
                           "against).",
                "responses": {"200": _json("PolicySummary", "The policy the service decides with.")}}},
            "/v1/webhooks/huggingface": {"post": {
                "summary": "Hugging Face Hub webhook: re-check what an event published, contain it on a deny.",
                "description": (
                    "Enabled with `gate serve --hf-webhook-secret-env VAR` (else 404). Authenticated by the webhook's "
                    "shared secret in X-Webhook-Secret (compared in constant time, before the body is read), not by a "
                    "bearer token. For "
                    "repo.content and repo.config events (and repo creation) each revision concerned is decided at "
                    "the tier the repository's current state implies, with the attestations in its .attestations/ "
                    "and those the log holds for the model. On a deny access is narrowed as the policy says "
                    "(private, or gated with manual approval) and a discussion lists what is missing. Every step is "
                    "logged: a webhook entry, decision entries, a containment entry per revision. Idempotent by "
                    "(repository, commit, tier) across restarts and replicas; a repository widened again after a "
                    "containment is checked again."),
                "parameters": [{"name": "X-Webhook-Secret", "in": "header", "required": True,
                                "description": "The secret configured on the Hub webhook.",
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/HfWebhookPayload"}}}},
                "responses": {
                    "200": _json("HfWebhookResult", "Handled (or ignored: the event cannot publish anything)."),
                    "400": _error("The payload is not a JSON object."),
                    "401": _error("Wrong or missing X-Webhook-Secret: nothing was read, sent to the Hub or logged."),
                    "404": _error("The webhook is not enabled on this service (the body is not read)."),
                    "408": _error("The request did not arrive in time (--request-timeout)."),
                    "411": _error("No Content-Length."),
                    "413": _error("Body larger than 1 MiB (or the service's --max-body, if lower)."),
                    "415": _error("Body is not application/json."),
                    "502": _json("HfWebhookResult", "Reading or changing the repository on the Hub failed; the "
                                                    "failure is logged. Retry-After is set; a redelivery retries."),
                    "503": _json("HfWebhookResult", "The log is unavailable, the check took longer than the "
                                                    "service waits (it goes on and is logged), or another request "
                                                    "is checking the same revision. Retry-After is set.")}}},
            "/openapi.json": {"get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {}}}}}},
        },
    }
