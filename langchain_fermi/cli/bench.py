"""``fermi bench``: Fermi against the paper's baselines on real survey respondents.

Also ``python -m benchmarks.opinionqa`` (same options). See `langchain_fermi.evaluation`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from langchain_fermi.evaluation.config import ALL_METHODS, DEFAULT_RESULTS_DIR, BenchConfig

__all__ = ["add_arguments", "config_from_args", "register", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (shared by ``fermi bench`` and the script)."""
    d = BenchConfig.model_fields
    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset",
        choices=["opinionqa", "globalopinionqa"],
        default="opinionqa",
        help="opinionqa: Pew ATP W92 respondents; globalopinionqa: countries (majority answer)",
    )
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="evaluation data folder (default: $FERMI_DATA_DIR or ../shared/data)",
    )
    g.add_argument("--max-users", type=int, default=d["max_users"].default)
    g.add_argument(
        "--n-optimize",
        type=int,
        default=d["n_optimize"].default,
        help="opinions per user the learned methods may see",
    )
    g.add_argument(
        "--n-test", type=int, default=d["n_test"].default, help="held-out questions per user"
    )
    g.add_argument(
        "--seed", type=int, default=0, help="user sample, splits, random baseline, bootstrap"
    )
    m = parser.add_argument_group("methods")
    m.add_argument(
        "--methods",
        default=",".join(ALL_METHODS),
        help=f"comma-separated subset of {','.join(ALL_METHODS)}",
    )
    m.add_argument(
        "--few-shot-k",
        type=int,
        default=d["few_shot_k"].default,
        help="retrieved past opinions in the few-shot prompts",
    )
    m.add_argument(
        "--few-shot-with-profile",
        action="store_true",
        help="also put the profile in the few-shot prompts",
    )
    m.add_argument(
        "--num-neighbors",
        type=int,
        default=d["num_neighbors"].default,
        help="Ñ: nearest opinions for Retrieval-of-Prompt",
    )
    o = parser.add_argument_group("models and optimization")
    o.add_argument(
        "--target-model",
        default=None,
        help="get_chat_model name: smollm2 (default), qwen2.5-coder-1.5b, openai:<model>, x.gguf",
    )
    o.add_argument("--optimizer-model", default=None, help="as --target-model (default smollm2)")
    o.add_argument(
        "-K", "--num-candidates", dest="K", type=int, default=d["num_candidates"].default
    )
    o.add_argument("-L", "--memory-size", dest="L", type=int, default=d["memory_size"].default)
    o.add_argument("-T", "--iterations", dest="T", type=int, default=d["iterations"].default)
    o.add_argument(
        "--patience", type=int, default=None, help="stop after this many flat iterations"
    )
    o.add_argument("--target-temperature", type=float, default=0.0)
    o.add_argument("--optimizer-temperature", type=float, default=1.0)
    o.add_argument(
        "--optimizer-max-tokens",
        type=int,
        default=None,
        help="cap on each optimizer reply (default: the model's own)",
    )
    r = parser.add_argument_group("run")
    r.add_argument(
        "--run-name",
        default=None,
        help="results go to <results-dir>/<run-name> (default: <dataset>-<target model>)",
    )
    r.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    r.add_argument(
        "--budget",
        type=int,
        default=None,
        help="per user and variant: max target-model calls of the optimization",
    )
    r.add_argument(
        "--budget-tokens",
        type=int,
        default=None,
        help="per user and variant: max tokens of the optimization (all models)",
    )
    r.add_argument(
        "--max-total-calls",
        type=int,
        default=None,
        help="global cap: start no new user once this many LLM calls were made",
    )
    r.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="users in parallel (local llama.cpp models serialise on one lock)",
    )
    r.add_argument("--bootstrap-samples", type=int, default=d["bootstrap_samples"].default)
    r.add_argument(
        "--naive-probe",
        type=int,
        default=d["naive_probe"].default,
        help="pairs timed both ways, naive chat call vs our scorer (0: skip)",
    )
    r.add_argument("--fresh", action="store_true", help="delete this run's results and cache first")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser


def _default_run_name(args: argparse.Namespace) -> str:
    model = (args.target_model or "smollm2").replace("openai:", "").replace("/", "-")
    model = Path(model).stem if model.endswith(".gguf") else model
    return f"{args.dataset}-{model}"


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Build and validate the `BenchConfig` from parsed options."""
    values: dict[str, Any] = {
        "run_name": args.run_name or _default_run_name(args),
        "results_dir": args.results_dir,
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "max_users": args.max_users,
        "n_optimize": args.n_optimize,
        "n_test": args.n_test,
        "seed": args.seed,
        "methods": args.methods,
        "few_shot_k": args.few_shot_k,
        "few_shot_with_profile": args.few_shot_with_profile,
        "num_neighbors": args.num_neighbors,
        "target_model": args.target_model,
        "optimizer_model": args.optimizer_model,
        "K": args.K,
        "L": args.L,
        "T": args.T,
        "patience": args.patience,
        "target_temperature": args.target_temperature,
        "optimizer_temperature": args.optimizer_temperature,
        "optimizer_max_tokens": args.optimizer_max_tokens,
        "budget_calls": args.budget,
        "budget_tokens": args.budget_tokens,
        "max_total_calls": args.max_total_calls,
        "jobs": args.jobs,
        "bootstrap_samples": args.bootstrap_samples,
        "naive_probe": args.naive_probe,
    }
    return BenchConfig(**values)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed options; prints the tables and where the report is."""
    from langchain_fermi.evaluation.runner import run_benchmark

    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    report = run_benchmark(config, progress=not args.no_progress, fresh=args.fresh)
    print(f"\nreport: {config.run_dir / 'report.json'}")
    for plot in report.plots:
        print(f"plot:   {config.run_dir / plot}")
    return 0 if report.leak_free and not report.failed_users else 1


def register(subparsers: Any) -> None:
    """Add ``fermi bench`` to the ``fermi`` command."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark Fermi against baselines on survey respondents (OpinionQA)",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
