"""What an optimization spent (`Cost`) and produced (`FermiResult`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    computed_field,
    model_validator,
)

from langchain_fermi.types.config import FermiConfig
from langchain_fermi.types.prompts import ScoredPrompt

__all__ = [
    "Cost",
    "FermiResult",
]

_TOKEN_FIELDS = (
    "target_prompt_tokens",
    "target_completion_tokens",
    "optimizer_prompt_tokens",
    "optimizer_completion_tokens",
)


class Cost(BaseModel):
    """Calls, tokens and time spent, by who spent them (target / optimizer); adds up with ``+``.

    ``prompt_tokens``, ``completion_tokens`` and ``total_tokens`` are the sums over both models
    (dumped with the model, so readers of 0.1.0's JSON keep working). Costs saved by 0.1.0 hold
    only those sums: they load with the tokens counted to the model that made calls, or to the
    target when both did (0.1.0 did not record the split).

    Example:
        >>> cost = Cost(target_calls=2, target_prompt_tokens=80, optimizer_calls=1,
        ...             optimizer_prompt_tokens=900, optimizer_completion_tokens=60)
        >>> cost.prompt_tokens, cost.total_tokens
        (980, 1040)
    """

    target_calls: int = 0
    optimizer_calls: int = 0
    target_prompt_tokens: int = 0
    target_completion_tokens: int = 0
    optimizer_prompt_tokens: int = 0
    optimizer_completion_tokens: int = 0
    cache_hits: int = 0
    wall_seconds: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _split_legacy_totals(cls, data: Any) -> Any:
        """Accept 0.1.0's ``prompt_tokens`` / ``completion_tokens`` (and our own dumps)."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        data.pop("total_tokens", None)
        totals = {k: data.pop(k) for k in ("prompt_tokens", "completion_tokens") if k in data}
        if any(k in data for k in _TOKEN_FIELDS):
            for side, total in totals.items():  # a dump of this version: the sums must agree
                parts = (data.get(f"target_{side}", 0), data.get(f"optimizer_{side}", 0))
                numbers = all(type(n) is int for n in (total, *parts))  # else the fields say
                if numbers and total != sum(parts):
                    msg = f"{side} {total!r} is not the sum of the target's and optimizer's {parts}"
                    raise ValueError(msg)
            return data
        only_optimizer = not data.get("target_calls") and data.get("optimizer_calls")
        role = "optimizer" if only_optimizer else "target"
        for side, total in totals.items():
            data[f"{role}_{side}"] = total
        return data

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{k: getattr(self, k) + getattr(other, k) for k in Cost.model_fields})

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of both models."""
        return self.target_prompt_tokens + self.optimizer_prompt_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completion_tokens(self) -> int:
        """Completion tokens of both models."""
        return self.target_completion_tokens + self.optimizer_completion_tokens

    @property
    def total_tokens(self) -> int:
        """Every token, both models, prompt and completion (what ``max_tokens`` budgets)."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def target_tokens(self) -> int:
        """The target model's prompt and completion tokens."""
        return self.target_prompt_tokens + self.target_completion_tokens

    @property
    def optimizer_tokens(self) -> int:
        """The optimizer model's prompt and completion tokens."""
        return self.optimizer_prompt_tokens + self.optimizer_completion_tokens


class FermiResult(BaseModel):
    """What one user's optimization produced."""

    user_id: str
    variant: Literal["fermi", "opro"] = "fermi"
    model: str = "unknown"
    prompts: list[ScoredPrompt] = Field(description="Every prompt scored, in scoring order.")
    memory: list[ScoredPrompt] = Field(description="The final top-L memory, best first.")
    curve: list[float] = Field(default_factory=list, description="Best score after each iteration.")
    cost: Cost = Field(default_factory=Cost)
    cost_per_iteration: list[Cost] = Field(default_factory=list)
    stop_reason: str = ""
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="optimizer outputs not scored, by reason (duplicate / empty / unparseable; "
        "with the guard also option_label / copied_text / too_short)",
    )
    served: list[ScoredPrompt] | None = Field(
        None,
        description="the prompts to serve, best first (FermiConfig.guard: the memory and last "
        "generation minus those that did worse than the profile prompt on the validation "
        "opinions); None: no validation ran, serve the memory and last generation",
    )
    validation: dict[str, float] = Field(
        default_factory=dict, description="guard: accuracy on the validation opinions, by text"
    )
    validation_ids: list[str] = Field(
        default_factory=list, description="guard: the opinions held out from scoring"
    )
    fallback: bool = Field(
        False, description="guard: no learned prompt was kept; only the profile prompt is served"
    )
    config: FermiConfig = Field(default_factory=FermiConfig)
    restart: int = Field(
        0, ge=0, description="FermiConfig.restarts > 1: which search this result is (from 0)"
    )
    searches: list[FermiResult] = Field(
        default_factory=list,
        description="FermiConfig.restarts > 1: every search, in restart order. The result "
        "itself is the kept one (`restart`) with `cost` and `dropped` summed over all of them",
    )

    @property
    def all_prompts(self) -> list[ScoredPrompt]:
        """Every prompt scored by every search (`prompts` when there was one search): what
        the optimization paid for."""
        if not self.searches:
            return list(self.prompts)
        return [p for search in self.searches for p in search.prompts]

    @property
    def best_served(self) -> ScoredPrompt:
        """The best prompt the user may be served (the guard's set), else the best in memory."""
        served = self.serving_prompts()
        return served[0] if served else self.best

    def learned_prompts(self, *, include_last_generation: bool = True) -> list[ScoredPrompt]:
        """The prompt set learned for the user, best first: the memory plus, optionally, the
        last scored generation (FERMI.md *(choice)*), deduplicated by text. Ties keep memory
        order."""
        chosen = list(self.memory)
        if include_last_generation and self.prompts:
            last = max(p.iteration for p in self.prompts)
            chosen += [p for p in self.prompts if p.iteration == last]
        seen: set[str] = set()
        unique = [p for p in chosen if not (p.text in seen or seen.add(p.text))]  # type: ignore[func-returns-value]
        return sorted(unique, key=lambda p: -p.score)

    def serving_prompts(self, *, include_last_generation: bool = True) -> list[ScoredPrompt]:
        """What a store should serve: the guard's `served` set when it ran (restricted to the
        learned set asked for, the profile fallback kept), else `learned_prompts`."""
        learned = self.learned_prompts(include_last_generation=include_last_generation)
        if self.served is None:
            return learned
        if self.fallback:
            return list(self.served)
        texts = {p.text for p in learned}
        return [p for p in self.served if p.text in texts]

    @property
    def best(self) -> ScoredPrompt:
        """The single best prompt (ties: the earlier one)."""
        if not self.memory:
            msg = f"user {self.user_id!r}: the result holds no scored prompt"
            raise ValueError(msg)
        return self.memory[0]


FermiResult.model_rebuild()
