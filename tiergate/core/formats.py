"""What a file is, judged from its bytes: the content class the tier policy's ``formats`` rule applies to.

A suffix never makes a file acceptable: ``model.data``, ``weights.dill`` or ``pytorch_model.bin.txt`` are whatever
their bytes are. One classifier serves every place the gate meets files (a local folder, a git blob, a Hub file
read with HTTP Range requests) through :class:`ByteSource`, and it reads only what it needs: a few kilobytes of a
weight file (the safetensors header, a zip's central directory), the whole of a file only if it is to be called
text.

Content classes (:data:`WEIGHT_CLASSES` are subject to a tier's ``formats`` rule; :data:`AUXILIARY_CLASSES` are
allowed beside weights at every tier; ``unknown`` is refused at every tier with a ``formats`` rule):

- ``safetensors``: header validated as the safetensors library does (length in bounds, a strict JSON object, known
  dtypes, shapes matching ``data_offsets``, tensors contiguous and covering exactly the rest of the file);
- ``gguf``: magic, version 2/3, metadata and tensor infos walked within bounds, tensor offsets inside the file;
- ``onnx``: a protobuf ``ModelProto`` (``ir_version`` and ``graph``, only ModelProto fields, the whole file parsed);
- ``keras``: HDF5 (signature at offset 0 or after a user block of up to 32 KiB), or a Keras v3 zip
  (``config.json`` + HDF5);
- ``numpy``: ``.npy`` with a plain dtype and a size matching its header, or an ``.npz`` zip of those;
- ``pickle``: anything a pickle loader would run: a pickle stream at offset 0 (protocol 2+ ``PROTO``, or protocol
  0/1 opcodes, also when they look like text), a numpy object array, and any zip (torch ``*/data.pkl``), tar
  (legacy ``torch.save``), gzip, bz2, xz or legacy lzma container holding one;
- ``text``: strict UTF-8 of at most :data:`MAX_TEXT_BYTES`, no control characters but tab, newline, carriage
  return, form feed, vertical tab and escape, and not a pickle (JSON configs, tokenizer.json, README, code);
- ``sentencepiece``: a protobuf ``ModelProto`` of sentencepiece (``tokenizer.model``, ``spiece.model``);
- ``image``: PNG (chunks walked to IEND at the end of the file), JPEG, GIF, WebP (README assets);
- ``unknown``: everything else, archives without a pickle in them included (``.tar.gz`` of safetensors, raw
  TensorFlow ``variables.data-*``, flax msgpack, ONNX external data), and any file that could not be inspected
  within the bounds.

Polyglots: a zip is found by its end (zip readers, ``torch.load`` among them, ignore what precedes it) and HDF5 by
a superblock at 0, 512, 1024, 2048 ... (h5py skips a user block), so both are looked for in every file whatever it
starts with. A remote file costs about two ranged reads: its first 64 KiB and its last 64 KiB. Decompression and
recursion are bounded (:class:`Limits`: depth, bytes read, bytes inflated, members): a bomb ends as ``unknown``
quickly, never as an allowed class.
"""

from __future__ import annotations

import ast
import bz2
import io
import json
import lzma
import os
import pickletools
import re
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable, Iterator

#: Classes a tier's ``formats: {allow: [...]}`` may list: files that hold weights.
WEIGHT_CLASSES: tuple[str, ...] = ("gguf", "keras", "numpy", "onnx", "pickle", "safetensors")
#: Classes allowed beside weights at every tier: configs, tokenizers, model cards and their images.
AUXILIARY_CLASSES: tuple[str, ...] = ("image", "sentencepiece", "text")
UNKNOWN = "unknown"
CLASSES: tuple[str, ...] = WEIGHT_CLASSES + AUXILIARY_CLASSES + (UNKNOWN,)

#: A file longer than this is not called text (the largest tokenizer.json files in real repos are ~35 MB).
MAX_TEXT_BYTES = 64 * 1024 * 1024
#: The safetensors library's own bound on its JSON header.
MAX_SAFETENSORS_HEADER = 100_000_000
SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6,
}
ZIP_END_SEARCH = 65536 + 22  # the end-of-central-directory record is within this many bytes of the end
#: HDF5 user blocks are looked for up to here (h5py finds a superblock at 512, 1024, ... bytes); a larger user
#: block in front of an HDF5 file is not seen (docs/formats.md).
HDF5_USER_BLOCK_SEARCH = 64 * 1024
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
_TEXT_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_PNG = b"\x89PNG\r\n\x1a\n"
_OPCODES = frozenset(op.code.encode("latin-1") for op in pickletools.opcodes)


class ByteSource(Protocol):
    """Random access to one file's bytes: a local file (pread), a git blob, a Hub file (HTTP Range)."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer only at the end of the file). Raises OSError if unreadable."""
        ...


@dataclass(frozen=True)
class BytesSource:
    """Bytes already in memory (a downloaded small file, an attestation, a decompressed prefix)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read_at(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


@dataclass(frozen=True)
class SizeOnly:
    """A file known by its size only: over the limit of the rule it is judged by, so never read."""

    size: int

    def read_at(self, offset: int, n: int) -> bytes:
        raise OSError("not read: over the size limit")


class FileSource:
    """An open file read with ``os.pread`` (no shared position: safe beside hashing threads on the same fd)."""

    def __init__(self, fd: int, size: int | None = None) -> None:
        self.fd = fd
        self._size = os.fstat(fd).st_size if size is None else size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        out = bytearray()
        while len(out) < n and offset + len(out) < self._size:
            chunk = os.pread(self.fd, n - len(out), offset + len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)


@dataclass(frozen=True)
class Limits:
    """Bounds on the work of one classification; past any of them the file is ``unknown``."""

    max_depth: int = 3  # containers inside containers
    max_read: int = 256 * 1024 * 1024  # bytes read from the source (a text file is read whole)
    max_inflate: int = 32 * 1024 * 1024  # bytes decompressed, all members together
    max_members: int = 10_000  # entries of one zip or tar
    max_text: int = MAX_TEXT_BYTES


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Classification:
    """A file's content class and a short note of what was found (``detail``, for messages)."""

    kind: str
    detail: str

    @property
    def is_weights(self) -> bool:
        return self.kind in WEIGHT_CLASSES

    def describe(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else self.kind


class _Exceeded(Exception):
    """A bound of :class:`Limits` was reached."""


class _Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.read = 0
        self.inflated = 0

    def charge_read(self, n: int) -> None:
        self.read += n
        if self.read > self.limits.max_read:
            raise _Exceeded(f"more than {self.limits.max_read} bytes would have to be read")

    def charge_inflate(self, n: int) -> None:
        self.inflated += n
        if self.inflated > self.limits.max_inflate:
            raise _Exceeded(f"decompresses to more than {self.limits.max_inflate} bytes")


class _Cached:
    """A source read in 64 KiB blocks, each fetched once (a remote source answers one request per block)."""

    BLOCK = 64 * 1024

    def __init__(self, source: ByteSource, budget: _Budget) -> None:
        self.source, self.budget = source, budget
        self.size = source.size
        self._blocks: dict[int, bytes] = {}

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            start = index * self.BLOCK
            want = min(self.BLOCK, self.size - start)
            self.budget.charge_read(want)
            block = self.source.read_at(start, want)
            if len(block) != want:
                raise OSError(f"short read at offset {start}: the file changed or was truncated")
            if len(self._blocks) >= 256:
                self._blocks.clear()
            self._blocks[index] = block
        return block

    def read_at(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        if n == 0 or offset < 0:
            return b""
        if isinstance(self.source, BytesSource):  # already in memory: nothing to fetch, nothing to cache
            return self.source.data[offset:offset + n]
        if n > self.BLOCK:  # large reads (a zip's tail, a text file, a big header) go straight through
            self.budget.charge_read(n)
            data = self.source.read_at(offset, n)
            if len(data) != n:
                raise OSError(f"short read at offset {offset}: the file changed or was truncated")
            return data
        first, last = offset // self.BLOCK, (offset + n - 1) // self.BLOCK
        joined = b"".join(self._block(i) for i in range(first, last + 1))
        start = offset - first * self.BLOCK
        return joined[start:start + n]


class _Slice:
    """A window of another source (a stored zip member, a tar member)."""

    def __init__(self, source: ByteSource, start: int, size: int) -> None:
        self.source, self.start, self.size = source, start, size

    def read_at(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        return self.source.read_at(self.start + offset, n) if n else b""


class _Reader(io.RawIOBase):
    """A seekable file object over a source, for zipfile and tarfile."""

    def __init__(self, source: ByteSource) -> None:
        self.source, self.pos = source, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.source.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        data = self.source.read_at(self.pos, len(buffer))
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


def classify(source: ByteSource, limits: Limits = DEFAULT_LIMITS) -> Classification:
    """The content class of the file ``source`` holds.

    Never raises for hostile content (a bound reached is ``unknown``); raises OSError when the source cannot be read.
    """
    budget = _Budget(limits)
    try:
        return _classify(_Cached(source, budget), budget, 0, complete=True)
    except _Exceeded as exc:
        return Classification(UNKNOWN, f"not inspected: {exc}")
    except RecursionError:
        return Classification(UNKNOWN, "not inspected: nested too deeply")


def classify_bytes(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Classification:
    return classify(BytesSource(bytes(data)), limits)


def _unknown(detail: str) -> Classification:
    return Classification(UNKNOWN, detail)


def _classify(src: ByteSource, budget: _Budget, depth: int, complete: bool) -> Classification:
    """``complete`` is False for a decompressed prefix of a longer stream (its end is not the file's end)."""
    size = src.size
    head = src.read_at(0, 4096)
    if complete and (zip_end := _zip_end(src)) is not None:
        if not head.startswith(b"PK") and (found := _pickle_before(src, "a zip archive")) is not None:
            return found
        return _zip(src, zip_end, budget, depth)
    if head.startswith(HDF5_SIGNATURE) or (complete and _hdf5_user_block(src)):
        if not head.startswith(HDF5_SIGNATURE) and (found := _pickle_before(src, "an HDF5 file")) is not None:
            return found
        return Classification("keras", "HDF5")
    if head.startswith(b"GGUF"):
        return _gguf(src) if complete else _unknown("GGUF data inside an archive")
    if head.startswith(NPY_MAGIC):
        return _npy(src, complete)
    if head.startswith(b"\x1f\x8b"):
        return _compressed(src, budget, depth, "gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))
    if head.startswith(b"BZh"):
        return _compressed(src, budget, depth, "bzip2", bz2.BZ2Decompressor)
    if head.startswith(b"\xfd7zXZ\x00"):
        return _compressed(src, budget, depth, "xz", lzma.LZMADecompressor)
    if head[:1] == b"]" and head[1:3] == b"\x00\x00" and len(head) >= 13:  # legacy .lzma (joblib writes it)
        return _compressed(src, budget, depth, "lzma", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE))
    if len(head) >= 262 and head[257:262] == b"ustar":
        return _tar(src, budget, depth)
    if complete and size >= 10 and (found := _safetensors(src)) is not None:
        return found
    if head.startswith((_PNG, b"\xff\xd8\xff")) or head[:6] in (b"GIF87a", b"GIF89a") \
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        if not complete:
            return _unknown("an image inside an archive")
        window = src.read_at(0, min(size, 1024 * 1024))  # a GIF header is also a valid start of a pickle stream
        if _is_pickle(window, complete=len(window) == size):
            return Classification("pickle", "pickle opcodes behind an image signature")
        return _image(src, head)
    if complete and (found := _protobuf(src)) is not None:
        return found
    if complete and size <= budget.limits.max_text:
        data = src.read_at(0, size)
        if _is_pickle(data, complete=True):
            return Classification("pickle", _pickle_detail(data))
        if _is_text(data):
            return Classification("text", "UTF-8")
        return _unknown("binary")
    if head[:1] in _OPCODES and _is_pickle(window := src.read_at(0, 64 * 1024),
                                           complete=size <= 64 * 1024 and complete):
        return Classification("pickle", _pickle_detail(window))
    if complete and size > budget.limits.max_text:
        return _unknown(f"binary, or text longer than {budget.limits.max_text} bytes")
    return _unknown("binary")


def _pickle_before(src: ByteSource, what: str) -> Classification | None:
    """A pickle at the start of a file whose container is found further in (a zip's end record, an HDF5 superblock
    after a user block): pickle loaders and torch.load read from byte 0 and ignore what follows, so such a prefix
    must never let the file pass as the container (an .npz or Keras file). None if the start is not a pickle."""
    window = src.read_at(0, min(src.size, 64 * 1024))
    if _is_pickle(window, complete=len(window) == src.size):
        return Classification("pickle", f"{_pickle_detail(window)} before {what}")
    return None


# --- pickle and text ---------------------------------------------------------------------------------------------


#: Opcodes a pickle loader acts on beyond building data: imports (GLOBAL, STACK_GLOBAL, INST, the EXT registry)
#: and calls (REDUCE, OBJ, NEWOBJ, BUILD). A stream that reaches one of them has run code, whatever follows.
_EXECUTES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD", "EXT1",
                       "EXT2", "EXT4"})


_IMPORTABLE = re.compile(r"[A-Za-z_][\w.]* [A-Za-z_][\w.]*")


def _is_pickle(data: bytes, complete: bool) -> bool:
    """Whether a pickle loader would act on ``data`` from its start (any protocol: PROTO is an opcode like others,
    so a safetensors header length of 0x0280 is not taken for protocol 2).

    The opcodes are walked as the loader walks them, with its stack and marks: a pickle is a stream that reaches an
    importing or calling opcode, or STOP with something to return, before anything the loader would fail on
    (whatever follows, the loader has acted by then). A prefix of a longer stream whose opcodes are all valid up to
    its end is taken for one too: a real text or binary file fails within a few bytes.
    """
    depth, ops = 0, 0
    marks: list[int] = []
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            ops += 1
            if op.name in ("GLOBAL", "INST") and not _IMPORTABLE.fullmatch(str(arg)):
                return False  # not a module and a name: the loader's import fails before anything runs
            before, after = op.stack_before, op.stack_after
            if op.name == "POP" and marks and depth == marks[-1]:
                marks.pop()  # the loader's POP with nothing above the last mark pops the mark itself
                continue
            if pickletools.markobject in before:
                if not marks:
                    return False  # the loader fails here: no mark to pop to
                depth = marks.pop() - before.index(pickletools.markobject)
            else:
                depth -= len(before)
            if depth < 0:
                return False  # stack underflow: the loader fails here
            if op.name == "STOP":
                return True
            if op.name in _EXECUTES:
                return True
            if pickletools.markobject in after:
                marks.append(depth)
            else:
                depth += len(after)
    except Exception:  # noqa: BLE001, S110 - any malformed opcode or argument: genops raises several kinds
        pass
    return not complete and ops >= 3


def _pickle_detail(data: bytes) -> str:
    if data[:1] == b"\x80" and len(data) > 1:
        return f"pickle protocol {data[1]}"
    return "protocol 0/1 pickle opcodes" + (" (looks like text)" if _is_text(data[:65536]) else "")


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _TEXT_CONTROL.search(data) is None


# --- safetensors --------------------------------------------------------------------------------------------------


def _safetensors(src: ByteSource) -> Classification | None:
    """A validated safetensors file, ``unknown`` for one whose header is wrong, None if it does not look like one."""
    (length,) = struct.unpack("<Q", src.read_at(0, 8))
    if length < 2 or length > src.size - 8 or src.read_at(8, 1) != b"{":
        return None
    if length > MAX_SAFETENSORS_HEADER:
        return _unknown(f"safetensors header of {length} bytes is over the {MAX_SAFETENSORS_HEADER}-byte limit")
    problem = _safetensors_problem(src.read_at(8, length), src.size - 8 - length)
    if problem is not None:
        return _unknown(f"invalid safetensors header: {problem}")
    return Classification("safetensors", "")


def _strict_json(data: bytes) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    return json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)


def _safetensors_problem(header: bytes, data_size: int) -> str | None:
    try:
        parsed = _strict_json(header)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return f"not a strict JSON object ({str(exc)[:80]})"
    if not isinstance(parsed, dict):
        return "not a JSON object"
    spans = []
    for name, info in parsed.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return "__metadata__ must map strings to strings"
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            return f"tensor {name[:60]!r} must have exactly dtype, shape and data_offsets"
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SAFETENSORS_DTYPE_BITS:
            return f"tensor {name[:60]!r} has unknown dtype {str(dtype)[:20]!r}"
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            return f"tensor {name[:60]!r} has a shape that is not a list of non-negative integers"
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets) \
                or not 0 <= offsets[0] <= offsets[1]:
            return f"tensor {name[:60]!r} has data_offsets that are not [begin, end] with 0 <= begin <= end"
        elements = 1
        for dim in shape:
            elements *= dim
        bits = elements * SAFETENSORS_DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
            return f"tensor {name[:60]!r}: shape {shape} of {dtype} does not fill data_offsets {offsets}"
        spans.append((offsets[0], offsets[1], name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            what = "overlaps another tensor" if begin < position else "leaves a gap before it"
            return f"tensor {name[:60]!r} at {begin} {what} (data must be contiguous)"
        position = end
    if position != data_size:
        return (f"tensors cover {position} bytes but {data_size} follow the header (data_offsets outside the file, "
                "or bytes no tensor accounts for)")
    return None


# --- GGUF ---------------------------------------------------------------------------------------------------------

_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_MAX_COUNT = 1_000_000


class _Cursor:
    def __init__(self, src: ByteSource, pos: int = 0) -> None:
        self.src, self.pos = src, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.src.size:
            raise ValueError("runs past the end of the file")
        data = self.src.read_at(self.pos, n)
        self.pos += n
        return data

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])


def _gguf(src: ByteSource) -> Classification:
    cur = _Cursor(src, 4)
    try:
        version = cur.u32()
        if version not in (2, 3):
            return _unknown(f"GGUF version {version} is not 2 or 3")
        tensors, kvs = cur.u64(), cur.u64()
        if tensors > _GGUF_MAX_COUNT or kvs > _GGUF_MAX_COUNT:
            return _unknown("GGUF counts out of bounds")
        alignment = 32
        for _ in range(kvs):
            key = cur.take(_bounded(cur.u64(), 65535)).decode("utf-8")
            kind = cur.u32()
            value = _gguf_value(cur, kind, 0)
            if key == "general.alignment" and isinstance(value, int) and value > 0:
                alignment = value
        infos = []
        for _ in range(tensors):
            cur.take(_bounded(cur.u64(), 65535))
            dims = cur.u32()
            if dims > 8:
                return _unknown("GGUF tensor with more than 8 dimensions")
            for _ in range(dims):
                cur.u64()
            ggml_type = cur.u32()
            if ggml_type > 64:
                return _unknown(f"GGUF tensor of unknown type {ggml_type}")
            infos.append(cur.u64())
        data_start = -(-cur.pos // alignment) * alignment
        if data_start > src.size or any(data_start + off > src.size or off % alignment for off in infos):
            return _unknown("GGUF tensor data outside the file")
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        return _unknown(f"invalid GGUF: {exc}")
    return Classification("gguf", f"GGUF v{version}")


def _bounded(n: int, limit: int) -> int:
    if n > limit:
        raise ValueError(f"length {n} over {limit}")
    return n


def _gguf_value(cur: _Cursor, kind: int, depth: int) -> Any:
    if kind in _GGUF_SCALARS:
        raw = cur.take(_GGUF_SCALARS[kind])
        return int.from_bytes(raw, "little") if kind in (4, 10) else None
    if kind == _GGUF_STRING:
        cur.take(_bounded(cur.u64(), 16 * 1024 * 1024))
        return None
    if kind == _GGUF_ARRAY and depth < 2:
        item, count = cur.u32(), _bounded(cur.u64(), 16 * 1024 * 1024)
        if item in _GGUF_SCALARS:
            cur.take(count * _GGUF_SCALARS[item])
        else:
            for _ in range(count):
                _gguf_value(cur, item, depth + 1)
        return None
    raise ValueError(f"unknown metadata type {kind}")


# --- numpy ---------------------------------------------------------------------------------------------------------


def _npy_header(src: ByteSource) -> dict[str, Any]:
    major = src.read_at(6, 1)
    if major == b"\x01":
        (length,), start = struct.unpack("<H", src.read_at(8, 2)), 10
    elif major in (b"\x02", b"\x03"):
        (length,), start = struct.unpack("<I", src.read_at(8, 4)), 12
    else:
        raise ValueError("unknown .npy version")
    if length > 1024 * 1024:
        raise ValueError("header too long")
    header = ast.literal_eval(src.read_at(start, length).decode("latin-1"))
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError("header is not {descr, fortran_order, shape}")
    header["_start"] = start + length
    return header


def _has_object(descr: Any) -> bool:
    """Whether a dtype descr can hold Python objects (numpy loads those with pickle). Anything but the forms numpy
    writes (a type string, or a list of (name, descr[, shape]) fields) counts as able to."""
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):
        return any(not isinstance(f, tuple) or len(f) not in (2, 3) or _has_object(f[1]) for f in descr)
    return True


def _itemsize(descr: Any) -> int | None:
    if isinstance(descr, str):
        match = re.fullmatch(r"[<>|=]?([biufcSUVmM])(\d+)(\[\w+\])?", descr)
        if not match:
            return None
        n = int(match.group(2))
        return n * 4 if match.group(1) == "U" else n
    if isinstance(descr, list):
        total = 0
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                return None
            size = _itemsize(field[1])
            if size is None:
                return None
            count = 1
            for dim in (field[2] if len(field) == 3 else ()):
                count *= dim
            total += size * count
        return total
    return None


def _npy(src: ByteSource, complete: bool) -> Classification:
    try:
        header = _npy_header(src)
    except (ValueError, SyntaxError, struct.error, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        return _unknown(f"invalid .npy header: {str(exc)[:60]}")
    if _has_object(header["descr"]):
        return Classification("pickle", "numpy object array (loaded with pickle)")
    if not complete:
        return Classification("numpy", "")
    itemsize, shape = _itemsize(header["descr"]), header["shape"]
    if itemsize is None or not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        return _unknown("unsupported .npy dtype or shape")
    count = 1
    for dim in shape:
        count *= dim
    if header["_start"] + count * itemsize != src.size:
        return _unknown(".npy data size does not match its header")
    return Classification("numpy", "")


# --- containers ----------------------------------------------------------------------------------------------------


def _zip_end(src: ByteSource) -> int | None:
    """Offset of a zip end-of-central-directory record near the end of the file, or None."""
    size = src.size
    if size < 22:
        return None
    start = max(0, size - ZIP_END_SEARCH)
    tail = src.read_at(start, size - start)
    at = tail.rfind(b"PK\x05\x06")
    while at >= 0:
        if at + 22 <= len(tail):
            return start + at
        at = tail.rfind(b"PK\x05\x06", 0, at)
    return None


def _hdf5_user_block(src: ByteSource) -> bool:
    """An HDF5 superblock after a user block of 512 bytes to 32 KiB (within the first block read anyway)."""
    offset = 512
    while offset + 8 <= min(src.size, HDF5_USER_BLOCK_SEARCH):
        if src.read_at(offset, 8) == HDF5_SIGNATURE:
            return True
        offset *= 2
    return False


def _member_kinds(members: Iterator[tuple[str, ByteSource, bool]], budget: _Budget,
                  depth: int) -> list[tuple[str, Classification]]:
    found = []
    for count, (name, member, complete) in enumerate(members):
        if count >= budget.limits.max_members:
            raise _Exceeded(f"more than {budget.limits.max_members} members")
        found.append((name, _classify(member, budget, depth + 1, complete)))
        if found[-1][1].kind == "pickle":
            break
    return found


def _container_result(what: str, kinds: list[tuple[str, Classification]]) -> Classification:
    for name, kind in kinds:
        if kind.kind == "pickle":
            return Classification("pickle", f"{what} holding a pickle ({name[:80]}: {kind.detail})")
    return _unknown(f"{what} archive")


def _zip(src: ByteSource, end: int, budget: _Budget, depth: int) -> Classification:
    if depth >= budget.limits.max_depth:
        return _unknown("archive nested too deeply to inspect")
    try:
        archive = zipfile.ZipFile(_Reader(src))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error, KeyError) as exc:
        return _unknown(f"zip end record but not a readable zip ({str(exc)[:60]})")
    if len(infos) > budget.limits.max_members:
        return _unknown(f"zip of more than {budget.limits.max_members} members")

    def members() -> Iterator[tuple[str, ByteSource, bool]]:
        for info in infos:
            if info.is_dir():
                continue
            if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
                local = src.read_at(info.header_offset, 30)
                if len(local) == 30 and local[:4] == b"PK\x03\x04":
                    name_len, extra_len = struct.unpack("<HH", local[26:30])
                    start = info.header_offset + 30 + name_len + extra_len
                    if start + info.file_size <= src.size:
                        yield info.filename, _Slice(src, start, info.file_size), True
                        continue
            yield info.filename, *_zip_prefix(archive, info, budget)

    try:
        kinds = _member_kinds(members(), budget, depth)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error, zlib.error, lzma.LZMAError,
            NotImplementedError, RuntimeError) as exc:
        return _unknown(f"unreadable zip member ({str(exc)[:60]})")
    names = {info.filename for info in infos}
    if any(k.kind == "pickle" for _, k in kinds):
        return _container_result("zip", kinds)
    if kinds and all(name.endswith(".npy") and k.kind == "numpy" for name, k in kinds):
        return Classification("numpy", f".npz of {len(kinds)} array(s)")
    if "config.json" in names and any(k.kind == "keras" for _, k in kinds):
        return Classification("keras", "Keras v3 zip")
    return _container_result("zip", kinds)


def _zip_prefix(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> tuple[ByteSource, bool]:
    if info.flag_bits & 0x1:
        raise ValueError(f"{info.filename} is encrypted")
    want = min(info.file_size, 1024 * 1024)
    with archive.open(info) as handle:
        data = handle.read(want)
    budget.charge_inflate(len(data))
    return BytesSource(data), len(data) == info.file_size


def _compressed(src: ByteSource, budget: _Budget, depth: int, what: str, make: Callable[[], Any]) -> Classification:
    """A gzip, bzip2 or xz stream: a bounded prefix is decompressed and classified (only a pickle inside counts)."""
    if depth >= budget.limits.max_depth:
        return _unknown("archive nested too deeply to inspect")
    decompressor = make()
    zlib_style = hasattr(decompressor, "unconsumed_tail")
    out = bytearray()
    offset = 0
    want = max(0, min(budget.limits.max_inflate - budget.inflated, 8 * 1024 * 1024))
    try:
        while len(out) < want and not decompressor.eof and offset < src.size:
            chunk = src.read_at(offset, 64 * 1024)
            offset += len(chunk)
            if zlib_style:
                out += decompressor.decompress(chunk, want - len(out))
                while decompressor.unconsumed_tail and len(out) < want:
                    out += decompressor.decompress(decompressor.unconsumed_tail, want - len(out))
            else:
                out += decompressor.decompress(chunk, max_length=want - len(out))
                while not decompressor.needs_input and not decompressor.eof and len(out) < want:
                    out += decompressor.decompress(b"", max_length=want - len(out))
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        return _unknown(f"corrupt {what} stream ({str(exc)[:60]})")
    budget.charge_inflate(len(out))
    inner = BytesSource(bytes(out))
    whole = bool(decompressor.eof) and len(out) < want
    kind = _tar(inner, budget, depth + 1) if _is_tar(inner) else _classify(inner, budget, depth + 1, complete=whole)
    if kind.kind == "pickle":
        return Classification("pickle", f"{what}-compressed {kind.detail}")
    return _unknown(f"{what}-compressed data" + ("" if whole else " (not decompressed to its end)"))


def _is_tar(src: ByteSource) -> bool:
    return src.read_at(257, 5) == b"ustar"


def _tar(src: ByteSource, budget: _Budget, depth: int) -> Classification:
    if depth >= budget.limits.max_depth:
        return _unknown("archive nested too deeply to inspect")

    def members() -> Iterator[tuple[str, ByteSource, bool]]:
        with tarfile.open(fileobj=_Reader(src), mode="r:") as archive:
            for info in archive:
                if not info.isreg():
                    continue
                if info.offset_data + info.size <= src.size:
                    yield info.name, _Slice(src, info.offset_data, info.size), True
                else:  # cut off at the end of a decompressed prefix
                    yield info.name, _Slice(src, info.offset_data, src.size - info.offset_data), False

    try:
        kinds = _member_kinds(members(), budget, depth)
    except (tarfile.TarError, ValueError, OSError, EOFError, struct.error, UnicodeDecodeError) as exc:
        return _unknown(f"unreadable tar ({str(exc)[:60]})")
    return _container_result("tar", kinds)


# --- images and protobuf -------------------------------------------------------------------------------------------


def _image(src: ByteSource, head: bytes) -> Classification:
    if not head.startswith(_PNG):
        return Classification("image", "JPEG" if head[:2] == b"\xff\xd8" else "GIF" if head[:3] == b"GIF" else "WebP")
    pos = 8
    for _ in range(100_000):
        header = src.read_at(pos, 8)
        if len(header) != 8:
            break
        (length,), kind = struct.unpack(">I", header[:4]), header[4:]
        pos += 12 + length
        if kind == b"IEND":
            if pos == src.size:
                return Classification("image", "PNG")
            break
    return _unknown("PNG whose chunks do not end with IEND at the end of the file")


_ONNX_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25}
_SENTENCEPIECE_FIELDS = {1, 2, 3, 4, 5}


def _protobuf(src: ByteSource) -> Classification | None:
    """ONNX or sentencepiece, if the whole file parses as protobuf fields of that message; else None."""
    first = src.read_at(0, 1)
    if first not in (b"\x08", b"\x0a", b"\x12", b"\x1a"):
        return None
    fields: dict[int, int] = {}
    pos, size = 0, src.size
    count = 0
    while pos < size:
        count += 1
        if count > 2_000_000:
            return None
        key, pos = _varint(src, pos)
        if key is None:
            return None
        number, wire = key >> 3, key & 7
        if number == 0 or number > 536870911:
            return None
        if wire == 0:
            value, pos = _varint(src, pos)
            if value is None:
                return None
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(src, pos)
            if length is None:
                return None
            pos += length
        else:
            return None
        if pos > size:
            return None
        fields[number] = wire
    numbers = set(fields)
    if fields.get(1) == 0 and fields.get(7) == 2 and numbers <= _ONNX_FIELDS:
        return Classification("onnx", "ONNX ModelProto")
    if fields.get(1) == 2 and numbers <= _SENTENCEPIECE_FIELDS and all(w == 2 for w in fields.values()):
        return Classification("sentencepiece", "sentencepiece ModelProto")
    return None


def _varint(src: ByteSource, pos: int) -> tuple[int | None, int]:
    data = src.read_at(pos, 10)
    value = 0
    for i, byte in enumerate(data):
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    return None, pos
