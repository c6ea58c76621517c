"""A pushed revision's identity, read from Hub metadata: no LFS weight is downloaded.

The Hub stores the sha256 of every LFS file in its pointer and returns it with the file list
(``repo_info(files_metadata=True)``: ``siblings[].lfs.sha256``). Those are the digests the gate's manifest is made
of, so a 20 GiB model is checked with a few kilobytes of metadata. Regular (non-LFS) files only come with their git
blob id, a SHA-1: they are small (the Hub caps them at 10 MB), so they are downloaded and hashed, and the bytes are
checked against the blob id so that what was hashed is what the tree holds.

Every read is pinned to the commit the metadata came from, so a push that lands during the check cannot mix trees.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from gate.core.dsse import MAX_ENVELOPE_BYTES
from gate.core.manifest import ATTESTATION_SUFFIXES, FileDigest, Manifest
from gate.core.verify import AttestationInput
from gate.errors import InputError
from gate.integrations.git.treemanifest import check_tree_paths, is_attestation_path, is_ignored, manifest_from_files
from gate.integrations.hf.tiers import HubState

#: A non-LFS file larger than this is refused rather than downloaded: the Hub keeps regular files under 10 MB, so a
#: larger one means the metadata and the content disagree about what the file is.
MAX_REGULAR_BYTES = 64 * 1024 * 1024
#: The attestation folder is read whole; more files than this is not an attestation folder.
MAX_ATTESTATION_FILES = 1000
DOWNLOAD_WORKERS = 4


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
    def missing(cls, repo_id: str, repo_type: str) -> "RemoteRevision":
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
        files[sibling.rfilename] = RemoteFile(sibling.rfilename, int(size if size is not None else sibling.size or 0),
                                              sibling.blob_id, sha)
    if not info.sha:
        raise InputError(f"{repo_id}: the Hub did not say which commit revision {revision or 'main'} is")
    return RemoteRevision(repo_id, repo_type or "model", info.sha, HubState.of(info), files)


def ref_heads(api: Any, repo_id: str, repo_type: str | None = None, token: Any = None) -> list[tuple[str, str]]:
    """(ref, commit) for every branch and tag head, one ref per commit, the default branch first.

    Widening access to a repository publishes all of them at once, so all of them are checked.
    """
    refs = api.list_repo_refs(repo_id, repo_type=repo_type, token=token)
    heads: dict[str, str] = {}
    for item in list(refs.branches) + list(refs.tags):
        heads.setdefault(item.target_commit, item.ref)
    return sorted(((ref, sha) for sha, ref in heads.items()), key=lambda pair: pair[0] != "refs/heads/main")


def git_blob_id(data: bytes) -> str:
    """Git's object id of a blob: SHA-1 over ``blob <size>\\0`` and the bytes."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()  # noqa: S324 - git's identifier, not security


def fetch_file(api: Any, rev: RemoteRevision, path: str, limit: int, token: Any = None) -> bytes:
    """Download one small file of ``rev`` (pinned to its commit), refusing more than ``limit`` bytes."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(rev.repo_id, path, repo_type=rev.repo_type, revision=rev.sha, endpoint=api.endpoint)
    headers = build_hf_headers(token=token if token is not None else api.token, library_name=api.library_name,
                               library_version=api.library_version, user_agent=api.user_agent, headers=api.headers)
    chunks: list[bytes] = []
    size = 0
    with get_session().stream("GET", url, headers=headers) as response:
        if response.status_code >= 400:
            response.read()
        hf_raise_for_status(response)
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise InputError(f"{rev.label}: {path} is larger than {limit} bytes; not downloading it to hash it")
            chunks.append(chunk)
    return b"".join(chunks)


def _checked_content(api: Any, rev: RemoteRevision, item: RemoteFile, limit: int, token: Any) -> bytes:
    data = fetch_file(api, rev, item.path, limit, token)
    if item.is_lfs:
        if hashlib.sha256(data).hexdigest() != item.lfs_sha256:
            raise InputError(f"{rev.label}: {item.path}: downloaded content does not match its LFS sha256")
    elif item.blob_id and git_blob_id(data) != item.blob_id:
        raise InputError(f"{rev.label}: {item.path}: downloaded content does not match its git blob id")
    return data


def file_digests(api: Any, rev: RemoteRevision, paths: Iterable[str], token: Any = None) -> dict[str, FileDigest]:
    """sha256 of each path: from LFS metadata, or by downloading and hashing the (small) regular file."""
    wanted = [rev.files[p] for p in paths]
    digests = {f.path: FileDigest(f.path, f.size, f.lfs_sha256) for f in wanted if f.lfs_sha256}
    regular = [f for f in wanted if not f.lfs_sha256]
    for item in regular:
        if item.size > MAX_REGULAR_BYTES:
            raise InputError(f"{rev.label}: {item.path} is a {item.size}-byte file not stored with LFS; "
                             "the gate only checks large files through their LFS sha256. Track it with git-lfs.")

    def one(item: RemoteFile) -> FileDigest:
        data = _checked_content(api, rev, item, MAX_REGULAR_BYTES, token)
        return FileDigest(item.path, len(data), hashlib.sha256(data).hexdigest())

    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        for digest in pool.map(one, regular):
            digests[digest.path] = digest
    return digests


def identity_paths(rev: RemoteRevision) -> list[str]:
    """The paths that make up the model identity (ignored ones, e.g. .gitattributes, need no digest)."""
    return sorted(p for p in rev.files if not is_ignored(p))


def revision_manifest(api: Any, rev: RemoteRevision, token: Any = None) -> Manifest:
    """The gate manifest of a revision, the same as ``hash_model`` gives for the folder it was uploaded from."""
    check_tree_paths(rev.files, rev.label)
    digests = file_digests(api, rev, identity_paths(rev), token)
    return manifest_from_files(digests.values(), rev.label)


def attestation_paths(paths: Iterable[str]) -> list[str]:
    found = sorted(p for p in paths if is_attestation_path(p) and p.endswith(ATTESTATION_SUFFIXES))
    if len(found) > MAX_ATTESTATION_FILES:
        raise InputError(f"{len(found)} files in .attestations/ is more than the {MAX_ATTESTATION_FILES} read")
    return found


def revision_attestations(api: Any, rev: RemoteRevision, paths: Sequence[str] | None = None,
                          token: Any = None) -> list[AttestationInput]:
    """The attestations kept in the revision's ``.attestations/`` folder (or just ``paths`` of it)."""
    chosen = attestation_paths(rev.files) if paths is None else list(paths)

    def one(path: str) -> list[AttestationInput]:
        data = _checked_content(api, rev, rev.files[path], MAX_ENVELOPE_BYTES, token)
        source = f"hf://{rev.label}/{path}"
        if path.endswith(".jsonl"):
            lines = [line for line in data.splitlines() if line.strip()]
            return [AttestationInput(f"{source}:{n}", line) for n, line in enumerate(lines, 1)]
        return [AttestationInput(source, data)]

    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        return [item for items in pool.map(one, chosen) for item in items]
