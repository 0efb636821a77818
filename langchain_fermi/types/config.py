"""`FermiConfig`: the paper's hyperparameters (K, L, T, ...) and our implementation choices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

__all__ = [
    "DEFAULT_DEMO_FRACTION",
    "DEFAULT_ITERATIONS",
    "DEFAULT_MEMORY_SIZE",
    "DEFAULT_NUM_CANDIDATES",
    "DEFAULT_NUM_NEIGHBORS",
    "DEFAULT_TAU",
    "FermiConfig",
]

# Paper defaults (Kim & Yang 2025): K new prompts per iteration, L kept in memory, T iterations,
# Ñ opinions retrieved at inference, 20 % of the opinions shown as demonstrations,
# τ = 1 for accuracy.
DEFAULT_NUM_CANDIDATES = 4
DEFAULT_MEMORY_SIZE = 5
DEFAULT_ITERATIONS = 10
DEFAULT_NUM_NEIGHBORS = 3
DEFAULT_DEMO_FRACTION = 0.2
DEFAULT_TAU = 1.0


class FermiConfig(BaseModel):
    """Fermi's hyperparameters and our implementation choices (paper defaults).

    The paper's symbols are the constructor's names: ``FermiConfig(K=2, L=3, T=2)`` (what type
    checkers see, with pydantic's mypy plugin); the attributes keep the long names
    (``config.num_candidates``), and the long names are accepted on input too (a
    ``model_dump()`` validates back).

    Example:
        >>> FermiConfig(T=3, patience=2, max_target_calls=500)
    """

    # Not populate_by_name: with it, pydantic's mypy plugin types __init__ with the field names
    # only, and FermiConfig(K=4, L=5, T=3) fails type checking; _long_names maps them instead.
    model_config = ConfigDict(frozen=True, extra="forbid")

    num_candidates: int = Field(DEFAULT_NUM_CANDIDATES, alias="K", ge=1, description="K")
    memory_size: int = Field(DEFAULT_MEMORY_SIZE, alias="L", ge=1, description="L")
    iterations: int = Field(DEFAULT_ITERATIONS, alias="T", ge=0, description="T")
    num_neighbors: int = Field(DEFAULT_NUM_NEIGHBORS, ge=1, description="Ñ at inference")
    demo_fraction: float = Field(
        DEFAULT_DEMO_FRACTION,
        ge=0.0,
        lt=1.0,
        description="share of the opinions set aside as demonstrations instead of scored (also "
        "with the contrast meta-prompt, which does not show them: scoring them instead did worse "
        "on planted users, benchmarks/results/planted-qwen15-contrast-all-scored)",
    )
    tau: float = Field(DEFAULT_TAU, gt=0.0, le=1.0, description="mis-aligned when s < tau")
    target_temperature: float = Field(0.0, ge=0.0)
    optimizer_temperature: float = Field(1.0, ge=0.0)
    seed: int = 0
    max_concurrency: int = Field(4, ge=1)
    variant: Literal["fermi", "opro"] = "fermi"
    prompt_form: Literal["addendum", "full"] = Field(
        "addendum",
        description="what the optimizer writes: 'addendum', a paragraph about the person that is "
        "added to the profile prompt (the profile is kept word for word); 'full', a whole new "
        "prompt (the paper's form). Small optimizers garble the profile when they rewrite it",
    )
    meta_prompt_style: Literal["figure8", "contrast"] = Field(
        "figure8",
        description="Fermi's optimizer prompt: 'figure8', the paper's layout (profile, memory with "
        "the lowest text's failures, demonstrations); 'contrast', the best text's failures first, "
        "the memory as texts and scores, no profile or demonstrations (addendum form only; "
        "graph.prompts.FERMI_CONTRAST_META_PROMPT)",
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many non-improving iterations"
    )
    max_target_calls: int | None = Field(None, ge=1, description="budget: target-model calls")
    max_optimizer_calls: int | None = Field(None, ge=1, description="budget: optimizer calls")
    max_tokens: int | None = Field(
        None, ge=1, description="budget: prompt+completion tokens, all models"
    )
    max_retries: int = Field(3, ge=0, description="retries of a failing LLM call, with back-off")
    retry_backoff: float = Field(1.0, ge=0.0, description="seconds before the first retry; doubles")
    max_demos: int = Field(8, ge=0, description="cap on demonstrations shown to the optimizer")
    max_failures_shown: int = Field(
        10,
        ge=0,
        description="cap on the mis-aligned cases shown to the optimizer (Figure 8: the lowest-"
        "scoring text's; contrast: the best text's)",
    )
    tie_break: Literal["order", "likelihood"] = Field(
        "order",
        description="which of two prompts with the same score ranks first in memory (and so is "
        "shown as the best and served first): 'order', the earlier scored; 'likelihood', the one "
        "under which the target gives the user's options the higher mean probability (needs "
        "letter probabilities; falls back to order). Scores on a dozen opinions tie often",
    )
    include_final_candidates: bool = Field(
        True, description="score the last generation too (FERMI.md: memory + last generation)"
    )
    bracket_fallback: Literal["drop", "reply"] = Field(
        "drop",
        description="an optimizer reply with no [...]: drop it (counted as unparseable), or use "
        "the whole reply as the prompt (helps small local optimizers that ignore the brackets)",
    )
    calibration: Literal["auto", "neutral", "none"] = Field(
        "auto",
        description="letter scores: 'neutral' divides out a no-persona prompt's letter "
        "distribution per question (contextual calibration), 'none' reads them raw, 'auto' "
        "picks per model family (scoring.default_calibration: neutral for Qwen2.5)",
    )
    guard: bool = Field(
        True,
        description="reject degenerate candidates (an option letter or label, copied survey "
        "text, fewer than min_prompt_words words) and serve only prompts that do no worse than "
        "the profile prompt on validation opinions held out from scoring; False: the paper's "
        "exact loop",
    )
    validation_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="guard: share of the opinions held out for validation"
    )
    min_prompt_words: int = Field(4, ge=1, description="guard: fewest words of an instruction")
    restarts: int = Field(
        1,
        ge=1,
        description="independent searches per user, each with its own optimizer samples; the "
        "one whose best served prompt scores highest on the scoring opinions is kept (ties: "
        "tie_break, then the first). A small optimizer's first iteration decides most of a "
        "search, so restarts trade optimizer and target calls for steadier results",
    )
    stop_at_bracket: bool = Field(
        True,
        description="end each optimizer reply at its first ']' (the new prompt is complete there; "
        "saves the tokens a model writes after it); False: replies run to their token limit",
    )

    @model_validator(mode="after")
    def _style_fits_form(self) -> FermiConfig:
        if self.meta_prompt_style == "contrast" and self.prompt_form != "addendum":
            msg = "meta_prompt_style='contrast' needs prompt_form='addendum'"
            raise ValueError(msg)
        return self

    @model_validator(mode="before")
    @classmethod
    def _long_names(cls, data: Any) -> Any:
        """Accept the long names ``num_candidates`` / ``memory_size`` / ``iterations``."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for name, alias in _ALIASES.items():
            if name in data:
                if alias in data:
                    msg = f"pass {alias} or {name}, not both"
                    raise ValueError(msg)
                data[alias] = data.pop(name)
        return data


_ALIASES = {"num_candidates": "K", "memory_size": "L", "iterations": "T"}
