"""The store guard: the gate at MLflow's registry store, where every registry write ends up.

Guarding HTTP routes is not enough: the route's handler resolves names again after the gate decided, and code inside
the server writes the registry without passing any route (the demo generator's in-process client, jobs). So every
write method of MLflow's SQL registry store class (``SqlAlchemyStore`` and its workspace-aware subclass, whatever
instance calls it) is wrapped, and each gated call runs as one step under the registry lock
(:mod:`tiergate.integrations.mlflow.lock`) held exclusively:

    resolve the version → find and hash its files → decide (and append to the gate's log) → write the decision tags
    → MLflow's own write

- For a new version the decision tags go into the creation itself (one transaction). For an existing version they
  are written before MLflow's write: if they cannot be written, the call fails and nothing was published; if MLflow's
  write then fails, they are put back. So a version is never in a gated state without its decision recorded.
- Nothing else can write the registry meanwhile (every write method takes the same lock), nor write artifacts through
  the server (artifact writes hold the lock shared, :mod:`tiergate.integrations.mlflow.hook`): the files are frozen from
  before they are hashed until the decision tags, which freeze them for good, are written, or until a deny.
- Renaming or deleting a registered model that holds gated versions, and deleting a gated version, are gated events:
  recorded in the gate's log (one entry per version) before MLflow's write, refused if they cannot be recorded.
- ``tiergate.*`` tags are written only by the gate, on versions and registered models alike. A new version
  created with them is refused, unless it is a copy (``models:/NAME/VERSION`` source) carrying exactly its source's
  tags (``copy_model_version``): those are dropped and the copy is decided afresh.
- Deny by default: a public method of the store class this module does not know (a newer MLflow's) is refused.

A refusal is MLflow's own ``PERMISSION_DENIED`` error (HTTP 403 through the REST API).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import re
from typing import Any
from collections.abc import Callable, Iterator, Mapping

from tiergate.core.targets import TargetError
from tiergate.errors import GateError
from tiergate.integrations.mlflow.copies import copied_gate_tags
from tiergate.integrations.mlflow.gatekeeper import Deny, Publish, RegistryGate, Withdraw
from tiergate.integrations.mlflow.internals import artifacts as mlflow_artifacts
from tiergate.integrations.mlflow.internals import registry as mlflow_registry
from tiergate.integrations.mlflow.lock import RegistryLock, registry_lock
from tiergate.integrations.mlflow.routes import (
    CREATE_VERSION,
    DELETE_ALIAS,
    DELETE_TAG,
    SET_ALIAS,
    SET_TAG,
    TRANSITION_STAGE,
    UPDATE_VERSION,
    Call,
)
from tiergate.integrations.mlflow.tags import PREFIX, is_reserved

log = logging.getLogger("tiergate.integrations.mlflow")

#: Store methods that publish a version: decided under the lock.
GATED = {
    "create_model_version": CREATE_VERSION,
    "set_registered_model_alias": SET_ALIAS,
    "set_model_version_tag": SET_TAG,
    "transition_model_version_stage": TRANSITION_STAGE,
    "update_model_version": UPDATE_VERSION,
}
#: Store methods that take a release back: never refused, recorded.
WITHDRAWALS = {"delete_registered_model_alias": DELETE_ALIAS, "delete_model_version_tag": DELETE_TAG}
#: Store methods that move or remove versions: recorded before they run, refused if that fails.
EVENTS = frozenset({"rename_registered_model", "delete_registered_model", "delete_model_version"})
#: Other writes of registry state: run under the lock, so that they cannot change what a gated call resolves to.
#: The prompt methods are here too: MLflow implements them with the methods above, which are gated in turn.
LOCKED = frozenset({
    "create_registered_model", "update_registered_model", "set_registered_model_tag", "delete_registered_model_tag",
    "copy_model_version", "create_prompt", "create_prompt_version", "delete_prompt", "delete_prompt_alias",
    "delete_prompt_tag", "delete_prompt_version", "delete_prompt_version_tag", "set_prompt_alias", "set_prompt_tag",
    "set_prompt_version_tag",
})
#: Writes outside what a version resolves to (webhooks; links kept on runs, logged models and traces).
UNRELATED = frozenset({
    "create_webhook", "update_webhook", "delete_webhook", "test_webhook", "link_prompt_version_to_model",
    "link_prompt_version_to_run", "link_prompts_to_trace",
})
_READ = re.compile(r"(get|search|list)_\w+|supports_workspaces")

#: The gate writing its own tags (already under the lock, already decided): passes the guard.
_GATE_WRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("tiergate_writing", default=False)
_ACTIVE: StoreGuard | None = None
_MARK = "__tiergate_guarded__"


class RefusedByGate(GateError):
    """Raised inside the guard to refuse a call with a message (turned into MLflow's PERMISSION_DENIED)."""


def _permission_denied(message: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    return MlflowException(message, error_code=PERMISSION_DENIED)


def failure(exc: BaseException) -> str:
    """The message for a call the gate could not decide on (it is refused: the gate fails closed)."""
    if isinstance(exc, RefusedByGate):
        return str(exc)
    reason = str(exc) if isinstance(exc, GateError) else f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    return (f"tiergate could not decide on this call, so it is refused (the gate fails closed): {reason}. "
            "If this persists, an administrator finds the details in the MLflow server's log.")


def requester() -> dict[str, str]:
    """Who asked, as far as the server knows: the HTTP request being served (the basic-auth ``user`` is verified
    only behind basic-auth or an authenticating proxy, claimed otherwise), or ``writer: in-process`` for a write
    made by code inside the server outside any request."""
    try:
        from flask import has_request_context, request
    except ImportError:  # pragma: no cover - flask comes with mlflow
        return {"writer": "in-process"}
    if not has_request_context():
        return {"writer": "in-process"}
    who = {"server": request.host_url.rstrip("/")}
    if request.authorization is not None and request.authorization.username:
        who["user"] = request.authorization.username
    if request.remote_addr:
        who["client"] = request.remote_addr
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    if "/model-versions/" not in rule and "/registered-models/" not in rule:
        who["route"] = f"{request.method} {rule}"  # a server-side writer (demo generator, …) behind this request
    return who


@contextlib.contextmanager
def gate_writing() -> Iterator[None]:
    """The gate's own writes (its tags) inside a guarded call."""
    token = _GATE_WRITING.set(True)
    try:
        yield
    finally:
        _GATE_WRITING.reset(token)


def _tag_pairs(tags: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(tags, Mapping):
        return tuple((str(k), str(v)) for k, v in tags.items())
    return tuple((str(t.key), str(t.value)) for t in tags or ())


def _call(method: str, a: Mapping[str, Any]) -> Call:
    """The :class:`Call` a store method's bound arguments make."""
    rpc = GATED.get(method) or WITHDRAWALS[method]
    name = str(a["name"])
    version = str(a["version"]) if a.get("version") is not None else None
    if rpc == CREATE_VERSION:
        return Call(rpc, name, tags=_tag_pairs(a.get("tags")), source=a.get("source"), model_id=a.get("model_id"),
                    run_id=a.get("run_id"))
    if rpc in (SET_ALIAS, DELETE_ALIAS):
        return Call(rpc, name, version, alias=a.get("alias"))
    if rpc == SET_TAG:
        return Call(rpc, name, version, tag_key=a["tag"].key, tag_value=a["tag"].value)
    if rpc == DELETE_TAG:
        return Call(rpc, name, version, tag_key=a.get("key"))
    if rpc == TRANSITION_STAGE:
        return Call(rpc, name, version, stage=a.get("stage"))
    return Call(rpc, name, version)


def _renamed_in_index(old: str, new: str) -> None:
    """The artifact guard's index follows a renamed model; if it cannot, it is marked incomplete (lookups scan)."""
    try:
        mlflow_artifacts.rename_in_index(old, new)
    except Exception:
        log.exception("could not rename %s in the artifact guard's index; it scans until restarted", old)
        with contextlib.suppress(Exception):
            mlflow_artifacts.index_unsure()


class StoreGuard:
    """The gate at the registry store (see the module docstring)."""

    def __init__(self, gatekeeper: RegistryGate, lock: Callable[[], RegistryLock] = registry_lock) -> None:
        self.gatekeeper = gatekeeper
        self._lock = lock

    # --- installing ---------------------------------------------------------------------------------------------

    def install(self) -> list[str]:
        """Wrap the write methods of MLflow's SQL registry store class (once per process; the latest guard is the
        one used). Returns the public methods it does not know, which are refused from now on."""
        global _ACTIVE
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        _ACTIVE = self
        return _wrap_class(SqlAlchemyStore)

    # --- the calls ----------------------------------------------------------------------------------------------

    def run(self, method: str, original: Callable[..., Any], bound: inspect.BoundArguments) -> Any:
        """Carry out ``method`` (``original`` with ``bound`` arguments) as the gate allows. Raises MLflow's
        PERMISSION_DENIED error to refuse; MLflow's own errors from the write itself pass through."""
        a = bound.arguments
        if method in ("set_registered_model_tag", "create_registered_model"):
            keys = [a["tag"].key] if method == "set_registered_model_tag" else [k for k, _ in _tag_pairs(a.get("tags"))]
            reserved = next((k for k in keys if is_reserved(k)), None)
            if reserved is not None:
                raise _permission_denied(
                    f"tiergate refused a tag on registered model '{a['name']}': tags starting with '{PREFIX}' are "
                    f"written by the release gate only ({reserved!r}), on versions and registered models alike")
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self._lock().exclusive())
            except Exception as exc:  # noqa: BLE001 - not obtained in time, or a backend with no lock: refused
                raise _permission_denied(failure(exc)) from None
            if method in GATED:
                return self._gated(method, original, bound)
            if method in WITHDRAWALS:
                return self._withdrawal(method, original, bound)
            if method in EVENTS:
                self._event(method, a)
            result = original(*bound.args, **bound.kwargs)
            if method == "rename_registered_model":
                _renamed_in_index(str(a["name"]), str(a["new_name"]))
            return result

    def _gated(self, method: str, original: Callable[..., Any], bound: inspect.BoundArguments) -> Any:
        a = bound.arguments
        try:
            call = _call(method, a)
            copy = bool(copied_gate_tags(call))  # the rule the request hook applies
            if copy:  # the copy's own decision replaces its source's tags
                call = Call(call.rpc, call.name, tags=tuple((k, v) for k, v in call.tags if not is_reserved(k)),
                            source=call.source, model_id=call.model_id, run_id=call.run_id)
                a["tags"] = [t for t in a.get("tags") or () if not is_reserved(t.key)]
            outcome = self.gatekeeper.before(call, requester())
        except TargetError as exc:  # a look-alike of a release target (tiergate.core.targets): refused, saying why
            raise _permission_denied(f"tiergate refused {call.describe()}: {exc}") from None
        except Exception as exc:
            if not isinstance(exc, GateError):
                log.exception("refused %s after an error", method)
            raise _permission_denied(failure(exc)) from None
        if isinstance(outcome, Deny):
            log.info("%s", outcome.message.removeprefix("tiergate "))
            raise _permission_denied(outcome.message)
        if not isinstance(outcome, Publish):
            return original(*bound.args, **bound.kwargs)
        if call.rpc == CREATE_VERSION:
            return self._create_gated(call, outcome, original, bound)
        assert outcome.version is not None
        try:
            # the artifact guard's index first: a version with the digest tag is always in it
            mlflow_artifacts.index_version(call.name, outcome.version, outcome.location)
            with gate_writing():
                mlflow_registry.set_tags(call.name, outcome.version, outcome.tags)
        except Exception as exc:
            log.exception("could not record the decision for %s; refused", call.describe())
            self._restore(call, outcome)
            raise _permission_denied(failure(RefusedByGate(
                f"tiergate refused {call.describe()}: its decision could not be recorded on the version "
                f"({type(exc).__name__}: {getattr(exc, 'message', None) or exc}), "
                "so the call is not carried out"))) from None
        try:
            return original(*bound.args, **bound.kwargs)
        except BaseException:
            self._restore(call, outcome)
            raise

    @staticmethod
    def _create_gated(call: Call, outcome: Publish, original: Callable[..., Any], bound: inspect.BoundArguments) -> Any:
        """Create a version with the decision's tags, indexed for the artifact guard by what the call names before
        it exists, and by what MLflow stored once it does."""
        from mlflow.entities.model_registry import ModelVersionTag

        try:
            mlflow_artifacts.index_version(call.name, None, call.source, call.run_id, outcome.location)
        except Exception as exc:
            log.exception("could not index %s for the artifact guard; refused", call.describe())
            raise _permission_denied(failure(RefusedByGate(
                f"tiergate refused {call.describe()}: the artifact guard's index could not be written "
                f"({type(exc).__name__}), so the new version's files could not be frozen"))) from None
        a = bound.arguments
        a["tags"] = list(a.get("tags") or ()) + [ModelVersionTag(k, v) for k, v in outcome.tags.items()]
        with gate_writing():
            created = original(*bound.args, **bound.kwargs)
        try:
            mlflow_artifacts.index_version(str(created.name), str(created.version))
        except Exception:  # what MLflow stored may name more than the call did: scan until the index is rebuilt
            log.exception("could not index %s/%s for the artifact guard; it scans until restarted",
                          created.name, created.version)
            with contextlib.suppress(Exception):
                mlflow_artifacts.index_unsure()
        return created

    @staticmethod
    def _restore(call: Call, outcome: Publish) -> None:
        """Put back the version's gate tags as they were before a call that did not happen (best effort: the
        version is not in the new state, so tags that stay only overstate what was decided)."""
        try:
            with gate_writing():
                mlflow_registry.restore_tags(call.name, outcome.version or "", outcome.existing, outcome.tags)
        except Exception:
            log.exception("could not put back the gate's tags on %s", call.describe())

    def _withdrawal(self, method: str, original: Callable[..., Any], bound: inspect.BoundArguments) -> Any:
        call = _call(method, bound.arguments)
        if call.rpc == DELETE_TAG and is_reserved(call.tag_key):
            raise _permission_denied(
                f"tiergate refused {call.describe()}: tags starting with '{PREFIX}' are written by the release "
                f"gate only ({call.tag_key!r}); they show its decisions and cannot be set or removed by clients")
        outcome = self.gatekeeper.before(call, requester())  # never raises, never refuses
        result = original(*bound.args, **bound.kwargs)
        if isinstance(outcome, Withdraw):
            try:
                self.gatekeeper.record_withdrawal(outcome)
            except Exception:  # taking a release back is never blocked, even when it cannot be recorded
                log.exception("could not record %s", call.describe())
        return result

    def _event(self, method: str, a: Mapping[str, Any]) -> None:
        name = str(a["name"])
        version = str(a["version"]) if method == "delete_model_version" else None
        try:
            versions = mlflow_artifacts.gated_versions_of(name, version)
            if not versions:
                return
            if method == "rename_registered_model":
                describe, context = (f"renaming registered model '{name}' to '{a['new_name']}'",
                                     {"event": "renamed", "new_name": str(a["new_name"])})
            elif version is None:
                describe, context = f"deleting registered model '{name}'", {"event": "deleted"}
            else:
                describe, context = f"deleting model '{name}' version {version}", {"event": "deleted"}
            self.gatekeeper.record_event(describe, versions, {"host": "mlflow", "rpc": _RPC_NAMES[method],
                                                              **requester(), **context})
        except Exception as exc:
            log.exception("refused %s of '%s' after an error", method, name)
            raise _permission_denied(failure(RefusedByGate(
                f"tiergate refused {method.replace('_', ' ')} '{name}': it holds versions the gate decided on, "
                f"so the event is recorded first, and that failed ({type(exc).__name__}: "
                f"{getattr(exc, 'message', None) or exc}); "
                "fix the gate's configuration or log and try again"))) from None


_RPC_NAMES = {"rename_registered_model": "RenameRegisteredModel", "delete_registered_model": "DeleteRegisteredModel",
              "delete_model_version": "DeleteModelVersion"}


def _refuse_unknown(method: str) -> Callable[..., Any]:
    def refused(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise _permission_denied(
            f"tiergate refused the registry store call {method}: this MLflow's registry store has a method "
            "tiergate does not know, so it cannot tell whether it publishes a version; it is refused until "
            "tiergate supports this MLflow version")

    refused.__name__ = method
    return refused


def _guarded(method: str, original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        guard = _ACTIVE
        if guard is None or _GATE_WRITING.get():
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        return guard.run(method, original, bound)

    return guarded


def unknown_methods(store_class: type) -> list[str]:
    """Public methods of ``store_class`` that are neither reads nor writes this module classifies."""
    known = set(GATED) | set(WITHDRAWALS) | EVENTS | LOCKED | UNRELATED
    return sorted(name for name, value in inspect.getmembers(store_class, callable)
                  if not name.startswith("_") and not _READ.fullmatch(name) and name not in known)


def _wrap_class(store_class: type) -> list[str]:
    unknown = unknown_methods(store_class)
    if getattr(store_class, _MARK, False):
        return unknown
    for name in set(GATED) | set(WITHDRAWALS) | EVENTS | LOCKED:
        original = getattr(store_class, name, None)
        if original is not None:
            setattr(store_class, name, _guarded(name, original))
    for name in unknown:
        setattr(store_class, name, _refuse_unknown(name))
    setattr(store_class, _MARK, True)
    return unknown


def deactivate() -> None:
    """Let the wrapped methods through unguarded again (for tests that use MLflow's store in-process)."""
    global _ACTIVE
    _ACTIVE = None


def active() -> bool:
    """Whether a store guard is installed in this process (registry routes are refused otherwise)."""
    return _ACTIVE is not None
