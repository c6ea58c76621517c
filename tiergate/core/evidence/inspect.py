"""Reading UK AISI Inspect eval logs (``.eval`` zip or ``.json``) into :class:`EvalRun`, refusing incomplete runs.

Layouts followed (checked against UKGovernmentBEIS/inspect_ai ``src/inspect_ai/log/_log.py`` for ``EvalLog``,
``EvalSpec``, ``EvalConfig``, ``EvalDataset``, ``EvalResults``, ``EvalScore``, ``EvalMetric``;
``src/inspect_ai/log/_recorders/eval.py`` for the zip member names; ``src/inspect_ai/_eval/task/results.py`` for how
``results.scores`` is built; ``src/inspect_ai/dataset/_sources/hf.py`` for what ``eval.dataset`` holds):

- ``.eval`` (a zip, Inspect's default log format): ``header.json`` is the whole ``EvalLog`` without samples and is
  written when the run finishes. While a run is in progress (or if it crashed) there is only
  ``_journal/start.json`` (``{version, eval, plan}``) plus ``samples/<id>_epoch_<n>.json`` and
  ``_journal/summaries/<n>.json``: such a log is read as status ``"started"`` and refused. The first ``.eval``
  versions wrote ``start.json`` and ``results.json`` (``{status, stats, results, error}``) at the zip root instead;
  both are read. Samples are never read: the scores signed are the harness's own aggregate ones (so the newer
  "chunked" per-sample layouts change nothing here). Members are deflated by default; logs written with
  ``INSPECT_USE_ZSTD`` use zstd (zip method 93), which :mod:`zipfile` reads only from Python 3.14 and which is
  refused, with that reason, before.
- ``.json``: the whole ``EvalLog`` as one JSON object (what ``inspect log dump`` prints).
- ``results.scores[]`` (``{name, scorer, reducer, metrics: {key: {name, value}}}``); log schema version 1 wrote
  ``results.scorer`` + ``results.metrics`` instead, which is read as a single score.

A run is complete when ``status == "success"``, ``invalidated`` is not true, ``eval.config.limit`` and
``eval.config.sample_id`` are unset, there are results with at least one metric, ``completed_samples ==
total_samples`` and ``total_samples`` is at least ``eval.dataset.samples``. Anything else is refused.

Zips are read from memory, never extracted: the member count is capped (:data:`MAX_ZIP_MEMBERS`), member names are
checked (no absolute paths, ``..``, backslashes, drive letters or duplicates), encrypted members are refused, and
only the few JSON members needed are opened, each capped at :data:`MAX_MEMBER_BYTES` decompressed (checked against
the declared size and again while reading, so a lying header cannot make a zip bomb).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import zipfile
import zlib
from datetime import datetime
from typing import Any
from collections.abc import Mapping, Sequence

from tiergate.core.evidence import (
    EvalRun,
    LogFile,
    as_count,
    as_number,
    clean_text,
    frozen,
    parse_json,
    read_log_bytes,
    refuse,
    text_or_none,
)
from tiergate.core.timeutil import parse_time

MAX_MEMBER_BYTES = 64 * 1024 * 1024
"""Largest decompressed zip member read (``header.json`` of a real log is kilobytes to a few MiB)."""

MAX_ZIP_MEMBERS = 500_000
"""Most zip members accepted. A log has one member per sample and epoch plus a few; the cap is checked in the
end-of-central-directory record before :mod:`zipfile` builds an object per member (millions of empty members fit
in 512 MiB and would cost gigabytes of memory)."""

HEADER_JSON = "header.json"
JOURNAL_START_JSON = "_journal/start.json"
LEGACY_START_JSON = "start.json"
LEGACY_RESULTS_JSON = "results.json"

_WHAT = "an Inspect eval log"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_ENCRYPTED_FLAG = 0x1
_METHOD_NAMES = {9: "9 (deflate64)", 93: "93 (zstd; readable from Python 3.14)"}


def read_inspect_log(path: str | os.PathLike[str]) -> list[EvalRun]:
    """Read an Inspect ``.eval`` or ``.json`` log; one log holds one task's run, so the list has one entry."""
    log = read_log_bytes(path)
    header = _read_header(log)
    return [_run_from_header(header, log)]


# --- getting the header (the EvalLog without samples) -----------------------------------------------------------------


def _read_header(log: LogFile) -> dict[str, Any]:
    """The log's header as a dict. The format is told by content (zip magic), not the file's extension."""
    header = _header_from_zip(log) if log.data[:4] in _ZIP_MAGIC else parse_json(log.data, log.where, _WHAT)
    if not isinstance(header, dict) or not isinstance(header.get("eval"), dict):
        refuse(log.where, f"is not {_WHAT} (it has no 'eval' object)")
    return header


def _header_from_zip(log: LogFile) -> dict[str, Any]:  # noqa: RET503 - ends in refuse(), which raises
    _refuse_too_many_members(log.data, log.where)
    try:
        archive = zipfile.ZipFile(io.BytesIO(log.data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        refuse(log.where, f"is not a readable zip archive, so not {_WHAT} (.eval)")
    with archive:
        members = _index_members(archive, log.where)
        if HEADER_JSON in members:
            return _member_object(archive, members[HEADER_JSON], log.where)
        if LEGACY_START_JSON in members:
            return _legacy_header(archive, members, log.where)
        if JOURNAL_START_JSON in members:
            # A run that is still going, or that died before writing header.json: only the start record exists.
            return {**_member_object(archive, members[JOURNAL_START_JSON], log.where), "status": "started"}
    refuse(log.where, f"has no {HEADER_JSON}, {JOURNAL_START_JSON} or {LEGACY_START_JSON}, so it is not {_WHAT}")


def _refuse_too_many_members(data: bytes, where: str) -> None:
    """Read the member count from the end-of-central-directory record (zip64 too) without parsing the directory.

    An unreadable record is left for :mod:`zipfile` to reject; only a count known to be over the cap is refused here.
    """
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or len(data) < end + 22:
        return
    count = struct.unpack_from("<H", data, end + 10)[0]
    locator = end - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        record = struct.unpack_from("<Q", data, locator + 8)[0]
        if data[record : record + 4] == b"PK\x06\x06" and len(data) >= record + 40:
            count = struct.unpack_from("<Q", data, record + 32)[0]
    if count > MAX_ZIP_MEMBERS:
        refuse(where, f"has {count} zip members; more than {MAX_ZIP_MEMBERS} are not read")


def _legacy_header(archive: zipfile.ZipFile, members: Mapping[str, zipfile.ZipInfo], where: str) -> dict[str, Any]:
    """Early ``.eval`` layout: ``start.json`` at the start, ``results.json`` at the end (absent while running)."""
    start = _member_object(archive, members[LEGACY_START_JSON], where)
    if LEGACY_RESULTS_JSON not in members:
        return {**start, "status": "started"}
    return {**start, **_member_object(archive, members[LEGACY_RESULTS_JSON], where)}


def _index_members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """Map member names to entries, refusing names that are paths out of the archive or that appear twice.

    Nothing is extracted, but a duplicated ``header.json`` would mean different tools read different headers from
    the same signed bytes, and a path-trick name is a sign of a crafted file.
    """
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if _unsafe_member_name(name):
            refuse(where, f"has a zip member with an unsafe name {clean_text(name)!r}")
        if name in members:
            refuse(where, f"has two zip members named {clean_text(name)!r}; refusing an ambiguous log")
        members[name] = info
    return members


def _unsafe_member_name(name: str) -> bool:
    return (
        name.startswith("/")
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or any(part == ".." for part in name.split("/"))
    )


def _member_object(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> dict[str, Any]:
    value = parse_json(_read_member(archive, info, where), f"{where}: {info.filename}", _WHAT)
    if not isinstance(value, dict):
        refuse(where, f"zip member {info.filename} is not a JSON object")
    return value


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Decompress one member into memory, never more than :data:`MAX_MEMBER_BYTES` whatever its header claims."""
    name = clean_text(info.filename)
    if info.flag_bits & _ENCRYPTED_FLAG:
        refuse(where, f"zip member {name} is encrypted")
    if info.file_size > MAX_MEMBER_BYTES:
        refuse(where, f"zip member {name} would decompress to {info.file_size} bytes; the cap is {MAX_MEMBER_BYTES}")
    try:
        with archive.open(info) as handle:
            data = handle.read(MAX_MEMBER_BYTES + 1)
    except NotImplementedError:
        method = _METHOD_NAMES.get(info.compress_type, str(info.compress_type))
        refuse(where, f"zip member {name} uses compression method {method}, which this Python cannot read")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as exc:
        refuse(where, f"zip member {name} is corrupt ({clean_text(str(exc))})")
    if len(data) > MAX_MEMBER_BYTES:
        refuse(where, f"zip member {name} decompresses past {MAX_MEMBER_BYTES} bytes")
    return data


# --- from header to EvalRun -------------------------------------------------------------------------------------------


def _run_from_header(header: Mapping[str, Any], log: LogFile) -> EvalRun:
    where = log.where
    spec = header["eval"]
    task = text_or_none(spec.get("task"))
    if task is None:
        refuse(where, "has no eval.task")
    _refuse_unfinished(header, where)
    config = _config(spec, where)
    _refuse_subset(config, where)
    results = header.get("results")
    if not isinstance(results, dict):
        refuse(where, "has no results (the run produced no scores)")
    completed = _sample_counts(results, spec, where)
    metrics, stderr = _metrics(_scores(results, where), where)
    dataset = spec.get("dataset") if isinstance(spec.get("dataset"), dict) else {}
    packages = spec.get("packages") if isinstance(spec.get("packages"), dict) else {}
    return EvalRun(
        format="inspect",
        task=task,
        harness_name="inspect_ai",
        harness_version=text_or_none(packages.get("inspect_ai")),
        dataset_name=text_or_none(dataset.get("name")) or text_or_none(dataset.get("location")),
        dataset_revision=text_or_none(dataset.get("revision")),
        metrics=frozen(metrics),
        stderr=frozen(stderr),
        sample_size=_distinct_samples(completed, config, where),
        evaluated_at=_created(spec, where),
        model=text_or_none(spec.get("model")),
        log_sha256=log.sha256,
        log_name=log.name,
    )


def _refuse_unfinished(header: Mapping[str, Any], where: str) -> None:
    """A run that errored, was cancelled, is still running, or had samples invalidated afterwards is not evidence."""
    status = header.get("status")
    if status != "success":
        shown = clean_text(str(status)) if status is not None else "missing"
        message = _error_message(header.get("error"))
        suffix = f": {message}" if message else ""
        refuse(where, f"the run's status is {shown!r}, not 'success'{suffix}")
    invalidated = header.get("invalidated")
    if invalidated is not None and invalidated is not False:
        refuse(where, "the log is marked invalidated (samples were invalidated after the run)")


def _error_message(error: Any) -> str | None:
    """First line of ``EvalError.message`` (the traceback is not for a one-line reason)."""
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message.strip():
            return clean_text(message.strip().splitlines()[0])
    return None


def _config(spec: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    config = spec.get("config", {})
    if config is None:
        return {}
    if not isinstance(config, dict):
        refuse(where, "eval.config is not an object")
    return config


def _refuse_subset(config: Mapping[str, Any], where: str) -> None:
    """``--limit N`` / ``--limit 10-20`` or ``--sample-id`` ran part of the benchmark: its scores are not the score."""
    limit = config.get("limit")
    if limit is not None:
        refuse(where, f"the run was limited to part of the dataset (eval.config.limit = {_short_json(limit)})")
    if config.get("sample_id") is not None:
        refuse(where, "the run evaluated only chosen samples (eval.config.sample_id is set)")


def _short_json(value: Any) -> str:
    """A log value as it reads in JSON (``null``, ``NaN``, ``[10, 20]``), short enough for a one-line reason."""
    if isinstance(value, list):
        return "[" + ", ".join(_short_json(item) for item in value[:4]) + (", ...]" if len(value) > 4 else "]")
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return clean_text(str(value), limit=40)


def _sample_counts(results: Mapping[str, Any], spec: Mapping[str, Any], where: str) -> int:
    """Completed samples, refusing runs that did not finish every one (errors allowed, early stopping, a trim)."""
    total = as_count(results.get("total_samples"))
    completed = as_count(results.get("completed_samples"))
    if total is None or completed is None:
        refuse(where, "results.total_samples / results.completed_samples are missing or not counts")
    if total == 0 or completed == 0:
        refuse(where, "has no results (0 samples were completed)")
    if completed < total:
        refuse(where, f"only {completed} of {total} samples completed (results.completed_samples < total_samples)")
    dataset = spec.get("dataset")
    dataset_samples = as_count(dataset.get("samples")) if isinstance(dataset, dict) else None
    if dataset_samples is not None and total < dataset_samples:
        refuse(where, f"the run covered {total} samples but the dataset has {dataset_samples}")
    return completed


def _distinct_samples(completed: int, config: Mapping[str, Any], where: str) -> int:
    """Samples scored, not sample-epochs: ``completed_samples`` counts every epoch (dataset samples x epochs)."""
    epochs = config.get("epochs")
    if epochs is None:
        return completed
    count = as_count(epochs)
    if count is None or count == 0:
        refuse(where, f"eval.config.epochs is not a positive integer ({_short_json(epochs)})")
    if completed % count:
        refuse(where, f"completed_samples {completed} is not a multiple of eval.config.epochs {count}")
    return completed // count


def _created(spec: Mapping[str, Any], where: str) -> datetime | None:
    created = spec.get("created")
    if created is None:
        return None
    try:
        return parse_time(created)
    except ValueError:
        refuse(where, f"eval.created is not a time with a UTC offset ({_short_json(created)})")


# --- metrics ---------------------------------------------------------------------------------------------------------


def _scores(results: Mapping[str, Any], where: str) -> list[Mapping[str, Any]]:
    """``results.scores``; a schema-1 log's ``results.scorer`` + ``results.metrics`` is read as one score."""
    scores = results.get("scores")
    if scores is None and isinstance(results.get("scorer"), dict):
        scorer_name = results["scorer"].get("name")
        scores = [{"name": scorer_name, "scorer": scorer_name, "metrics": results.get("metrics") or {}}]
    if not isinstance(scores, list) or not scores:
        refuse(where, "has no results (results.scores is empty)")
    for index, score in enumerate(scores):
        if not isinstance(score, dict) or not isinstance(score.get("metrics"), dict):
            refuse(where, f"results.scores[{index}] is not a score with metrics")
    return scores


def _score_labels(scores: Sequence[Mapping[str, Any]], where: str) -> list[str]:
    """Prefix for each score's metrics: none when there is one score, else the score's name.

    The score ``name`` is used rather than ``scorer`` because a scorer returning a dict of values yields one score
    per key, all with the same ``scorer``. With several epoch reducers the same name repeats once per reducer, so
    the reducer is added: ``choice[pass_at_2]``.
    """
    if len(scores) == 1:
        return [""]
    names = [text_or_none(score.get("name")) or text_or_none(score.get("scorer")) for score in scores]
    labels = []
    for index, (name, score) in enumerate(zip(names, scores, strict=True)):
        if name is None:
            refuse(where, f"results.scores[{index}] has no name")
        reducer = text_or_none(score.get("reducer"))
        labels.append(f"{name}[{reducer}]" if reducer and names.count(name) > 1 else name)
    return labels


def _metrics(scores: Sequence[Mapping[str, Any]], where: str) -> tuple[dict[str, float], dict[str, float]]:
    """Metrics named ``<metric>`` (one score) or ``<score>/<metric>``; a ``stderr`` metric is its siblings' stderr.

    Inspect's ``stderr`` metric is the standard error of the score mean, written next to ``accuracy``/``mean``.
    """
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    for label, score in zip(_score_labels(scores, where), scores, strict=True):
        raw: Mapping[str, Any] = score["metrics"]
        error = _stderr_value(raw.get("stderr"), label, where)
        for key, metric in raw.items():
            if key == "stderr":
                continue
            name = f"{label}/{key}" if label else key
            if name in metrics:
                refuse(where, f"two scores produce the metric {clean_text(name)!r}; refusing ambiguous results")
            metrics[name] = _metric_value(metric, name, where)
            if error is not None:
                stderr[name] = error
    if not metrics:
        refuse(where, "has no results (the scores have no metrics)")
    return metrics, stderr


def _metric_value(metric: Any, name: str, where: str) -> float:
    """A metric's value must be a finite number. Inspect writes a NaN metric (e.g. no scored samples) as null."""
    raw = metric.get("value") if isinstance(metric, dict) else None
    value = as_number(raw)
    if value is None or not math.isfinite(value):
        refuse(where, f"metric {clean_text(name)!r} is {_short_json(raw)}, not a finite number")
    return value


def _stderr_value(metric: Any, label: str, where: str) -> float | None:
    """The stderr metric's value; unknown (absent or null) is no stderr, but a non-finite number is refused."""
    if not isinstance(metric, dict) or metric.get("value") is None:
        return None
    value = as_number(metric.get("value"))
    if value is None:
        return None
    if not math.isfinite(value):
        name = f"{label}/stderr" if label else "stderr"
        refuse(where, f"metric {clean_text(name)!r} is {_short_json(value)}, not a finite number")
    return value
