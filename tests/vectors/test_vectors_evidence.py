"""Real evaluation logs from the harnesses' own repositories: complete runs are read, the others refused.

Whether a log is a complete run is read here from the log's own fields, independently of the gate's readers (so a
reader that stops checking a field fails here): Inspect's ``status``, ``invalidated``, ``eval.config.limit`` /
``sample_id`` and ``results.completed_samples`` / ``total_samples``; lm-evaluation-harness's ``config.limit`` and
``n-samples``. For a complete run the scores the gate reads must be the log's own aggregate scores.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tiergate.core.evidence import read_inspect_log, read_lm_eval_results
from tiergate.errors import InputError

HERE = Path(__file__).parent
INSPECT_LOGS = sorted(p for p in (HERE / "inspect_ai").rglob("*") if p.suffix in (".eval", ".json"))
LM_EVAL_RESULTS = sorted((HERE / "lm-evaluation-harness").rglob("*.json"))


def _inspect_header(path: Path) -> dict[str, Any]:
    if path.suffix == ".eval":
        with zipfile.ZipFile(path) as archive:
            header: dict[str, Any] = json.loads(archive.read("header.json"))
            return header
    whole: dict[str, Any] = json.loads(path.read_text())
    return whole


def _inspect_problem(header: dict[str, Any]) -> str | None:
    """Which field makes the log not a complete run (the word the gate's reason must contain), or None."""
    config = header["eval"].get("config", {})
    results = header.get("results") or {}
    if header.get("status") != "success":
        return "status"
    if header.get("invalidated"):
        return "invalidated"
    if config.get("limit") is not None:
        return "limit"
    if config.get("sample_id") is not None:
        return "sample_id"
    if results.get("completed_samples") != results.get("total_samples"):
        return "completed_samples"
    return None


def test_both_outcomes_are_present() -> None:
    outcomes = {_inspect_problem(_inspect_header(p)) is None for p in INSPECT_LOGS}
    assert outcomes == {True, False} and len(INSPECT_LOGS) >= 8 and len(LM_EVAL_RESULTS) >= 5


@pytest.mark.parametrize("path", INSPECT_LOGS, ids=[p.name for p in INSPECT_LOGS])
def test_inspect_log(path: Path) -> None:
    header = _inspect_header(path)
    problem = _inspect_problem(header)
    if problem is not None:
        with pytest.raises(InputError, match=problem.split("_")[0]):
            read_inspect_log(path)
        return
    (run,) = read_inspect_log(path)
    assert run.task == header["eval"]["task"].rsplit("/", 1)[-1] or run.task == header["eval"]["task"]
    # Inspect's 'stderr' metric is the standard error of the score beside it, which the gate keeps apart.
    expected = {name: metric["value"] for score in header["results"]["scores"]
                for name, metric in score["metrics"].items()}
    stderr = expected.pop("stderr", None)
    assert dict(run.metrics) == expected
    assert set(run.stderr.values()) == ({stderr} if stderr is not None else set())
    assert run.sample_size == header["results"]["completed_samples"]


@pytest.mark.parametrize("path", LM_EVAL_RESULTS, ids=[p.name for p in LM_EVAL_RESULTS])
def test_lm_eval_results(path: Path) -> None:
    document = json.loads(path.read_text())
    samples = document.get("n-samples")
    complete = (document.get("config", {}).get("limit") is None and isinstance(samples, dict)
                and all(s.get("effective") == s.get("original") for s in samples.values())
                and set(samples) >= set(document["results"]))
    if not complete:
        # The harness's own test data predates n-samples: the gate cannot see that each task ran in full.
        with pytest.raises(InputError, match="n-samples" if samples is None else "limit|effective"):
            read_lm_eval_results(path)
        return
    runs = read_lm_eval_results(path)
    assert {r.task for r in runs} == set(document["results"])
