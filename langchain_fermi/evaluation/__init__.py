"""The benchmark: Fermi against the paper's baselines on survey respondents.

Driven by ``fermi bench`` and ``python -m benchmarks.opinionqa``; usable from Python::

    from langchain_fermi.evaluation import BenchConfig, run_benchmark
    report = run_benchmark(BenchConfig(run_name="demo", max_users=2, T=1))
"""

from __future__ import annotations

from langchain_fermi.evaluation.config import ALL_METHODS, BenchConfig
from langchain_fermi.evaluation.metrics import (
    ConfidenceInterval,
    accuracy,
    bootstrap_ci,
    mean_curve,
    paired_bootstrap_ci,
    random_expected_accuracy,
)
from langchain_fermi.evaluation.schema import BenchReport, LeakCheck, UserResult

__all__ = [
    "ALL_METHODS",
    "BenchConfig",
    "BenchReport",
    "ConfidenceInterval",
    "LeakCheck",
    "UserResult",
    "accuracy",
    "bootstrap_ci",
    "mean_curve",
    "paired_bootstrap_ci",
    "random_expected_accuracy",
    "run_benchmark",
]


def __getattr__(name: str) -> object:
    # The runner imports the scorer (and through it llama.cpp glue): load it on first use.
    if name == "run_benchmark":
        from langchain_fermi.evaluation.runner import run_benchmark

        return run_benchmark
    msg = f"module 'langchain_fermi.evaluation' has no attribute {name!r}"
    raise AttributeError(msg)
