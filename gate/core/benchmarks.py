"""Benchmarks the gate knows by name, and the risk domain each speaks to.

Used only as a default when an evaluator signs a log without saying the risk domain; the evaluator can always say
otherwise. Sources: WMDP (Li et al. 2024; lm-evaluation-harness tasks wmdp_bio/wmdp_chem/wmdp_cyber), StrongREJECT
(Souly et al. 2024), HarmBench (Mazeika et al. 2024), Cybench (Zhang et al. 2024), MMLU (Hendrycks et al. 2021).
"""

from __future__ import annotations

KNOWN_BENCHMARKS: dict[str, str] = {
    "wmdp_bio": "cbrn",
    "wmdp_chem": "cbrn",
    "wmdp_chemistry": "cbrn",
    "wmdp_cyber": "cyber",
    "cybench": "cyber",
    "strong_reject": "misuse",
    "strongreject": "misuse",
    "harmbench": "misuse",
    "tamper_resistance": "tamper",
    "malicious_finetuning": "tamper",
    "mmlu": "capability",
    "risk_assessment": "governance",
    "eu_ai_act_art55": "governance",
}


def benchmark_of_task(task: str) -> str:
    """``inspect_evals/wmdp_bio`` -> ``wmdp_bio``: the registry prefix is not part of the benchmark's name."""
    return task.rsplit("/", 1)[-1]


def default_risk_domain(benchmark: str) -> str | None:
    return KNOWN_BENCHMARKS.get(benchmark.lower())
