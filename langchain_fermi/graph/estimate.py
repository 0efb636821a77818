"""What a Fermi run will cost, before it runs: target and optimizer calls, tokens and money.

`estimate_cost` replays the loop's arithmetic on the user's real split (the same seeded scoring /
demonstration / validation split the graph makes) and the real prompts: the profile prompt, the
questions as the target sees them and the optimizer's meta-prompt at each iteration's memory size.
Stop rules and budgets are the graph's own (`rules.budget_spent`). Two scenarios:

* **upper bound**: every optimizer reply becomes a new prompt and is scored, every iteration runs
  (the call budgets apply; a ``max_tokens`` budget is left out, as it only ever stops a run
  sooner), generated prompts and optimizer replies are as long as the optimizer's token limit,
  every answer is mis-aligned (the meta-prompt shows the most failures), the score cache is cold
  and the guard's validation scores every learned prompt;
* **expected**: the same loop with generated prompts as long as the profile prompt, replies
  that stop at the closing bracket, half of the answers mis-aligned, and ``drop_rate`` of the
  replies dropped (duplicates, no brackets).

Tokens are counted with `langchain_fermi.tokens` (tiktoken ``cl100k_base``, offline), the way
OpenAI bills chat calls; a local model's own tokenizer counts somewhat differently. Retries of
failed calls and an early stop by ``patience`` are not in either figure. With
``config.restarts`` = N both figures are N searches (the shared score cache spares later
restarts the profile prompt's scoring; that saving is not subtracted).

Example:
    >>> est = estimate_cost(user, FermiConfig(K=4, T=3), price_per_1k_prompt=0.00015,
    ...                     price_per_1k_completion=0.0006)
    >>> print(est.report())            # after the run: est.report(result.cost)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field

from langchain_fermi.graph.guard import split_validation
from langchain_fermi.graph.prompts import build_meta_prompt
from langchain_fermi.graph.rules import budget_spent, last_iteration, split_scoring_and_demos
from langchain_fermi.graph.sampling import estimate_tokens
from langchain_fermi.questions import profile_prompt
from langchain_fermi.types import (
    Cost,
    FermiConfig,
    MisalignedCase,
    Opinion,
    ScoredPrompt,
    UserProfile,
)

__all__ = ["CostEstimate", "ScoringMethod", "estimate_cost"]

ScoringMethod = Literal["logits", "logprobs", "parse"]
"""How the target's answers are read (`AnswerScorer`): the completion tokens per call follow."""

_COMPLETION_TOKENS: dict[str, tuple[int, int]] = {"logits": (0, 0), "logprobs": (1, 1)}
"""Target completion tokens per call (expected, upper) by scoring method; parse: (2, 8)."""
_PARSE_COMPLETION = (2, 8)
DEFAULT_OPTIMIZER_MAX_TOKENS = 512
"""The upper bound's reply length when the optimizer model states no ``max_tokens``."""
_MESSAGE_FRAMING = 7
"""Tokens OpenAI's chat format adds around one user message (3 + role + 3 priming)."""


class CostEstimate(BaseModel):
    """Expected and worst-case calls, tokens and money of one user's Fermi run.

    Example:
        >>> est.expected.target_calls, est.upper.optimizer_calls, est.money(est.upper)
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    scoring_opinions: int = Field(description="opinions every candidate prompt is scored on")
    validation_opinions: int = Field(description="held out by the guard, scored after the loop")
    demo_opinions: int = Field(description="shown to the optimizer")
    optimizer_rounds: int = Field(description="iterations that ask the optimizer for prompts")
    expected_prompts: int = Field(description="prompts scored in the expected scenario")
    upper_prompts: int = Field(description="prompts scored at most")
    expected: Cost
    upper: Cost
    scoring_method: ScoringMethod
    price_per_1k_prompt: float | None = None
    price_per_1k_completion: float | None = None

    def money(self, cost: Cost) -> float | None:
        """``cost``'s tokens at the given prices (None when no price was given)."""
        if self.price_per_1k_prompt is None and self.price_per_1k_completion is None:
            return None
        p = self.price_per_1k_prompt or 0.0
        c = self.price_per_1k_completion or 0.0
        return (cost.prompt_tokens * p + cost.completion_tokens * c) / 1000

    def summary(self, actual: Cost | None = None) -> dict[str, Any]:
        """JSON-ready figures: ``expected``, ``upper`` and, after a run, ``actual`` side by side."""
        out: dict[str, Any] = self.model_dump(mode="json", exclude={"expected", "upper"})
        columns = {"expected": self.expected, "upper": self.upper}
        if actual is not None:
            columns["actual"] = actual
        for name, cost in columns.items():
            out[name] = {**_figures(cost), "money": self.money(cost)}
        return out

    def report(self, actual: Cost | None = None) -> str:
        """A small table: expected and upper bound, and ``actual`` next to them after a run."""
        columns = {"expected": self.expected, "upper bound": self.upper}
        if actual is not None:
            columns["actual"] = actual
        figures = {name: _figures(cost) for name, cost in columns.items()}
        rows = [
            ("target calls", "target_calls"),
            ("optimizer calls", "optimizer_calls"),
            ("target tokens", "target_tokens"),
            ("optimizer tokens", "optimizer_tokens"),
            ("total tokens", "total_tokens"),
        ]
        head = (
            f"cost estimate for {self.user_id}: {self.scoring_opinions} scoring, "
            f"{self.validation_opinions} validation, {self.demo_opinions} demonstration "
            f"opinion(s); {self.optimizer_rounds} optimizer round(s); "
            f"{self.expected_prompts} prompt(s) scored expected, {self.upper_prompts} at most"
        )
        lines = [head, f"{'':18}" + "".join(f"{name:>14}" for name in columns)]
        for label, key in rows:
            lines.append(f"{label:18}" + "".join(f"{figures[n][key]:>14,}" for n in columns))
        if self.money(self.upper) is not None:
            money = [self.money(c) or 0.0 for c in columns.values()]
            lines.append(f"{'money':18}" + "".join(f"{m:>14.4f}" for m in money))
        if actual is not None and actual.cache_hits:
            lines.append(f"(actual: {actual.cache_hits} answer(s) came from the score cache)")
        return "\n".join(lines)


def _figures(cost: Cost) -> dict[str, int]:
    return {
        "target_calls": cost.target_calls,
        "optimizer_calls": cost.optimizer_calls,
        "target_tokens": cost.target_prompt_tokens + cost.target_completion_tokens,
        "optimizer_tokens": cost.optimizer_prompt_tokens + cost.optimizer_completion_tokens,
        "total_tokens": cost.total_tokens,
        "prompt_tokens": cost.prompt_tokens,
        "completion_tokens": cost.completion_tokens,
    }


def _scoring_method(target: BaseChatModel | None) -> ScoringMethod:
    """`AnswerScorer`'s automatic choice for ``target`` (logits for local llama.cpp models)."""
    from langchain_fermi.models import LocalLlamaChatModel

    if target is None or isinstance(target, LocalLlamaChatModel):
        return "logits"
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return "parse"
    return "logprobs" if isinstance(target, BaseChatOpenAI) else "parse"


_ADDENDUM_TOKENS = 80
"""A likely addendum: two to four sentences."""


@dataclass(frozen=True)
class _Scenario:
    prompt_text: str
    """Stands for a generated prompt in the meta-prompt's memory."""
    prompt_tokens: int
    """Tokens of a generated prompt."""
    reply_tokens: int
    """Completion tokens of one optimizer reply."""
    wrong: float
    """Share of mis-aligned answers shown in the meta-prompt."""
    answer_tokens: int
    """Completion tokens of one target call."""
    keep: float
    """Share of optimizer replies that become scored prompts."""


@dataclass(frozen=True)
class _Split:
    user: UserProfile
    scoring: list[Opinion]
    demos: list[Opinion]
    validation: list[Opinion]
    profile: str


def _split(user: UserProfile, config: FermiConfig) -> _Split:
    """The graph's own split (`nodes.split_opinions`) of the user's opinions."""
    scoring, demos = split_scoring_and_demos(
        user.opinions, user.user_id, demo_fraction=config.demo_fraction, seed=config.seed
    )
    held: list[str] = []
    if config.guard:
        scoring, held = split_validation(
            scoring, user.user_id, n_opinions=len(user.opinions),
            fraction=config.validation_fraction, seed=config.seed,
        )  # fmt: skip
    by_id = {o.id: o for o in user.opinions}
    return _Split(
        user,
        [by_id[i] for i in scoring],
        [by_id[i] for i in demos],
        [by_id[i] for i in held],
        profile_prompt(user),
    )


def _question_tokens(opinions: Sequence[Opinion]) -> int:
    """Prompt tokens of scoring an empty system prompt on ``opinions`` (one call each)."""
    from langchain_fermi.scoring import AnswerScorer
    from langchain_fermi.tokens import count_message_tokens

    return sum(
        count_message_tokens(AnswerScorer.messages("", o.question, o.choices)) for o in opinions
    )


def _memory(split: _Split, size: int, text: str, wrong: float) -> list[ScoredPrompt]:
    """A stand-in memory of ``size`` prompts, each with ``wrong`` of its answers mis-aligned."""
    n = len(split.scoring)
    bad = round(n * wrong)
    cases = [
        MisalignedCase(
            index=i,
            opinion_id=o.id,
            question=o.question,
            choices=list(o.choices),
            user_answer=o.answer,
            model_answer=o.choices[0],
            score=0.0,
        )
        for i, o in enumerate(split.scoring[:bad])
    ]
    correctness = [0.0] * bad + [1.0] * (n - bad)
    prompt = ScoredPrompt(
        text=text,
        score=(n - bad) / max(n, 1),
        opinion_ids=[o.id for o in split.scoring],
        correctness=correctness,
        answers=[o.choices[0] for o in split.scoring],
        misaligned=cases,
    )
    return [prompt] * size


def _simulate(
    split: _Split, config: FermiConfig, warm: Sequence[str], scenario: _Scenario
) -> tuple[Cost, int]:
    """Replay the loop's calls and tokens; returns the cost and the prompts scored."""
    n = len(split.scoring)
    base = _question_tokens(split.scoring)
    total = Cost()
    scored = 0

    def score(prompt_tokens: int) -> bool:
        """Score one candidate; True when a budget stops the loop."""
        nonlocal total, scored
        total = total + Cost(
            target_calls=n,
            target_prompt_tokens=base + n * prompt_tokens,
            target_completion_tokens=n * scenario.answer_tokens,
        )
        scored += 1
        return budget_spent(total, config) is not None

    stopped = False
    for text in dict.fromkeys([split.profile, *warm]):  # iteration 0, duplicates dropped
        if stopped := score(estimate_tokens(text)):
            break
    rounds = last_iteration(config)
    generated = 0.0
    for _ in range(rounds):
        if stopped or budget_spent(total, config):
            break
        k = config.num_candidates
        if config.max_optimizer_calls is not None:
            k = min(k, max(config.max_optimizer_calls - total.optimizer_calls, 0))
        if k == 0:
            break
        memory = min(config.memory_size, scored)
        meta = build_meta_prompt(
            config.variant,
            _memory(split, memory, scenario.prompt_text, scenario.wrong),
            split.demos[: config.max_demos],
            user=split.user,
            num_questions=n,
            max_failures_shown=config.max_failures_shown,
            form=config.prompt_form,
            style=config.meta_prompt_style,
        )
        prompt_tokens = estimate_tokens(meta) + _MESSAGE_FRAMING
        total = total + Cost(
            optimizer_calls=k,
            optimizer_prompt_tokens=k * prompt_tokens,
            optimizer_completion_tokens=k * scenario.reply_tokens,
        )
        generated += k * scenario.keep
        for _ in range(int(generated)):
            generated -= 1
            if stopped := score(scenario.prompt_tokens):
                break
    if config.guard and split.validation:  # validate_prompts: profile + memory + last generation
        texts = min(scored, 1 + config.memory_size + config.num_candidates)
        v = len(split.validation)
        total = total + Cost(
            target_calls=v * texts,
            target_prompt_tokens=texts * _question_tokens(split.validation)
            + v * (texts * scenario.prompt_tokens),
            target_completion_tokens=v * texts * scenario.answer_tokens,
        )
    return total, scored


def _times(cost: Cost, n: int) -> Cost:
    """``n`` searches' worth of ``cost``."""
    total = Cost()
    for _ in range(n):
        total = total + cost
    return total


def estimate_cost(
    user: UserProfile | dict[str, Any],
    config: FermiConfig | None = None,
    *,
    target: BaseChatModel | None = None,
    optimizer: BaseChatModel | None = None,
    warm_start: Sequence[str | ScoredPrompt] = (),
    scoring_method: ScoringMethod | None = None,
    optimizer_max_tokens: int | None = None,
    drop_rate: float = 0.0,
    price_per_1k_prompt: float | None = None,
    price_per_1k_completion: float | None = None,
) -> CostEstimate:
    """Estimate one user's Fermi run before making any model call.

    Args:
        user: the user (profile + opinions) as `optimize_user` takes it.
        config: the run's hyperparameters (paper defaults when omitted).
        target: the target model, to pick the scoring method as `AnswerScorer` would (logits
            for local llama.cpp models: no completion tokens; logprobs for OpenAI-compatible
            models: one; a short parsed reply otherwise).
        optimizer: the optimizer model; its ``max_tokens`` bounds a reply in the upper bound.
        warm_start: prompts scored in iteration 0 next to the profile prompt.
        scoring_method: overrides the method picked from ``target``.
        optimizer_max_tokens: overrides the optimizer's reply limit (default: the model's
            ``max_tokens``, else 512).
        drop_rate: expected share of optimizer replies dropped (duplicates, no brackets); the
            upper bound drops none.
        price_per_1k_prompt: money per 1,000 prompt tokens (both models).
        price_per_1k_completion: money per 1,000 completion tokens (both models).

    Raises:
        ValueError: the user has no opinions, or ``drop_rate`` is not in [0, 1].
    """
    if not 0.0 <= drop_rate <= 1.0:
        msg = f"drop_rate must be between 0 and 1, got {drop_rate!r}"
        raise ValueError(msg)
    user = user if isinstance(user, UserProfile) else UserProfile.model_validate(user)
    config = config or FermiConfig()
    split = _split(user, config)
    method = scoring_method or _scoring_method(target)
    low, high = _COMPLETION_TOKENS.get(method, _PARSE_COMPLETION)
    limit = optimizer_max_tokens or getattr(optimizer, "max_tokens", None)
    limit = limit if isinstance(limit, int) and limit > 0 else DEFAULT_OPTIMIZER_MAX_TOKENS
    profile_tokens = estimate_tokens(split.profile)
    warm = [w.text if isinstance(w, ScoredPrompt) else str(w) for w in warm_start]
    if config.prompt_form == "addendum":  # the optimizer writes a paragraph, added to the profile
        para = _ADDENDUM_TOKENS
        likely = _Scenario("word " * para, profile_tokens + para, para + 8, 0.5, low, 1 - drop_rate)
        longest = _Scenario("word " * limit, profile_tokens + limit, limit, 1.0, high, 1.0)
    else:
        kept = 1 - drop_rate
        likely = _Scenario(split.profile, profile_tokens, profile_tokens + 8, 0.5, low, kept)
        longest = _Scenario("word " * limit, limit, limit, 1.0, high, 1.0)
    expected, n_expected = _simulate(split, config, warm, likely)
    # A token budget stops a run of long prompts sooner, so it cannot bound the calls from
    # above: the upper bound runs without it (tokens only ever stop a run earlier).
    unbudgeted = config.model_copy(update={"max_tokens": None})
    upper, n_upper = _simulate(split, unbudgeted, warm, longest)
    n = config.restarts  # independent searches, each with the same budgets
    expected, upper = _times(expected, n), _times(upper, n)
    n_expected, n_upper = n_expected * n, n_upper * n
    return CostEstimate(
        user_id=user.user_id,
        scoring_opinions=len(split.scoring),
        validation_opinions=len(split.validation),
        demo_opinions=len(split.demos),
        optimizer_rounds=last_iteration(config),
        expected_prompts=n_expected,
        upper_prompts=n_upper,
        expected=expected,
        upper=upper,
        scoring_method=method,
        price_per_1k_prompt=price_per_1k_prompt,
        price_per_1k_completion=price_per_1k_completion,
    )
