"""The benchmark's settings: which data, which users, which methods, which models, what budget."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from langchain_fermi.types import (
    DEFAULT_ITERATIONS,
    DEFAULT_MEMORY_SIZE,
    DEFAULT_NUM_CANDIDATES,
    DEFAULT_NUM_NEIGHBORS,
    FermiConfig,
)

__all__ = [
    "ALL_METHODS",
    "DEFAULT_METHODS",
    "DEFAULT_RESULTS_DIR",
    "LEARNED_METHODS",
    "NEUTRAL_PROMPT",
    "REFERENCE_METHODS",
    "RUNS",
    "BenchConfig",
    "Dataset",
    "user_seed",
]

Dataset = Literal["opinionqa", "globalopinionqa", "planted"]


def user_seed(seed: int, user_id: str) -> int:
    """A per-user seed that is the same in every process (``hash()`` is salted per process)."""
    return zlib.crc32(f"{seed}:{user_id}".encode())


_BASELINES = ("random", "zero_shot", "profile", "few_shot_bm25", "few_shot_dense")
_LEARNED = ("opro", "fermi_best", "fermi_rop")
REFERENCE_METHODS: tuple[str, ...] = ("ref_majority", "ref_group_majority", "ref_knn")
"""Non-LLM references from the other respondents of the wave (never given to Fermi)."""

ALL_METHODS: tuple[str, ...] = (
    *_BASELINES,
    *_LEARNED,
    "fermi_rop_paper",
    "fermi_rop_first_search",
    "hidden_prompt",
    *REFERENCE_METHODS,
)
"""Every method, in report order: baselines, the learned ones, Fermi without the guard (the
paper's exact loop), Fermi+RoP from its first search alone (what ``restarts=1`` serves, paired
with the restarts in one run), the planted users' hidden prompt (the ceiling), then the
references."""

DEFAULT_METHODS: dict[str, tuple[str, ...]] = {
    "opinionqa": (*_BASELINES, *_LEARNED, *REFERENCE_METHODS),
    "globalopinionqa": (*_BASELINES, *_LEARNED, "ref_majority", "ref_knn"),
    "planted": (*_BASELINES, *_LEARNED, "hidden_prompt"),
}
"""The methods a run uses when none are named, per dataset."""

_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "hidden_prompt": ("planted",),
    "ref_majority": ("opinionqa", "globalopinionqa"),
    "ref_group_majority": ("opinionqa",),
    "ref_knn": ("opinionqa", "globalopinionqa"),
}

RUNS: dict[str, tuple[Literal["fermi", "opro"], bool]] = {
    "fermi": ("fermi", True),
    "opro": ("opro", True),
    "fermi_paper": ("fermi", False),
}
"""Optimizations a run can make per user: graph variant, and whether the guard may be on."""

LEARNED_METHODS: dict[str, str] = {
    "opro": "opro",
    "fermi_best": "fermi",
    "fermi_rop": "fermi",
    "fermi_rop_paper": "fermi_paper",
    "fermi_rop_first_search": "fermi",
}
"""Methods that need a per-user optimization, and which one of `RUNS` each uses."""

NEUTRAL_PROMPT = "Answer the following multiple-choice question."
"""The zero-shot system prompt: says nothing about the person."""

DEFAULT_RESULTS_DIR = Path("benchmarks") / "results"
_RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class BenchConfig(BaseModel):
    """Everything a benchmark run depends on; saved in the report so a run can be repeated.

    Example:
        >>> BenchConfig(run_name="smoke", max_users=2, n_optimize=6, n_test=4, T=1)
    """

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    run_name: str = "opinionqa"
    results_dir: Path = DEFAULT_RESULTS_DIR
    dataset: Dataset = "opinionqa"
    data_dir: Path | None = Field(None, description="default: find_shared_data_dir()")
    wave_dir: Path | None = Field(
        None, description="the Pew wave's .sav file or folder (default: <data-dir>/pew_atp_w92)"
    )
    wave_meta: Path | None = Field(
        None,
        description="OpinionQA's info.csv (or its folder) for that wave "
        "(default: <data-dir>/opinionqa_meta/American_Trends_Panel_W92)",
    )
    max_users: int = Field(20, ge=1)
    n_optimize: int = Field(20, ge=2, description="opinions the learned methods may see")
    n_test: int = Field(30, ge=1, description="held-out questions per user")
    seed: int = 0
    methods: tuple[str, ...] = Field(
        None,  # type: ignore[assignment]
        validate_default=True,
        description="default: every method that fits the dataset (DEFAULT_METHODS)",
    )
    few_shot_k: int = Field(3, ge=1, description="retrieved past opinions in the few-shot prompt")
    num_neighbors: int = Field(DEFAULT_NUM_NEIGHBORS, ge=1, description="Ñ for Retrieval-of-Prompt")
    target_model: str | None = Field(
        None, description="get_chat_model name; None: embedded default"
    )
    optimizer_model: str | None = None
    num_candidates: int = Field(DEFAULT_NUM_CANDIDATES, alias="K", ge=1)
    memory_size: int = Field(DEFAULT_MEMORY_SIZE, alias="L", ge=1)
    iterations: int = Field(DEFAULT_ITERATIONS, alias="T", ge=0)
    patience: int | None = Field(None, ge=1)
    target_temperature: float = Field(0.0, ge=0.0)
    optimizer_temperature: float = Field(1.0, ge=0.0)
    optimizer_max_tokens: int | None = Field(
        None, ge=16, description="cap on each optimizer reply (None: the model's default)"
    )
    budget_calls: int | None = Field(None, ge=1, description="per user and variant: target calls")
    budget_tokens: int | None = Field(None, ge=1, description="per user and variant: tokens")
    max_total_calls: int | None = Field(
        None, ge=1, description="global cap: start no new user once this many LLM calls were made"
    )
    jobs: int = Field(1, ge=1, description="users evaluated in parallel")
    bootstrap_samples: int = Field(2000, ge=1)
    naive_probe: int = Field(
        20, ge=0, description="pairs timed both ways (naive chat call vs our scorer); 0: skip"
    )
    neutral_prompt: str = NEUTRAL_PROMPT
    calibration: Literal["auto", "neutral", "none"] = Field(
        "auto", description="letter scores: auto (per model family), neutral or none"
    )
    guard: bool = Field(True, description="the guard against degenerate prompts (FermiConfig)")
    prompt_form: Literal["addendum", "full"] = Field(
        "addendum",
        description="what the optimizer writes: a paragraph added to the profile prompt, or a "
        "whole new prompt (FermiConfig.prompt_form)",
    )
    meta_prompt_style: Literal["figure8", "contrast"] = Field(
        "figure8", description="Fermi's optimizer prompt (FermiConfig.meta_prompt_style)"
    )
    bracket_fallback: Literal["drop", "reply"] = Field(
        "drop", description="an optimizer reply with no [...]: drop it, or use the whole reply"
    )
    max_failures_shown: int = Field(
        10, ge=0, description="mis-aligned cases shown to the optimizer (FermiConfig)"
    )
    optimizer_seed: int | None = Field(
        None,
        ge=0,
        description="seed of a local optimizer's sampling (with each user id); None: --seed. "
        "Another value draws other samples for the same users and splits (repeated draws)",
    )
    restarts: int = Field(
        1,
        ge=1,
        description="independent searches per optimization, the best on the scoring opinions "
        "kept (FermiConfig.restarts); restart i of a local optimizer samples from seed "
        "optimizer_seed + i, so restarts=N replays the draws of seeds s .. s+N-1",
    )
    tie_break: Literal["order", "likelihood"] = Field(
        "order",
        description="Fermi's memory ranking of equal scores (FermiConfig.tie_break); OPRO keeps "
        "'order', so it stays a control when a run changes this",
    )
    signal_check: bool = Field(
        True, description="survey data: measure the target's persona sensitivity first"
    )
    planted_candidates: int | None = Field(
        None, ge=1, description="planted: respondents tried (default: 3 x max users)"
    )
    planted_flip_min: float = Field(
        0.3, ge=0.0, le=1.0, description="planted: least share of answers the hidden prompt flips"
    )
    planted_margin: float = Field(
        0.15, ge=0.0, le=1.0, description="planted: least paraphrase-over-other agreement"
    )
    planted_attempts: int = Field(2, ge=1, description="planted: traits tried per respondent")
    planted_filter_questions: int = Field(
        20, ge=2, description="planted: questions the paraphrase and the other person answer"
    )
    few_shot_with_profile: bool = Field(
        False, description="also put the profile in few-shot prompts"
    )

    @field_validator("run_name")
    @classmethod
    def _safe_run_name(cls, v: str) -> str:
        if not _RUN_NAME_RE.match(v) or ".." in v:
            msg = f"unsafe run name {v!r}: use letters, digits, '_', '.' or '-' (at most 100)"
            raise ValueError(msg)
        return v

    @field_validator("methods", mode="before")
    @classmethod
    def _known_methods(cls, v: object, info: ValidationInfo) -> tuple[str, ...]:
        dataset = info.data.get("dataset", "opinionqa")
        if v is None:
            return DEFAULT_METHODS[dataset]
        items = [m.strip() for m in v.split(",")] if isinstance(v, str) else list(v)  # type: ignore[call-overload]
        items = [m for m in items if m]
        misfit = [m for m in items if dataset not in _ONLY_FOR.get(m, (dataset,))]
        if misfit:
            msg = f"method(s) {misfit!r} do not apply to the {dataset} dataset"
            raise ValueError(msg)
        unknown = [m for m in items if m not in ALL_METHODS]
        if unknown:
            msg = f"unknown method(s) {unknown!r}; choose from {', '.join(ALL_METHODS)}"
            raise ValueError(msg)
        if not items:
            msg = f"no method selected; choose from {', '.join(ALL_METHODS)}"
            raise ValueError(msg)
        return tuple(m for m in ALL_METHODS if m in items)  # report order, no duplicates

    @property
    def sampling_seed(self) -> int:
        """The seed a local optimizer's per-user seeds derive from: ``optimizer_seed``, else
        ``seed``."""
        return self.seed if self.optimizer_seed is None else self.optimizer_seed

    @property
    def run_dir(self) -> Path:
        """Where this run's report, per-user files, plots and score cache live."""
        return self.results_dir / self.run_name

    def variants(self) -> list[str]:
        """The optimizations (`RUNS` keys) the selected methods need, each made once per user."""
        wanted = {LEARNED_METHODS[m] for m in self.methods if m in LEARNED_METHODS}
        return [v for v in RUNS if v in wanted]

    def fermi_config(self, run: str) -> FermiConfig:
        """The graph configuration of one optimization (`RUNS` key): same K/L/T/budget,
        calibration and guard for Fermi and OPRO; ``fermi_paper`` is Fermi without the guard."""
        variant, guarded = RUNS[run]
        return FermiConfig(
            K=self.num_candidates,
            L=self.memory_size,
            T=self.iterations,
            num_neighbors=self.num_neighbors,
            target_temperature=self.target_temperature,
            optimizer_temperature=self.optimizer_temperature,
            seed=self.seed,
            variant=variant,
            patience=self.patience,
            max_target_calls=self.budget_calls,
            max_tokens=self.budget_tokens,
            calibration=self.calibration,
            guard=self.guard and guarded,
            bracket_fallback=self.bracket_fallback,
            prompt_form=self.prompt_form,
            meta_prompt_style=self.meta_prompt_style,
            max_failures_shown=self.max_failures_shown,
            tie_break=self.tie_break if variant == "fermi" else "order",
            restarts=self.restarts,
        )
