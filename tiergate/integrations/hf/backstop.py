"""The backstop: an HTTP transport under huggingface_hub that refuses commits the gate did not check.

The gated API decides before it uploads, but between the check and the upload a file can change on disk, and code
in the same process can call a plain ``HfApi``. The one injection point huggingface_hub offers is its HTTP client
factory (``huggingface_hub.utils.set_client_factory``); this module wraps the transport of whatever client is
installed there, so every request the library makes passes here first:

- a preupload (``POST .../preupload/...``, the first request of every upload: it asks how to send each file) goes
  out only for paths and sizes a live, gate-approved :class:`~tiergate.integrations.hf.plan.CommitPlan` holds. Content
  is uploaded only after it, so an unchecked upload stops here before any byte moves, by LFS or by hf_xet;
- a commit (``POST .../commit/...``) goes out only if each ``lfsFile`` oid and the sha256 of each inline ``file``
  is the one a live plan holds for that path (and each deletion is planned too);
- an LFS batch upload request goes out only for oids of an approved plan, so the bytes of a changed file are not
  sent at all;
- a Xet write token is never requested through here: gated uploads do not use Xet (the gated API hands
  huggingface_hub :class:`~tiergate.integrations.hf.plan.CheckedSource` file objects, which it uploads by LFS).

Approvals live only for the duration of the gated call that made them. hf_xet moves bytes and fetches its tokens
from Rust, outside this transport: a plain ``HfApi`` upload in this process is stopped at its preupload, before
hf_xet starts; code that calls huggingface_hub's private upload functions directly (skipping the preupload) can
still move bytes through Xet, and its commit is still refused here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from collections.abc import Iterator
from urllib.parse import unquote

from tiergate.integrations.hf.errors import BackstopRefused
from tiergate.integrations.hf.plan import CommitPlan

if TYPE_CHECKING:  # huggingface_hub's HTTP client, imported with the Hub when a transport is built
    from huggingface_hub.utils import httpx

_COMMIT = re.compile(r"/api/(?P<type>model|dataset|space|kernel)s/(?P<repo>.+?)/commit/(?P<rev>[^/]+)$")
_PREUPLOAD = re.compile(r"/api/(?P<type>model|dataset|space|kernel)s/(?P<repo>.+?)/preupload/(?P<rev>[^/]+)$")
_XET_WRITE_TOKEN = re.compile(r"/api/(?:model|dataset|space|kernel)s/.+?/xet-write-token/")
_LFS_BATCH = re.compile(r"^(?:.*?/)??(?:(?P<type>datasets|spaces|kernels)/)?(?P<repo>[^/]+(?:/[^/]+)?)"
                        r"\.git/info/lfs/objects/batch$")


class Approvals:
    """The commit plans the gate approved and whose gated call is still running (process-wide, thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[int, CommitPlan] = {}
        self._next = 0

    @contextmanager
    def approve(self, plan: CommitPlan) -> Iterator[None]:
        with self._lock:
            self._next += 1
            key = self._next
            self._plans[key] = plan
        try:
            yield
        finally:
            with self._lock:
                self._plans.pop(key, None)

    def plans_for(self, repo_type: str, repo_id: str) -> list[CommitPlan]:
        with self._lock:
            return [p for p in self._plans.values() if p.repo_type == repo_type and p.repo_id == repo_id]

    def check_commit(self, repo_type: str, repo_id: str, body: bytes) -> None:
        """Raise BackstopRefused unless one live plan covers every line of this commit."""
        plans = self.plans_for(repo_type, repo_id)
        if not plans:
            raise BackstopRefused(
                f"commit to {repo_id} refused: it was not checked by tiergate. Publish through "
                "GatedHfApi or `gate hf upload`, which check the weights first.")
        problems: list[str] = []
        lines = _commit_lines(body)
        for plan in plans:
            problem = _first_unplanned(plan, lines)
            if problem is None:
                return
            problems.append(problem)
        raise BackstopRefused(f"commit to {repo_id} refused: {problems[0]}. Nothing was committed; re-run the "
                              "gated upload so that the gate checks the files as they are now.")

    def check_preupload(self, repo_type: str, repo_id: str, files: list[tuple[str, int]]) -> None:
        """Raise BackstopRefused unless one live plan writes every (path, size) this upload announces."""
        plans = self.plans_for(repo_type, repo_id)
        if not plans:
            raise BackstopRefused(
                f"upload to {repo_id} refused: it was not checked by tiergate. Publish through GatedHfApi or "
                "`gate hf upload`, which check the weights first. No file content was sent.")
        for plan in plans:
            if all(path in plan.writes and plan.writes[path].size == size for path, size in files):
                return
        path = next(p for p, size in files if not any(p in plan.writes and plan.writes[p].size == size
                                                      for plan in plans))
        raise BackstopRefused(f"upload of {path} to {repo_id} refused: it is not a file the gate checked, at the size "
                              "it checked (did it change after the check?). No file content was sent.")

    def check_lfs_upload(self, repo_type: str, repo_id: str, oids: list[str]) -> None:
        plans = self.plans_for(repo_type, repo_id)
        if not plans:
            raise BackstopRefused(
                f"upload of LFS objects to {repo_id} refused: it was not checked by tiergate. Publish through "
                "GatedHfApi or `gate hf upload`, which check the weights first. No bytes were sent.")
        allowed: set[str] = set()
        for plan in plans:
            allowed |= plan.oids
        unplanned = [oid for oid in oids if oid not in allowed]
        if unplanned:
            raise BackstopRefused(
                f"upload of LFS object {unplanned[0][:12]}… to {repo_id} refused: it is not content the gate checked "
                "(did a file change after the check?). No bytes of it were sent.")


def _commit_lines(body: bytes) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    except (ValueError, RecursionError):
        raise BackstopRefused("commit refused: its payload is not the NDJSON tiergate can check") from None


def _first_unplanned(plan: CommitPlan, lines: list[dict[str, Any]]) -> str | None:
    for line in lines:
        key, value = line.get("key"), line.get("value") or {}
        path = str(value.get("path", ""))
        if key == "header":
            continue
        if key == "file":
            try:
                content = base64.b64decode(value.get("content", ""), validate=True)
            except ValueError:
                return f"{path}: inline content is not base64"
            if not plan.allows_write(path, hashlib.sha256(content).hexdigest()):
                return f"{path}: its content is not what the gate checked"
        elif key == "lfsFile":
            if not plan.allows_write(path, str(value.get("oid", ""))):
                return f"{path}: LFS object {str(value.get('oid', ''))[:12]}… is not what the gate checked"
        elif key in ("deletedFile", "deletedFolder"):
            if not plan.allows_delete(path, folder=key == "deletedFolder"):
                return f"{path}: deleting it was not part of the checked commit"
        else:
            return f"unknown commit line {key!r}"
    return None


#: The process-wide approvals the gated API registers with and the transport consults.
APPROVALS = Approvals()


def _path_of(request: httpx.Request) -> str:
    raw = request.url.raw_path.decode("ascii", "replace")
    return raw.split("?", 1)[0]


def check_request(request: Any, approvals: Approvals = APPROVALS) -> None:
    """Refuse (raise) a request that would publish unchecked content; let everything else through."""
    path = _path_of(request)
    if _XET_WRITE_TOKEN.search(path):
        raise BackstopRefused("Xet write token request refused: tiergate uploads through LFS, where it checks "
                              "each request; no Xet token is needed for a gated upload")
    if request.method != "POST":
        return
    match = _COMMIT.search(path)
    if match:
        approvals.check_commit(match["type"], unquote(match["repo"]), request.read())
        return
    match = _PREUPLOAD.search(path)
    if match:
        try:
            announced = json.loads(request.read() or b"{}").get("files") or []
            files = [(str(item["path"]), int(item["size"])) for item in announced]
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            raise BackstopRefused("preupload request refused: not the JSON tiergate can check") from None
        approvals.check_preupload(match["type"], unquote(match["repo"]), files)
        return
    match = _LFS_BATCH.search(path)
    if match:
        try:
            payload = json.loads(request.read() or b"{}")
        except (ValueError, RecursionError):
            raise BackstopRefused("LFS batch request refused: not JSON") from None
        if payload.get("operation") == "upload":
            repo_type = {"datasets": "dataset", "spaces": "space", "kernels": "kernel"}.get(match["type"] or "",
                                                                                            "model")
            oids = [str(o.get("oid")) for o in payload.get("objects") or []]
            approvals.check_lfs_upload(repo_type, unquote(match["repo"]), oids)


_install_lock = threading.Lock()
_installed_factory: Any = None


def _make_transport_class() -> type:
    from huggingface_hub.utils import httpx

    class BackstopTransport(httpx.BaseTransport):
        """Checks each request, then hands it to the transport the client would have used."""

        def __init__(self, inner: Any, approvals: Approvals) -> None:
            self.inner = inner
            self.approvals = approvals

        def handle_request(self, request: Any) -> Any:
            check_request(request, self.approvals)
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

    return BackstopTransport


def _current_factory() -> Any:
    from huggingface_hub.utils import _http

    return getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory


def install(approvals: Approvals = APPROVALS) -> None:
    """Wrap huggingface_hub's HTTP client factory with the backstop (idempotent; keeps a user-set factory).

    Fails closed: if the installed client cannot be wrapped, the error surfaces before any upload.
    """
    global _installed_factory
    from huggingface_hub.utils import set_client_factory

    with _install_lock:
        previous = _current_factory()
        if previous is _installed_factory and previous is not None:
            return
        transport_class = _make_transport_class()

        def factory() -> Any:
            client = previous()
            inner = getattr(client, "_transport", None)
            if inner is None:
                raise BackstopRefused("cannot install the tiergate backstop on this huggingface_hub HTTP client")
            client._transport = transport_class(inner, approvals)
            mounts = getattr(client, "_mounts", {})
            for pattern, transport in list(mounts.items()):
                if transport is not None:
                    mounts[pattern] = transport_class(transport, approvals)
            return client

        set_client_factory(factory)
        _installed_factory = factory


def installed() -> bool:
    return _installed_factory is not None and _current_factory() is _installed_factory
