"""Which model-registry calls the gate looks at, and what each one asks for.

The request fields arrive here already parsed by MLflow's own request parser (see
:func:`tiergate.integrations.mlflow.internals.registry.request_fields`), so the gate reads exactly what the handler
will act on: camelCase aliases, double-encoded bodies and query strings included. A reader of its own would be a way
around the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

CREATE_VERSION = "CreateModelVersion"
SET_ALIAS = "SetRegisteredModelAlias"
SET_TAG = "SetModelVersionTag"
TRANSITION_STAGE = "TransitionModelVersionStage"
UPDATE_VERSION = "UpdateModelVersion"
DELETE_ALIAS = "DeleteRegisteredModelAlias"
DELETE_TAG = "DeleteModelVersionTag"
CREATE_MODEL = "CreateRegisteredModel"
SET_MODEL_TAG = "SetRegisteredModelTag"
DELETE_MODEL_TAG = "DeleteRegisteredModelTag"
UPDATE_MODEL = "UpdateRegisteredModel"
RENAME_MODEL = "RenameRegisteredModel"
DELETE_MODEL = "DeleteRegisteredModel"
DELETE_VERSION = "DeleteModelVersion"

#: Calls that publish a version somewhere: decided before MLflow runs them.
GATED: frozenset[str] = frozenset({CREATE_VERSION, SET_ALIAS, SET_TAG, TRANSITION_STAGE, UPDATE_VERSION})
#: Calls that withdraw a publication: never blocked (taking a release back is always allowed), only recorded.
RECORDED: frozenset[str] = frozenset({DELETE_ALIAS, DELETE_TAG})
#: The other registry writes: they publish nothing by themselves, but pass the gate's hook, which refuses the gate's
#: reserved tags and changes to the prompt marker (:func:`refusal`) and sees renames and deletes.
CHECKED: frozenset[str] = frozenset({CREATE_MODEL, SET_MODEL_TAG, DELETE_MODEL_TAG, UPDATE_MODEL, RENAME_MODEL,
                                     DELETE_MODEL, DELETE_VERSION})
WATCHED: frozenset[str] = GATED | RECORDED | CHECKED

#: What the gate does with each watched call, as ``gate mlflow routes`` shows it.
ROLE: dict[str, str] = {
    **{rpc: f"{rpc}: decided (a publish at the tier the policy maps)" for rpc in GATED},
    **{rpc: f"{rpc}: recorded (a release taken back)" for rpc in RECORDED},
    **{rpc: f"{rpc}: checked (tiergate.* tags and the prompt marker refused)"
       for rpc in (CREATE_MODEL, SET_MODEL_TAG, DELETE_MODEL_TAG)},
    **{rpc: f"{rpc}: seen by the gate's hook, which has nothing to refuse in it"
       for rpc in (UPDATE_MODEL, RENAME_MODEL, DELETE_MODEL, DELETE_VERSION)},
}


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
    new_name: str | None = None  # a rename's

    def describe(self) -> str:
        """``alias 'production' on model 'tiny' version 3``: what the call does, for messages and the log."""
        target = f"model '{self.name}'" + (f" version {self.version}" if self.version else "")
        checked = {CREATE_MODEL: f"creating registered model '{self.name}'",
                   SET_MODEL_TAG: f"setting tag {self.tag_key}={self.tag_value} on registered model '{self.name}'",
                   DELETE_MODEL_TAG: f"removing tag {self.tag_key} from registered model '{self.name}'",
                   UPDATE_MODEL: f"updating registered model '{self.name}'",
                   RENAME_MODEL: f"renaming model '{self.name}' to '{self.new_name}'",
                   DELETE_MODEL: f"deleting model '{self.name}'",
                   DELETE_VERSION: f"deleting {target}"}
        if self.rpc in checked:
            return checked[self.rpc]
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
                  "source": self.source, "new_name": self.new_name}
        return {k: v for k, v in fields.items() if v not in (None, "")}


def _text(fields: Mapping[str, Any], key: str, rpc: str, required: bool = True) -> str | None:
    value = fields.get(key)
    if value in (None, ""):
        if required:
            raise MalformedCall(f"{rpc} request has no '{key}'")
        return None
    return str(value)


def _tags(fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(t.get("key", "")), str(t.get("value", ""))) for t in fields.get("tags") or ())


def parse_call(rpc: str, fields: Mapping[str, Any]) -> Call:
    """Build the :class:`Call` from the parsed request fields (proto field names)."""
    name = _text(fields, "name", rpc)
    assert name is not None
    if rpc == CREATE_VERSION:
        return Call(rpc, name, tags=_tags(fields), source=_text(fields, "source", rpc),
                    model_id=_text(fields, "model_id", rpc, False), run_id=_text(fields, "run_id", rpc, False))
    if rpc == CREATE_MODEL:
        return Call(rpc, name, tags=_tags(fields))
    if rpc == SET_MODEL_TAG:
        return Call(rpc, name, tag_key=_text(fields, "key", rpc), tag_value=str(fields.get("value") or ""))
    if rpc == DELETE_MODEL_TAG:
        return Call(rpc, name, tag_key=_text(fields, "key", rpc))
    if rpc == RENAME_MODEL:
        return Call(rpc, name, new_name=_text(fields, "new_name", rpc))
    if rpc in (UPDATE_MODEL, DELETE_MODEL):
        return Call(rpc, name)
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
    if rpc in (UPDATE_VERSION, DELETE_VERSION):
        return Call(rpc, name, version)
    raise ValueError(f"not a registry call the gate watches: {rpc}")


def refusal(call: Call) -> str | None:
    """Why ``call`` is refused whatever the policy says, None if it is not.

    - ``tiergate.*`` tags show the gate's decisions: no client sets or removes them, on versions or on
      registered models (:func:`tiergate.integrations.mlflow.tags.is_reserved`).
    - The prompt marker (``mlflow.prompt.is_prompt``) is set when a prompt or prompt version is created, never
      changed afterwards: a prompt version has no weights and is not gated, so one that could shed the marker after
      taking a release alias or tier tag would look like a released model version nobody decided on.
    """
    from tiergate.integrations.mlflow.tags import PREFIX, PROMPT_MARKER, is_reserved

    keys = [call.tag_key] if call.rpc in (SET_TAG, DELETE_TAG, SET_MODEL_TAG, DELETE_MODEL_TAG) else \
        [key for key, _ in call.tags]
    reserved = next((key for key in keys if is_reserved(key)), None)
    if reserved is not None:
        return (f"tiergate refused {call.describe()}: tags starting with '{PREFIX}' are written by the release "
                f"gate only ({reserved!r}); they show its decisions and cannot be set or removed by clients")
    if call.rpc in (SET_TAG, DELETE_TAG, SET_MODEL_TAG, DELETE_MODEL_TAG) and \
            (call.tag_key or "").casefold() == PROMPT_MARKER:
        return (f"tiergate refused {call.describe()}: '{PROMPT_MARKER}' is set when a prompt is created and never "
                "changed: a prompt has no weights and is not gated, so it cannot become (or stop being) a model "
                "version; register the weights as a model version instead")
    return None
