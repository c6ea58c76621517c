"""Reading EleutherAI lm-evaluation-harness ``results_*.json`` into :class:`EvalRun`, refusing incomplete runs.

Layout followed: the aggregated results file lm-eval 0.4.x writes with ``--output_path`` (checked against
EleutherAI/lm-evaluation-harness ``lm_eval/evaluator.py`` - ``simple_evaluate`` adds ``config`` (with ``limit``),
``git_hash``, ``date`` = ``time.time()`` at start; ``evaluate`` returns ``results``, ``groups``,
``group_subtasks``, ``configs``, ``versions``, ``n-shot``, ``higher_is_better`` and ``n-samples`` =
``{task: {original, effective}}`` with ``effective = min(limit, original)``; ``lm_eval/loggers/utils.py``
``add_env_info`` adds ``lm_eval_version``; ``lm_eval/loggers/evaluation_tracker.py`` adds ``model_name`` and
timings; ``lm_eval/result_schema.py`` types it all; ``lm_eval/tasks/wmdp/*.yaml`` for the WMDP group).

- ``results[task]`` holds ``"<metric>,<filter>"`` keys (``"acc,none"``, ``"exact_match,strict-match"``) and
  ``"<metric>_stderr,<filter>"`` keys, plus ``alias`` and, in newer versions, ``name``/``sample_len``/
  ``sample_count``. Metric names drop the ``none`` filter (``acc``) and keep others (``exact_match,strict-match``);
  ``_stderr`` keys go to ``stderr``; keys without a filter (``alias``, ``sample_len``...) and non-numeric values
  (``"N/A"`` stderr of some groups) are not metrics.
- Groups (``wmdp``) appear in ``results`` too but have no ``n-samples`` entry: a group's sample size is the sum of
  its subtasks' (``group_subtasks``), and a group listed without metrics (a plain collection) yields no run.

A run is complete when ``config.limit`` is null and every ``n-samples`` entry has ``effective == original``; a file
without ``n-samples`` for a task cannot show that and is refused. A predict-only run (metric ``bypass``) is refused.
One refused task refuses the whole file: it is one run, signed as one piece of evidence.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from typing import Any, NamedTuple
from collections.abc import Mapping

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

_WHAT = "an lm-evaluation-harness results file"
_NO_FILTER = "none"
_STDERR_SUFFIX = "_stderr"
_MODEL_ARG_KEYS = ("peft", "delta", "pretrained", "model", "path", "engine")
"""model_args keys naming the model, in the order lm-eval's EvaluationTracker looks for them."""


class _RunContext(NamedTuple):
    """What every task of one results file shares."""

    log: LogFile
    harness_version: str | None
    model: str | None
    evaluated_at: datetime | None
    n_samples: Mapping[str, Any]
    configs: Mapping[str, Any]
    group_subtasks: Mapping[str, Any]


def read_lm_eval_results(path: str | os.PathLike[str]) -> list[EvalRun]:
    """Read a ``results_*.json``; one EvalRun per task or group with metrics, in the file's order."""
    log = read_log_bytes(path)
    doc = parse_json(log.data, log.where, _WHAT)
    results = _check_format(doc, log.where)
    _refuse_limit(doc, log.where)
    context = _context(doc, log)
    _refuse_partial_counts(context)
    runs = [run for task, entry in results.items() if (run := _task_run(task, entry, context)) is not None]
    if not runs:
        refuse(log.where, "has no results (no task has metrics)")
    return runs


def _check_format(doc: Any, where: str) -> Mapping[str, Any]:
    """The ``results`` mapping, after checking this is an lm-eval results file at all."""
    if isinstance(doc, dict) and isinstance(doc.get("eval"), dict) and "status" in doc:
        refuse(where, f"is an Inspect eval log, not {_WHAT}; read it as format 'inspect'")
    if not isinstance(doc, dict) or not any(key in doc for key in ("versions", "configs", "n-samples")):
        refuse(where, f"is not {_WHAT} (no 'versions', 'configs' or 'n-samples')")
    results = doc.get("results")
    if results is None or results == {}:
        refuse(where, "has no results")
    if not isinstance(results, dict) or not all(isinstance(entry, dict) for entry in results.values()):
        refuse(where, f"is not {_WHAT} ('results' is not an object of task objects)")
    return results


def _refuse_limit(doc: Mapping[str, Any], where: str) -> None:
    """``--limit N`` (or a fraction) evaluates part of each task; the scores are not the benchmark's."""
    config = doc.get("config")
    if isinstance(config, dict) and config.get("limit") is not None:
        limit = clean_text(str(config["limit"]), limit=40)
        refuse(where, f"the run was limited to part of each task (config.limit = {limit})")


def _context(doc: Mapping[str, Any], log: LogFile) -> _RunContext:
    n_samples = doc.get("n-samples")
    if not isinstance(n_samples, dict) or not n_samples:
        refuse(log.where, "has no n-samples, so whether each task ran in full cannot be checked")
    return _RunContext(
        log=log,
        harness_version=text_or_none(doc.get("lm_eval_version")) or text_or_none(doc.get("git_hash")),
        model=_model(doc),
        evaluated_at=_date(doc.get("date"), log.where),
        n_samples=n_samples,
        configs=_object(doc.get("configs")),
        group_subtasks=_object(doc.get("group_subtasks")),
    )


def _object(value: Any) -> Mapping[str, Any]:
    """An optional JSON object field: anything that is not an object reads as empty."""
    return value if isinstance(value, dict) else {}


def _refuse_partial_counts(context: _RunContext) -> None:
    """Every task evaluated must have run on its whole split: ``effective == original``."""
    for task in context.n_samples:
        _task_size(task, context)


def _task_size(task: str, context: _RunContext) -> int:
    where = context.log.where
    counts = context.n_samples.get(task)
    original = as_count(counts.get("original")) if isinstance(counts, dict) else None
    effective = as_count(counts.get("effective")) if isinstance(counts, dict) else None
    if original is None or effective is None:
        refuse(where, f"n-samples.{clean_text(task)} does not hold 'original' and 'effective' counts")
    if effective < original:
        refuse(
            where,
            f"task {clean_text(task)} evaluated {effective} of {original} samples (n-samples effective < original)",
        )
    if effective == 0:
        refuse(where, f"task {clean_text(task)} has no results (0 samples)")
    return effective


def _sample_size(task: str, context: _RunContext, seen: frozenset[str] = frozenset()) -> int:
    """A task's ``n-samples`` effective count, or for a group the sum over its subtasks (groups nest)."""
    if task in context.n_samples:
        return _task_size(task, context)
    subtasks = context.group_subtasks.get(task)
    if task in seen or not isinstance(subtasks, list) or not subtasks:
        refuse(
            context.log.where,
            f"has no n-samples entry for {clean_text(task)}, so whether it ran in full cannot be checked",
        )
    return sum(_sample_size(str(sub), context, seen | {task}) for sub in subtasks)


def _leaf_tasks(task: str, context: _RunContext, seen: frozenset[str] = frozenset()) -> list[str]:
    """The tasks a result row stands for: itself, or a group's subtasks all the way down (for its dataset)."""
    if task in context.n_samples or task in seen:
        return [task]
    subtasks = context.group_subtasks.get(task)
    if not isinstance(subtasks, list):
        return [task]
    return [leaf for sub in subtasks for leaf in _leaf_tasks(str(sub), context, seen | {task})]


# --- one task -------------------------------------------------------------------------------------------------------


def _task_run(task: str, entry: Mapping[str, Any], context: _RunContext) -> EvalRun | None:
    where = context.log.where
    metrics, stderr = _metrics(task, entry, where)
    is_task = task in context.n_samples
    if not metrics:
        if is_task:
            refuse(where, f"task {clean_text(task)} has no numeric metrics")
        return None  # a group listed only as a heading (no aggregate_metric_list)
    if "bypass" in metrics:
        refuse(where, f"task {clean_text(task)} was run predict-only (metric 'bypass'); it has no scores")
    size = _sample_size(task, context)
    if is_task:
        _refuse_short_sample_len(task, entry, size, where)
    dataset_name, dataset_revision = _dataset(task, context)
    return EvalRun(
        format="lm-eval",
        task=task,
        harness_name="lm-evaluation-harness",
        harness_version=context.harness_version,
        dataset_name=dataset_name,
        dataset_revision=dataset_revision,
        metrics=frozen(metrics),
        stderr=frozen(stderr),
        sample_size=size,
        evaluated_at=context.evaluated_at,
        model=context.model,
        log_sha256=context.log.sha256,
        log_name=context.log.name,
    )


def _refuse_short_sample_len(task: str, entry: Mapping[str, Any], size: int, where: str) -> None:
    """Newer lm-eval also writes ``sample_len`` (documents scored); fewer than n-samples says is a partial run."""
    sample_len = as_count(entry.get("sample_len"))
    if sample_len is not None and sample_len < size:
        refuse(where, f"task {clean_text(task)} scored {sample_len} of {size} samples (sample_len < n-samples)")


def _metrics(task: str, entry: Mapping[str, Any], where: str) -> tuple[dict[str, float], dict[str, float]]:
    """Split ``"<metric>,<filter>"`` keys into metrics and their ``_stderr`` companions."""
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    for key, raw in entry.items():
        metric, comma, filter_name = key.partition(",")
        if not comma or key == "alias":
            continue  # alias, name, sample_len, sample_count, ...: not metric,filter pairs
        value = as_number(raw)
        if value is None:
            continue  # "N/A" stderr, lists, strings
        if not math.isfinite(value):
            refuse(where, f"task {clean_text(task)} metric {clean_text(key)!r} is {raw!r}, not a finite number")
        if metric.endswith(_STDERR_SUFFIX):
            stderr[_metric_name(metric[: -len(_STDERR_SUFFIX)], filter_name)] = value
        else:
            metrics[_metric_name(metric, filter_name)] = value
    return metrics, {name: value for name, value in stderr.items() if name in metrics}


def _metric_name(metric: str, filter_name: str) -> str:
    return metric if filter_name == _NO_FILTER else f"{metric},{filter_name}"


# --- shared fields --------------------------------------------------------------------------------------------------


def _dataset(task: str, context: _RunContext) -> tuple[str | None, str | None]:
    """``configs[task]``: ``dataset_path`` (Hugging Face id), ``dataset_name`` (its config) and a pinned revision.

    The name is ``<dataset_path>:<dataset_name>`` (``cais/wmdp:wmdp-bio``; a Hub id has no colon), or the path
    alone when there is no config name. A group gets what all its subtasks share (``cais/wmdp`` for ``wmdp``).
    """
    leaves = [_task_dataset(context.configs.get(leaf)) for leaf in _leaf_tasks(task, context)]
    paths = {path for path, _, _ in leaves}
    if len(paths) != 1 or None in paths:
        return None, None
    path = str(paths.pop())
    config_names = {config_name for _, config_name, _ in leaves}
    revisions = {revision for _, _, revision in leaves}
    config_name = config_names.pop() if len(config_names) == 1 else None
    revision = revisions.pop() if len(revisions) == 1 else None
    return (f"{path}:{config_name}" if config_name else path), revision


def _task_dataset(config: Any) -> tuple[str | None, str | None, str | None]:
    """(dataset_path, dataset_name, revision) of one task's config; revision may sit in ``dataset_kwargs``."""
    if not isinstance(config, dict):
        return None, None, None
    kwargs = _object(config.get("dataset_kwargs"))
    return (
        text_or_none(config.get("dataset_path")),
        text_or_none(config.get("dataset_name")),
        text_or_none(config.get("revision")) or text_or_none(kwargs.get("revision")),
    )


def _model(doc: Mapping[str, Any]) -> str | None:
    """The model evaluated: the tracker's ``model_name``, else ``pretrained=``-style model_args, else config.model.

    ``config.model`` alone is usually the backend (``hf``, ``vllm``), which is why it comes last.
    """
    name = text_or_none(doc.get("model_name"))
    if name:
        return name
    config = _object(doc.get("config"))
    return _model_from_args(config.get("model_args")) or text_or_none(config.get("model"))


def _model_from_args(model_args: Any) -> str | None:
    if isinstance(model_args, dict):
        pairs = {str(key): value for key, value in model_args.items()}
    elif isinstance(model_args, str):
        pairs = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part)
    else:
        return None
    for key in _MODEL_ARG_KEYS:
        value = text_or_none(pairs.get(key))
        if value:
            return value.strip()
    return None


def _date(value: Any, where: str) -> datetime | None:
    """``date`` is ``time.time()`` when the run started: a Unix timestamp, read as UTC."""
    if value is None:
        return None
    number = as_number(value)
    if number is None or not math.isfinite(number):
        refuse(where, f"date is not a Unix timestamp ({clean_text(str(value), limit=40)})")
    try:
        return datetime.fromtimestamp(number, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        refuse(where, f"date {number!r} is out of range for a Unix timestamp")
