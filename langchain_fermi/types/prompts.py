"""Scored prompts: Fermi's <prompt, score, mis-aligned responses> memory triplets."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from langchain_fermi.types.profile import Variant

__all__ = [
    "MisalignedCase",
    "ScoredPrompt",
    "scored_opinion_ids",
]


class MisalignedCase(BaseModel):
    """An opinion where the model's answer scored below τ: what the optimizer is shown."""

    index: int = Field(description="Position of the opinion in the scoring split.")
    opinion_id: str
    question: str
    choices: list[str]
    user_answer: str
    model_answer: str | None = Field(description="None when the reply could not be parsed.")
    score: float = 0.0


class ScoredPrompt(BaseModel):
    """A prompt with its score on a user's scoring opinions: Fermi's memory triplet.

    ``correctness[i]`` is the metric for ``opinion_ids[i]`` (1.0 / 0.0 for multiple choice);
    Retrieval-of-Prompt reads it to rank prompts on a query's nearest opinions without LLM calls.
    """

    text: str
    score: float
    opinion_ids: list[str]
    correctness: list[float]
    likelihood: float | None = Field(
        None,
        description="Mean probability the target model gives the user's options on the scoring "
        "opinions; None when the scorer read replies rather than letter probabilities. "
        "FermiConfig(tie_break='likelihood') ranks equal scores by it.",
    )
    answers: list[str | None] = Field(description="The model's answer (option text) per opinion.")
    misaligned: list[MisalignedCase] = Field(default_factory=list)
    iteration: int = 0
    model: str = "unknown"
    variant: Variant = "fermi"

    @field_validator("score", "correctness", "likelihood", mode="after")
    @classmethod
    def _finite(cls, v: float | list[float] | None, info: Any) -> float | list[float] | None:
        # NaN / inf would make the user unreadable in the store and break every ranking.
        values = [] if v is None else v if isinstance(v, list) else [v]
        bad = next((x for x in values if not math.isfinite(x)), None)
        if bad is not None:
            msg = f"{info.field_name} must be finite numbers, got {bad!r}"
            raise ValueError(msg)
        return v

    @model_validator(mode="after")
    def _aligned(self) -> ScoredPrompt:
        if not (len(self.opinion_ids) == len(self.correctness) == len(self.answers)):
            msg = (
                "opinion_ids, correctness and answers must have the same length, got "
                f"{len(self.opinion_ids)}, {len(self.correctness)}, {len(self.answers)}"
            )
            raise ValueError(msg)
        return self

    def correctness_by_id(self) -> dict[str, float]:
        """Map opinion id -> metric value."""
        return dict(zip(self.opinion_ids, self.correctness, strict=True))


def scored_opinion_ids(prompts: Iterable[ScoredPrompt]) -> set[str]:
    """The opinions any of ``prompts`` was scored on (the part of the scoring split they cover)."""
    return {i for p in prompts for i in p.opinion_ids}
