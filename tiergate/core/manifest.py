"""Model identity: the OMS-compatible manifest of a model directory.

A model *is* its manifest: the SHA-256 of every regular file, keyed by POSIX path relative to the model root. The
root digest is the SHA-256 of the concatenated raw per-file digests, in code-point order of the paths, as the OpenSSF
Model Signing (OMS) spec orders them.

model-signing 1.1.1 orders resources by path *components* (sorted ``PurePosixPath``) instead. The two orders agree
unless one path is a prefix of a sibling followed by a character below ``/`` (``-``, ``.``, ``,``, space ...): with
``a/b`` and ``a-b/c`` present, code-point order puts ``a-b/c`` first, component order puts ``a/b`` first, and the
root digests differ. :func:`model_signing_order` reproduces the other order where interop needs it.

Hashing is parallel across files (hashlib releases the GIL on large updates), reads in large chunks into one
reusable buffer per worker, and keeps memory constant whatever the model size. bench/bench_hash.py measures it
against model-signing and against ``openssl dgst`` run on every core. Each file is also given its content class
(:mod:`tiergate.core.formats`) from the same open file, reading only what the class needs.

The identity rule: every byte that will be published is either inside the digest or judged by content. Excluded
paths (the OMS defaults and ``.attestations/``) are left out of the digest, so :func:`check_excluded` decides what
they may hold; the git and Hub integrations apply the same function to blobs and Hub files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

from tiergate.core.digestcache import DigestCache, file_key
from tiergate.core.formats import CLASSES, ByteSource, BytesSource, FileSource, Limits, classify
from tiergate.errors import InputError, ModelError

#: Paths OMS ignores by default, plus the folder the gate keeps attestations in beside the weights.
OMS_DEFAULT_IGNORES: tuple[str, ...] = (".git", ".gitattributes", ".gitignore", ".github")
ATTESTATION_DIR = ".attestations"
GIT_DIR = ".git"
DEFAULT_IGNORES: tuple[str, ...] = OMS_DEFAULT_IGNORES + (ATTESTATION_DIR,)

#: Suffixes of the files the gate reads as attestations in the attestation folder (a ``.jsonl`` file holds one
#: envelope per line). A suffix is required there but never enough: the content must parse as envelopes.
ATTESTATION_SUFFIXES: tuple[str, ...] = (".json", ".jsonl", ".dsse", ".sig", ".intoto", ".bundle")
#: Excluded paths are left out of the identity, so what they may hold is bounded: text files up to this size.
MAX_EXCLUDED_TEXT_BYTES = 1024 * 1024
#: What all excluded paths of one model may hold together. Each file is judged by content, but an envelope's payload
#: or a text file can still carry bytes; without a total, a thousand 16 MiB attestation files would carry a model.
MAX_EXCLUDED_FILES = 1000
MAX_EXCLUDED_TOTAL_BYTES = 64 * 1024 * 1024
#: Excluded names that must be folders (a plain file of that name is refused) and ones that must be files.
EXCLUDED_FOLDERS: tuple[str, ...] = (ATTESTATION_DIR, ".github")
EXCLUDED_FILES: tuple[str, ...] = (".gitattributes", ".gitignore")

#: Weight formats by file suffix: only for messages and for guessing what a file was meant to be. What the gate
#: decides on is the content class (:mod:`tiergate.core.formats`); a suffix never makes a file acceptable.
WEIGHT_FORMATS: dict[str, str] = {
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    ".onnx": "onnx",
    ".h5": "keras",
    ".keras": "keras",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".pt": "pickle",
    ".pth": "pickle",
    ".bin": "pickle",
    ".ckpt": "pickle",
    ".joblib": "pickle",
    ".npy": "numpy",
    ".npz": "numpy",
}

#: Read size. Measured on a warm 1 GiB model (bench/bench_hash.py, 2 cores): 1-4 MiB are equally fast, 8 MiB is
#: ~7 % slower (the buffer no longer stays in cache between the copy and the hash). mmap would save the copy (~10 %)
#: but turns a file truncated while being hashed into a SIGBUS that kills the process, so the gate reads.
CHUNK_SIZE = 2 * 1024 * 1024
#: Files below this are hashed together by one thread (see :func:`hash_model`).
SMALL_FILE = 1024 * 1024

ProgressCallback = Callable[[int], None]


def _digest_hex(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"not a lowercase hex SHA-256 digest: {value!r}")
    return value


@dataclass(frozen=True)
class FileDigest:
    """One file of a model: its POSIX path relative to the root, its size in bytes and its SHA-256 (hex)."""

    path: str
    size: int
    sha256: str
    #: The content class (:mod:`tiergate.core.formats`) the gate found in the bytes; None if not classified (a manifest
    #: read from a signed statement), which a tier's ``formats`` rule refuses.
    content: str | None = field(default=None, compare=False)

    def to_dict(self, content: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.path, "size": self.size, "digest": {"sha256": self.sha256}}
        if content and self.content is not None:
            out["content"] = self.content
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileDigest:
        if not isinstance(data, Mapping):
            raise ValueError("manifest file entry must be an object with name, size and digest")
        path, digest, size = data.get("name"), data.get("digest"), data.get("size", -1)
        if not isinstance(path, str) or not isinstance(size, int) or isinstance(size, bool):
            raise ValueError("manifest file entry needs a string 'name' and an integer 'size'")
        if not isinstance(digest, Mapping) or "sha256" not in digest:
            raise ValueError(f"manifest file entry {path!r} has no digest.sha256")
        content = data.get("content")
        if content is not None and content not in CLASSES:
            raise ValueError(f"manifest file entry {path!r} has unknown content class {content!r}")
        return cls(path=check_relative_path(path), size=size, sha256=_digest_hex(digest["sha256"]), content=content)


@dataclass(frozen=True)
class Manifest:
    """The identity of a model: every file with its digest, in code-point order of the paths."""

    files: tuple[FileDigest, ...]
    ignore_paths: tuple[str, ...] = field(default=DEFAULT_IGNORES)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.files, key=lambda f: f.path))
        paths = [f.path for f in ordered]
        if len(set(paths)) != len(paths):
            raise ValueError("manifest lists a path twice")
        object.__setattr__(self, "files", ordered)

    @property
    def root_digest(self) -> str:
        """Hex SHA-256 over the concatenated raw file digests (OMS ``files`` serialization)."""
        return root_digest(self.files)

    @property
    def digest(self) -> str:
        """The model digest as the gate prints it: ``sha256:<hex>``."""
        return f"sha256:{self.root_digest}"

    @property
    def files_digest(self) -> str:
        """``sha256:<hex>`` over the file list *with names* (canonical JSON of ``[[path, size, sha256], ...]``).

        The OMS root digest covers contents only: renaming ``model.pkl`` to ``model.safetensors`` keeps it. Decisions
        record this digest beside it, so what was decided about names (weight formats) can be checked too.
        """
        listing = [[f.path, f.size, f.sha256] for f in self.files]
        canonical = json.dumps(listing, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return "sha256:" + hashlib.sha256(canonical).hexdigest()

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def by_path(self) -> dict[str, FileDigest]:
        return {f.path: f for f in self.files}

    def to_dict(self, content: bool = False) -> dict[str, Any]:
        """The OMS form; ``content=True`` adds each file's content class (what a client sends the gate service)."""
        return {
            "digest": {"sha256": self.root_digest},
            "serialization": {"method": "files", "hash_type": "sha256", "ignore_paths": list(self.ignore_paths)},
            "files": [f.to_dict(content) for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Load a manifest and check that its stated root digest matches its files."""
        if not isinstance(data, Mapping) or not isinstance(data.get("files"), list):
            raise ValueError("manifest must be an object with a 'files' list")
        files = tuple(FileDigest.from_dict(entry) for entry in data["files"])
        serialization = data.get("serialization", {})
        stated_digest = data.get("digest", {})
        if not isinstance(serialization, Mapping) or not isinstance(stated_digest, Mapping):
            raise ValueError("manifest 'serialization' and 'digest' must be objects")
        if serialization.get("method", "files") != "files" or serialization.get("hash_type", "sha256") != "sha256":
            raise ValueError("manifest must use the 'files' serialization with hash_type 'sha256'")
        ignores = serialization.get("ignore_paths", list(DEFAULT_IGNORES))
        if not isinstance(ignores, list) or not all(isinstance(i, str) for i in ignores):
            raise ValueError("manifest serialization.ignore_paths must be a list of strings")
        manifest = cls(files=files, ignore_paths=tuple(ignores))
        stated = stated_digest.get("sha256")
        if stated is not None and stated != manifest.root_digest:
            raise ValueError("manifest root digest does not match the digests of its files")
        return manifest


def root_digest(files: Iterable[FileDigest]) -> str:
    """SHA-256 of the concatenated raw digests, in the order given (callers pass code-point order)."""
    hasher = hashlib.sha256()
    for entry in files:
        hasher.update(bytes.fromhex(entry.sha256))
    return hasher.hexdigest()


def model_signing_order(files: Iterable[FileDigest]) -> list[FileDigest]:
    """The order model-signing 1.1.1 uses (path components), for reproducing its root digest."""
    return sorted(files, key=lambda f: PurePosixPath(f.path))


def check_relative_path(path: str) -> str:
    """Refuse paths that could name something outside the model: absolute, ``..``, empty parts, NUL.

    A backslash is an ordinary character of a POSIX file name, as in model-signing (which names files by their POSIX
    relative path) and git: the walk signs ``a\\b`` as it is, so a pinned manifest naming it must verify.
    """
    if not path or path.startswith("/") or "\x00" in path:
        raise ValueError(f"path {path!r} is not a relative POSIX path")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"path {path!r} has an empty, '.' or '..' component")
    return path


def parse_digest(text: str) -> str:
    """Accept ``sha256:<hex>`` or bare hex; return the hex."""
    value = text.strip().lower()
    value = value.removeprefix("sha256:")
    try:
        return _digest_hex(value)
    except ValueError:
        raise InputError(f"{text!r} is not a model digest (expected sha256:<64 hex digits>)") from None


# --- walking the directory -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    """A file of a model as the walk finds it, before hashing."""

    path: str  # POSIX, relative to the model root
    real: str  # what to open (a symlink inside the model is resolved)
    size: int


def _is_ignored(rel: str, ignores: Sequence[str]) -> bool:
    return any(rel == ig or rel.startswith(ig + "/") for ig in ignores)


def _decode_name(raw: bytes, root: Path, rel_dir: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{root / rel_dir}: file name {raw!r} is not valid UTF-8; "
                         "rename it before publishing") from None


def _scan(dir_bytes: bytes) -> list[os.DirEntry[bytes]]:
    try:
        with os.scandir(dir_bytes) as items:
            return list(items)
    except OSError as exc:
        raise ModelError(f"cannot read directory {os.fsdecode(dir_bytes)}: {exc.strerror}") from None


def _lstat(item: os.DirEntry[bytes], rel: str) -> os.stat_result:
    try:
        return item.stat(follow_symlinks=False)
    except OSError as exc:  # removed or replaced between listing and stat
        raise ModelError(f"{rel}: cannot stat ({exc.strerror}); is the model being modified?") from None


def list_files(root: Path, ignores: Sequence[str] = DEFAULT_IGNORES, *, skip_git: bool = False) -> list[ModelFile]:
    """Every regular file of root's identity, refusing whatever could make the identity ambiguous.

    Excluded paths are left out of the identity but read and judged by :func:`check_excluded` (attestation
    envelopes in ``.attestations/``, bounded text elsewhere; a ``.git`` is refused), so that nothing left out of the
    identity can carry unhashed weights into a release: an MLflow artifact folder is served as it is.
    ``skip_git`` leaves a root ``.git`` out unread instead, for a folder that is published only by git or
    huggingface_hub (neither sends ``.git``): the caller vouches for that.

    Raises ModelError naming the first offending path.
    """
    root_real = root.resolve()
    entries: list[ModelFile] = []
    budget = ExcludedBudget()
    stack: list[tuple[bytes, str]] = [(os.fsencode(root), "")]
    while stack:
        dir_bytes, rel_dir = stack.pop()
        for item in _scan(dir_bytes):
            rel = _join(rel_dir, _decode_name(item.name, root, rel_dir))
            excluded = _is_ignored(rel, ignores)
            st = _lstat(item, rel)
            if excluded and _is_ignored(rel, (GIT_DIR,)):
                if skip_git:
                    continue
                raise ModelError(git_dir_refusal(rel))
            if stat.S_ISDIR(st.st_mode):
                stack.append((item.path, rel))
                continue
            if stat.S_ISLNK(st.st_mode):
                found = _resolve_link(root_real, root / rel, rel)
            elif stat.S_ISREG(st.st_mode):
                found = ModelFile(rel, os.fsdecode(item.path), st.st_size)
            else:
                raise ModelError(f"{rel}: is a special file (device, socket or FIFO); a model holds regular files only")
            if excluded:
                budget.add(found.size)  # before reading: a flood of files stops early
                _check_excluded_file(found)
            else:
                entries.append(found)
    return entries


class ExcludedBudget:
    """What the excluded paths of one model hold together, counted as their files are met: more files or bytes than
    :data:`MAX_EXCLUDED_FILES` / :data:`MAX_EXCLUDED_TOTAL_BYTES` is refused, so what is outside the digest stays
    small whatever each file passes, and a flood of files stops before it is read."""

    def __init__(self, where: str = "") -> None:
        self.where = where
        self.count = 0
        self.total = 0

    def add(self, size: int) -> None:
        """Count one more excluded file of ``size`` bytes. Raises ModelError past the budget."""
        self.count += 1
        self.total += size
        if self.count > MAX_EXCLUDED_FILES or self.total > MAX_EXCLUDED_TOTAL_BYTES:
            prefix = f"{self.where}: " if self.where else ""
            raise ModelError(f"{prefix}{self.count} files of {self.total} bytes under excluded paths "
                             f"({ATTESTATION_DIR}/, .github/, .gitattributes, .gitignore) is over the limit of "
                             f"{MAX_EXCLUDED_FILES} files and {MAX_EXCLUDED_TOTAL_BYTES} bytes for what is left out "
                             "of the model's identity; keep attestations and repository text small, and move anything "
                             "else into the model")


def check_excluded_budget(items: Iterable[tuple[str, int]], where: str = "") -> None:
    """:class:`ExcludedBudget` over every ``(path, size)`` of files left out of a model's identity (known up front,
    e.g. from a Hub listing). Raises ModelError."""
    budget = ExcludedBudget(where)
    for _path, size in items:
        budget.add(size)


def git_dir_refusal(rel: str) -> str:
    return (f"{rel}: a .git folder inside the model folder is not part of the model's identity, and a folder "
            "published as it is (an MLflow artifact folder) would publish it and every file in its history; check a "
            "copy without it (e.g. `rsync -a --exclude .git MODEL/ COPY/`), or the pushed tree itself "
            "(the pre-push hook, `gate check --hf`); if it is published only by git or huggingface_hub, which leave "
            ".git out, pass --skip-git")


def _check_excluded_file(entry: ModelFile) -> None:
    fd = _open_regular(entry)
    try:
        check_excluded(entry.path, FileSource(fd))
    except OSError as exc:
        raise ModelError(f"{entry.path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


# --- the identity rule: what excluded paths may hold -----------------------------------------------------------


def excluded_rule(rel: str) -> str:
    """Which rule an excluded path is judged by: ``attestation``, ``text`` or ``refuse`` (with the reason)."""
    top = rel.split("/", 1)[0]
    if top == GIT_DIR:
        return "refuse:" + git_dir_refusal(rel)
    if rel in EXCLUDED_FOLDERS:
        return (f"refuse:{rel}: a file named {rel} at the root is refused: the name is kept for the {rel}/ folder, "
                "which is left out of the model's identity; rename or remove it")
    if top in EXCLUDED_FILES and rel != top:
        return (f"refuse:{rel}: {top} must be a file; a folder of that name is left out of the model's identity, "
                "so nothing may be kept in it")
    return "attestation" if top == ATTESTATION_DIR else "text"


def check_excluded(rel: str, source: ByteSource) -> None:
    """Judge a file under an excluded path by its bytes, as every integration does (folder, git tree, Hub revision).

    ``.attestations/`` holds attestation files only: an attestation suffix, at most the envelope size limit, and
    content that parses as attestation envelopes (DSSE with an in-toto payload type, a Sigstore bundle holding one,
    or JSON lines of those). Every other excluded path holds bounded UTF-8 text that is not a pickle. A plain file
    named ``.attestations`` or ``.github``, a folder named ``.gitattributes`` or ``.gitignore``, and ``.git`` are
    refused. Raises ModelError with a one-line reason.
    """
    from tiergate.core.dsse import MAX_ENVELOPE_BYTES

    rule = excluded_rule(rel)
    if rule.startswith("refuse:"):
        raise ModelError(rule[len("refuse:"):])
    why = ("because that folder is not part of the model's identity; move this file out of it (then it is hashed "
           "and its format checked)")
    if rule == "attestation":
        if not rel.endswith(ATTESTATION_SUFFIXES):
            raise ModelError(f"{rel}: only attestation files ({', '.join(ATTESTATION_SUFFIXES)}) may sit in "
                             f"{ATTESTATION_DIR}/, {why}")
        if source.size > MAX_ENVELOPE_BYTES:
            raise ModelError(f"{rel}: {source.size} bytes is over the {MAX_ENVELOPE_BYTES}-byte limit of an "
                             f"attestation file in {ATTESTATION_DIR}/, {why}")
        problem = attestation_file_problem(source.read_at(0, source.size), rel.endswith(".jsonl"))
        if problem:
            raise ModelError(f"{rel}: not an attestation envelope ({problem}); only attestations may sit in "
                             f"{ATTESTATION_DIR}/, {why}")
        return
    if source.size > MAX_EXCLUDED_TEXT_BYTES:
        raise ModelError(f"{rel}: {source.size} bytes under an excluded path (over the {MAX_EXCLUDED_TEXT_BYTES}-byte "
                         f"limit for text there), {why}")
    found = classify(source, Limits(max_text=MAX_EXCLUDED_TEXT_BYTES))
    if found.kind != "text":
        raise ModelError(f"{rel}: only text may sit under an excluded path, found {found.describe()}, {why}")


def attestation_documents(data: bytes, lines: bool) -> list[bytes]:
    """The documents of an attestation file: the whole file, or with ``lines`` (a ``.jsonl`` file, the in-toto bundle
    layout) each non-empty line."""
    return [line for line in data.splitlines() if line.strip()] if lines else [data]


def attestation_file_problem(data: bytes, lines: bool) -> str | None:
    """Why ``data`` is not one attestation envelope (or, with ``lines``, one per non-empty line), or None.

    Structure only: the envelope must parse, signatures are verified later, each attestation on its own.
    """
    from tiergate.core.bundle import is_bundle, parse_bundle
    from tiergate.core.dsse import INTOTO_PAYLOAD_TYPE, Envelope
    from tiergate.errors import GateError

    documents = attestation_documents(data, lines)
    if not documents:
        return "empty"
    for number, document in enumerate(documents, 1):
        where = f"line {number}: " if lines else ""
        try:
            if is_bundle(document):
                parse_bundle(document)  # the bundle's own parser, structure only
                continue
            envelope = Envelope.from_json(document)
        except (GateError, ValueError, RecursionError) as exc:
            return f"{where}{str(exc)[:120]}"
        if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            return f"{where}payloadType {envelope.payload_type[:60]!r} is not {INTOTO_PAYLOAD_TYPE}"
    return None


def weight_format(path: str) -> str | None:
    """The weight format a file's suffix suggests (for messages only), or None."""
    lower = path.lower()
    dot = lower.rfind(".")
    return WEIGHT_FORMATS.get(lower[dot:]) if dot > lower.rfind("/") else None


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def _resolve_link(root_real: Path, link: Path, rel: str) -> ModelFile:
    """A symlink is hashed as the file it names, if that is a regular file inside the model.

    Anything else would let the identity depend on what lies outside the published directory.
    """
    try:
        target = link.resolve(strict=True)
        st = target.stat()
    except FileNotFoundError:
        raise ModelError(f"{rel}: broken symlink (its target does not exist); remove it or copy the file in") from None
    except (OSError, RuntimeError) as exc:  # loops: RuntimeError before Python 3.13, OSError (ELOOP) after
        raise ModelError(f"{rel}: cannot follow symlink ({exc}); replace it with the file itself") from None
    if not target.is_relative_to(root_real):
        raise ModelError(f"{rel}: symlink points outside the model directory (to {target}); copy the file in instead")
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(
            f"{rel}: symlink points to a directory ({target}); only symlinks to files are followed, "
            "so replace it with the directory itself"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{rel}: symlink points to a special file ({target}); a model holds regular files only")
    return ModelFile(rel, str(target), st.st_size)


# --- hashing ---------------------------------------------------------------------------------------------------


#: O_NOFOLLOW and O_NONBLOCK: a file swapped for a symlink or a FIFO after the walk fails instead of being followed
#: out of the model or blocking the gate forever (O_NONBLOCK does nothing to reads of regular files).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _open_regular(entry: ModelFile) -> int:
    try:
        fd = os.open(entry.real, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelError(f"{entry.path}: became a symlink while the model was being hashed") from None
        raise ModelError(f"{entry.path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ModelError(f"{entry.path}: is no longer a regular file; was the model modified while being hashed?")
    if hasattr(os, "posix_fadvise"):
        # A hint for read-ahead on cold caches; harmless if the filesystem ignores it.
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return fd


def _hash_file(entry: ModelFile, buffers: threading.local, progress: ProgressCallback | None,
               cache: DigestCache | None = None, hashed: list[tuple[os.stat_result, str, str]] | None = None,
               ) -> FileDigest:
    """SHA-256 and content class of one file, read into this worker's reusable buffer (no per-chunk allocation).

    The class is read from the same open file (pread: a few kilobytes for weights), and a file whose size or mtime
    changes while it is read is refused, so that the class and the digest describe the same bytes. With a ``cache``,
    a file whose key (:func:`tiergate.core.digestcache.file_key` of the open file) is remembered is not read, and a
    file read is added to ``hashed`` if its key did not change while it was read.
    """
    buf = getattr(buffers, "buf", None)
    if buf is None:
        buf = buffers.buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    hasher = hashlib.sha256()
    size = 0
    try:
        with open(_open_regular(entry), "rb", buffering=0) as handle:
            before = os.fstat(handle.fileno())
            remembered = cache.get(before) if cache is not None else None
            if remembered is not None:
                if progress is not None:
                    progress(before.st_size)
                return FileDigest(path=entry.path, size=before.st_size, sha256=remembered[0], content=remembered[1])
            if before.st_size < CHUNK_SIZE:  # one read; classified from memory, not by pread
                while size < len(view) and (n := handle.readinto(view[size:])):
                    size += n
                hasher.update(view[:size])
                content = classify(BytesSource(bytes(view[:size]))).kind
                if progress is not None:
                    progress(size)
            else:
                content = classify(FileSource(handle.fileno(), before.st_size)).kind
            while True:
                n = handle.readinto(view[:CHUNK_SIZE])
                if not n:
                    break
                hasher.update(view[:n])
                size += n
                if progress is not None:
                    progress(n)
            after = os.fstat(handle.fileno())
    except OSError as exc:
        raise ModelError(f"{entry.path}: cannot read: {exc.strerror or exc}") from None
    if size != before.st_size or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise ModelError(f"{entry.path}: changed while it was being hashed; is the model being modified?")
    digest = hasher.hexdigest()
    if hashed is not None and file_key(after) == file_key(before):
        hashed.append((before, digest, content))  # list.append is atomic: workers share the list
    return FileDigest(path=entry.path, size=size, sha256=digest, content=content)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def hash_model(
    root: str | os.PathLike[str],
    *,
    ignore_paths: Sequence[str] = DEFAULT_IGNORES,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    skip_git: bool = False,
    cache: DigestCache | None = None,
) -> Manifest:
    """Compute the manifest of the model directory ``root``.

    ``progress``, if given, is called with the number of bytes hashed after each chunk, from worker threads.
    ``skip_git``: see :func:`list_files`. ``cache``: digests of unchanged files are taken from it, and those read
    are remembered in it once the whole model hashed (:mod:`tiergate.core.digestcache`). Raises ModelError for
    anything the identity rule refuses.
    """
    if workers is not None and workers < 0:
        raise ValueError("workers must be a positive number of threads")
    path = Path(root)
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory; pass the folder that holds the model's files")
    for ignore in ignore_paths:
        check_relative_path(ignore)
    entries = list_files(path, tuple(ignore_paths), skip_git=skip_git)
    # Largest first so that one big file does not start last and leave the other cores idle.
    entries.sort(key=lambda e: e.size, reverse=True)
    workers = workers or default_workers()
    buffers = threading.local()
    started_ns = time.time_ns()
    hashed: list[tuple[os.stat_result, str, str]] | None = [] if cache is not None else None
    def hash_all(batch: list[ModelFile]) -> list[FileDigest]:
        return [_hash_file(e, buffers, progress, cache, hashed) for e in batch]

    # Small files cost Python time, not SHA-256 time: threads only fight over the GIL for them. So each large file
    # is a task of its own, and all small files one task, which one thread works through while others hash.
    small = [e for e in entries if e.size < SMALL_FILE]
    batches = [[e] for e in entries if e.size >= SMALL_FILE] + ([small] if small else [])
    if workers == 1 or len(batches) <= 1:
        files = hash_all(entries)
    else:
        pool = ThreadPoolExecutor(max_workers=min(workers, len(batches)), thread_name_prefix="gate-hash")
        try:
            files = [digest for batch in pool.map(hash_all, batches) for digest in batch]
        finally:
            # On an unreadable file, do not hash the rest of a 500 GB model before reporting it.
            pool.shutdown(wait=True, cancel_futures=True)
    if cache is not None and hashed:
        cache.put(hashed, started_ns)
    return Manifest(files=tuple(files), ignore_paths=tuple(ignore_paths))


def scan_size(root: str | os.PathLike[str], ignore_paths: Sequence[str] = DEFAULT_IGNORES, *,
              skip_git: bool = False) -> int:
    """Total bytes hash_model would read (for sizing a progress bar)."""
    return sum(e.size for e in list_files(Path(root), tuple(ignore_paths), skip_git=skip_git))
