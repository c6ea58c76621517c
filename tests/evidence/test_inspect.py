"""Inspect eval logs: complete runs are read faithfully, incomplete runs and crafted files are refused.

``data/inspect/wmdp_bio.header.json`` is the ``header.json`` of an ``inspect eval inspect_evals/wmdp_bio`` run (the
``EvalLog`` without samples, as inspect_ai 0.3.x writes it) and ``wmdp_bio.sample.json`` one of its samples (question
text replaced by a placeholder). The logs themselves are built here the way inspect_ai's recorders write them:

- ``.eval`` (``_recorders/eval.py``): ``_journal/start.json``, ``samples/<id>_epoch_<n>.json`` with
  ``_journal/summaries/<n>.json`` flushed in batches, then ``summaries.json``, ``reductions.json`` and finally
  ``header.json``. A run still going has only the journal and samples.
- early ``.eval``: ``start.json``, ``samples/...``, ``results.json`` at the root.
- ``.json``: the whole ``EvalLog`` including ``samples`` and ``reductions``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import math
import struct
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest

import tiergate.core.evidence as evidence
import tiergate.core.evidence.inspect as inspect_log
from tiergate.core.evidence import EvalRun, read_eval_log, read_inspect_log
from tiergate.errors import InputError

DATA = Path(__file__).parent / "data" / "inspect"
HEADER: dict[str, Any] = json.loads((DATA / "wmdp_bio.header.json").read_text(encoding="utf-8"))
SAMPLE: dict[str, Any] = json.loads((DATA / "wmdp_bio.sample.json").read_text(encoding="utf-8"))
LOG_NAME = "2025-03-14T10-02-11+00-00_wmdp-bio_D8kPz4Wm2QvNx6Jr9TbYc3"
CORRECT = 892
BUFFER = 100  # samples per journal flush


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2)


def _sample(index: int, epoch: int) -> dict[str, Any]:
    sample = copy.deepcopy(SAMPLE)
    sample.update(id=index, epoch=epoch)
    sample["input"] = f"Placeholder WMDP-bio question {index} (question text omitted from this fixture)."
    sample["scores"]["choice"]["value"] = "C" if index <= CORRECT else "I"
    return sample


def _summary(sample: dict[str, Any]) -> dict[str, Any]:
    return {key: sample[key] for key in ("id", "epoch", "input", "target", "scores")}


class _Samples(NamedTuple):
    """A run's samples in the shapes the log members need: each sample, summaries per flush and in all, reductions."""

    members: list[tuple[str, str]]
    batches: list[str]
    summaries: str
    reductions: str
    as_json_list: str


@functools.lru_cache(maxsize=None)
def _sample_texts(index: int, epoch: int) -> tuple[str, str]:
    """One sample's member text and its summary, serialised once: building logs is the slow part of these tests."""
    sample = _sample(index, epoch)
    return _dumps(sample), json.dumps(_summary(sample))


@functools.lru_cache(maxsize=None)
def _run_samples(completed: int, epochs: int) -> _Samples:
    """The samples behind ``completed`` sample-epochs: ids 1..n once per epoch, as inspect counts them."""
    keys = [(index, epoch) for epoch in range(1, epochs + 1) for index in range(1, completed // epochs + 1)]
    texts = [_sample_texts(*key) for key in keys]
    members = [(f"samples/{i}_epoch_{e}.json", text) for (i, e), (text, _) in zip(keys, texts, strict=True)]
    summaries = [summary for _, summary in texts]
    correct = [index <= CORRECT for index, epoch in keys if epoch == 1]
    reductions = [
        {
            "scorer": "choice",
            "samples": [
                {"value": 1.0 if ok else 0.0, "answer": "B", "sample_id": index}
                for index, ok in enumerate(correct, start=1)
            ],
        }
    ]
    return _Samples(
        members=members,
        batches=["[" + ",".join(summaries[i : i + BUFFER]) + "]" for i in range(0, len(summaries), BUFFER)],
        summaries="[" + ",".join(summaries) + "]",
        reductions=_dumps(reductions),
        as_json_list="[" + ",".join(text for text, _ in texts) + "]",
    )


def _sample_key(header: dict[str, Any]) -> tuple[int, int]:
    """(completed samples, epochs) of a header: the samples a log with that header holds."""
    results = header.get("results") or {}
    return int(results.get("completed_samples") or 10), int(header["eval"]["config"].get("epochs") or 1)


def _start(header: dict[str, Any]) -> dict[str, Any]:
    return {"version": header["version"], "eval": header["eval"], "plan": header["plan"]}


@functools.lru_cache(maxsize=None)
def _journal(start: str, completed: int, epochs: int, legacy: bool) -> bytes:
    """The zip as it stands mid-run: start record, samples and the summaries flushed with each buffer of samples."""
    samples = _run_samples(completed, epochs)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=5) as archive:
        archive.writestr("start.json" if legacy else "_journal/start.json", start)
        for batch, summary in enumerate(samples.batches, start=1):
            for name, text in samples.members[(batch - 1) * BUFFER : batch * BUFFER]:
                archive.writestr(name, text)
            archive.writestr(f"{'summaries' if legacy else '_journal/summaries'}/{batch}.json", summary)
    return buffer.getvalue()


def build_eval(path: Path, header: dict[str, Any], layout: str = "header") -> Path:
    """Write an ``.eval`` zip laid out as inspect_ai writes it. ``layout``: header | journal | legacy | legacy-started.

    The finished log is the mid-run zip with the closing members appended (inspect's recorder also appends).
    """
    legacy = layout.startswith("legacy")
    samples = _run_samples(*_sample_key(header))
    buffer = io.BytesIO(_journal(_dumps(_start(header)), *_sample_key(header), legacy))
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=5) as archive:
        if layout == "header":
            archive.writestr("summaries.json", samples.summaries)
            archive.writestr("reductions.json", samples.reductions)
            archive.writestr("header.json", _dumps(header))
        elif layout == "legacy":
            results = {key: header[key] for key in ("status", "stats", "results", "error") if key in header}
            archive.writestr("summary.json", samples.summaries)
            archive.writestr("results.json", _dumps(results))
    path.write_bytes(buffer.getvalue())
    return path


def build_json(path: Path, header: dict[str, Any]) -> Path:
    """Write a ``.json`` log: the EvalLog with its samples, as ``inspect eval --log-format json`` does."""
    samples = _run_samples(*_sample_key(header))
    text = _dumps({**header, "samples": "@samples@", "reductions": "@reductions@"})
    text = text.replace('"@samples@"', samples.as_json_list).replace('"@reductions@"', samples.reductions)
    path.write_text(text, encoding="utf-8")
    return path


def _variant(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    header = copy.deepcopy(HEADER)
    change(header)
    return header


def _refusal(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        read_inspect_log(path)
    message = str(caught.value)
    assert "\n" not in message, "refusals are one line"
    assert str(path) in message, "refusals name the file"
    return message


@pytest.fixture(scope="module")
def eval_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_eval(tmp_path_factory.mktemp("inspect") / f"{LOG_NAME}.eval", HEADER)


# --- complete runs ---------------------------------------------------------------------------------------------------


def test_eval_zip_of_a_complete_run(eval_log: Path) -> None:
    (run,) = read_inspect_log(eval_log)

    assert run == EvalRun(
        format="inspect",
        task="inspect_evals/wmdp_bio",
        harness_name="inspect_ai",
        harness_version="0.3.112",
        dataset_name="cais/wmdp",
        dataset_revision=None,
        metrics={"accuracy": pytest.approx(CORRECT / 1273)},  # type: ignore[dict-item]
        stderr={"accuracy": pytest.approx(0.012840234512752053)},  # type: ignore[dict-item]
        sample_size=1273,
        evaluated_at=datetime(2025, 3, 14, 10, 2, 11, tzinfo=timezone.utc),
        model="hf/meta-llama/Llama-3.1-8B-Instruct",
        log_sha256=hashlib.sha256(eval_log.read_bytes()).hexdigest(),
        log_name=f"{LOG_NAME}.eval",
    )


def test_json_log_of_a_complete_run(tmp_path: Path, eval_log: Path) -> None:
    path = build_json(tmp_path / f"{LOG_NAME}.json", HEADER)
    (run,) = read_inspect_log(path)
    (from_zip,) = read_inspect_log(eval_log)

    assert run.metrics == from_zip.metrics
    assert run.stderr == from_zip.stderr
    assert (run.task, run.sample_size, run.dataset_name) == ("inspect_evals/wmdp_bio", 1273, "cais/wmdp")
    assert run.model == from_zip.model
    assert run.log_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() != from_zip.log_sha256
    assert run.log_name == f"{LOG_NAME}.json"


def test_early_eval_layout_with_start_and_results_json(tmp_path: Path) -> None:
    (run,) = read_inspect_log(build_eval(tmp_path / "old.eval", HEADER, layout="legacy"))
    assert dict(run.metrics) == {"accuracy": pytest.approx(CORRECT / 1273)}
    assert run.sample_size == 1273


def test_read_eval_log_dispatches_on_format(eval_log: Path) -> None:
    assert read_eval_log(eval_log, "inspect") == read_inspect_log(eval_log)


def test_created_with_an_offset_is_converted_to_utc(tmp_path: Path) -> None:
    header = _variant(lambda h: h["eval"].update(created="2025-07-05T09:59:40-04:00"))
    (run,) = read_inspect_log(build_json(tmp_path / "log.json", header))
    assert run.evaluated_at == datetime(2025, 7, 5, 13, 59, 40, tzinfo=timezone.utc)
    assert run.evaluated_at.tzinfo == timezone.utc


def test_several_scorers_are_named_scorer_slash_metric(tmp_path: Path) -> None:
    def change(h: dict[str, Any]) -> None:
        h["results"]["scores"].append(
            {
                "name": "model_graded_fact",
                "scorer": "model_graded_fact",
                "params": {},
                "metrics": {
                    "accuracy": {"name": "accuracy", "value": 0.68, "params": {}},
                    "mean": {"name": "mean", "value": 0.68, "params": {}},
                },
            }
        )

    (run,) = read_inspect_log(build_eval(tmp_path / "two.eval", _variant(change)))
    assert set(run.metrics) == {"choice/accuracy", "model_graded_fact/accuracy", "model_graded_fact/mean"}
    assert set(run.stderr) == {"choice/accuracy"}


def test_epoch_reducers_are_told_apart_and_samples_counted_once(tmp_path: Path) -> None:
    def change(h: dict[str, Any]) -> None:
        h["eval"]["config"].update(epochs=2, epochs_reducer=["mean", "pass_at_2"])
        h["results"].update(total_samples=2546, completed_samples=2546)
        mean = h["results"]["scores"][0]
        mean["reducer"] = "mean"
        pass_at = copy.deepcopy(mean)
        pass_at["reducer"] = "pass_at_2"
        pass_at["metrics"]["accuracy"]["value"] = 0.79
        h["results"]["scores"].append(pass_at)

    (run,) = read_inspect_log(build_json(tmp_path / "epochs.json", _variant(change)))
    assert set(run.metrics) == {"choice[mean]/accuracy", "choice[pass_at_2]/accuracy"}
    assert run.metrics["choice[pass_at_2]/accuracy"] == 0.79
    assert run.sample_size == 1273


def test_stderr_without_a_value_is_left_out(tmp_path: Path) -> None:
    header = _variant(lambda h: h["results"]["scores"][0]["metrics"]["stderr"].update(value=None))
    (run,) = read_inspect_log(build_json(tmp_path / "log.json", header))
    assert dict(run.stderr) == {}


def test_schema_version_1_results_are_read(tmp_path: Path) -> None:
    def change(h: dict[str, Any]) -> None:
        score = h["results"].pop("scores")[0]
        h["version"] = 1
        h["results"]["scorer"] = {"name": score["name"], "params": {}}
        h["results"]["metrics"] = score["metrics"]

    (run,) = read_inspect_log(build_json(tmp_path / "v1.json", _variant(change)))
    assert set(run.metrics) == {"accuracy"}


# --- incomplete runs are refused -------------------------------------------------------------------------------------


def _error(h: dict[str, Any]) -> None:
    h["status"] = "error"
    h["results"] = None
    h["error"] = {
        "message": "RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')\nsecond line",
        "traceback": "Traceback (most recent call last):\n  ...",
        "traceback_ansi": "...",
    }


def _cancelled(h: dict[str, Any]) -> None:
    h["status"] = "cancelled"
    h["results"].update(completed_samples=640)


def _limit(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(h: dict[str, Any]) -> None:
        count = value if isinstance(value, int) else value[1] - value[0]
        h["eval"]["config"]["limit"] = value
        h["results"].update(total_samples=count, completed_samples=count)
        h["results"]["scores"][0].update(scored_samples=count)

    return change


def _sample_id(h: dict[str, Any]) -> None:
    h["eval"]["config"]["sample_id"] = [1, 2, 3]
    h["results"].update(total_samples=3, completed_samples=3)


def _partial(h: dict[str, Any]) -> None:
    h["eval"]["config"]["fail_on_error"] = False
    h["results"].update(total_samples=1273, completed_samples=1270)


def _trimmed(h: dict[str, Any]) -> None:
    h["results"].update(total_samples=1000, completed_samples=1000)


INCOMPLETE = {
    "status-error": (_error, "the run's status is 'error', not 'success': RuntimeError('CUDA out of memory."),
    "status-cancelled": (_cancelled, "the run's status is 'cancelled', not 'success'"),
    "invalidated": (lambda h: h.update(invalidated=True), "the log is marked invalidated"),
    "limit": (_limit(100), "the run was limited to part of the dataset (eval.config.limit = 100)"),
    "limit-range": (_limit([10, 20]), "eval.config.limit = [10, 20]"),
    "sample-id": (_sample_id, "the run evaluated only chosen samples (eval.config.sample_id is set)"),
    "completed-less-than-total": (_partial, "only 1270 of 1273 samples completed"),
    "fewer-than-dataset": (_trimmed, "the run covered 1000 samples but the dataset has 1273"),
    "results-null": (lambda h: h.update(results=None), "has no results"),
    "results-missing": (lambda h: h.pop("results"), "has no results"),
    "scores-empty": (lambda h: h["results"].update(scores=[]), "has no results (results.scores is empty)"),
    "no-metrics": (
        lambda h: h["results"]["scores"][0].update(metrics={}),
        "has no results (the scores have no metrics)",
    ),
    "zero-samples": (lambda h: h["results"].update(total_samples=0, completed_samples=0), "0 samples were completed"),
    "metric-null": (
        lambda h: h["results"]["scores"][0]["metrics"]["accuracy"].update(value=None),
        "metric 'accuracy' is null, not a finite number",
    ),
    "metric-nan": (
        lambda h: h["results"]["scores"][0]["metrics"]["accuracy"].update(value=math.nan),
        "metric 'accuracy' is NaN, not a finite number",
    ),
    "stderr-inf": (
        lambda h: h["results"]["scores"][0]["metrics"]["stderr"].update(value=math.inf),
        "metric 'stderr' is Infinity, not a finite number",
    ),
    "created-naive": (lambda h: h["eval"].update(created="2025-03-14T10:02:11"), "eval.created is not a time"),
}


@pytest.mark.parametrize(("change", "expected"), INCOMPLETE.values(), ids=INCOMPLETE.keys())
@pytest.mark.parametrize("build", [build_eval, build_json], ids=["eval", "json"])
def test_incomplete_run_is_refused(
    tmp_path: Path,
    build: Callable[[Path, dict[str, Any]], Path],
    change: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    suffix = ".eval" if build is build_eval else ".json"
    path = build(tmp_path / f"{LOG_NAME}{suffix}", _variant(change))
    assert expected in _refusal(path)


def test_error_message_shows_only_its_first_line(tmp_path: Path) -> None:
    message = _refusal(build_eval(tmp_path / "error.eval", _variant(_error)))
    assert "second line" not in message


def test_run_still_in_progress_is_refused(tmp_path: Path) -> None:
    path = build_eval(tmp_path / "running.eval", HEADER, layout="journal")
    assert "the run's status is 'started', not 'success'" in _refusal(path)


def test_early_layout_still_in_progress_is_refused(tmp_path: Path) -> None:
    path = build_eval(tmp_path / "running-old.eval", HEADER, layout="legacy-started")
    assert "the run's status is 'started'" in _refusal(path)


# --- crafted, unreadable or foreign files ----------------------------------------------------------------------------


def _zip_with(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert "no such file" in _refusal(tmp_path / "missing.eval")


def test_directory_is_refused(tmp_path: Path) -> None:
    assert "not a regular file" in _refusal(tmp_path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.eval"
    path.write_bytes(b"")
    assert "is empty" in _refusal(path)


def test_file_over_512_mib_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.eval"
    with path.open("wb") as handle:  # sparse: no disk space, no read
        handle.truncate(512 * 1024 * 1024 + 1)
    assert "is 536870913 bytes; logs larger than 512 MiB are not read" in _refusal(path)


def test_text_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("status: success\n")
    assert "is not valid JSON" in _refusal(path)


def test_json_that_is_not_an_inspect_log_is_refused(tmp_path: Path) -> None:
    lm_eval = Path(__file__).parent / "data" / "lm_eval" / "results_2025-03-14T09-41-27.512843.json"
    path = tmp_path / "results.json"
    path.write_bytes(lm_eval.read_bytes())
    assert "is not an Inspect eval log (it has no 'eval' object)" in _refusal(path)


def test_zip_that_is_not_an_inspect_log_is_refused(tmp_path: Path) -> None:
    path = _zip_with(tmp_path / "model.eval", [("weights.bin", b"\0" * 64)])
    assert "has no header.json, _journal/start.json or start.json" in _refusal(path)


def test_truncated_zip_is_refused(tmp_path: Path, eval_log: Path) -> None:
    path = tmp_path / "truncated.eval"
    path.write_bytes(eval_log.read_bytes()[:4096])
    assert "is not a readable zip archive" in _refusal(path)


@pytest.mark.parametrize("name", ["../header.json", "/etc/header.json", "samples\\..\\header.json", "C:/header.json"])
def test_member_with_a_path_trick_name_is_refused(tmp_path: Path, name: str) -> None:
    path = _zip_with(tmp_path / "tricky.eval", [("header.json", _dumps(HEADER).encode()), (name, b"{}")])
    assert "has a zip member with an unsafe name" in _refusal(path)


def test_duplicate_header_member_is_refused(tmp_path: Path) -> None:
    forged = _variant(lambda h: h["results"]["scores"][0]["metrics"]["accuracy"].update(value=0.01))
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _zip_with(
            tmp_path / "dup.eval", [("header.json", _dumps(HEADER).encode()), ("header.json", _dumps(forged).encode())]
        )
    assert "has two zip members named 'header.json'" in _refusal(path)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    text = _dumps(HEADER).replace('"status": "success",', '"status": "error",\n  "status": "success",')
    path = _zip_with(tmp_path / "dupkey.eval", [("header.json", text.encode())])
    assert "has the key 'status' twice" in _refusal(path)


def test_member_over_the_decompressed_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_log, "MAX_MEMBER_BYTES", 1024)
    path = _zip_with(tmp_path / "big.eval", [("header.json", _dumps(HEADER).encode())])
    assert "zip member header.json would decompress to" in _refusal(path)


def _patch_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """Rewrite a member's uncompressed size in its local and central headers (what a zip bomb would lie about)."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    assert out[local + 30 : local + 30 + len(name)] == name
    struct.pack_into("<I", out, local + 22, size)
    central = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, central + 24, size)
    return bytes(out)


def test_member_lying_about_its_size_is_refused(tmp_path: Path) -> None:
    path = _zip_with(tmp_path / "bomb.eval", [("header.json", _dumps(HEADER).encode() + b" " * 100_000)])
    path.write_bytes(_patch_sizes(path.read_bytes(), b"header.json", 200))
    assert "zip member header.json is corrupt" in _refusal(path)


def test_encrypted_member_is_refused(tmp_path: Path) -> None:
    path = _zip_with(tmp_path / "locked.eval", [("header.json", _dumps(HEADER).encode())])
    data = bytearray(path.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general-purpose flags, bit 0 = encrypted
        offset = data.find(signature) + flags_at
        struct.pack_into("<H", data, offset, struct.unpack_from("<H", data, offset)[0] | 0x1)
    path.write_bytes(bytes(data))
    assert "zip member header.json is encrypted" in _refusal(path)


def test_member_with_an_unreadable_compression_method_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deflate64.eval"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("header.json", _dumps(HEADER))
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, data.find(b"PK\x03\x04") + 8, 9)  # 9 = deflate64
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 10, 9)
    path.write_bytes(bytes(data))
    assert "uses compression method 9 (deflate64), which this Python cannot read" in _refusal(path)


def test_control_characters_from_the_log_do_not_reach_the_message(tmp_path: Path) -> None:
    def change(h: dict[str, Any]) -> None:
        _error(h)
        h["error"]["message"] = "boom \x1b[2J\x1b]0;owned\x07 done"

    message = _refusal(build_json(tmp_path / "ansi.json", _variant(change)))
    assert "\x1b" not in message and "\x07" not in message
    assert "boom" in message and "done" in message


def test_zip_with_too_many_members_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_log, "MAX_ZIP_MEMBERS", 3)
    path = _zip_with(tmp_path / "many.eval", [(f"samples/{i}_epoch_1.json", b"{}") for i in range(4)])
    assert "has 4 zip members; more than 3 are not read" in _refusal(path)


def test_zip64_member_count_is_read_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_log, "MAX_ZIP_MEMBERS", 3)
    path = _zip_with(tmp_path / "many64.eval", [(f"samples/{i}_epoch_1.json", b"{}") for i in range(4)])
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack_from("<HII", data, end + 10)  # total entries, directory size and offset
    zip64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1)
    struct.pack_into("<HH", data, end + 8, 0xFFFF, 0xFFFF)
    path.write_bytes(bytes(data[:end]) + zip64 + locator + bytes(data[end:]))
    assert "has 4 zip members" in _refusal(path)


def test_package_cap_is_the_documented_512_mib() -> None:
    assert evidence.MAX_LOG_BYTES == 512 * 1024 * 1024
    assert inspect_log.MAX_MEMBER_BYTES == 64 * 1024 * 1024
