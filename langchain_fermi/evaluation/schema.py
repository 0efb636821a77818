"""What a benchmark run writes: one `UserResult` per user, and the aggregated `BenchReport`.

Results hold user ids, opinion ids (survey item keys), accuracies, costs and learned prompts,
never question or answer text from the data.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from langchain_fermi.types import Cost

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "BenchReport",
    "LeakCheck",
    "MethodCostSummary",
    "MethodResult",
    "MethodSummary",
    "OptimizationRecord",
    "UserResult",
]

REPORT_SCHEMA_VERSION = 1


class MethodResult(BaseModel):
    """One method on one user's test questions."""

    accuracy: float
    correct: list[int] = Field(description="1/0 per test question, in `UserResult.test_ids` order.")
    predictions: list[int | None] = Field(
        description="Option index the model chose (None: unread)."
    )
    expected_accuracy: float | None = Field(None, description="random only: mean 1/num_choices.")
    cost: Cost = Field(default_factory=Cost, description="Test queries, as spent.")
    naive: Cost = Field(default_factory=Cost, description="Test queries, one uncached call each.")
    detail: list[dict[str, Any]] = Field(default_factory=list)


class OptimizationRecord(BaseModel):
    """One graph variant's optimization on one user (shared by the methods that use it)."""

    variant: str
    curve: list[float]
    stop_reason: str = ""
    cost: Cost = Field(description="As spent (target tokens counted like the naive loop's).")
    naive: Cost
    reported_cost: Cost = Field(description="The graph's own `FermiResult.cost`.")
    prompts_scored: int
    pairs_scored: int = Field(description="(prompt, opinion) pairs scored: naive target calls.")
    best_prompt: str
    best_score: float
    memory: list[dict[str, Any]] = Field(default_factory=list, description="text, score, iteration")
    guard: bool = False
    served: list[dict[str, Any]] = Field(
        default_factory=list, description="what the user is served: text, score, validation"
    )
    fallback: bool = Field(False, description="the guard served the profile prompt alone")
    degenerate_served: int = Field(0, description="served learned prompts the guard would reject")
    dropped: dict[str, int] = Field(default_factory=dict, description="candidates not scored")
    optimizer_tokens_per_candidate: float | None = None
    restart: int = Field(0, description="restarts > 1: the search kept (from 0)")
    search_scores: list[float] = Field(
        default_factory=list,
        description="restarts > 1: each search's best served score on the scoring opinions",
    )


class LeakCheck(BaseModel):
    """Evidence that the optimization never scored a test question.

    ``scored_ids`` is every opinion id some prompt was scored on during optimization (from the
    results' correctness vectors). The score cache was also wrapped while optimizing, and every
    key it was asked for recorded: ``test_questions_seen`` lists the test opinions whose
    (prompt, question) key appears there for any prompt the optimization produced.
    ``cache_verified`` says the recording did capture the optimization's own lookups, so an
    empty list is evidence, not an accident of key formats.
    """

    scored_ids: list[str]
    test_ids_scored: list[str]
    keys_looked_up: int = 0
    cache_verified: bool = False
    test_questions_seen: list[str] = Field(default_factory=list, description="test opinion ids")
    hidden_prompt_leaked: bool = Field(
        False, description="planted: the hidden prompt reached the optimization"
    )

    @property
    def ok(self) -> bool:
        return not (self.test_ids_scored or self.test_questions_seen or self.hidden_prompt_leaked)


class UserResult(BaseModel):
    """Everything measured for one user; saved as ``users/<user_id>.json`` when it finishes."""

    user_id: str
    fingerprint: str = Field(description="Hash of the settings that change results (for resume).")
    optimize_ids: list[str]
    test_ids: list[str]
    methods: dict[str, MethodResult]
    optimization: dict[str, OptimizationRecord] = Field(default_factory=dict)
    leak_check: LeakCheck
    wall_seconds: float = 0.0


class MethodSummary(BaseModel):
    """A method's accuracy over users: macro mean and its bootstrap interval."""

    method: str
    accuracy: float
    ci_low: float
    ci_high: float
    n_users: int
    n_questions: int
    micro_accuracy: float = Field(description="Correct answers / all test questions.")
    diff_vs_fermi_rop: dict[str, float] | None = Field(
        None, description="Paired per-user fermi_rop - method: mean, ci_low, ci_high."
    )


class MethodCostSummary(BaseModel):
    """A method's total cost over users, as spent and as the naive loop would have spent it."""

    method: str
    actual: Cost
    naive: Cost
    call_ratio: float | None = Field(description="naive / actual target + optimizer calls.")
    token_ratio: float | None = Field(description="naive / actual tokens.")
    naive_target_seconds: float | None = Field(
        None, description="Estimate: naive target calls x the measured naive call time."
    )
    shares_optimization_with: list[str] = Field(default_factory=list)


class BenchReport(BaseModel):
    """The run's report: ``benchmarks/results/<run name>/report.json``."""

    schema_version: int = REPORT_SCHEMA_VERSION
    run_name: str
    dataset: str
    config: dict[str, Any]
    target_model: str
    optimizer_model: str
    n_users: int
    methods: list[MethodSummary]
    random_draw_accuracy: float | None = None
    costs: list[MethodCostSummary]
    curves: dict[str, list[float]] = Field(description="variant -> mean best score by iteration.")
    optimization: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="variant -> prompts scored, best score, stop reasons."
    )
    leak_free: bool
    users: list[UserResult]
    wall_seconds: float = Field(0.0, description="This invocation (a resumed run: its last part).")
    naive_call_seconds: float | None = Field(
        None, description="Probe: seconds per plain chat completion (the naive loop's call)."
    )
    scoring_call_seconds: float | None = Field(
        None, description="Probe: seconds per pair through our scorer, same pairs, no cache."
    )
    probe_pairs: int = 0
    failed_users: list[str] = Field(default_factory=list, description="Retried on the next run.")
    plots: list[str] = Field(default_factory=list)
    signal: dict[str, Any] | None = Field(
        None, description="The target's persona sensitivity (`signal.SignalCheck`), survey data."
    )
    planted: dict[str, Any] | None = Field(
        None, description="Planted users: the filter's counts and each user's rates."
    )
    gap_recovery: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Planted: share of the profile-to-hidden-prompt gap each method recovers.",
    )
