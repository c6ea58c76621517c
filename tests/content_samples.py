"""Real bytes of every content class the gate recognises, and of the disguises the issue names (shared by
tests/test_formats.py, tests/redteam/test_content.py and the integration tests)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import tarfile
import zipfile

import numpy as np


class Boom:
    """What a malicious pickle runs: os.system on load."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os
        return (os.system, ("echo pwned",))


def pickle_bytes(protocol: int = 4) -> bytes:
    return pickle.dumps({"w": [1.0, 2.0], "boom": Boom()}, protocol=protocol)


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]] | None = None,
                      header_override: dict | None = None, pad: int = 0) -> bytes:
    """A real safetensors file: header JSON + data, offsets contiguous (``header_override`` replaces the header)."""
    tensors = tensors if tensors is not None else {"w": ("F32", [2, 2], b"\x00" * 16)}
    header: dict = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header_override if header_override is not None else header).encode()
    text += b" " * (-len(text) % 8 + pad)
    return struct.pack("<Q", len(text)) + text + data


def npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def torch_zip_bytes(protocol: int = 2) -> bytes:
    """The layout torch.save writes: archive/data.pkl, archive/data/0, archive/version (stored, not compressed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes(protocol))
        archive.writestr("archive/data/0", b"\x00" * 64)
        archive.writestr("archive/version", b"3\n")
    return out.getvalue()


def legacy_torch_tar() -> bytes:
    """torch.save's legacy tar format: sys_info, pickle, tensors, storages."""
    return tar_of({"sys_info": pickle.dumps({"x": 1}), "pickle": pickle_bytes(2), "tensors": b"\x00" * 8,
                   "storages": b"\x00" * 8})


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gguf_bytes() -> bytes:
    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    body += string("general.architecture") + struct.pack("<I", 8) + string("llama")
    body += string("tok") + struct.pack("<I", 2) + struct.pack("<QQ", 2, 2) + struct.pack("<I", 0) \
        + struct.pack("<Q", 0)
    body += b"\x00" * (-len(body) % 32)
    return body + b"\x00" * 16


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_bytes() -> bytes:
    return _varint(1 << 3) + _varint(8) + _field(2, b"pytorch") + _field(7, _field(1, b"node")) \
        + _field(8, _varint(2 << 3) + _varint(17))


def sentencepiece_bytes() -> bytes:
    pieces = b"".join(_field(1, _field(1, f"piece{i}".encode()) + b"\x15\x00\x00\x80\xbf") for i in range(50))
    return pieces + _field(2, _field(1, b"train.txt")) + _field(3, _field(1, b"nmt_nfkc"))


def png_bytes() -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")


def hdf5_bytes() -> bytes:
    return b"\x89HDF\r\n\x1a\n" + b"\x00" * 2040


def protocol0_text_pickle() -> bytes:
    """A protocol-0 pickle that runs os.system: plain ASCII, valid UTF-8, named config.txt in the tests."""
    return b"cos\nsystem\n(S'echo pwned'\ntR."


def gzip_bomb(size: int = 2 * 1024 ** 3) -> bytes:
    """A gzip stream of ``size`` zero bytes (about size/1000 bytes compressed)."""
    out = io.BytesIO()
    block = b"\x00" * (16 * 1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as handle:
        for _ in range(size // len(block)):
            handle.write(block)
    return out.getvalue()


def compress(kind: str, data: bytes) -> bytes:
    if kind == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    return {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](data)


def zip_of(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def envelope_bytes(payload: bytes = b'{"_type": "https://in-toto.io/Statement/v1"}') -> bytes:
    """A structurally valid DSSE envelope with an in-toto payload (its signature is not valid for any key)."""
    import base64

    return json.dumps({"payload": base64.b64encode(payload).decode(), "payloadType": "application/vnd.in-toto+json",
                       "signatures": [{"keyid": "k", "sig": base64.b64encode(b"\x00" * 64).decode()}]}).encode()
