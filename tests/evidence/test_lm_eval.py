"""lm-evaluation-harness results files: complete runs are read faithfully, incomplete ones are refused.

The fixtures under ``data/lm_eval/`` follow what lm-eval 0.4.x writes with ``--output_path``: a WMDP run
(``wmdp`` group plus ``wmdp_bio``/``wmdp_chem``/``wmdp_cyber``, lm-eval 0.4.8 with ``lm_eval_version``) and a gsm8k run
(filters ``strict-match``/``flexible-extract``, an older file without ``lm_eval_version`` or ``model_name``).
Refusal cases are those files with one field changed, the way a limited or broken run would write it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

import tiergate.core.evidence as evidence
from tiergate.core.evidence import EvalRun, read_eval_log, read_lm_eval_results
from tiergate.errors import InputError, UsageError

DATA = Path(__file__).parent / "data" / "lm_eval"
WMDP = DATA / "results_2025-03-14T09-41-27.512843.json"
GSM8K = DATA / "results_gsm8k_2024-06-03T16-56-52.041192.json"


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _write(tmp_path: Path, doc: Any, name: str = "results_2025-03-14T09-41-27.512843.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def _variant(tmp_path: Path, change: Callable[[dict[str, Any]], None], base: Path = WMDP) -> Path:
    doc = copy.deepcopy(_load(base))
    change(doc)
    return _write(tmp_path, doc)


def _refusal(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        read_lm_eval_results(path)
    message = str(caught.value)
    assert "\n" not in message, "refusals are one line"
    assert str(path) in message, "refusals name the file"
    return message


def _by_task(runs: list[EvalRun]) -> dict[str, EvalRun]:
    return {run.task: run for run in runs}


# --- complete runs ---------------------------------------------------------------------------------------------------


def test_wmdp_results_give_one_run_per_task_and_group() -> None:
    runs = read_lm_eval_results(WMDP)

    assert [run.task for run in runs] == ["wmdp", "wmdp_bio", "wmdp_chem", "wmdp_cyber"]
    bio = _by_task(runs)["wmdp_bio"]
    assert bio.format == "lm-eval"
    assert bio.harness_name == "lm-evaluation-harness"
    assert bio.harness_version == "0.4.8"
    assert bio.dataset_name == "cais/wmdp:wmdp-bio"
    assert bio.dataset_revision is None
    assert dict(bio.metrics) == {"acc": pytest.approx(891 / 1273)}
    assert dict(bio.stderr) == {"acc": pytest.approx(0.012849865270668568)}
    assert bio.sample_size == 1273
    assert bio.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert bio.evaluated_at == datetime.fromtimestamp(1741945287.5128436, tz=timezone.utc)
    assert bio.evaluated_at is not None and bio.evaluated_at.utcoffset() is not None
    assert bio.log_sha256 == hashlib.sha256(WMDP.read_bytes()).hexdigest()
    assert bio.log_name == WMDP.name


def test_group_run_sums_its_subtasks_and_shares_their_dataset() -> None:
    runs = _by_task(read_lm_eval_results(WMDP))

    group = runs["wmdp"]
    assert group.sample_size == 1273 + 408 + 1987
    assert dict(group.metrics) == {"acc": pytest.approx(1970 / 3668)}
    assert set(group.stderr) == {"acc"}
    assert group.dataset_name == "cais/wmdp"
    assert runs["wmdp_chem"].sample_size == 408
    assert runs["wmdp_cyber"].dataset_name == "cais/wmdp:wmdp-cyber"


def test_every_run_of_a_file_carries_the_same_evidence_digest() -> None:
    runs = read_lm_eval_results(WMDP)
    assert len({run.log_sha256 for run in runs}) == 1


def test_filters_other_than_none_stay_in_the_metric_name() -> None:
    (run,) = read_lm_eval_results(GSM8K)

    assert run.task == "gsm8k"
    assert dict(run.metrics) == {
        "exact_match,strict-match": pytest.approx(0.7687642153146323),
        "exact_match,flexible-extract": pytest.approx(0.7755875663381349),
    }
    assert set(run.stderr) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert run.sample_size == 1319
    assert run.dataset_name == "gsm8k:main"


def test_older_file_without_version_or_model_name_falls_back_to_git_hash_and_model_args() -> None:
    (run,) = read_lm_eval_results(GSM8K)
    assert run.harness_version == "4600d6bf"
    assert run.model == "mistralai/Mistral-7B-Instruct-v0.3"


def test_alias_na_stderr_and_non_numeric_values_are_not_metrics(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["results"]["wmdp"]["acc_stderr,none"] = "N/A"
        doc["results"]["wmdp_bio"]["sample_count"] = {"acc,none": 1273}
        doc["results"]["wmdp_bio"]["name"] = "wmdp_bio"
        doc["results"]["wmdp_bio"]["acc_norm,none"] = 0.61
        doc["results"]["wmdp_bio"]["notes,none"] = "free text"

    runs = _by_task(read_lm_eval_results(_variant(tmp_path, change)))
    assert dict(runs["wmdp"].stderr) == {}
    assert set(runs["wmdp_bio"].metrics) == {"acc", "acc_norm"}
    assert set(runs["wmdp_bio"].stderr) == {"acc"}


def test_group_without_aggregate_metrics_is_only_a_heading(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["results"]["wmdp"] = {"alias": "wmdp"}
        del doc["groups"]

    runs = read_lm_eval_results(_variant(tmp_path, change))
    assert [run.task for run in runs] == ["wmdp_bio", "wmdp_chem", "wmdp_cyber"]


def test_pinned_dataset_revision_is_read_from_the_task_config(tmp_path: Path) -> None:
    revision = "4f1b3f8a6c2e5d7b9a0c1e3f5a7b9d1c3e5f7a9b"

    def change(doc: dict[str, Any]) -> None:
        for task in ("wmdp_bio", "wmdp_chem", "wmdp_cyber"):
            doc["configs"][task]["dataset_kwargs"] = {"revision": revision}

    runs = _by_task(read_lm_eval_results(_variant(tmp_path, change)))
    assert runs["wmdp_bio"].dataset_revision == revision
    assert runs["wmdp"].dataset_revision == revision


def test_metrics_are_read_only() -> None:
    run = read_lm_eval_results(WMDP)[1]
    with pytest.raises(TypeError):
        run.metrics["acc"] = 1.0  # type: ignore[index]


def test_read_eval_log_dispatches_on_format() -> None:
    assert read_eval_log(WMDP, "lm-eval") == read_lm_eval_results(WMDP)


def test_read_eval_log_refuses_an_unknown_format() -> None:
    with pytest.raises(UsageError, match="unknown eval log format 'helm'"):
        read_eval_log(WMDP, "helm")


# --- incomplete runs are refused -------------------------------------------------------------------------------------


def _limited(limit: float) -> Callable[[dict[str, Any]], None]:
    """What ``lm_eval --limit`` writes: config.limit and effective = min(limit, original) per task."""

    def change(doc: dict[str, Any]) -> None:
        doc["config"]["limit"] = limit
        for counts in doc["n-samples"].values():
            counts["effective"] = int(counts["original"] * limit) if limit < 1 else min(int(limit), counts["original"])

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_limited(100), "the run was limited to part of each task (config.limit = 100)"),
        (_limited(0.1), "config.limit = 0.1"),
    ],
    ids=["limit-count", "limit-fraction"],
)
def test_limited_run_is_refused(tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str) -> None:
    assert expected in _refusal(_variant(tmp_path, change))


def test_limit_recorded_even_when_every_task_fit_is_refused(tmp_path: Path) -> None:
    message = _refusal(_variant(tmp_path, lambda doc: doc["config"].update(limit=5000)))
    assert "config.limit = 5000" in message


def test_fewer_effective_than_original_samples_is_refused_with_both_numbers(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["n-samples"]["wmdp_chem"]["effective"] = 300

    message = _refusal(_variant(tmp_path, change))
    assert "task wmdp_chem evaluated 300 of 408 samples" in message


def test_file_without_n_samples_is_refused(tmp_path: Path) -> None:
    message = _refusal(_variant(tmp_path, lambda doc: doc.pop("n-samples")))
    assert "has no n-samples" in message


def test_task_without_n_samples_entry_is_refused(tmp_path: Path) -> None:
    message = _refusal(_variant(tmp_path, lambda doc: doc["n-samples"].pop("wmdp_cyber")))
    assert "no n-samples entry for wmdp_cyber" in message


def test_short_sample_len_is_refused(tmp_path: Path) -> None:
    message = _refusal(_variant(tmp_path, lambda doc: doc["results"]["wmdp_bio"].update(sample_len=1000)))
    assert "task wmdp_bio scored 1000 of 1273 samples" in message


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc.update(results={}),
        lambda doc: doc.pop("results"),
        lambda doc: doc.update(results=None),
    ],
    ids=["empty", "missing", "null"],
)
def test_file_without_results_is_refused(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    assert "has no results" in _refusal(_variant(tmp_path, change))


def test_file_whose_tasks_have_no_metrics_is_refused(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["results"] = {"wmdp_bio": {"alias": "wmdp_bio"}}

    assert "task wmdp_bio has no numeric metrics" in _refusal(_variant(tmp_path, change))


@pytest.mark.parametrize(
    ("key", "value"),
    [("acc,none", math.nan), ("acc,none", math.inf), ("acc_stderr,none", -math.inf)],
    ids=["nan-metric", "inf-metric", "inf-stderr"],
)
def test_non_finite_values_are_refused(tmp_path: Path, key: str, value: float) -> None:
    path = _variant(tmp_path, lambda doc: doc["results"]["wmdp_chem"].update({key: value}))
    message = _refusal(path)
    assert f"task wmdp_chem metric '{key}'" in message
    assert "not a finite number" in message


def test_predict_only_run_is_refused(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["results"]["wmdp_bio"] = {"alias": "wmdp_bio", "bypass,none": 999, "bypass_stderr,none": "N/A"}

    assert "predict-only" in _refusal(_variant(tmp_path, change))


def test_malformed_n_samples_entry_is_refused(tmp_path: Path) -> None:
    path = _variant(tmp_path, lambda doc: doc["n-samples"].update(wmdp_bio={"original": "1273", "effective": 1273}))
    assert "n-samples.wmdp_bio does not hold" in _refusal(path)


def test_bad_date_is_refused(tmp_path: Path) -> None:
    assert "date is not a Unix timestamp" in _refusal(_variant(tmp_path, lambda doc: doc.update(date="yesterday")))


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    text = WMDP.read_text(encoding="utf-8").replace(
        '"acc,none": 0.43683945646703576,', '"acc,none": 0.43683945646703576,\n      "acc,none": 0.01,'
    )
    path = tmp_path / "results_dup.json"
    path.write_text(text, encoding="utf-8")
    assert "has the key 'acc,none' twice" in _refusal(path)


# --- not this format / unreadable ------------------------------------------------------------------------------------


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert "no such file" in _refusal(tmp_path / "results_missing.json")


def test_directory_is_refused(tmp_path: Path) -> None:
    assert "not a regular file" in _refusal(tmp_path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results_empty.json"
    path.write_bytes(b"")
    assert "is empty" in _refusal(path)


def test_samples_jsonl_is_not_a_results_file(tmp_path: Path) -> None:
    path = tmp_path / "samples_wmdp_bio_2025-03-14T09-41-27.512843.jsonl"
    path.write_text('{"doc_id": 0, "target": "B", "acc": 1.0}\n{"doc_id": 1, "target": "A", "acc": 0.0}\n')
    assert "is not valid JSON" in _refusal(path)


def test_other_json_is_not_a_results_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"results": {"gsm8k": 0.5}})
    assert "is not an lm-evaluation-harness results file" in _refusal(path)


def test_inspect_log_is_not_a_results_file(tmp_path: Path) -> None:
    header = json.loads((Path(__file__).parent / "data" / "inspect" / "wmdp_bio.header.json").read_text())
    path = _write(tmp_path, header, name="2025-03-14T10-02-11+00-00_wmdp-bio.json")
    assert "is an Inspect eval log" in _refusal(path)


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert "is not UTF-8 text" in _refusal(path)


def test_file_over_the_size_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidence, "MAX_LOG_BYTES", 1024)
    message = _refusal(WMDP)
    assert "logs larger than 1024 bytes are not read" in message
