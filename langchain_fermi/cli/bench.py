"""``fermi bench``: Fermi against the paper's baselines on survey respondents, or on planted users.

``--dataset planted`` builds synthetic users from real W92 profiles and questions whose answers
are the target model's own under a hidden prompt: the offline proof that the loop optimizes.

Also ``python -m benchmarks.opinionqa`` (same options). See `langchain_fermi.evaluation`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, get_args

from langchain_fermi.cli._common import add_command, add_json_argument, build_model, print_json
from langchain_fermi.evaluation.config import ALL_METHODS, BenchConfig

__all__ = ["add_arguments", "config_from_args", "register", "run"]

# BenchConfig fields by help group; each is an option named after the field (``n_test`` ->
# ``--n-test``) with the field's default, type and description, unless the tables below differ.
_GROUPS = {
    "data": (
        *("dataset", "data_dir", "wave_dir", "wave_meta"),
        *("max_users", "n_optimize", "n_test", "seed"),
    ),
    "planted users": (
        *("planted_candidates", "planted_flip_min", "planted_margin", "planted_attempts"),
        "planted_filter_questions",
    ),
    "methods": (
        *("methods", "few_shot_k", "few_shot_with_profile", "num_neighbors", "signal_check"),
    ),
    "models and optimization": (
        *("target_model", "optimizer_model", "num_candidates", "memory_size", "iterations"),
        *("patience", "target_temperature", "optimizer_temperature", "optimizer_max_tokens"),
        *("calibration", "guard", "bracket_fallback", "prompt_form", "meta_prompt_style"),
        *("max_failures_shown", "tie_break", "optimizer_seed", "restarts"),
    ),
    "run": (
        *("run_name", "results_dir", "budget_calls", "budget_tokens", "max_total_calls"),
        *("jobs", "bootstrap_samples", "naive_probe"),
    ),
}
_SHORT = {"num_candidates": "-K", "memory_size": "-L", "iterations": "-T"}
_RENAMED = {"budget_calls": "--budget"}
_KEYWORDS: dict[str, dict[str, Any]] = {
    "dataset": {"choices": ["opinionqa", "globalopinionqa", "planted"]},
    "methods": {"default": None},
    "few_shot_with_profile": {"action": "store_true"},
    "calibration": {"choices": ["auto", "neutral", "none"]},
    "bracket_fallback": {"choices": ["drop", "reply"]},
    "prompt_form": {"choices": ["addendum", "full"]},
    "meta_prompt_style": {"choices": ["figure8", "contrast"]},
    "tie_break": {"choices": ["order", "likelihood"]},
    "guard": {"action": argparse.BooleanOptionalAction, "default": True},
    "signal_check": {"action": argparse.BooleanOptionalAction, "default": True},
    "run_name": {"default": None},
}
_HELP = {
    "dataset": "opinionqa: Pew ATP W92 respondents; globalopinionqa: countries (majority "
    "answer); planted: W92 profiles answering as the target model does under a hidden prompt",
    "data_dir": "evaluation data folder; None: $FERMI_DATA_DIR or ../shared/data",
    "max_users": "users sampled from the dataset",
    "seed": "user sample, splits, random baseline, bootstrap",
    "methods": f"comma-separated subset of {', '.join(ALL_METHODS)}; default: every method "
    "that fits the dataset (fermi_rop_paper, Fermi without the guard, only when named)",
    "calibration": "letter scores minus a neutral prompt's (contextual calibration); auto: "
    "per model family (neutral for Qwen2.5, none for SmolLM2 and remote models)",
    "guard": "reject degenerate prompts and serve only prompts no worse than the profile prompt "
    "on validation opinions (--no-guard: the paper's exact loop)",
    "prompt_form": "addendum: the optimizer writes a paragraph about the person, added to the "
    "profile prompt; full: a whole new prompt (the paper's form)",
    "meta_prompt_style": "Fermi's optimizer prompt: figure8 (the paper's layout) or contrast "
    "(the best description's mis-aligned answers first; addendum form only)",
    "max_failures_shown": "mis-aligned cases shown to the optimizer (figure8: the lowest-scoring "
    "text's; contrast: the best text's)",
    "tie_break": "Fermi: which of two equal scores ranks first in memory: order (the earlier "
    "scored) or likelihood (the higher mean probability of the user's options)",
    "restarts": "independent searches per optimization, the best on the scoring opinions kept; "
    "restart i samples from --optimizer-seed + i",
    "signal_check": "measure the target's persona sensitivity first (survey data)",
    "target_model": "smollm2, qwen2.5-coder-1.5b, openai:<model>, x.gguf; None: smollm2",
    "optimizer_model": "as --target-model",
    "num_candidates": "K: new prompts per iteration",
    "memory_size": "L: prompts kept in memory",
    "iterations": "T: iterations after the initial prompt's",
    "patience": "stop after this many flat iterations",
    "target_temperature": "sampling temperature of the target model",
    "optimizer_temperature": "sampling temperature of the optimizer model",
    "run_name": "results go to <results-dir>/<run-name>; None: <dataset>-<target model>",
    "results_dir": "where runs are written",
    "budget_calls": "per user and variant: max target-model calls of the optimization",
    "budget_tokens": "per user and variant: max tokens of the optimization (all models)",
    "jobs": "users in parallel (local llama.cpp models serialise on one lock)",
    "bootstrap_samples": "resamples of the confidence intervals",
}
_METAVAR = {int: "N", float: "X", Path: "PATH"}


def _flags(field: str) -> tuple[str, ...]:
    long = _RENAMED.get(field) or "--" + field.replace("_", "-")
    return (_SHORT[field], long) if field in _SHORT else (long,)


def _value_type(annotation: Any) -> Any:
    """int, float or Path from a field's annotation (``int | None`` too); None: a string."""
    for t in (annotation, *get_args(annotation)):
        if t in (int, float, Path):
            return t
    return None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (shared by ``fermi bench`` and the script)."""
    groups = {title: parser.add_argument_group(title) for title in _GROUPS}
    for title, fields in _GROUPS.items():
        for field in fields:
            info = BenchConfig.model_fields[field]
            kwargs: dict[str, Any] = {"dest": field, "help": _HELP.get(field, info.description)}
            extra = _KEYWORDS.get(field, {})
            if "action" not in extra:
                kind = _value_type(info.annotation)
                kwargs |= {"default": info.default, "type": kind, "metavar": _METAVAR.get(kind)}
            groups[title].add_argument(*_flags(field), **(kwargs | extra))
    r = groups["run"]
    r.add_argument("--fresh", action="store_true", help="delete this run's results and cache first")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    add_json_argument(parser, "the report's summary (the tables go to stderr)")
    return parser


def _default_run_name(args: argparse.Namespace) -> str:
    model = (args.target_model or "smollm2").replace("openai:", "").replace("/", "-")
    model = Path(model).stem if model.endswith(".gguf") else model
    return f"{args.dataset}-{model}"


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Build and validate the `BenchConfig` from parsed options.

    Raises:
        UsageError: A value the config refuses, naming the option (e.g. ``argument -K: ...``).
    """
    fields = [f for group in _GROUPS.values() for f in group]
    values = {field: getattr(args, field) for field in fields}
    values["run_name"] = args.run_name or _default_run_name(args)
    flags = {field: "/".join(_flags(field)) for field in fields}
    return build_model(BenchConfig, values, flags)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed options; prints the tables and where the report is."""
    from langchain_fermi.evaluation.runner import run_benchmark

    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    as_json = getattr(args, "json", False)
    say = sys.stderr if as_json else sys.stdout
    report = run_benchmark(
        config,
        progress=not args.no_progress,
        fresh=args.fresh,
        console=lambda text: print(text, file=say),
    )
    print(f"\nreport: {config.run_dir / 'report.json'}", file=say)
    for plot in report.plots:
        print(f"plot:   {config.run_dir / plot}", file=say)
    if as_json:
        summary = report.model_dump(mode="json", exclude={"users"})
        print_json({"report": str(config.run_dir / "report.json"), **summary})
    return 0 if report.leak_free and not report.failed_users else 1


def register(subparsers: Any) -> None:
    """Add ``fermi bench`` to the ``fermi`` command."""
    parser = add_command(
        subparsers,
        "bench",
        run,
        help="benchmark Fermi against baselines on survey respondents (OpinionQA)",
        description=__doc__,
        raw=False,
    )
    add_arguments(parser)
    parser.set_defaults(on_interrupt="rerun the same command to resume (finished users are kept)")
