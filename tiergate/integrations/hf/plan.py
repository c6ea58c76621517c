"""What a commit will put in a repository, hashed locally before anything is sent, and the tree it leads to.

A commit is judged by the repository it produces, not by its operations alone: the revision after the commit is
what people can download, and what ``gate hf check`` and the webhook will check later. So the plan is applied to the
revision the commit is based on (its files known from Hub metadata, see :mod:`.remote`) and the manifest of the
result is what the gate decides on. For the usual case — a model folder uploaded to the root of a new repository —
that is exactly ``hash_model(folder)``.

The plan also lists the digest of every file the commit may write; the backstop (:mod:`.backstop`) refuses a
commit that carries anything else. And it keeps the sha256 of every :data:`BLOCK_SIZE` block of each file, taken in
the same read as the file's digest: the gated upload hands the uploader a :class:`CheckedSource`, which serves only
bytes whose block matches, so what is sent is exactly what was checked (a file changed after the check is refused
before its changed block leaves the process), whatever transport huggingface_hub would pick.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, cast
from collections.abc import Iterable, Mapping, Sequence

from tiergate.core.dsse import MAX_ENVELOPE_BYTES
from tiergate.core.formats import classify
from tiergate.core.manifest import (ATTESTATION_SUFFIXES, CHUNK_SIZE, FileDigest, Manifest, check_excluded_budget,
                                    default_workers)
from tiergate.core.verify import AttestationInput
from tiergate.errors import InputError, ModelError
from tiergate.integrations.git.treemanifest import (check_excluded_content, check_tree_paths, is_attestation_path,
                                                is_ignored, manifest_from_files)
from tiergate.integrations.hf import remote
from tiergate.integrations.hf.errors import BackstopRefused
from tiergate.integrations.hf.remote import RemoteRevision

#: The unit in which bytes handed to the uploader are checked against the check's read (4 MiB: a 20 GiB model keeps
#: 160 KiB of block digests, and a reader holds one block).
BLOCK_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class CommitPlan:
    """The content a commit to one repository may carry, as the gate checked it."""

    repo_type: str
    repo_id: str
    writes: Mapping[str, FileDigest]  # path in repo -> content (additions and copies)
    deleted_files: frozenset[str] = frozenset()
    deleted_folders: frozenset[str] = frozenset()
    local_attestations: tuple[AttestationInput, ...] = ()
    base: RemoteRevision | None = field(default=None, compare=False)
    #: path -> sha256 of each BLOCK_SIZE block of the added file, as read by the check
    blocks: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict, compare=False)

    def allows_write(self, path: str, sha256: str) -> bool:
        entry = self.writes.get(path)
        return entry is not None and entry.sha256 == sha256

    def allows_delete(self, path: str, folder: bool) -> bool:
        path = path.rstrip("/")
        if folder:
            return path in self.deleted_folders
        return path in self.deleted_files or any(path.startswith(d + "/") for d in self.deleted_folders)

    @property
    def oids(self) -> frozenset[str]:
        return frozenset(d.sha256 for d in self.writes.values())


@dataclass(frozen=True)
class SourceDigest:
    """One read of an upload source: its size, sha256, the sha256 of each block, and the bytes if kept."""

    size: int
    sha256: str
    blocks: tuple[bytes, ...]
    data: bytes | None = None


def _read_exactly(handle: Any, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the stream (file objects may return short reads)."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        chunk = handle.read(min(left, CHUNK_SIZE))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _hash_stream(handle: Any, keep: bool) -> SourceDigest:
    hasher = hashlib.sha256()
    size = 0
    kept: list[bytes] = []
    blocks: list[bytes] = []
    while True:
        block = _read_exactly(handle, BLOCK_SIZE)
        if not block:
            break
        hasher.update(block)
        blocks.append(hashlib.sha256(block).digest())
        size += len(block)
        if keep:
            if size > MAX_ENVELOPE_BYTES:
                raise InputError(f"larger than {MAX_ENVELOPE_BYTES} bytes; not an attestation")
            kept.append(block)
    return SourceDigest(size, hasher.hexdigest(), tuple(blocks), b"".join(kept) if keep else None)


def hash_source(source: Any, keep: bool = False) -> SourceDigest:
    """Size, sha256 and block digests of what an upload operation will read: a path, bytes, or a seekable binary
    file. A file object is read from its current position and put back there, as huggingface_hub does.

    Raises InputError when it cannot be read (or, with ``keep``, is too large for an attestation).
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as handle:
                return _hash_stream(handle, keep)
        except OSError as exc:
            raise InputError(f"{source}: cannot read: {exc.strerror}") from None
    if isinstance(source, (bytes, bytearray)):
        return _hash_stream(io.BytesIO(bytes(source)), keep)
    if isinstance(source, io.BufferedIOBase):
        start = source.tell()
        try:
            return _hash_stream(source, keep)
        finally:
            source.seek(start)
    raise InputError(f"cannot hash an upload source of type {type(source).__name__}")


class _Verified:
    """An upload source read at offsets through :class:`CheckedSource`: the classifier sees exactly the bytes the
    check hashed (and the upload will send); a block that changed since raises BackstopRefused."""

    def __init__(self, checked: CheckedSource, size: int) -> None:
        self.checked, self.size = checked, size

    def read_at(self, offset: int, n: int) -> bytes:
        self.checked.seek(offset)
        return self.checked.read(n)


def _digest_add(op: Any) -> tuple[FileDigest, tuple[bytes, ...], AttestationInput | None]:
    """Hash and classify what an addition uploads; a file under an excluded path is judged by the identity rule
    (ModelError if refused), the others get their content class."""
    path = op.path_in_repo
    keep = is_attestation_path(path) and path.endswith(ATTESTATION_SUFFIXES)
    try:
        read = hash_source(op.path_or_fileobj, keep)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    source = op.path_or_fileobj
    origin = source.tell() if isinstance(source, io.BufferedIOBase) else None
    checked = CheckedSource(source, path, read.size, read.blocks)
    try:
        verified = _Verified(checked, read.size)
        if is_ignored(path):
            check_excluded_content(path, verified, "upload")
            content = None
        else:
            content = classify(verified).kind
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    finally:
        checked.close()
        if origin is not None:
            source.seek(origin)  # huggingface_hub reads a file object from where it stood
    attestation = None
    if read.data is not None:
        attestation = AttestationInput(f"upload:{path}", read.data)
    return FileDigest(path, read.size, read.sha256, content), read.blocks, attestation


class CheckedSource(io.BufferedIOBase):
    """The bytes of an upload source exactly as the check read them, for huggingface_hub to upload.

    Every read is served from whole blocks re-read from the source and compared with the block digests the check
    took; a block that differs (the file changed, grew short) raises :class:`BackstopRefused` before any byte of it
    is handed out. Serves exactly the checked size. Being a file object (``io.BufferedIOBase``), it also makes
    huggingface_hub upload through its Python HTTP client (LFS), where the backstop sees every request, rather than
    through hf_xet, which reads paths from Rust.
    """

    def __init__(self, source: Any, path_in_repo: str, size: int, blocks: tuple[bytes, ...]) -> None:
        super().__init__()
        if len(blocks) != -(-size // BLOCK_SIZE):
            raise ValueError(f"{path_in_repo}: {len(blocks)} block digests for {size} bytes")
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        self._source, self._path, self._size, self._blocks = source, path_in_repo, size, blocks
        self._pos = 0
        # a file object is served from where it stood when handed over (huggingface_hub rewinds it to 0)
        self._origin = source.tell() if isinstance(source, io.BufferedIOBase) else 0
        self._cached: tuple[int, bytes] = (-1, b"")
        self._handle: Any = None
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        with self._lock:
            self._pos = max(0, base + offset)
            self._cached = (-1, b"")  # a new pass (huggingface_hub rewinds before each) reads the source again
            return self._pos

    def read(self, size: int | None = -1) -> bytes:
        with self._lock:
            left = self._size - self._pos if size is None or size < 0 else size
            if self._size == 0 and self._raw(0, 1):
                self._refuse("it is no longer empty")
            out = bytearray()
            while left > 0 and self._pos < self._size:
                index, start = divmod(self._pos, BLOCK_SIZE)
                piece = self._block(index)[start:start + left]
                out += piece
                self._pos += len(piece)
                left -= len(piece)
            return bytes(out)

    read1 = read

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()

    def _raw(self, offset: int, length: int) -> bytes:
        source = self._source
        if isinstance(source, (bytes, bytearray)):
            return bytes(source[offset:offset + length])
        if isinstance(source, str):
            if self._handle is None:
                try:
                    self._handle = open(source, "rb")  # noqa: SIM115 - closed by close()
                except OSError as exc:
                    raise BackstopRefused(f"{self._path}: {source} cannot be read any more ({exc.strerror}); "
                                          "nothing of it was committed") from None
            handle = self._handle
        else:
            handle = source
        handle.seek(self._origin + offset)
        return _read_exactly(handle, length)

    def _block(self, index: int) -> bytes:
        if self._cached[0] == index:
            return self._cached[1]
        length = min(BLOCK_SIZE, self._size - index * BLOCK_SIZE)
        last = index * BLOCK_SIZE + length >= self._size
        # the last block is read one byte long: a file that grew after the check is a changed file too
        data = self._raw(index * BLOCK_SIZE, length + 1 if last else length)
        if len(data) != length or hashlib.sha256(data).digest() != self._blocks[index]:
            self._refuse(f"bytes {index * BLOCK_SIZE}-{index * BLOCK_SIZE + length - 1} differ" if len(data) == length
                         else "its size differs")
        self._cached = (index, data)
        return data

    def _refuse(self, what: str) -> None:
        raise BackstopRefused(
            f"{self._path}: its content changed after the gate checked it ({what}); it was not uploaded and nothing "
            "was committed. Run the gated upload again so that the gate checks the file as it is now.")


def checked_operation(op: Any, plan: CommitPlan) -> Any:
    """A copy of the addition ``op`` whose content is a :class:`CheckedSource` over what ``plan`` checked.

    Raises BackstopRefused if the content is no longer what was checked (huggingface_hub reads it at once).
    """
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.lfs import UploadInfo

    digest = plan.writes[op.path_in_repo]
    source = CheckedSource(op.path_or_fileobj, op.path_in_repo, digest.size, plan.blocks[op.path_in_repo])
    sample = source.read(512)
    source.seek(0)
    # Built empty, then given the source and the checked digest: huggingface_hub would otherwise read the whole file
    # once more only to hash it again (the checked blocks already prove that digest for everything served).
    checked = CommitOperationAdd(path_in_repo=op.path_in_repo, path_or_fileobj=b"")
    # huggingface_hub annotates BinaryIO (typing's nominal class) but takes any io.BufferedIOBase, which it checks for.
    checked.path_or_fileobj = cast(BinaryIO, source)
    checked.upload_info = UploadInfo(size=digest.size, sample=sample, sha256=bytes.fromhex(digest.sha256))
    return checked


def _copy_digests(api: Any, base: RemoteRevision, copies: Sequence[Any], token: Any) -> dict[str, FileDigest]:
    out: dict[str, FileDigest] = {}
    for op in copies:
        if op.src_repo_id is None and op.src_revision is None:
            source = base
        else:
            source = remote.read_revision(api, op.src_repo_id or base.repo_id, revision=op.src_revision,
                                          repo_type=op.src_repo_type or base.repo_type, token=token)
        if op.src_path_in_repo not in source.files:
            raise InputError(f"{source.label}: cannot copy {op.src_path_in_repo}: no such file")
        if is_ignored(op.path_in_repo) or is_ignored(op.src_path_in_repo):
            raise ModelError(f"{op.path_in_repo}: copying a file to or from an excluded path is refused (what is "
                             "there is left out of the model's identity); upload the file itself")
        digest = remote.file_digests(api, source, [op.src_path_in_repo], token)[op.src_path_in_repo]
        out[op.path_in_repo] = FileDigest(op.path_in_repo, digest.size, digest.sha256, digest.content)
    return out


def plan_commit(api: Any, operations: Iterable[Any], base: RemoteRevision, token: Any = None) -> CommitPlan:
    """Hash every addition (in parallel: hashlib releases the GIL) and resolve copies, before anything is sent."""
    from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete

    ops = list(operations)
    adds = [op for op in ops if isinstance(op, CommitOperationAdd)]
    copies = [op for op in ops if isinstance(op, CommitOperationCopy)]
    deletes = [op for op in ops if isinstance(op, CommitOperationDelete)]
    unknown = [op for op in ops if not isinstance(op, (CommitOperationAdd, CommitOperationCopy, CommitOperationDelete))]
    if unknown:
        raise InputError(f"cannot check commit operation {type(unknown[0]).__name__}")
    writes: dict[str, FileDigest] = {}
    blocks: dict[str, tuple[bytes, ...]] = {}
    attestations: list[AttestationInput] = []
    if adds:
        ordered = sorted(adds, key=lambda op: op.upload_info.size, reverse=True)
        with ThreadPoolExecutor(max_workers=max(1, min(default_workers(), len(ordered)))) as pool:
            for digest, digest_blocks, attestation in pool.map(_digest_add, ordered):
                writes[digest.path] = digest
                blocks[digest.path] = digest_blocks
                if attestation is not None:
                    attestations.append(attestation)
    writes.update(_copy_digests(api, base, copies, token))
    return CommitPlan(
        repo_type=base.repo_type,
        repo_id=base.repo_id,
        writes=writes,
        deleted_files=frozenset(op.path_in_repo.rstrip("/") for op in deletes if not op.is_folder),
        deleted_folders=frozenset(op.path_in_repo.rstrip("/") for op in deletes if op.is_folder),
        local_attestations=tuple(sorted(attestations, key=lambda a: a.source)),
        base=base,
        blocks=blocks,
    )


def rebase_on_new_repo(api: Any, plan: CommitPlan, created: RemoteRevision, token: Any = None) -> CommitPlan:
    """The plan on the first commit of a repository just created (the Hub adds e.g. ``.gitattributes``).

    The check was made for the files of the commit alone; if the new repository came with files that count in the
    model's identity, that check does not describe the result and the upload stops.
    """
    extra = [p for p in remaining_paths(created, plan) if not is_ignored(p)]
    if extra:
        raise InputError(f"{created.label}: the new repository came with {', '.join(extra[:5])}, which the check did "
                         "not include; run the upload again to check the repository as it is now")
    return replace(plan, base=created)


def remaining_paths(base: RemoteRevision, plan: CommitPlan) -> list[str]:
    """The base revision's files that the commit neither deletes nor overwrites."""
    return sorted(p for p in base.files if p not in plan.writes and not plan.allows_delete(p, folder=False))


def resulting_model(api: Any, base: RemoteRevision, plan: CommitPlan,
                    token: Any = None) -> tuple[Manifest, list[AttestationInput]]:
    """The manifest of the revision the commit will create, and the attestations that revision will hold."""
    kept = remaining_paths(base, plan)
    label = f"{base.label} + commit"
    check_tree_paths(list(kept) + list(plan.writes), label)
    check_excluded_budget([(p, base.files[p].size) for p in kept if is_ignored(p)]
                          + [(p, d.size) for p, d in plan.writes.items() if is_ignored(p)], label)
    remote.excluded_content(api, base, kept, token)  # what the base keeps under excluded paths, judged by content
    from_remote = remote.file_digests(api, base, [p for p in kept if not is_ignored(p)], token)
    manifest = manifest_from_files(list(from_remote.values()) + list(plan.writes.values()), label)
    remote_attestations = remote.revision_attestations(api, base, remote.attestation_paths(kept), token) if kept else []
    return manifest, list(plan.local_attestations) + remote_attestations
