"""Which model-registry calls the gate looks at, and what each one asks for.

The request fields arrive here already parsed by MLflow's own request parser (see
:func:`gate.integrations.mlflow.internals.request_fields`), so the gate reads exactly what the handler will act on:
camelCase aliases, double-encoded bodies and query strings included. A reader of its own would be a way around the
gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

CREATE_VERSION = "CreateModelVersion"
SET_ALIAS = "SetRegisteredModelAlias"
SET_TAG = "SetModelVersionTag"
TRANSITION_STAGE = "TransitionModelVersionStage"
UPDATE_VERSION = "UpdateModelVersion"
DELETE_ALIAS = "DeleteRegisteredModelAlias"
DELETE_TAG = "DeleteModelVersionTag"

#: Calls that publish a version somewhere: decided before MLflow runs them.
GATED: frozenset[str] = frozenset({CREATE_VERSION, SET_ALIAS, SET_TAG, TRANSITION_STAGE, UPDATE_VERSION})
#: Calls that withdraw a publication: never blocked (taking a release back is always allowed), only recorded.
RECORDED: frozenset[str] = frozenset({DELETE_ALIAS, DELETE_TAG})
WATCHED: frozenset[str] = GATED | RECORDED


class MalformedCall(ValueError):
    """The request lacks a field the gate needs; MLflow would refuse it too, the gate refuses it first."""


@dataclass(frozen=True)
class Call:
    """One registry call as the gate sees it."""

    rpc: str
    name: str
    version: str | None = None
    alias: str | None = None
    stage: str | None = None
    tag_key: str | None = None
    tag_value: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # the tags a new version is created with
    source: str | None = None
    model_id: str | None = None
    run_id: str | None = None

    def describe(self) -> str:
        """``alias 'production' on model 'tiny' version 3``: what the call does, for messages and the log."""
        target = f"model '{self.name}'" + (f" version {self.version}" if self.version else "")
        if self.rpc == CREATE_VERSION:
            return f"registering a new version of model '{self.name}'"
        if self.rpc in (SET_ALIAS, DELETE_ALIAS):
            verb = "setting" if self.rpc == SET_ALIAS else "removing"
            return f"{verb} alias '{self.alias}' on {target}"
        if self.rpc in (SET_TAG, DELETE_TAG):
            what = f"tag {self.tag_key}={self.tag_value}" if self.rpc == SET_TAG else f"tag {self.tag_key}"
            return f"{'setting' if self.rpc == SET_TAG else 'removing'} {what} on {target}"
        if self.rpc == TRANSITION_STAGE:
            return f"moving {target} to stage '{self.stage}'"
        return f"updating {target}"

    def context(self) -> dict[str, Any]:
        """The publish event as recorded with the decision (empty fields left out)."""
        fields = {"host": "mlflow", "rpc": self.rpc, "model": self.name, "version": self.version,
                  "alias": self.alias, "stage": self.stage, "tag": self.tag_key, "tag_value": self.tag_value,
                  "source": self.source}
        return {k: v for k, v in fields.items() if v not in (None, "")}


def _text(fields: Mapping[str, Any], key: str, rpc: str, required: bool = True) -> str | None:
    value = fields.get(key)
    if value in (None, ""):
        if required:
            raise MalformedCall(f"{rpc} request has no '{key}'")
        return None
    return str(value)


def parse_call(rpc: str, fields: Mapping[str, Any]) -> Call:
    """Build the :class:`Call` from the parsed request fields (proto field names)."""
    name = _text(fields, "name", rpc)
    assert name is not None
    if rpc == CREATE_VERSION:
        tags = tuple((str(t.get("key", "")), str(t.get("value", ""))) for t in fields.get("tags") or ())
        return Call(rpc, name, tags=tags, source=_text(fields, "source", rpc),
                    model_id=_text(fields, "model_id", rpc, False), run_id=_text(fields, "run_id", rpc, False))
    if rpc == DELETE_ALIAS:
        return Call(rpc, name, alias=_text(fields, "alias", rpc))
    version = _text(fields, "version", rpc)
    if rpc == SET_ALIAS:
        return Call(rpc, name, version, alias=_text(fields, "alias", rpc))
    if rpc == SET_TAG:
        return Call(rpc, name, version, tag_key=_text(fields, "key", rpc), tag_value=str(fields.get("value") or ""))
    if rpc == DELETE_TAG:
        return Call(rpc, name, version, tag_key=_text(fields, "key", rpc))
    if rpc == TRANSITION_STAGE:
        return Call(rpc, name, version, stage=_text(fields, "stage", rpc))
    if rpc == UPDATE_VERSION:
        return Call(rpc, name, version)
    raise ValueError(f"not a registry call the gate watches: {rpc}")
