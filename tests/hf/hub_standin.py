"""A stand-in for the Hugging Face Hub, on 127.0.0.1, for driving the real huggingface_hub client offline.

It implements the endpoints the gate's Hub integration and ``HfApi`` use, with the shapes huggingface_hub 2.x
parses (see /work/shared/reference/huggingface.md): repo create, model/dataset info with ``files_metadata``
siblings, refs (pull requests with ``include_prs``), commit listing (paginated with ``Link`` headers, as
``HfApi.list_repo_commits`` follows them), preupload, commit (NDJSON), LFS batch + PUT + verify, paths-info,
settings, discussions, resolve (GET) and validate-yaml. ``fail`` makes chosen requests answer an error. It keeps
repositories as git-like commits of trees in memory and records every request (method, path, size of the body, and the
body itself when small) so tests can assert what was sent.

LFS objects can be *synthetic* (``add_synthetic_lfs``): a size and a seed instead of bytes, served as a generated
stream. The benchmark uses that to describe a 20 GiB model without holding it.

What else the tests rely on, as the Hub does it:

- **Xet.** huggingface_hub 2.4 uploads through hf_xet whenever it is installed and ``HF_HUB_DISABLE_XET`` is unset
  (``is_xet_available()``; the Hub is not asked), except for file-object sources, which go by LFS. hf_xet first asks
  ``GET /api/{type}s/{repo}/xet-write-token/{rev}`` from Rust. The stand-in does not store Xet content: it records
  that request and answers 501, so an upload that tried Xet is visible and fails loudly.
- **Gated repositories** list ``***`` instead of each LFS sha256 (and git blob id) to a token that is not on the
  repository's access list (``Repo.readers``; the token is the ``Authorization: Bearer`` value).
- **Duplicates** (``POST /api/{type}s/{repo}/duplicate``) copy the whole history: every commit, branch and tag.
- **Pull requests** are ``refs/pr/N``, discussions with ``isPullRequest``; comments and status changes are kept.
- ``delay`` adds that many seconds to every request (the benchmark's stand-in for a Hub round trip), and
  ``on_request(method, path)`` runs before a request is answered (tests use it to act mid-upload).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import re
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx", ".h5", ".msgpack", ".ckpt", ".pkl", ".npy",
                ".npz", ".zip", ".tar", ".gz")
REGULAR_LIMIT = 10 * 1024 * 1024
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
KEEP_BODY = 1024 * 1024
BLOCK = 1024 * 1024
#: The Hub lists commits a page at a time; tests lower ``HubStandin.commits_page_size`` to exercise pagination.
COMMITS_PAGE_SIZE = 50
_EPOCH = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()  # git's object id


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@functools.lru_cache(maxsize=8)  # ranged reads ask for a few bytes of it many times
def synthetic_block(seed: int) -> bytes:
    """1 MiB of deterministic bytes; a synthetic object is this block repeated (and cut at its size)."""
    out = bytearray()
    counter = 0
    while len(out) < BLOCK:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:BLOCK])


def synthetic_header(size: int) -> bytes:
    """A safetensors header for one U8 tensor filling the rest of a ``size``-byte file, so that synthetic weights
    are classified as safetensors by their content (empty for files too small to hold one)."""
    for width in range(128, 200, 8):
        data = size - 8 - width
        if data < 0:
            return b""
        text = json.dumps({"w": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}).encode()
        if len(text) <= width:
            return struct.pack("<Q", width) + text.ljust(width)
    return b""


def synthetic_stream(seed: int, size: int, start: int = 0) -> Iterator[bytes]:
    """The bytes of a synthetic object from ``start``: a safetensors header, then the block repeated."""
    header = synthetic_header(size)
    block = synthetic_block(seed)
    pos = start
    while pos < size:
        if pos < len(header):
            piece = header[pos:]
        else:
            at = (pos - len(header)) % BLOCK
            piece = block[at:]
        piece = piece[:size - pos]
        pos += len(piece)
        yield piece


def synthetic_sha256(seed: int, size: int) -> str:
    h = hashlib.sha256()
    for piece in synthetic_stream(seed, size):
        h.update(piece)
    return h.hexdigest()


@dataclass(frozen=True)
class Blob:
    """A file in a tree: inline bytes (regular) or an LFS object id and size."""

    size: int
    content: bytes | None = None
    lfs_oid: str | None = None

    @property
    def blob_id(self) -> str:
        if self.lfs_oid is not None:
            return git_blob_id(lfs_pointer(self.lfs_oid, self.size))
        return git_blob_id(self.content or b"")


@dataclass
class Commit:
    sha: str
    parent: str | None
    tree: dict[str, Blob]
    message: str
    date: str = "2026-11-01T12:00:00.000Z"


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    gated: Any = False
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)
    discussions: list[dict[str, Any]] = field(default_factory=list)
    #: for a gated repository: the tokens on its access list (others see ``***`` digests); None: everyone
    readers: set[str] | None = None
    #: the thread of each pull request (status, comments), kept apart from ``discussions`` (those the gate opened)
    pr_threads: dict[int, dict[str, Any]] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        if rev.startswith("refs/heads/") and rev[11:] in self.branches:
            return self.branches[rev[11:]]
        if rev.startswith("refs/pr/") and rev[8:].isdigit() and int(rev[8:]) in self.prs:
            return self.prs[int(rev[8:])]
        if rev in self.commits:
            return rev
        return None


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body_size: int
    body: bytes  # the first KEEP_BODY bytes


class HubStandin:
    """The in-memory Hub and its HTTP server. ``start()`` returns the endpoint URL."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.synthetic: dict[str, tuple[int, int]] = {}  # oid -> (seed, size)
        self.requests: list[Recorded] = []
        self.bytes_out = 0
        self.bytes_ranged = 0  # bytes served for Range requests (part of bytes_out)
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counter = itertools.count(1)
        self._clock = itertools.count(1)
        self.endpoint = ""
        self.commits_page_size = COMMITS_PAGE_SIZE
        #: (method, path substring) -> (status, X-Error-Code or None): requests that answer an error instead.
        self.failures: dict[tuple[str, str], tuple[int, str | None]] = {}
        #: seconds added to every request (a Hub round trip), and a hook run before each request is answered
        self.delay = 0.0
        self.on_request: Callable[[str, str], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> str:
        standin = self

        class Handler(_Handler):
            hub = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="hub-standin", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- seeding and inspection (tests call these directly) ------------------------------------------------------

    def new_sha(self) -> str:
        return hashlib.sha1(f"{uuid.uuid4()}-{next(self._counter)}".encode(), usedforsecurity=False).hexdigest()

    def create_repo(self, repo_id: str, *, repo_type: str = "model", private: bool = False, gated: Any = False,
                    files: dict[str, bytes] | None = None, lfs_files: dict[str, tuple[str, int]] | None = None) -> Repo:
        """A repository whose first commit has .gitattributes, ``files`` (LFS by suffix/size) and ``lfs_files``
        (path -> (oid, size) of objects already in LFS storage)."""
        with self.lock:
            repo = Repo(repo_type, repo_id, private, gated)
            tree = {".gitattributes": Blob(len(GITATTRIBUTES), GITATTRIBUTES)}
            self.repos[(repo_type, repo_id)] = repo
            self._commit(repo, "main", tree, "initial commit")
            if files or lfs_files:
                tree = dict(tree)
                for path, data in (files or {}).items():
                    tree[path] = self._store(path, data)
                for path, (oid, size) in (lfs_files or {}).items():
                    tree[path] = Blob(size, lfs_oid=oid)
                self._commit(repo, "main", tree, "add files")
            return repo

    def _store(self, path: str, data: bytes) -> Blob:
        if self.is_lfs(path, len(data), data[:512]):
            oid = hashlib.sha256(data).hexdigest()
            self.lfs[oid] = data
            return Blob(len(data), lfs_oid=oid)
        return Blob(len(data), content=data)

    def add_synthetic_lfs(self, seed: int, size: int, oid: str | None = None) -> str:
        """An LFS object of ``size`` generated bytes; its oid is computed (slow for big sizes) unless given."""
        oid = oid or synthetic_sha256(seed, size)
        self.synthetic[oid] = (seed, size)
        return oid

    def _commit(self, repo: Repo, branch: str | None, tree: dict[str, Blob], message: str,
                parent: str | None = None) -> Commit:
        parent = parent if parent is not None else (repo.branches.get(branch) if branch else None)
        date = (_EPOCH + timedelta(seconds=next(self._clock))).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        commit = Commit(self.new_sha(), parent, tree, message, date)
        repo.commits[commit.sha] = commit
        if branch:
            repo.branches[branch] = commit.sha
        return commit

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def head_tree(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> dict[str, Blob]:
        repo = self.repo(repo_id, repo_type)
        return repo.commits[repo.branches[branch]].tree

    def push_commit(self, repo_id: str, files: dict[str, bytes], *, repo_type: str = "model", branch: str = "main",
                    message: str = "pushed", delete: Iterable[str] = ()) -> str:
        """A commit made behind the gate's back (a raw git push): returns the new sha. ``delete``: paths removed."""
        with self.lock:
            repo = self.repo(repo_id, repo_type)
            tree = dict(repo.commits[repo.branches[branch]].tree)
            for path in delete:
                del tree[path]
            for path, data in files.items():
                tree[path] = self._store(path, data)
            return self._commit(repo, branch, tree, message).sha

    def open_pr(self, repo_id: str, files: dict[str, bytes], *, repo_type: str = "model", base: str = "main",
                message: str = "a pull request") -> tuple[int, str]:
        """A pull request (``refs/pr/N``) adding ``files`` on top of ``base``: returns (N, its head commit)."""
        with self.lock:
            repo = self.repo(repo_id, repo_type)
            parent = repo.resolve(base)
            assert parent is not None
            tree = dict(repo.commits[parent].tree)
            for path, data in files.items():
                tree[path] = self._store(path, data)
            commit = self._commit(repo, None, tree, message, parent=parent)
            num = len(repo.discussions) + len(repo.prs) + 1
            repo.prs[num] = commit.sha
            return num, commit.sha

    def history(self, repo_id: str, rev: str = "main", repo_type: str = "model") -> list[str]:
        """The commits reachable from ``rev``, newest first (what the commit listing serves)."""
        repo = self.repo(repo_id, repo_type)
        sha = repo.resolve(rev)
        out = []
        while sha:
            out.append(sha)
            sha = repo.commits[sha].parent
        return out

    def set_visibility(self, repo_id: str, private: bool, repo_type: str = "model") -> None:
        with self.lock:
            self.repo(repo_id, repo_type).private = private

    def requests_matching(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    def downloads(self) -> list[Recorded]:
        """File downloads: GETs of /resolve/ without a Range header (ranged reads of a file's first bytes are not)."""
        return [r for r in self.requests_matching("GET", "/resolve/") if "range" not in r.headers]

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes_out = self.bytes_ranged = 0

    @staticmethod
    def is_lfs(path: str, size: int, sample: bytes) -> bool:
        return path.lower().endswith(LFS_SUFFIXES) or size > REGULAR_LIMIT or b"\x00" in sample

    def content_of(self, blob: Blob, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes of a blob, or of its range [start, end) (HTTP Range requests)."""
        if blob.lfs_oid is None or blob.lfs_oid in self.lfs:
            data = blob.content or b"" if blob.lfs_oid is None else self.lfs[blob.lfs_oid]
            yield data[start:end]
            return
        seed, size = self.synthetic[blob.lfs_oid]
        left = (size if end is None else min(end, size)) - start
        for piece in synthetic_stream(seed, size, start):
            if left <= 0:
                return
            yield piece[:left]
            left -= len(piece)

    def has_object(self, oid: str) -> bool:
        return oid in self.lfs or oid in self.synthetic


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandin
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; BaseHTTPRequestHandler's name
        pass

    # --- request plumbing --------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        with self.hub.lock:
            self.hub.requests.append(Recorded(self.command, unquote(url.path), parse_qs(url.query),
                                              {k.lower(): v for k, v in self.headers.items()}, len(body),
                                              body[:KEEP_BODY]))
        if self.hub.delay:
            time.sleep(self.hub.delay)
        if self.hub.on_request is not None:
            self.hub.on_request(self.command, unquote(url.path))
        failure = next((v for (m, part), v in list(self.hub.failures.items())
                        if m == self.command and part in unquote(url.path)), None)
        try:
            if failure is not None:
                raise _HubError(failure[0], f"injected failure for {self.command} {unquote(url.path)}", failure[1])
            status, payload, headers = self._route(self.command, url.path, parse_qs(url.query), body)
        except _HubError as exc:
            status, headers = exc.status, {"X-Error-Code": exc.code} if exc.code else {}
            payload = {"error": exc.message, **exc.extra}
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, tuple):  # (content type, length, chunk iterator)
            ctype, length, chunks = payload
        else:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            ctype, length, chunks = "application/json", len(data), iter([data])
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        for chunk in chunks:
            self.wfile.write(chunk)
            with self.hub.lock:
                self.hub.bytes_out += len(chunk)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815 - BaseHTTPRequestHandler's names

    # --- routing -------------------------------------------------------------------------------------------------

    def _repo(self, kind: str, repo_id: str) -> Repo:
        repo = self.hub.repos.get((_TYPES.get(kind, kind), repo_id))
        if repo is None:
            raise _HubError(404, f"Repository Not Found for url: {repo_id}", "RepoNotFound")
        return repo

    def _rev(self, repo: Repo, rev: str) -> Commit:
        sha = repo.resolve(rev)
        if sha is None:
            raise _HubError(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        return repo.commits[sha]

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        hub = self.hub
        parts = [unquote(p) for p in path.strip("/").split("/")]
        raw_parts = path.strip("/").split("/")
        with hub.lock:
            if parts[:2] == ["api", "agent-harnesses"]:
                raise _HubError(404, "not here")
            if parts[:2] == ["api", "validate-yaml"]:
                return 200, {"errors": [], "warnings": []}, {}
            if parts[:3] == ["api", "repos", "create"] and method == "POST":
                return self._create_repo(json.loads(body or b"{}"))
            if parts[0] == "_stats":  # for the benchmark: bytes served so far (and a reset)
                if method == "POST":
                    hub.requests.clear()
                    hub.bytes_out = hub.bytes_ranged = 0
                return 200, {"bytes_out": hub.bytes_out, "bytes_ranged": hub.bytes_ranged,
                             "requests": len(hub.requests)}, {}
            if parts[0] == "_lfs":
                return self._lfs_object(method, parts, body)
            if parts[0] == "api" and len(parts) >= 3 and parts[1] in _TYPES:
                return self._api_repo(method, parts[1], raw_parts[2:], query, body)
            if len(parts) >= 4 and ".git" in path and path.endswith("/info/lfs/objects/batch"):
                return self._lfs_batch(path, json.loads(body or b"{}"))
            return self._resolve(method, raw_parts)

    def _create_repo(self, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        name, org = data.get("name"), data.get("organization")
        repo_id = f"{org}/{name}" if org else str(name)
        repo_type = data.get("type") or "model"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.endpoint}/{prefix}{repo_id}"
        if (repo_type, repo_id) in self.hub.repos:
            raise _HubError(409, "You already created this model repo", url=url)
        private = data.get("visibility") == "private" if "visibility" in data else bool(data.get("private", False))
        self.hub.create_repo(repo_id, repo_type=repo_type, private=private)
        return 200, {"url": url, "name": repo_id}, {}

    def _api_repo(self, method: str, kind: str, rest: list[str], query: dict[str, list[str]],
                  body: bytes) -> tuple[int, Any, dict[str, str]]:
        # rest: ns, name, [action, ...] or name, [action ...]
        actions = {"revision", "preupload", "commit", "commits", "paths-info", "settings", "discussions", "refs",
                   "tree", "branch", "tag", "duplicate", "xet-write-token", "xet-read-token"}
        if len(rest) >= 2 and unquote(rest[1]) not in actions:
            repo_id, tail = f"{unquote(rest[0])}/{unquote(rest[1])}", rest[2:]
        else:
            repo_id, tail = unquote(rest[0]), rest[1:]
        repo = self._repo(kind, repo_id)
        action = unquote(tail[0]) if tail else ""
        if action in ("", "revision") and method == "GET":
            commit = self._rev(repo, tail[1] if len(tail) > 1 else "main")
            return 200, self._info(repo, commit, "blobs" in query, self._reader_may_see(repo)), {}
        if action in ("xet-write-token", "xet-read-token"):
            raise _HubError(501, "the stand-in Hub does not serve Xet storage")
        if action == "duplicate" and method == "POST":
            return self._duplicate(kind, repo, json.loads(body or b"{}"))
        if action == "refs":
            refs: dict[str, Any] = {
                "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                             for b, s in repo.branches.items()],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in repo.tags.items()],
                "converts": [],
            }
            if query.get("include_prs", ["0"])[0] not in ("", "0", "false"):  # the Hub lists PR refs only if asked
                refs["pullRequests"] = [{"name": str(n), "ref": f"refs/pr/{n}", "targetCommit": s}
                                        for n, s in repo.prs.items()]
            return 200, refs, {}
        if action == "commits" and method == "GET":
            return self._commits(kind, repo, unquote(tail[1]) if len(tail) > 1 else "main", query)
        if action == "preupload":
            commit = self._rev(repo, tail[1])
            files = json.loads(body)["files"]
            out = []
            for f in files:
                sample = base64.b64decode(f.get("sample", ""))
                mode = "lfs" if self.hub.is_lfs(f["path"], int(f["size"]), sample) else "regular"
                existing = commit.tree.get(f["path"])
                oid = None
                if existing is not None:
                    oid = existing.lfs_oid or existing.blob_id
                out.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return 200, {"files": out}, {}
        if action == "commit" and method == "POST":
            return self._commit(repo, unquote(tail[1]), query, body)
        if action == "paths-info" and method == "POST":
            commit = self._rev(repo, tail[1])
            form = parse_qs(body.decode())
            return 200, self._paths_info(commit, form.get("paths", [])), {}
        if action == "tree" and method == "GET":
            commit = self._rev(repo, tail[1] if len(tail) > 1 else "main")
            return 200, self._paths_info(commit, sorted(commit.tree)), {}
        if action == "branch" and method == "POST":
            data = json.loads(body or b"{}")
            name = unquote(tail[1])
            if name in repo.branches:
                raise _HubError(409, "Reference already exists")
            repo.branches[name] = self._rev(repo, data.get("startingPoint") or "main").sha
            return 200, {}, {}
        if action == "settings" and method == "PUT":
            data = json.loads(body or b"{}")
            if "gated" in data:
                repo.gated = data["gated"]
            if "visibility" in data:
                repo.private = data["visibility"] == "private"
            if "private" in data:
                repo.private = bool(data["private"])
            return 200, {}, {}
        if action == "tag" and method == "POST":
            data = json.loads(body or b"{}")
            name = unquote(tail[2]) if len(tail) > 2 else str(data.get("tag"))
            if name in repo.tags:
                raise _HubError(409, "Tag already exists")
            repo.tags[name] = self._rev(repo, unquote(tail[1]) if len(tail) > 1 else "main").sha
            return 200, {}, {}
        if action == "discussions" and len(tail) > 2 and method == "POST":
            return self._discussion_change(repo, int(tail[1]), unquote(tail[2]), json.loads(body or b"null") or {})
        if action == "discussions":
            if method == "POST":
                data = json.loads(body or b"{}")
                num = len(repo.discussions) + len(repo.prs) + 1
                repo.discussions.append({"num": num, "title": data.get("title", ""),
                                         "description": data.get("description", ""),
                                         "isPullRequest": bool(data.get("pullRequest"))})
                return 200, {"num": num}, {}
            num = int(tail[1])
            found = self._discussion(repo, num)
            return 200, {
                "title": found["title"], "num": num, "author": {"name": "tiergate"},
                "createdAt": "2026-11-01T12:00:00.000Z", "status": found.get("status", "open"),
                "repo": {"name": repo.repo_id, "type": repo.repo_type}, "isPullRequest": found["isPullRequest"],
                "events": [{"id": "e1", "type": "comment", "createdAt": "2026-11-01T12:00:00.000Z",
                            "author": {"name": "tiergate"},
                            "data": {"edited": False, "hidden": False, "latest": {"raw": found["description"]}}}],
                "changes": {"base": "refs/heads/main"}, "filesWithConflicts": [],
            }, {}
        raise _HubError(404, f"no route for {method} {action}")

    def _reader_may_see(self, repo: Repo) -> bool:
        """Whether this request's token may read the digests of a gated repository's files."""
        if repo.readers is None or not repo.gated:
            return True
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in repo.readers

    def _discussion(self, repo: Repo, num: int) -> dict[str, Any]:
        """A discussion or pull request by number (a pull request made by a push is listed as one)."""
        found = next((d for d in repo.discussions if d["num"] == num), None)
        if found is None and num in repo.prs:
            found = repo.pr_threads.setdefault(num, {"num": num, "title": f"pull request {num}", "description": "",
                                                     "isPullRequest": True, "status": "open", "comments": []})
        if found is None:
            raise _HubError(404, f"Discussion {num} not found")
        return found

    def _discussion_change(self, repo: Repo, num: int, resource: str,
                           data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """``POST .../discussions/{num}/{comment|status|merge}``."""
        found = self._discussion(repo, num)
        comments = found.setdefault("comments", [])
        if data.get("comment"):
            comments.append(str(data["comment"]))
        event: dict[str, Any] = {"id": f"e{len(comments)}", "createdAt": "2026-11-01T12:00:00.000Z",
                                 "author": {"name": "tiergate"}}
        if resource == "comment":
            event.update(type="comment", data={"edited": False, "hidden": False, "latest": {"raw": data["comment"]}})
            return 200, {"newMessage": event}, {}
        if resource == "status":
            found["status"] = str(data.get("status"))
            event.update(type="status-change", data={"status": found["status"]})
            return 200, {"newStatus": event}, {}
        if resource == "merge":
            if num not in repo.prs:
                raise _HubError(400, "not a pull request")
            repo.branches["main"] = self.hub._commit(repo, "main", dict(repo.commits[repo.prs[num]].tree),
                                                     f"Merge pull request #{num}").sha
            found["status"] = "merged"
            return 200, {}, {}
        raise _HubError(404, f"no discussion route {resource}")

    def _duplicate(self, kind: str, source: Repo, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """A server-side copy with the full history: every commit, branch and tag (pull requests are not copied)."""
        target = str(data.get("repository"))
        prefix = "" if source.repo_type == "model" else f"{source.repo_type}s/"
        url = f"{self.hub.endpoint}/{prefix}{target}"
        if (source.repo_type, target) in self.hub.repos:
            raise _HubError(409, "Repository already exists", url=url)
        private = data.get("visibility") == "private" if "visibility" in data else source.private
        copy = Repo(source.repo_type, target, private, False, dict(source.commits), dict(source.branches),
                    dict(source.tags))
        self.hub.repos[(source.repo_type, target)] = copy
        return 200, {"url": url, "filesCopyPending": False}, {}

    def _commits(self, kind: str, repo: Repo, rev: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        """``GET /api/{type}s/{repo}/commits/{rev}[?p=N]``: the commits reachable from ``rev``, newest first, a page at
        a time; a ``Link: <...>; rel="next"`` header points at the next page, as on the Hub."""
        chain = []
        sha: str | None = self._rev(repo, rev).sha
        while sha:
            chain.append(repo.commits[sha])
            sha = repo.commits[sha].parent
        size = self.hub.commits_page_size
        page = int(query.get("p", ["0"])[0])
        items = [{"id": c.sha, "title": c.message, "message": "", "date": c.date,
                  "authors": [{"user": "someone", "avatar": None}]} for c in chain[page * size:(page + 1) * size]]
        headers = {}
        if (page + 1) * size < len(chain):
            url = f"{self.hub.endpoint}/api/{kind}/{repo.repo_id}/commits/{quote(rev, safe='')}?p={page + 1}"
            headers["Link"] = f'<{url}>; rel="next"'
        return 200, items, headers

    def _info(self, repo: Repo, commit: Commit, blobs: bool, may_see: bool = True) -> dict[str, Any]:
        siblings = []
        for path in sorted(commit.tree):
            blob = commit.tree[path]
            entry: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry.update({"size": blob.size, "blobId": blob.blob_id if may_see else "***"})
                if blob.lfs_oid:
                    entry["lfs"] = {"sha256": blob.lfs_oid if may_see else "***", "size": blob.size,
                                    "pointerSize": len(lfs_pointer(blob.lfs_oid, blob.size))}
            siblings.append(entry)
        return {"_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "sha": commit.sha,
                "private": repo.private, "gated": repo.gated, "disabled": False, "downloads": 0, "likes": 0,
                "tags": [], "siblings": siblings, "lastModified": "2026-11-01T12:00:00.000Z",
                "createdAt": "2026-11-01T12:00:00.000Z", "author": repo.repo_id.split("/")[0]}

    def _paths_info(self, commit: Commit, paths: list[str]) -> list[dict[str, Any]]:
        out = []
        for path in paths:
            blob = commit.tree.get(path)
            if blob is None:
                if any(p.startswith(path.rstrip("/") + "/") for p in commit.tree):
                    out.append({"type": "directory", "path": path, "oid": "0" * 40})
                continue
            entry: dict[str, Any] = {"type": "file", "path": path, "size": blob.size, "oid": blob.blob_id}
            if blob.lfs_oid:
                entry["lfs"] = {"oid": blob.lfs_oid, "size": blob.size,
                                "pointerSize": len(lfs_pointer(blob.lfs_oid, blob.size))}
            out.append(entry)
        return out

    def _commit(self, repo: Repo, rev: str, query: dict[str, list[str]],
                body: bytes) -> tuple[int, Any, dict[str, str]]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        base = self._rev(repo, rev)
        parent = header.get("parentCommit")
        create_pr = query.get("create_pr") == ["1"]
        if parent and not create_pr and base.sha != parent and not base.sha.startswith(parent):
            raise _HubError(412, f"A commit has happened since. Please refresh and try again. ({parent} != {base.sha})")
        tree = dict(repo.commits[parent].tree if parent and create_pr and parent in repo.commits else base.tree)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                data = base64.b64decode(value["content"])
                tree[value["path"]] = Blob(len(data), content=data)
            elif key == "lfsFile":
                oid = value["oid"]
                if not self.hub.has_object(oid):
                    raise _HubError(400, f"LFS object {oid} was not uploaded")
                size = value.get("size")
                if size is None:
                    size = len(self.hub.lfs[oid]) if oid in self.hub.lfs else self.hub.synthetic[oid][1]
                tree[value["path"]] = Blob(int(size), lfs_oid=oid)
            elif key == "deletedFile":
                if value["path"] not in tree:
                    raise _HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del tree[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in tree if p.startswith(prefix)]:
                    del tree[path]
        message = header.get("summary", "")
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        if create_pr:
            commit = self.hub._commit(repo, None, tree, message, parent=base.sha)
            num = len(repo.discussions) + len(repo.prs) + 1
            repo.prs[num] = commit.sha
            return 200, {"commitOid": commit.sha,
                         "commitUrl": f"{self.hub.endpoint}/{prefix}{repo.repo_id}/commit/{commit.sha}",
                         "pullRequestUrl": f"{self.hub.endpoint}/{prefix}{repo.repo_id}/discussions/{num}"}, {}
        branch = next((b for b, s in repo.branches.items() if b == unquote(rev)), None) or "main"
        commit = self.hub._commit(repo, branch, tree, message, parent=base.sha)
        return 200, {"commitOid": commit.sha,
                     "commitUrl": f"{self.hub.endpoint}/{prefix}{repo.repo_id}/commit/{commit.sha}"}, {}

    def _lfs_batch(self, path: str, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        objects = []
        for obj in data.get("objects", []):
            oid, size = obj["oid"], obj["size"]
            if data.get("operation") == "upload" and not self.hub.has_object(oid):
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": f"{self.hub.endpoint}/_lfs/upload/{oid}"},
                    "verify": {"href": f"{self.hub.endpoint}/_lfs/verify"},
                }})
            else:
                objects.append({"oid": oid, "size": size})
        return 200, {"transfer": "basic", "objects": objects}, {}

    def _lfs_object(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        if parts[1] == "upload" and method == "PUT":
            oid = parts[2]
            if hashlib.sha256(body).hexdigest() != oid:
                raise _HubError(400, "uploaded content does not match its oid")
            self.hub.lfs[oid] = body
            return 200, {}, {}
        if parts[1] == "verify":
            return 200, {}, {}
        raise _HubError(404, "no such LFS route")

    def _resolve(self, method: str, raw_parts: list[str]) -> tuple[int, Any, dict[str, str]]:
        if "resolve" not in raw_parts:
            raise _HubError(404, "no route")
        i = raw_parts.index("resolve")
        head = [unquote(p) for p in raw_parts[:i]]
        kind = "model"
        if head and head[0] in ("datasets", "spaces"):
            kind, head = _TYPES[head[0]], head[1:]
        repo = self._repo(kind, "/".join(head))
        commit = self._rev(repo, raw_parts[i + 1])
        path = unquote("/".join(raw_parts[i + 2:]))
        blob = commit.tree.get(path)
        if blob is None:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{blob.lfs_oid or blob.blob_id}"'}
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "") or "")
        if wanted:  # one range, as the gate asks for (classifying a file from its first and last bytes)
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)) + 1 if wanted.group(2) else blob.size, blob.size)
            if start >= blob.size or end <= start:
                raise _HubError(416, "Range Not Satisfiable")
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{blob.size}"
            with self.hub.lock:
                self.hub.bytes_ranged += end - start
            return 206, ("application/octet-stream", end - start, self.hub.content_of(blob, start, end)), headers
        return 200, ("application/octet-stream", blob.size, self.hub.content_of(blob)), headers


def webhook_payload(repo_id: str, *, scope: str, action: str = "update", private: bool = False,
                    head_sha: str | None = None, updated_refs: list[dict[str, str]] | None = None,
                    updated_config: dict[str, Any] | None = None, repo_type: str = "model",
                    endpoint: str = "http://127.0.0.1") -> dict[str, Any]:
    """A webhook payload as the Hub sends it (version 3)."""
    payload: dict[str, Any] = {
        "event": {"action": action, "scope": scope},
        "repo": {"type": repo_type, "name": repo_id, "id": "6560c0ffee", "private": private,
                 "url": {"web": f"{endpoint}/{repo_id}", "api": f"{endpoint}/api/models/{repo_id}"},
                 "headSha": head_sha, "owner": {"id": "6560beef"}},
        "webhook": {"id": "6560feed", "version": 3},
    }
    if updated_refs is not None:
        payload["updatedRefs"] = updated_refs
    if updated_config is not None:
        payload["updatedConfig"] = updated_config
    return payload


