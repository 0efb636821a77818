"""The benchmark's settings: which data, which users, which methods, which models, what budget."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_fermi.types import (
    DEFAULT_ITERATIONS,
    DEFAULT_MEMORY_SIZE,
    DEFAULT_NUM_CANDIDATES,
    DEFAULT_NUM_NEIGHBORS,
    FermiConfig,
)

__all__ = [
    "ALL_METHODS",
    "DEFAULT_RESULTS_DIR",
    "LEARNED_METHODS",
    "NEUTRAL_PROMPT",
    "BenchConfig",
    "Dataset",
]

Dataset = Literal["opinionqa", "globalopinionqa"]

ALL_METHODS: tuple[str, ...] = (
    "random",
    "zero_shot",
    "profile",
    "few_shot_bm25",
    "few_shot_dense",
    "opro",
    "fermi_best",
    "fermi_rop",
)
"""Every method, in report order: baselines first, then the learned ones."""

LEARNED_METHODS: dict[str, Literal["fermi", "opro"]] = {
    "opro": "opro",
    "fermi_best": "fermi",
    "fermi_rop": "fermi",
}
"""Methods that need a per-user optimization, and the graph variant each one runs."""

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
    methods: tuple[str, ...] = ALL_METHODS
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
    def _known_methods(cls, v: object) -> tuple[str, ...]:
        items = [m.strip() for m in v.split(",")] if isinstance(v, str) else list(v)  # type: ignore[call-overload]
        items = [m for m in items if m]
        unknown = [m for m in items if m not in ALL_METHODS]
        if unknown:
            msg = f"unknown method(s) {unknown!r}; choose from {', '.join(ALL_METHODS)}"
            raise ValueError(msg)
        if not items:
            msg = f"no method selected; choose from {', '.join(ALL_METHODS)}"
            raise ValueError(msg)
        return tuple(m for m in ALL_METHODS if m in items)  # report order, no duplicates

    @property
    def run_dir(self) -> Path:
        """Where this run's report, per-user files, plots and score cache live."""
        return self.results_dir / self.run_name

    def variants(self) -> list[Literal["fermi", "opro"]]:
        """The graph variants the selected methods need (each optimized once per user)."""
        wanted = {LEARNED_METHODS[m] for m in self.methods if m in LEARNED_METHODS}
        return [v for v in ("fermi", "opro") if v in wanted]

    def fermi_config(self, variant: Literal["fermi", "opro"]) -> FermiConfig:
        """The graph configuration for one variant: same K/L/T/budget for Fermi and OPRO."""
        return FermiConfig(
            num_candidates=self.num_candidates,
            memory_size=self.memory_size,
            iterations=self.iterations,
            num_neighbors=self.num_neighbors,
            target_temperature=self.target_temperature,
            optimizer_temperature=self.optimizer_temperature,
            seed=self.seed,
            variant=variant,
            patience=self.patience,
            max_target_calls=self.budget_calls,
            max_tokens=self.budget_tokens,
        )
