"""Reading the evaluation logs evaluators already produce, and refusing runs that are not complete.

An evaluator signs an attestation that binds scores to a model's digest. The scores should come from the log the
evaluation harness wrote, not from numbers typed by hand, and the log's raw bytes are what gets signed as evidence:
tags and metadata of an Inspect log can be edited after the run, so only the digest of the exact bytes read pins it.

Two harnesses are read (each module's docstring names the layouts and the source files checked):

- :mod:`tiergate.core.evidence.inspect` - UK AISI Inspect eval logs (``.eval`` zip or ``.json``).
- :mod:`tiergate.core.evidence.lm_eval` - EleutherAI lm-evaluation-harness ``results_*.json``.

Both refuse, with :class:`tiergate.errors.InputError` and a one-line reason that names the file, anything that is not a
complete run: a limited run (``--limit``), a run that stopped early, an errored or cancelled run, a log without
results. A partial run's scores are not the benchmark's scores, and a gate that signs them would let a model through
on a tenth of WMDP.

Input is untrusted: the raw file is capped at :data:`MAX_LOG_BYTES`, JSON with duplicate keys is refused (two
readers could see two different values), and metric values must be finite numbers.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn
from collections.abc import Mapping

from tiergate.core.files import MAX_LOG_JSON_DEPTH, StrictJSONError
from tiergate.core.files import parse_json as strict_json
from tiergate.errors import InputError, UsageError

__all__ = ["EvalRun", "read_eval_log", "read_inspect_log", "read_lm_eval_results"]

MAX_LOG_BYTES = 512 * 1024 * 1024
"""Largest raw log file read. Inspect ``.json`` logs carry every sample, so real ones reach hundreds of MiB."""

FORMATS = ("inspect", "lm-eval")
"""The values :func:`read_eval_log` accepts for ``fmt``."""

_MESSAGE_TEXT_LIMIT = 200


@dataclass(frozen=True)
class EvalRun:
    """One complete evaluation run of one task, as read from a harness's own log.

    ``metrics`` and ``stderr`` are read-only mappings of finite floats. ``log_sha256`` is the SHA-256 of the raw log
    file's bytes, which is what an attestation signs as evidence; ``log_name`` is the file's name (no directory).
    """

    format: str
    task: str
    harness_name: str
    harness_version: str | None
    dataset_name: str | None
    dataset_revision: str | None
    metrics: Mapping[str, float]
    stderr: Mapping[str, float]
    sample_size: int
    evaluated_at: datetime | None
    model: str | None
    log_sha256: str
    log_name: str


class LogFile(NamedTuple):
    """A log file's bytes as read once: parsing and hashing use the same bytes, so the digest covers what was read."""

    where: str
    name: str
    data: bytes
    sha256: str


def read_eval_log(path: str | os.PathLike[str], fmt: str) -> list[EvalRun]:
    """Read a log of the given format (``"inspect"`` or ``"lm-eval"``); the caller says which, nothing is guessed."""
    if fmt == "inspect":
        return read_inspect_log(path)
    if fmt == "lm-eval":
        return read_lm_eval_results(path)
    raise UsageError(f"unknown eval log format {clean_text(str(fmt))!r}; use one of: {', '.join(FORMATS)}")


# --- helpers shared by the format modules (package-internal) --------------------------------------------------------


def refuse(where: str, reason: str) -> NoReturn:
    """Raise the one-line InputError every refusal uses: ``<file>: <reason>``."""
    raise InputError(clean_text(f"{where}: {reason}", limit=None))


def clean_text(text: str, limit: int | None = _MESSAGE_TEXT_LIMIT) -> str:
    """Make text from a log safe for a one-line message, with a bounded length.

    Control and bidi characters are dropped: a log could otherwise send terminal escapes or reorder what is shown.
    """
    flat = re.sub(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]+", " ", text).strip()
    if limit is not None and len(flat) > limit:
        return flat[: limit - 3] + "..."
    return flat


def read_log_bytes(path: str | os.PathLike[str]) -> LogFile:
    """Read a regular file of at most :data:`MAX_LOG_BYTES` into memory and hash it.

    The file is opened non-blocking and checked with ``fstat`` on the open descriptor, so a FIFO or device swapped in
    cannot hang or feed the reader, and the size is re-checked while reading in case the file grows.
    """
    where = clean_text(os.fspath(path), limit=None)
    name = PurePath(os.fspath(path)).name
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        refuse(where, "no such file")
    except OSError as exc:
        refuse(where, f"cannot be read ({exc.strerror or exc})")
    try:
        data = _read_regular_file(fd, where)
    finally:
        os.close(fd)
    if len(data) > MAX_LOG_BYTES:
        refuse(where, f"grew past {_mib(MAX_LOG_BYTES)} while being read")
    if not data:
        refuse(where, "is empty")
    return LogFile(where=where, name=name, data=data, sha256=hashlib.sha256(data).hexdigest())


def _read_regular_file(fd: int, where: str) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        refuse(where, "is not a regular file")
    if info.st_size > MAX_LOG_BYTES:
        refuse(where, f"is {info.st_size} bytes; logs larger than {_mib(MAX_LOG_BYTES)} are not read")
    chunks: list[bytes] = []
    remaining = MAX_LOG_BYTES + 1
    try:
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        refuse(where, f"cannot be read ({exc.strerror or exc})")
    return b"".join(chunks)


def parse_json(data: bytes, where: str, what: str) -> Any:
    """Parse a log's UTF-8 JSON with the core's strict reader (:func:`tiergate.core.files.parse_json`): duplicate keys,
    oversized numbers and nesting past :data:`~tiergate.core.files.MAX_LOG_JSON_DEPTH` refused. ``what`` names the
    expected kind of file.

    ``NaN``/``Infinity`` literals are accepted (Inspect logs can hold them in samples); metric values are checked
    for finiteness where they are read.
    """
    try:
        return strict_json(data, max_depth=MAX_LOG_JSON_DEPTH, allow_constants=True)
    except StrictJSONError as exc:
        refuse(where, f"{exc}, so it is not read as {what}")


def as_number(value: Any) -> float | None:
    """The value as a float if it is a JSON number (``true``/``false`` are not numbers here), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return math.inf


def frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    """A read-only copy, so a frozen EvalRun's metrics cannot be changed after the refusal checks ran."""
    return MappingProxyType(dict(mapping))


def as_count(value: Any) -> int | None:
    """A non-negative integer count (sample numbers), or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def text_or_none(value: Any) -> str | None:
    """A non-empty string field, or None (logs write null, omit fields, or put other types in free-form spots)."""
    return value if isinstance(value, str) and value.strip() else None


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size >= 1024 * 1024 else f"{size} bytes"


# The format modules import the helpers above from this package, so they are imported last (a plain cycle that
# resolves because everything they need is already defined).
from tiergate.core.evidence.inspect import read_inspect_log  # noqa: E402
from tiergate.core.evidence.lm_eval import read_lm_eval_results  # noqa: E402
