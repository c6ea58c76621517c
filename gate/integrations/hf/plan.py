"""What a commit will put in a repository, hashed locally before anything is sent, and the tree it leads to.

A commit is judged by the repository it produces, not by its operations alone: the revision after the commit is
what people can download, and what ``gate hf check`` and the webhook will check later. So the plan is applied to the
revision the commit is based on (its files known from Hub metadata, see :mod:`.remote`) and the manifest of the
result is what the gate decides on. For the usual case — a model folder uploaded to the root of a new repository —
that is exactly ``hash_model(folder)``.

The plan also lists the digest of every file the commit may write; the backstop (:mod:`.backstop`) refuses a
commit that carries anything else.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from gate.core.dsse import MAX_ENVELOPE_BYTES
from gate.core.formats import BytesSource, FileSource, classify
from gate.core.manifest import ATTESTATION_SUFFIXES, CHUNK_SIZE, FileDigest, Manifest, default_workers
from gate.core.verify import AttestationInput
from gate.errors import InputError, ModelError
from gate.integrations.git.treemanifest import (check_excluded_content, check_tree_paths, is_attestation_path,
                                                is_ignored, manifest_from_files)
from gate.integrations.hf import remote
from gate.integrations.hf.remote import RemoteRevision


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


def _hash_stream(handle: Any, keep: bool) -> tuple[int, str, bytes | None]:
    hasher = hashlib.sha256()
    size = 0
    kept: list[bytes] = []
    while True:
        chunk = handle.read(CHUNK_SIZE)
        if not chunk:
            break
        hasher.update(chunk)
        size += len(chunk)
        if keep:
            if size > MAX_ENVELOPE_BYTES:
                raise InputError(f"larger than {MAX_ENVELOPE_BYTES} bytes; not an attestation")
            kept.append(chunk)
    return size, hasher.hexdigest(), b"".join(kept) if keep else None


def hash_source(source: Any, keep: bool = False) -> tuple[int, str, bytes | None]:
    """Size and sha256 of what an upload operation will read: a path, bytes, or a seekable binary file.

    A file object is read from its current position and put back there, as huggingface_hub does.
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


class _SeekSource:
    """A seekable binary file object read at offsets (its position is put back by the caller)."""

    def __init__(self, handle: Any, start: int, size: int) -> None:
        self.handle, self.start, self.size = handle, start, size

    def read_at(self, offset: int, n: int) -> bytes:
        self.handle.seek(self.start + offset)
        return bytes(self.handle.read(max(0, min(n, self.size - offset))))


def _with_source(source: Any, size: int, use: Any) -> Any:
    """Call ``use`` with a ByteSource over what an upload operation reads (a path, bytes or a file object)."""
    if isinstance(source, (str, os.PathLike)):
        try:
            fd = os.open(source, os.O_RDONLY)
        except OSError as exc:
            raise InputError(f"{source}: cannot read: {exc.strerror}") from None
        try:
            return use(FileSource(fd, size))
        finally:
            os.close(fd)
    if isinstance(source, (bytes, bytearray)):
        return use(BytesSource(bytes(source)))
    start = source.tell()
    try:
        return use(_SeekSource(source, start, size))
    finally:
        source.seek(start)


def _digest_add(op: Any) -> tuple[FileDigest, AttestationInput | None]:
    """Hash and classify what an addition uploads; a file under an excluded path is judged by the identity rule."""
    path = op.path_in_repo
    keep = is_attestation_path(path) and path.endswith(ATTESTATION_SUFFIXES)
    try:
        size, sha, data = hash_source(op.path_or_fileobj, keep)
        if not is_ignored(path):
            content: str | None = _with_source(op.path_or_fileobj, size, lambda src: classify(src).kind)
    except (InputError, OSError) as exc:
        raise InputError(f"{path}: {exc}") from None
    if is_ignored(path):  # left out of the identity: judged by the same rule as a folder's (ModelError if refused)
        _with_source(op.path_or_fileobj, size, lambda src: check_excluded_content(path, src, "upload"))
        content = None
    attestation = None
    if data is not None:
        attestation = AttestationInput(f"upload:{path}", data)
    return FileDigest(path, size, sha, content), attestation


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
    attestations: list[AttestationInput] = []
    if adds:
        ordered = sorted(adds, key=lambda op: op.upload_info.size, reverse=True)
        with ThreadPoolExecutor(max_workers=max(1, min(default_workers(), len(ordered)))) as pool:
            for digest, attestation in pool.map(_digest_add, ordered):
                writes[digest.path] = digest
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
    return CommitPlan(plan.repo_type, plan.repo_id, plan.writes, plan.deleted_files, plan.deleted_folders,
                      plan.local_attestations, created)


def remaining_paths(base: RemoteRevision, plan: CommitPlan) -> list[str]:
    """The base revision's files that the commit neither deletes nor overwrites."""
    return sorted(p for p in base.files if p not in plan.writes and not plan.allows_delete(p, folder=False))


def resulting_model(api: Any, base: RemoteRevision, plan: CommitPlan,
                    token: Any = None) -> tuple[Manifest, list[AttestationInput]]:
    """The manifest of the revision the commit will create, and the attestations that revision will hold."""
    kept = remaining_paths(base, plan)
    label = f"{base.label} + commit"
    check_tree_paths(list(kept) + list(plan.writes), label)
    remote.excluded_content(api, base, kept, token)  # what the base keeps under excluded paths, judged by content
    from_remote = remote.file_digests(api, base, [p for p in kept if not is_ignored(p)], token)
    manifest = manifest_from_files(list(from_remote.values()) + list(plan.writes.values()), label)
    remote_attestations = remote.revision_attestations(api, base, remote.attestation_paths(kept), token) if kept else []
    return manifest, list(plan.local_attestations) + remote_attestations
