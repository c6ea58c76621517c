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
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from collections.abc import Sequence

from tiergate.core.collect import attestation_inputs
from tiergate.core.dsse import MAX_ENVELOPE_BYTES
from tiergate.core.formats import MAX_TEXT_BYTES, ByteSource, BytesSource, FileSource, SizeOnly, classify
from tiergate.core.manifest import CHUNK_SIZE, ExcludedBudget, FileDigest, Manifest
from tiergate.core.verify import AttestationInput
from tiergate.errors import InputError, ModelError
from tiergate.integrations.git.treemanifest import (check_excluded_content, check_tree_paths, is_attestation_path,
                                                is_ignored, manifest_from_files)

LFS_SPEC = b"version https://git-lfs.github.com/spec/v1"
#: git-lfs writes pointers well under this; a larger blob is content, not a pointer.
MAX_POINTER_BYTES = 1024
_POINTER_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_POINTER_SIZE = re.compile(rb"^size (\d+)$", re.MULTILINE)
ZERO_SHA = "0" * 40
SYMLINK = "120000"
SUBMODULE = "160000"
#: A symlink's blob is its target path; a larger one is content hidden behind a link, not a link.
MAX_SYMLINK_BYTES = 4096


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
    #: Content class of the file (tiergate.core.formats); None for an LFS file whose object is not in the local store.
    content: str | None = None


class GitRepo:
    """A repository the hook runs in, read with ``git`` subprocesses (one persistent ``cat-file --batch``)."""

    def __init__(self, path: str | os.PathLike[str] = ".") -> None:
        self.path = Path(path)
        self._batch: subprocess.Popen[bytes] | None = None
        self._check: subprocess.Popen[bytes] | None = None
        self._digests: dict[str, BlobDigest] = {}
        self._changes: dict[str, list[Change]] = {}
        self._media: Path | None = None

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> str:  # noqa: A002 - as subprocess.run
        result = subprocess.run(["git", *args], cwd=self.path, input=input, capture_output=True, check=False)
        if check and result.returncode != 0:
            raise InputError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode("utf-8", errors="surrogateescape")

    def config(self, key: str) -> str | None:
        value = self.git("config", "--get", key, check=False).strip()
        return value or None

    def has_commit(self, sha: str) -> bool:
        return subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=self.path,
                              capture_output=True, check=False).returncode == 0

    def close(self) -> None:
        for proc in (self._batch, self._check):
            if proc is not None:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait()
        self._batch = self._check = None

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- trees and blobs ---------------------------------------------------------------------------------------

    def tree(self, commit: str) -> list[TreeEntry]:
        out = subprocess.run(["git", "ls-tree", "-r", "-z", "--long", "--full-tree", commit], cwd=self.path,
                             capture_output=True, check=False)
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
        assert proc.stdin is not None
        assert proc.stdout is not None
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
        # The blob is kept (in memory, or on disk past the text limit) to be classified by its bytes afterwards.
        with tempfile.SpooledTemporaryFile(max_size=MAX_TEXT_BYTES) as kept:
            left = size
            while left:
                chunk = stream.read(min(CHUNK_SIZE, left))
                if not chunk:
                    raise InputError(f"git cat-file ended early reading {oid}")
                hasher.update(chunk)
                kept.write(chunk)
                left -= len(chunk)
            stream.read(1)
            kept.seek(0)
            head = kept.read(MAX_POINTER_BYTES + 1)
            pointer = parse_pointer(head) if size <= MAX_POINTER_BYTES else None
            if pointer is not None:
                digest = BlobDigest(pointer.size, pointer.oid, True, self._lfs_content(pointer))
            else:
                digest = BlobDigest(size, hasher.hexdigest(), False, classify(_SpoolSource(kept, size)).kind)
        self._digests[oid] = digest
        return digest

    def _lfs_content(self, pointer: LfsPointer) -> str | None:
        """Content class of an LFS file, read from the local object (None if it is not there: not classified)."""
        try:
            fd = os.open(self.lfs_object(pointer.oid), os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size != pointer.size:
                return None
            return classify(FileSource(fd, pointer.size)).kind
        finally:
            os.close(fd)

    def excluded_source(self, oid: str, where: str, path: str) -> ByteSource:
        """The bytes of a file under an excluded path, to be judged by content: the blob, or the local object of an
        LFS pointer (git-lfs uploads it, so it is judged like any blob). Read only if its size is within bounds."""
        size = self.blob_size(oid)
        pointer = self.pointer(oid) if size <= MAX_POINTER_BYTES else None
        if pointer is None:
            return _LazyBlob(self, oid, size)
        local = self.lfs_object(pointer.oid)
        if not local.is_file():
            raise ModelError(f"{where}: {path} is an LFS file whose object is not in the local LFS store, so what "
                             "git-lfs would upload for it cannot be checked; `git lfs fetch` it or remove it")
        data = local.read_bytes() if pointer.size <= MAX_ENVELOPE_BYTES else None
        if data is not None and hashlib.sha256(data).hexdigest() != pointer.oid:
            raise ModelError(f"{where}: {path}: its local LFS object does not match its pointer")
        return BytesSource(data) if data is not None else SizeOnly(pointer.size)

    def blob_size(self, oid: str) -> int:
        """A blob's size, without reading it (one persistent ``cat-file --batch-check``)."""
        if self._check is None:
            self._check = subprocess.Popen(["git", "cat-file", "--batch-check"], cwd=self.path,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._check.stdin is not None
        assert self._check.stdout is not None
        self._check.stdin.write(oid.encode() + b"\n")
        self._check.stdin.flush()
        header = self._check.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise InputError(f"git object {oid} is not a readable blob")
        return int(header[2])

    def pointer(self, oid: str) -> LfsPointer | None:
        """The LFS pointer a blob holds, or None; reads at most a pointer's worth of the blob."""
        cached = self._digests.get(oid)
        if cached is not None:
            return LfsPointer(cached.sha256, cached.size) if cached.lfs else None
        if self.blob_size(oid) > MAX_POINTER_BYTES:
            return None
        return parse_pointer(self.read_blob(oid, MAX_POINTER_BYTES))

    def changes(self, commit: str) -> list[Change]:
        """What ``commit`` adds or changes, compared with each of its parents (all of it for a root commit).

        Every blob a push sends is in this list for at least one pushed commit, or is already on the remote (in the
        tree of a parent that is), so deciding on the commits that introduce blobs covers everything published.
        """
        if commit not in self._changes:
            self.load_changes([commit])
        return self._changes[commit]

    def load_changes(self, commits: Sequence[str]) -> None:
        """Read the changes of many commits with one ``git diff-tree --stdin`` (a push may send thousands)."""
        todo = [c for c in dict.fromkeys(commits) if c not in self._changes]
        if not todo:
            return
        out = subprocess.run(["git", "diff-tree", "--stdin", "-r", "-z", "--no-renames", "--root", "-m"],
                             cwd=self.path, input="".join(f"{c}\n" for c in todo).encode(), capture_output=True,
                             check=False)
        if out.returncode != 0:
            raise InputError(f"cannot list the changes of {len(todo)} commit(s): "
                             f"{out.stderr.decode(errors='replace').strip()}")
        found: dict[str, dict[tuple[str, str], Change]] = {c: {} for c in todo}
        fields = out.stdout.split(b"\x00")
        commit = ""
        i = 0
        while i < len(fields):
            field = fields[i]
            if not field.startswith(b":"):  # a commit id: the records that follow are its changes
                if field:
                    commit = field.decode()
                    found.setdefault(commit, {})
                i += 1
                continue
            if not commit or i + 1 >= len(fields):
                raise InputError("git diff-tree: unexpected output")
            parts = field[1:].split()
            if parts[4] != b"D":
                try:
                    path = fields[i + 1].decode("utf-8")
                except UnicodeDecodeError:
                    raise ModelError(f"{commit[:12]}: file name {fields[i + 1]!r} is not valid UTF-8") from None
                change = Change(path, parts[3].decode(), parts[1].decode())
                found[commit].setdefault((change.path, change.oid), change)
            i += 2
        for commit in todo:
            self._changes[commit] = list(found[commit].values())

    # --- LFS objects -------------------------------------------------------------------------------------------

    def lfs_media_dir(self) -> Path:
        """Where git-lfs keeps this repository's objects (``git lfs env``'s LocalMediaDir, so lfs.storage counts)."""
        if self._media is None:
            media = None
            env = subprocess.run(["git", "lfs", "env"], cwd=self.path, capture_output=True, text=True, check=False) \
                if shutil.which("git-lfs") else None
            if env is not None and env.returncode == 0:
                for line in env.stdout.splitlines():
                    if line.startswith("LocalMediaDir=") and line[len("LocalMediaDir="):].strip():
                        media = Path(line[len("LocalMediaDir="):].strip())
                        break
            if media is None:
                common = Path(self.git("rev-parse", "--git-common-dir").strip())
                common = common if common.is_absolute() else self.path / common
                storage = self.config("lfs.storage")
                media = (common / storage if storage else common / "lfs") / "objects"
            self._media = media if media.is_absolute() else self.path / media
        return self._media

    def lfs_object(self, oid: str) -> Path:
        return self.lfs_media_dir() / oid[:2] / oid[2:4] / oid

    def lfs_object_problem(self, pointer: LfsPointer) -> str | None:
        """Why the local object a pointer names cannot be pushed as that pointer's file, or None if it can.

        git-lfs uploads ``lfs/objects/<oid>`` as it finds it, without hashing it again: an object replaced after the
        commit would be published under a digest that was decided on but is not its own. Read in chunks.
        """
        path = self.lfs_object(pointer.oid)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the `with handle` below, once open errors are told
        except FileNotFoundError:
            return ("is not in the local LFS store, so what would be uploaded for it cannot be checked; fetch it "
                    "(`git lfs fetch --all`) and push again")
        except OSError as exc:
            return f"cannot be read from the local LFS store ({exc.strerror}) at {path}"
        with handle:
            hasher = hashlib.sha256()
            size = 0
            while chunk := handle.read(CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
        if size != pointer.size or hasher.hexdigest() != pointer.oid:
            return (f"does not match its pointer ({size} bytes, sha256 {hasher.hexdigest()[:12]}...: it was changed "
                    f"or replaced after it was committed); delete {path} and `git lfs fetch` it again, or, if the new "
                    "content is the one to release, add the file and commit it again")
        return None


class _SpoolSource:
    """A spooled copy of a blob, read at offsets."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle, self.size = handle, size

    def read_at(self, offset: int, n: int) -> bytes:
        self.handle.seek(offset)
        return self.handle.read(n)


class _LazyBlob:
    """A blob read only when its bytes are asked for (after its size has been judged)."""

    def __init__(self, repo: GitRepo, oid: str, size: int) -> None:
        self.repo, self.oid, self.size = repo, oid, size
        self._data: bytes | None = None

    def read_at(self, offset: int, n: int) -> bytes:
        if self._data is None:
            self._data = self.repo.read_blob(self.oid, self.size)
        return self._data[offset:offset + n]


@dataclass(frozen=True)
class Change:
    """A file a commit adds or changes: its path, new blob id and mode (``120000`` symlink, ``160000`` submodule)."""

    path: str
    oid: str
    mode: str


@dataclass(frozen=True)
class PushedTree:
    """The model identity of one pushed commit, and the attestations its tree carries."""

    commit: str
    manifest: Manifest
    attestations: tuple[AttestationInput, ...]
    lfs_files: int
    paths: tuple[str, ...] = ()  # every path of the tree, ignored ones included


def _resolve_symlink(entry: TreeEntry, target: bytes, files: dict[str, TreeEntry], commit: str) -> TreeEntry:
    """A symlink counts as the file it names, if that is a file of the same tree (as hash_model does for folders)."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), target.decode("utf-8", "replace")))
    found = files.get(resolved)
    if found is None or found.mode == SYMLINK:
        raise ModelError(f"{commit[:12]}: {entry.path}: symlink to {target.decode('utf-8', 'replace')!r}, which is "
                         "not a file of this commit; replace it with the file itself")
    return TreeEntry(found.mode, found.kind, found.oid, found.size, entry.path)


def pushed_tree(repo: GitRepo, commit: str) -> PushedTree:
    """Manifest and attestations of ``commit``'s tree, without a checkout.

    Every file gets its content class; every file under an excluded path is judged by its bytes
    (:func:`check_excluded`), LFS-tracked ones by their local object, and a submodule there is refused.
    """
    entries = repo.tree(commit)
    where = f"commit {commit[:12]}"
    check_tree_paths((e.path for e in entries), where)
    files = {e.path: e for e in entries}
    digests: list[FileDigest] = []
    attestations: list[AttestationInput] = []
    budget = ExcludedBudget(where)
    lfs = 0
    for entry in entries:
        if entry.kind != "blob":  # under an excluded path too: `git push --recurse-submodules` pushes its commits
            where_kind = "an excluded path" if is_ignored(entry.path) else "a model"
            raise ModelError(f"{where}: {entry.path} is a submodule; {where_kind} may hold only files of its own tree "
                             "(a submodule's content is not checked, and `git push --recurse-submodules` would push "
                             "its commits unchecked); remove it or vendor its files")
        if entry.mode == SYMLINK:
            if entry.size > MAX_SYMLINK_BYTES:
                raise ModelError(f"{where}: {entry.path}: a symlink whose target is {entry.size} bytes long is "
                                 "content, not a link; commit the file itself")
            # The link is replaced by its target: what follows checks the target.
            entry = _resolve_symlink(entry, repo.read_blob(entry.oid, MAX_SYMLINK_BYTES), files, commit)  # noqa: PLW2901
        if is_ignored(entry.path):
            source = check_excluded_change(repo, entry.path, entry.oid, where)
            budget.add(source.size)
            if is_attestation_path(entry.path):
                attestations.extend(_attestation(source, entry, commit))
            continue
        digest = repo.blob_digest(entry.oid)
        lfs += digest.lfs
        digests.append(FileDigest(entry.path, digest.size, digest.sha256, digest.content))
    return PushedTree(commit, manifest_from_files(digests, where), tuple(attestations), lfs,
                      tuple(e.path for e in entries))


def check_excluded_change(repo: GitRepo, path: str, oid: str, where: str) -> ByteSource:
    """Judge a file under an excluded path by its bytes (ModelError if refused); returns its bytes' source."""
    source = repo.excluded_source(oid, where, path)
    check_excluded_content(path, source, where)
    return source


def _attestation(source: ByteSource, entry: TreeEntry, commit: str) -> list[AttestationInput]:
    return attestation_inputs(f"git:{commit[:12]}:{entry.path}", source.read_at(0, source.size))


def new_commits(repo: GitRepo, local_sha: str, on_remote: Sequence[str]) -> list[str]:
    """Commits a push sends: reachable from ``local_sha`` and from none of ``on_remote``.

    ``on_remote`` are commits known to be on the remote: the remote's current tips that git gives the hook on stdin
    (see :func:`remote_tips`). Remote-tracking refs are not used: they come from the fetch url, may be stale, and
    say nothing about a push url that points somewhere else.
    """
    out = repo.git("rev-list", "--topo-order", local_sha, "--not", *on_remote, "--")
    return [line for line in out.split() if line]

