"""A pushed revision's identity, read from Hub metadata: no LFS weight is downloaded.

The Hub stores the sha256 of every LFS file in its pointer and returns it with the file list
(``repo_info(files_metadata=True)``: ``siblings[].lfs.sha256``). Those are the digests the gate's manifest is made
of, so a 20 GiB model is checked with a few kilobytes of metadata. Regular (non-LFS) files only come with their git
blob id, a SHA-1: they are small (the Hub caps them at 10 MB), so they are downloaded and hashed, and the bytes are
checked against the blob id so that what was hashed is what the tree holds.

Every read is pinned to the commit the metadata came from, so a push that lands during the check cannot mix trees.

Formats are judged by content as for a folder (:mod:`tiergate.core.formats`): a regular file from its downloaded bytes,
an LFS file from HTTP Range requests for its first and last bytes (:class:`HubFileSource`; ~128 KiB per weight
file, counted in bench/bench_hf.py), so weights are still not downloaded. Files under excluded paths are downloaded
(they are small or refused by size first) and judged by the core identity rule.

Widening access to a repository (private -> public, removing gating) publishes every commit reachable from any of its
refs, pull requests included, not just the heads: anyone may download a file at any commit sha. So
:func:`reachable_commits` lists them all (bounded by :func:`max_reachable_commits`, past which the gate refuses) and
:class:`CommitReader` reads many commits of one repository cheaply: one metadata request per commit, each small file
and attestation downloaded once whatever number of commits hold it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable, Sequence

from tiergate.core import history
from tiergate.core.collect import attestation_inputs
from tiergate.core.dsse import MAX_ENVELOPE_BYTES
from tiergate.core.formats import BytesSource, SizeOnly, classify
from tiergate.core.manifest import (ATTESTATION_SUFFIXES, MAX_EXCLUDED_TEXT_BYTES, FileDigest, Manifest,
                                    check_excluded_budget, excluded_rule)
from tiergate.core.verify import AttestationInput
from tiergate.errors import ConfigError, GateError, InputError
from tiergate.integrations.git.treemanifest import (check_excluded_content, check_tree_paths, is_attestation_path,
                                                is_ignored, manifest_from_files)
from tiergate.integrations.hf.errors import TooManyCommits
from tiergate.integrations.hf.tiers import HubState

#: A non-LFS file larger than this is refused rather than downloaded: the Hub keeps regular files under 10 MB, so a
#: larger one means the metadata and the content disagree about what the file is.
MAX_REGULAR_BYTES = 64 * 1024 * 1024
#: The attestation folder is read whole; more files than this is not an attestation folder.
MAX_ATTESTATION_FILES = 1000
DOWNLOAD_WORKERS = 4
#: Widening access publishes every commit reachable from a ref; past this many the gate refuses instead of checking
#: (fail closed). ``GATE_HF_MAX_COMMITS`` overrides it (the webhook service reads it), as does ``max_commits=``.
MAX_REACHABLE_COMMITS = 1000
MAX_COMMITS_ENV = "GATE_HF_MAX_COMMITS"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a revision as the Hub describes it: LFS files come with their sha256, regular ones do not."""

    path: str
    size: int
    blob_id: str | None
    lfs_sha256: str | None

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None


@dataclass(frozen=True)
class RemoteRevision:
    """A repo at one commit: who can see it (state) and what is in it (files)."""

    repo_id: str
    repo_type: str
    sha: str
    state: HubState
    files: dict[str, RemoteFile] = field(default_factory=dict)
    exists: bool = True

    @property
    def label(self) -> str:
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"{prefix}{self.repo_id}@{self.sha[:12]}" if self.sha else f"{prefix}{self.repo_id}"

    @classmethod
    def missing(cls, repo_id: str, repo_type: str) -> RemoteRevision:
        """A repository that does not exist yet: no files, no state."""
        return cls(repo_id, repo_type, "", HubState(private=False), {}, exists=False)


def read_revision(api: Any, repo_id: str, *, revision: str | None = None, repo_type: str | None = None,
                  token: Any = None) -> RemoteRevision:
    """The file list with LFS digests and the visibility of ``repo_id`` at ``revision`` (default branch if None)."""
    info = api.repo_info(repo_id, revision=revision, repo_type=repo_type, files_metadata=True, token=token)
    files: dict[str, RemoteFile] = {}
    for sibling in info.siblings or ():
        lfs = sibling.lfs
        sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        size = (lfs.get("size") if isinstance(lfs, dict) else getattr(lfs, "size", None)) if lfs else None
        _check_listed_digest(repo_id, revision, sibling.rfilename, "sha256", sha, _SHA256_HEX)
        _check_listed_digest(repo_id, revision, sibling.rfilename, "git blob id", sibling.blob_id, _BLOB_ID_HEX)
        files[sibling.rfilename] = RemoteFile(sibling.rfilename, int(size if size is not None else sibling.size or 0),
                                              sibling.blob_id, sha)
    if not info.sha:
        raise InputError(f"{repo_id}: the Hub did not say which commit revision {revision or 'main'} is")
    return RemoteRevision(repo_id, repo_type or "model", info.sha, HubState.of(info), files)


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_BLOB_ID_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _check_listed_digest(repo_id: str, revision: str | None, path: str, kind: str, value: Any,
                         shape: re.Pattern[str]) -> None:
    """Refuse a digest the Hub listed that is not one: a gated repository lists ``***`` to a caller without access.

    Raises InputError: a placeholder is never trusted as a file's identity."""
    if value is None or (isinstance(value, str) and shape.fullmatch(value)):
        return
    shown = str(value)[:20]
    hint = (" (the Hub lists this placeholder for the files of a gated repository to a token not on its access "
            "list: use a token with access)") if "*" in shown else ""
    raise InputError(f"{repo_id}@{revision or 'main'}: the Hub listed {shown!r} as the {kind} of {path}, not a "
                     f"digest the gate can check{hint}; nothing was allowed")


def ref_heads(api: Any, repo_id: str, repo_type: str | None = None, token: Any = None) -> list[tuple[str, str]]:
    """(ref, commit) for every branch, tag and pull-request head, one ref per commit, the default branch first.

    Widening access to a repository publishes all of them at once (``refs/pr/N`` is as downloadable as a branch), so
    all of them are checked.
    """
    refs = api.list_repo_refs(repo_id, repo_type=repo_type, include_pull_requests=True, token=token)
    heads: dict[str, str] = {}
    for item in list(refs.branches) + list(refs.tags) + list(getattr(refs, "pull_requests", None) or ()):
        heads.setdefault(item.target_commit, item.ref)
    return sorted(((ref, sha) for sha, ref in heads.items()), key=lambda pair: pair[0] != "refs/heads/main")


def max_reachable_commits(value: int | None = None) -> int:
    """The most commits the gate checks before widening access: ``value``, else $GATE_HF_MAX_COMMITS, else 1000."""
    if value is None:
        raw = os.environ.get(MAX_COMMITS_ENV, "").strip()
        if not raw:
            return MAX_REACHABLE_COMMITS
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"${MAX_COMMITS_ENV}={raw[:40]!r}: not a whole number of commits") from None
    if value < 1:
        raise ConfigError(f"the most commits to check ({MAX_COMMITS_ENV} / max_commits) must be at least 1, "
                          f"not {value}")
    return value


@dataclass(frozen=True)
class ReachableCommit:
    """A commit that can be downloaded once access widens: the ref it was found through, and whether it is that
    ref's head (False: it is in the ref's history)."""

    ref: str
    sha: str
    head: bool

    @property
    def where(self) -> str:
        return f"{self.ref} at {self.sha[:12]}" if self.head else f"{self.sha[:12]} in the history of {self.ref}"


def reachable_commits(api: Any, repo_id: str, heads: Sequence[tuple[str, str]], *, repo_type: str | None = None,
                      token: Any = None, limit: int | None = None, known: frozenset[str] = frozenset()
                      ) -> tuple[list[ReachableCommit], dict[str, frozenset[str]]]:
    """Every commit reachable from ``heads`` ((ref, commit) pairs), each once: the heads first, then their history;
    ``known`` commits (checked already, or already reachable where they are going) are left out, and not counted.

    Returns the commits and, for each head, the set of commits reachable from it (itself included). The history of
    each head is listed at that commit (``HfApi.list_repo_commits(revision=sha)``), so a ref that moves meanwhile
    does not change what is listed. Raises :class:`TooManyCommits` past ``limit`` (default
    :func:`max_reachable_commits`): history the gate has not checked is refused, never assumed clean.
    """
    limit = max_reachable_commits(limit)
    found: dict[str, ReachableCommit] = {}

    def add(item: ReachableCommit) -> None:
        if item.sha in found or item.sha in known:
            return
        found[item.sha] = item
        if len(found) > limit:
            prefix = "" if (repo_type or "model") == "model" else f"{repo_type}s/"
            raise TooManyCommits(
                f"{prefix}{repo_id}: more than {limit} commits are reachable from its branches, tags and pull "
                f"requests, more than the gate checks (${MAX_COMMITS_ENV} or max_commits= raises the bound); every "
                "one of them becomes downloadable when access widens, so access is not widened over history the gate "
                "has not checked. Squash the history (HfApi.super_squash_history) or publish from a fresh repository")

    for ref, sha in heads:
        add(ReachableCommit(ref, sha, True))
    reach: dict[str, frozenset[str]] = {}
    for ref, sha in heads:
        shas = {sha}
        for commit in api.list_repo_commits(repo_id, repo_type=repo_type, revision=sha, token=token):
            shas.add(commit.commit_id)
            add(ReachableCommit(ref, commit.commit_id, False))
        reach[sha] = frozenset(shas)
    return list(found.values()), reach


def git_blob_id(data: bytes) -> str:
    """Git's object id of a blob: SHA-1 over ``blob <size>\\0`` and the bytes."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()  # noqa: S324 - git's identifier, not security


def _session_headers(api: Any, token: Any) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(token=token if token is not None else api.token, library_name=api.library_name,
                            library_version=api.library_version, user_agent=api.user_agent, headers=api.headers)


def _file_url(api: Any, rev: RemoteRevision, path: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(rev.repo_id, path, repo_type=rev.repo_type, revision=rev.sha, endpoint=api.endpoint)


def fetch_file(api: Any, rev: RemoteRevision, path: str, limit: int, token: Any = None) -> bytes:
    """Download one small file of ``rev`` (pinned to its commit), refusing more than ``limit`` bytes."""
    from huggingface_hub.utils import get_session, hf_raise_for_status

    chunks: list[bytes] = []
    size = 0
    with get_session().stream("GET", _file_url(api, rev, path), headers=_session_headers(api, token)) as response:
        if response.status_code >= 400:
            response.read()
        hf_raise_for_status(response)
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise InputError(f"{rev.label}: {path} is larger than {limit} bytes; not downloading it to hash it")
            chunks.append(chunk)
    return b"".join(chunks)


class HubFileSource:
    """One file of a revision read with HTTP Range requests pinned to its commit: a :class:`ByteSource` for the
    content classifier, which asks for a few blocks (the first and last 64 KiB of a weight file)."""

    def __init__(self, api: Any, rev: RemoteRevision, item: RemoteFile, token: Any = None) -> None:
        self.api, self.rev, self.item, self.token = api, rev, item, token
        self.size = item.size
        self.bytes_read = 0

    def read_at(self, offset: int, n: int) -> bytes:
        """Raises OSError if the Hub does not answer the range (an error, or a whole file instead of a range)."""
        from huggingface_hub.utils import get_session

        n = max(0, min(n, self.size - offset))
        if n == 0:
            return b""
        headers = {**_session_headers(self.api, self.token), "Range": f"bytes={offset}-{offset + n - 1}"}
        out = bytearray()
        try:
            with get_session().stream("GET", _file_url(self.api, self.rev, self.item.path), headers=headers,
                                      follow_redirects=True) as response:
                if response.status_code != 206:
                    raise OSError(f"the Hub answered {response.status_code} to a Range request, not 206")
                for chunk in response.iter_bytes():
                    out += chunk
                    if len(out) > n:
                        raise OSError("the Hub sent more than the range asked for")
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - httpx errors: the file cannot be read, so it is not classified
            raise OSError(f"cannot read {self.item.path}: {exc}") from None
        self.bytes_read += len(out)
        return bytes(out)


def verify_listed_sha256(api: Any, rev: RemoteRevision, token: Any = None) -> int:
    """Download every LFS file of ``rev`` (streamed, never held) and check its bytes against the sha256 the Hub lists.

    For a file stored with Xet that sha256 was reported by the client that uploaded it, not computed by the Hub: this
    is the check that holds it to the bytes anyone downloads. Returns the bytes read; raises InputError naming the
    first file whose bytes differ.
    """
    from huggingface_hub.utils import get_session, hf_raise_for_status

    headers = _session_headers(api, token)

    def one(item: RemoteFile) -> int:
        url = _file_url(api, rev, item.path)
        hasher, size = hashlib.sha256(), 0
        with get_session().stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code >= 400:
                response.read()
            hf_raise_for_status(response)
            for chunk in response.iter_bytes():
                hasher.update(chunk)
                size += len(chunk)
        if size != item.size or hasher.hexdigest() != item.lfs_sha256:
            raise InputError(f"{rev.label}: the bytes of {item.path} ({size} bytes, sha256 {hasher.hexdigest()[:16]}…) "
                             f"are not the {item.size} bytes with sha256 {str(item.lfs_sha256)[:16]}… the Hub lists "
                             "(for Xet storage, the uploading client's word); nothing was allowed")
        return size

    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        return sum(pool.map(one, [f for f in rev.files.values() if f.is_lfs and not is_ignored(f.path)]))


def _checked_content(api: Any, rev: RemoteRevision, item: RemoteFile, limit: int, token: Any) -> bytes:
    data = fetch_file(api, rev, item.path, limit, token)
    if item.is_lfs:
        if hashlib.sha256(data).hexdigest() != item.lfs_sha256:
            raise InputError(f"{rev.label}: {item.path}: downloaded content does not match its LFS sha256")
    elif item.blob_id and git_blob_id(data) != item.blob_id:
        raise InputError(f"{rev.label}: {item.path}: downloaded content does not match its git blob id")
    return data


def _lfs_content(api: Any, rev: RemoteRevision, item: RemoteFile, token: Any) -> str:
    """Content class of an LFS file from ranged reads; InputError if the Hub does not serve them."""
    try:
        return classify(HubFileSource(api, rev, item, token)).kind
    except OSError as exc:
        raise InputError(f"{rev.label}: {item.path}: cannot read its first bytes to check its format ({exc})") from None


def file_digests(api: Any, rev: RemoteRevision, paths: Iterable[str], token: Any = None,
                 cache: dict[str, tuple[int, str, str]] | None = None) -> dict[str, FileDigest]:
    """sha256 and content class of each path: an LFS file's sha256 from metadata and its class from ranged reads of
    its first and last bytes; a (small) regular file downloaded, hashed and classified.

    ``cache`` (git blob id or ``lfs:<sha256>`` -> (size, sha256, class)) spares reading a file again for another
    commit that holds the same content: the blob id is checked against the downloaded bytes, so it names what was
    hashed.
    """
    wanted = [rev.files[p] for p in paths]
    for item in wanted:
        if not item.is_lfs and item.size > MAX_REGULAR_BYTES:
            raise InputError(f"{rev.label}: {item.path} is a {item.size}-byte file not stored with LFS; "
                             "the gate only checks large files through their LFS sha256. Track it with git-lfs.")
    digests: dict[str, FileDigest] = {}
    todo = []
    for item in wanted:
        key = f"lfs:{item.lfs_sha256}" if item.is_lfs else item.blob_id
        known = cache.get(key) if cache is not None and key else None
        if known is not None:
            digests[item.path] = FileDigest(item.path, known[0], known[1], known[2])
        else:
            todo.append(item)

    def one(item: RemoteFile) -> FileDigest:
        if item.is_lfs:
            assert item.lfs_sha256 is not None
            digest = FileDigest(item.path, item.size, item.lfs_sha256, _lfs_content(api, rev, item, token))
            key: str | None = f"lfs:{item.lfs_sha256}"
        else:
            data = _checked_content(api, rev, item, MAX_REGULAR_BYTES, token)
            digest = FileDigest(item.path, len(data), hashlib.sha256(data).hexdigest(),
                                classify(BytesSource(data)).kind)
            key = item.blob_id
        if cache is not None and key:
            cache[key] = (digest.size, digest.sha256, digest.content or "")
        return digest

    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        for digest in pool.map(one, todo):
            digests[digest.path] = digest
    return digests


def identity_paths(rev: RemoteRevision) -> list[str]:
    """The paths that make up the model identity (excluded ones, e.g. .gitattributes, are judged apart)."""
    return sorted(p for p in rev.files if not is_ignored(p))


def _content_key(item: RemoteFile) -> str | None:
    return f"lfs:{item.lfs_sha256}" if item.lfs_sha256 else (f"git:{item.blob_id}" if item.blob_id else None)


def _cached_content(api: Any, rev: RemoteRevision, item: RemoteFile, limit: int, token: Any,
                    cache: dict[str, bytes] | None) -> bytes:
    """A file's checked bytes (see :func:`_checked_content`), from ``cache`` (content key -> bytes) when there."""
    key = _content_key(item)
    data = cache.get(key) if cache is not None and key else None
    if data is None:
        data = _checked_content(api, rev, item, limit, token)
        if cache is not None and key:
            cache[key] = data
    return data


def excluded_content(api: Any, rev: RemoteRevision, paths: Iterable[str], token: Any = None,
                     cache: dict[str, bytes] | None = None) -> None:
    """Judge every file under an excluded path by its bytes, as for a folder (ModelError naming the revision).

    A file over the size limit of its rule is refused from its metadata, without downloading it; the others are
    downloaded (checked against their sha256 or blob id) and kept in ``cache`` (shared with the attestations).
    """
    def one(path: str) -> None:
        item = rev.files[path]
        rule = excluded_rule(path)
        limit = MAX_ENVELOPE_BYTES if rule == "attestation" else MAX_EXCLUDED_TEXT_BYTES
        if rule.startswith("refuse:") or item.size > limit:
            check_excluded_content(path, SizeOnly(item.size), rev.label)  # refuses by name or by size
        check_excluded_content(path, BytesSource(_cached_content(api, rev, item, limit, token, cache)), rev.label)

    chosen = sorted(p for p in paths if is_ignored(p))
    check_excluded_budget(((p, rev.files[p].size) for p in chosen), rev.label)  # from metadata, before any read
    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        list(pool.map(one, chosen))


def revision_manifest(api: Any, rev: RemoteRevision, token: Any = None,
                      cache: dict[str, tuple[int, str, str]] | None = None,
                      blobs: dict[str, bytes] | None = None) -> Manifest:
    """The gate manifest of a revision, the same as ``hash_model`` gives for the folder it was uploaded from, with
    the same identity rule: every file under an excluded path is judged by its bytes."""
    check_tree_paths(rev.files, rev.label)
    excluded_content(api, rev, rev.files, token, blobs)
    digests = file_digests(api, rev, identity_paths(rev), token, cache)
    return manifest_from_files(digests.values(), rev.label)


def attestation_paths(paths: Iterable[str]) -> list[str]:
    found = sorted(p for p in paths if is_attestation_path(p) and p.endswith(ATTESTATION_SUFFIXES))
    if len(found) > MAX_ATTESTATION_FILES:
        raise InputError(f"{len(found)} files in .attestations/ is more than the {MAX_ATTESTATION_FILES} read")
    return found


def revision_attestations(api: Any, rev: RemoteRevision, paths: Sequence[str] | None = None,
                          token: Any = None, cache: dict[str, bytes] | None = None) -> list[AttestationInput]:
    """The attestations kept in the revision's ``.attestations/`` folder (or just ``paths`` of it).

    ``cache`` (blob key -> bytes) spares downloading the same attestation file again for another commit.
    """
    chosen = attestation_paths(rev.files) if paths is None else list(paths)

    def one(path: str) -> list[AttestationInput]:
        data = _cached_content(api, rev, rev.files[path], MAX_ENVELOPE_BYTES, token, cache)
        return attestation_inputs(f"hf://{rev.label}/{path}", data)

    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        return [item for items in pool.map(one, chosen) for item in items]


def holds_nothing(rev: RemoteRevision) -> bool:
    """Whether a commit holds nothing of a model (:func:`tiergate.core.history.holds_nothing`): it has no model to
    decide on; what its files hold is still judged by content (:func:`excluded_content`)."""
    return history.holds_nothing(rev.files)


@dataclass
class CommitCheck:
    """What to decide for one reachable commit: its manifest and evidence, or why it cannot be read (then it cannot
    be cleared)."""

    commit: ReachableCommit
    manifest: Manifest | None = None
    attestations: list[AttestationInput] = field(default_factory=list)
    error: GateError | None = None


class CommitReader:
    """Reads many commits of one repository: each commit's file list once (one metadata request, pinned to the
    commit), each small regular file and attestation file downloaded once whatever number of commits hold it."""

    def __init__(self, api: Any, repo_id: str, repo_type: str | None = None, token: Any = None) -> None:
        self.api, self.repo_id, self.repo_type, self.token = api, repo_id, repo_type, token
        self._revisions: dict[str, RemoteRevision] = {}
        self._digests: dict[str, tuple[int, str, str]] = {}
        self._blobs: dict[str, bytes] = {}

    def revision(self, sha: str) -> RemoteRevision:
        if sha not in self._revisions:
            rev = read_revision(self.api, self.repo_id, revision=sha, repo_type=self.repo_type, token=self.token)
            if rev.sha != sha:
                raise InputError(f"{rev.label}: the Hub described commit {rev.sha} when asked for {sha}")
            self._revisions[sha] = rev
        return self._revisions[sha]

    def prefetch(self, shas: Iterable[str], workers: int = 8) -> None:
        """Read the file lists of many commits in parallel (one metadata request each: the cost of a history walk).
        Failures are left for :meth:`revision` to raise when the commit is checked."""
        todo = [sha for sha in dict.fromkeys(shas) if sha not in self._revisions]

        def one(sha: str) -> None:
            with contextlib.suppress(Exception):  # raised again, in order, when the commit is checked
                self.revision(sha)

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
            list(pool.map(one, todo))

    def manifest(self, sha: str) -> Manifest:
        return revision_manifest(self.api, self.revision(sha), self.token, self._digests, self._blobs)

    def attestations(self, sha: str) -> list[AttestationInput]:
        return revision_attestations(self.api, self.revision(sha), token=self.token, cache=self._blobs)

    def checks(self, commits: Sequence[ReachableCommit]) -> list[CommitCheck]:
        """The inputs of a decision for each commit access would widen to: every head, and every commit in their
        history except those that hold nothing (:func:`holds_nothing`).

        Evidence for a commit: its own ``.attestations/``, and any attestation kept in another of these commits that
        names the commit's model (an attestation is about a model, wherever it is kept: weights uploaded in one
        commit and attested in the next are cleared by the later commit's attestations). A commit that cannot be
        read (a large file out of LFS, a bad attestation folder) comes back with ``error`` set: it is not cleared.
        """
        out: list[CommitCheck] = []
        for commit in commits:
            check = CommitCheck(commit)
            try:
                rev = self.revision(commit.sha)
                if not commit.head and holds_nothing(rev):
                    # Nothing to decide on, but what its excluded paths hold is published too: judged by content.
                    excluded_content(self.api, rev, rev.files, self.token, self._blobs)
                    continue
                check.attestations = self.attestations(commit.sha)
            except GateError as exc:
                check.error = exc
            out.append(check)
        pool = history.EvidencePool()
        for check in out:
            pool.add(check.attestations)
        for check in out:
            if check.error is not None:
                continue
            try:
                check.manifest = self.manifest(check.commit.sha)
            except GateError as exc:
                check.error = exc
                continue
            check.attestations = pool.for_model(check.manifest.root_digest, check.attestations)
        return out
