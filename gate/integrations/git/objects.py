"""Reading what a push sends: trees, blobs and LFS pointers, through git's own plumbing.

A pushed tree's identity is built without a checkout: each file's sha256 comes from its LFS pointer (``oid
sha256:...``, the digest git-lfs and the Hub use) or, for a regular blob, from hashing the blob as ``git cat-file``
streams it. Digests are cached by blob id, so checking several refs or commits reads each blob once.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from gate.core.dsse import MAX_ENVELOPE_BYTES
from gate.core.manifest import ATTESTATION_SUFFIXES, CHUNK_SIZE, FileDigest, Manifest
from gate.core.verify import AttestationInput
from gate.errors import InputError, ModelError
from gate.integrations.git.treemanifest import check_tree_paths, is_attestation_path, is_ignored, manifest_from_files

LFS_SPEC = b"version https://git-lfs.github.com/spec/v1"
#: git-lfs writes pointers well under this; a larger blob is content, not a pointer.
MAX_POINTER_BYTES = 1024
_POINTER_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.M)
_POINTER_SIZE = re.compile(rb"^size (\d+)$", re.M)
ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class LfsPointer:
    oid: str
    size: int


def parse_pointer(data: bytes) -> LfsPointer | None:
    """The LFS pointer in a blob, or None if the blob is ordinary content."""
    if len(data) > MAX_POINTER_BYTES or not data.startswith(LFS_SPEC):
        return None
    oid, size = _POINTER_OID.search(data), _POINTER_SIZE.search(data)
    if not oid or not size:
        return None
    return LfsPointer(oid.group(1).decode(), int(size.group(1)))


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    kind: str  # blob | commit (submodule)
    oid: str
    size: int
    path: str


@dataclass(frozen=True)
class BlobDigest:
    size: int
    sha256: str
    lfs: bool


class GitRepo:
    """A repository the hook runs in, read with ``git`` subprocesses (one persistent ``cat-file --batch``)."""

    def __init__(self, path: str | os.PathLike[str] = ".") -> None:
        self.path = Path(path)
        self._batch: subprocess.Popen[bytes] | None = None
        self._digests: dict[str, BlobDigest] = {}

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        result = subprocess.run(["git", *args], cwd=self.path, input=input, capture_output=True)
        if check and result.returncode != 0:
            raise InputError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode("utf-8", errors="surrogateescape")

    def config(self, key: str) -> str | None:
        value = self.git("config", "--get", key, check=False).strip()
        return value or None

    def has_commit(self, sha: str) -> bool:
        return subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=self.path,
                              capture_output=True).returncode == 0

    def close(self) -> None:
        if self._batch is not None:
            assert self._batch.stdin is not None
            self._batch.stdin.close()
            self._batch.wait()
            self._batch = None

    def __enter__(self) -> "GitRepo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- trees and blobs ---------------------------------------------------------------------------------------

    def tree(self, commit: str) -> list[TreeEntry]:
        out = subprocess.run(["git", "ls-tree", "-r", "-z", "--long", "--full-tree", commit], cwd=self.path,
                             capture_output=True)
        if out.returncode != 0:
            raise InputError(f"cannot list the tree of {commit}: {out.stderr.decode(errors='replace').strip()}")
        entries = []
        for record in out.stdout.split(b"\x00"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            try:
                path = raw_path.decode("utf-8")
            except UnicodeDecodeError:
                raise ModelError(f"{commit[:12]}: file name {raw_path!r} is not valid UTF-8") from None
            entries.append(TreeEntry(mode, kind, oid, int(size) if size != "-" else 0, path))
        return entries

    def _cat(self) -> subprocess.Popen[bytes]:
        if self._batch is None:
            self._batch = subprocess.Popen(["git", "cat-file", "--batch"], cwd=self.path, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE)
        return self._batch

    def _stream(self, oid: str) -> tuple[int, IO[bytes]]:
        proc = self._cat()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(oid.encode() + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise InputError(f"git object {oid} is not a readable blob")
        return int(header[2]), proc.stdout

    def read_blob(self, oid: str, limit: int) -> bytes:
        size, stream = self._stream(oid)
        if size > limit:
            left = size + 1  # drain it, newline included, so the batch stays in step
            while left:
                left -= len(stream.read(min(CHUNK_SIZE, left))) or left
            raise InputError(f"blob {oid[:12]} is larger than {limit} bytes")
        data = stream.read(size)
        stream.read(1)
        return data

    def blob_digest(self, oid: str) -> BlobDigest:
        """sha256 of the file a blob stands for: the LFS object's (from its pointer) or the blob's own bytes."""
        cached = self._digests.get(oid)
        if cached is not None:
            return cached
        size, stream = self._stream(oid)
        hasher = hashlib.sha256()
        head = b""
        left = size
        while left:
            chunk = stream.read(min(CHUNK_SIZE, left))
            if not chunk:
                raise InputError(f"git cat-file ended early reading {oid}")
            if len(head) < MAX_POINTER_BYTES + 1:
                head += chunk[:MAX_POINTER_BYTES + 1 - len(head)]
            hasher.update(chunk)
            left -= len(chunk)
        stream.read(1)
        pointer = parse_pointer(head) if size <= MAX_POINTER_BYTES else None
        digest = BlobDigest(pointer.size, pointer.oid, True) if pointer else BlobDigest(size, hasher.hexdigest(), False)
        self._digests[oid] = digest
        return digest

    def lfs_object(self, oid: str) -> Path:
        common = Path(self.git("rev-parse", "--git-common-dir").strip())
        common = common if common.is_absolute() else self.path / common
        return common / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


@dataclass(frozen=True)
class PushedTree:
    """The model identity of one pushed commit, and the attestations its tree carries."""

    commit: str
    manifest: Manifest
    attestations: tuple[AttestationInput, ...]
    lfs_files: int


def _resolve_symlink(entry: TreeEntry, target: bytes, files: dict[str, TreeEntry], commit: str) -> TreeEntry:
    """A symlink counts as the file it names, if that is a file of the same tree (as hash_model does for folders)."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), target.decode("utf-8", "replace")))
    found = files.get(resolved)
    if found is None or found.mode == "120000":
        raise ModelError(f"{commit[:12]}: {entry.path}: symlink to {target.decode('utf-8', 'replace')!r}, which is "
                         "not a file of this commit; replace it with the file itself")
    return TreeEntry(found.mode, found.kind, found.oid, found.size, entry.path)


def pushed_tree(repo: GitRepo, commit: str) -> PushedTree:
    """Manifest and attestations of ``commit``'s tree, without a checkout."""
    entries = repo.tree(commit)
    where = f"commit {commit[:12]}"
    check_tree_paths((e.path for e in entries), where)
    files = {e.path: e for e in entries}
    digests: list[FileDigest] = []
    attestations: list[AttestationInput] = []
    lfs = 0
    for entry in entries:
        if entry.kind != "blob":
            if is_ignored(entry.path):
                continue
            raise ModelError(f"{where}: {entry.path} is a submodule; a model's files must be in its own tree")
        if entry.mode == "120000":
            entry = _resolve_symlink(entry, repo.read_blob(entry.oid, 4096), files, commit)
        if is_attestation_path(entry.path) and entry.path.endswith(ATTESTATION_SUFFIXES):
            attestations.extend(_attestation(repo, entry, commit))
        if is_ignored(entry.path):
            continue
        digest = repo.blob_digest(entry.oid)
        lfs += digest.lfs
        digests.append(FileDigest(entry.path, digest.size, digest.sha256))
    return PushedTree(commit, manifest_from_files(digests, where), tuple(attestations), lfs)


def _attestation(repo: GitRepo, entry: TreeEntry, commit: str) -> list[AttestationInput]:
    data = repo.read_blob(entry.oid, MAX_ENVELOPE_BYTES)
    pointer = parse_pointer(data)
    if pointer is not None:  # an attestation kept in LFS: read the local object
        path = repo.lfs_object(pointer.oid)
        if not path.is_file() or path.stat().st_size > MAX_ENVELOPE_BYTES:
            return []
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != pointer.oid:
            return []
    source = f"git:{commit[:12]}:{entry.path}"
    if entry.path.endswith(".jsonl"):
        lines = [line for line in data.splitlines() if line.strip()]
        return [AttestationInput(f"{source}:{n}", line) for n, line in enumerate(lines, 1)]
    return [AttestationInput(source, data)]


def new_commits(repo: GitRepo, local_sha: str, remote_sha: str, remote_name: str) -> list[str]:
    """Commits a push sends: reachable from ``local_sha`` and not already on the remote (as far as git knows)."""
    exclude: list[str] = ["--not", f"--remotes={remote_name}"] if remote_name else ["--not"]
    if remote_sha != ZERO_SHA and repo.has_commit(remote_sha):
        exclude.append(remote_sha)
    out = repo.git("rev-list", "--topo-order", local_sha, *exclude)
    return [line for line in out.split() if line]


def introduced_blobs(repo: GitRepo, commits: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """For each commit, the (path, blob id) it adds or changes (merges compared with each parent)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for commit in commits:
        raw = subprocess.run(["git", "diff-tree", "-r", "-z", "--no-renames", "--root", "-m", "--no-commit-id",
                              commit], cwd=repo.path, capture_output=True).stdout
        fields = raw.split(b"\x00")
        changes: list[tuple[str, str]] = []
        i = 0
        while i < len(fields) - 1:
            meta = fields[i]
            if not meta.startswith(b":"):
                i += 1
                continue
            parts = meta[1:].split()
            path = fields[i + 1].decode("utf-8", "replace")
            if parts[4] != b"D" and parts[1] not in (b"160000", b"120000"):
                changes.append((path, parts[3].decode()))
            i += 2
        out[commit] = changes
    return out

