"""The steps of Fermi's loop: one small function per graph node, each with an async twin.

Each node takes the state and a `FermiContext` (config and models, bound by the builder's
closure, never stored in state) and returns a small state update. Sync and async twins share
the pure code; only the model calls differ (``batch``/``score`` vs ``abatch``/``ascore``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langgraph.graph import END
from langgraph.types import Overwrite

from langchain_fermi.graph.candidates import collect_candidates, initial_candidates
from langchain_fermi.graph.guard import DEGENERATE_REASONS, split_validation
from langchain_fermi.graph.prompts import (
    build_meta_prompt,
)
from langchain_fermi.graph.rules import (
    budget_spent,
    misaligned_cases,
    split_scoring_and_demos,
    stop_reason,
    top_memory,
)
from langchain_fermi.graph.sampling import asample_replies, replies_cost, sample_replies
from langchain_fermi.graph.state import (
    DROP_REASONS,
    FermiState,
    Node,
    costs,
    dump_prompts,
    load_prompts,
    load_user,
)
from langchain_fermi.scoring import AnswerScorer, ScoredAnswer, agreement, user_likelihood
from langchain_fermi.types import Cost, FermiConfig, Opinion, ScoredPrompt, UserProfile

__all__ = [
    "NODE_FUNCTIONS",
    "FermiContext",
    "aevaluate_candidates",
    "agenerate_candidates",
    "evaluate_candidates",
    "extract_misaligned",
    "generate_candidates",
    "meta_prompt",
    "should_continue",
    "split_opinions",
    "update_memory",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FermiContext:
    """What the nodes need besides the state; kept out of state so checkpoints stay small."""

    config: FermiConfig
    optimizer: BaseChatModel
    scorer: AnswerScorer

    @property
    def target_id(self) -> str:
        """The target model's cache id (`model_id`)."""
        return self.scorer.model_id


def _emit(event: dict[str, Any]) -> None:
    """Send a progress event to ``stream_mode="custom"`` consumers (no-op outside a run)."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(event)
    except Exception:  # no run context (a direct call), or async on Python < 3.11
        logger.debug("no stream writer for %s", event.get("event"))


def _with_cost(state: FermiState, delta: Cost, started: float) -> dict[str, Any]:
    delta.wall_seconds += time.perf_counter() - started
    return (costs(state.get("iteration_cost")) + delta).model_dump(mode="json")


def _opinions(user: UserProfile, state: FermiState, key: str) -> list[Opinion]:
    """The user's opinions listed under ``key`` (``scoring_ids`` / ``demo_ids``), in order."""
    by_id = {o.id: o for o in user.opinions}
    ids: list[str] = cast(dict[str, Any], state).get(key, [])
    return [by_id[i] for i in ids]


# ------------------------------------------------------------------------------ split


def _reset(state: FermiState, key: str) -> Any:
    """An empty list for an append-only channel: `Overwrite` only when it holds an old run."""
    return Overwrite([]) if state.get(key) else []  # type: ignore[misc]


def split_opinions(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Validate the user, split the opinions (seeded) and reset the accumulators.

    Accumulated lists are written with `Overwrite`, so a thread that already holds an older
    run starts clean instead of appending to it.
    """
    user, cfg = load_user(state), ctx.config
    scoring, demos = split_scoring_and_demos(
        user.opinions, user.user_id, demo_fraction=cfg.demo_fraction, seed=cfg.seed
    )
    guarded: dict[str, Any] = {}
    if cfg.guard:  # validation opinions come out of the scoring split
        scoring, held = split_validation(
            scoring, user.user_id, n_opinions=len(user.opinions),
            fraction=cfg.validation_fraction, seed=cfg.seed,
        )  # fmt: skip
        guarded = {"validation_ids": held, "served": None, "validation": {}, "fallback": False}
    zero = Cost().model_dump(mode="json")
    return {
        **guarded,
        "scoring_ids": scoring,
        "demo_ids": demos,
        "iteration": 0,
        "candidates": [],
        "new_scored": [],
        "scored": _reset(state, "scored"),
        "memory": [],
        "curve": _reset(state, "curve"),
        "iteration_cost": zero,
        "cost_per_iteration": _reset(state, "cost_per_iteration"),
        "cost": zero,
        "dropped": dict.fromkeys(DROP_REASONS + (DEGENERATE_REASONS if cfg.guard else ()), 0),
        "stop_reason": "",
    }


# ------------------------------------------------------------------------------ generate


def meta_prompt(state: FermiState, ctx: FermiContext) -> str:
    """The optimizer's prompt for the current memory (Fermi's or OPRO's, by ``variant``)."""
    user = load_user(state)  # once per node call: its opinions give the demonstrations too
    return build_meta_prompt(
        ctx.config.variant,
        load_prompts(state.get("memory")),
        _opinions(user, state, "demo_ids")[: ctx.config.max_demos],
        user=user,
        num_questions=len(state.get("scoring_ids", [])),
        max_failures_shown=ctx.config.max_failures_shown,
        form=ctx.config.prompt_form,
        style=ctx.config.meta_prompt_style,
    )


def _num_samples(state: FermiState, ctx: FermiContext) -> int:
    """K, capped by what is left of the optimizer-call budget."""
    n = ctx.config.num_candidates
    if ctx.config.max_optimizer_calls is not None:
        used = costs(state.get("cost")).optimizer_calls
        n = min(n, max(ctx.config.max_optimizer_calls - used, 0))
    return n


def _generation_update(
    state: FermiState,
    ctx: FermiContext,
    prompt: str,
    replies: list[BaseMessage],
    calls: int,
    started: float,
) -> dict[str, Any]:
    cfg = ctx.config
    guard_words = cfg.min_prompt_words if cfg.guard else None
    candidates, dropped = collect_candidates(
        state,
        replies,
        fallback=cfg.bracket_fallback,
        guard_words=guard_words,
        form=cfg.prompt_form,
    )
    delta = replies_cost(prompt, replies, calls)
    return {
        "candidates": candidates,
        "dropped": dropped,
        "iteration_cost": _with_cost(state, delta, started),
    }


def generate_candidates(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Propose this iteration's prompts.

    Iteration 0 scores the initial profile prompt (and any warm-start prompts). Later iterations
    sample K prompts from the optimizer; duplicates, empty and unparseable outputs are dropped
    and counted, and the loop goes on even when all K are dropped.

    Raises:
        LLMCallError: an optimizer call still failed after ``max_retries`` retries.
    """
    started = time.perf_counter()
    if state.get("iteration", 0) == 0:
        return {"candidates": initial_candidates(state)}
    prompt, n = meta_prompt(state, ctx), _num_samples(state, ctx)
    replies, calls = sample_replies(ctx.optimizer, prompt, n, ctx.config) if n else ([], 0)
    return _generation_update(state, ctx, prompt, replies, calls, started)


async def agenerate_candidates(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Async `generate_candidates`."""
    started = time.perf_counter()
    if state.get("iteration", 0) == 0:
        return {"candidates": initial_candidates(state)}
    prompt, n = meta_prompt(state, ctx), _num_samples(state, ctx)
    if n:
        replies, calls = await asample_replies(ctx.optimizer, prompt, n, ctx.config)
    else:
        replies, calls = [], 0
    # token estimates may load tiktoken files: keep that file I/O off the event loop
    return await asyncio.to_thread(_generation_update, state, ctx, prompt, replies, calls, started)


# ------------------------------------------------------------------------------ evaluate


def _scored_prompt(
    text: str,
    opinions: list[Opinion],
    answers: list[ScoredAnswer],
    state: FermiState,
    ctx: FermiContext,
) -> ScoredPrompt:
    correctness = [agreement(a, o) for a, o in zip(answers, opinions, strict=True)]
    return ScoredPrompt(
        text=text,
        score=sum(correctness) / len(correctness),
        opinion_ids=[o.id for o in opinions],
        correctness=correctness,
        likelihood=user_likelihood(answers, opinions),
        answers=[a.answer(o.choices) for a, o in zip(answers, opinions, strict=True)],
        iteration=state.get("iteration", 0),
        model=ctx.target_id,
        variant=ctx.config.variant,
    )


def _answers_cost(answers: list[ScoredAnswer]) -> Cost:
    """Target calls and tokens of the answers not served from the cache, each counted once."""
    fresh = list({id(a): a for a in answers if not a.cached}.values())
    return Cost(
        target_calls=len(fresh),
        cache_hits=sum(a.cached for a in answers),
        target_prompt_tokens=sum(a.prompt_tokens for a in fresh),
        target_completion_tokens=sum(a.completion_tokens for a in fresh),
    )


@dataclass
class _Evaluation:
    """What one `evaluate_candidates` step has scored and spent so far."""

    state: FermiState
    ctx: FermiContext
    opinions: list[Opinion]
    started: float = field(default_factory=time.perf_counter)
    spent: Cost = field(default_factory=Cost)
    scored: list[ScoredPrompt] = field(default_factory=list)

    def items(self, text: str) -> list[tuple[str, Opinion]]:
        return [(text, o) for o in self.opinions]

    def record(self, text: str, answers: list[ScoredAnswer]) -> bool:
        """Add one candidate's result; True when a budget ran out (stop scoring)."""
        self.spent = self.spent + _answers_cost(answers)
        self.scored.append(_scored_prompt(text, self.opinions, answers, self.state, self.ctx))
        total = len(self.state.get("candidates", []))
        spent = costs(self.state.get("cost")) + self.spent
        so_far = spent + costs(self.state.get("iteration_cost"))  # + this iteration's optimizer
        event = {"event": "scored", "iteration": self.state.get("iteration", 0)}
        _emit(
            {
                **event,
                "done": len(self.scored),
                "total": total,
                "score": self.scored[-1].score,
                "calls": so_far.target_calls + so_far.optimizer_calls,
                "tokens": so_far.total_tokens,
            }
        )
        return budget_spent(spent, self.ctx.config) is not None

    def update(self) -> dict[str, Any]:
        return {
            "new_scored": dump_prompts(self.scored),
            "candidates": [],
            "iteration_cost": _with_cost(self.state, self.spent, self.started),
        }


def evaluate_candidates(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Score each candidate on the scoring opinions through the `AnswerScorer`.

    The scorer's `ScoreCache` guarantees a (model, prompt, question) is never sent twice, also
    across a resume when the cache is on disk. When a budget runs out mid-iteration, the
    candidates not yet scored are skipped (the budget stop rule then ends the loop).
    """
    run = _Evaluation(state, ctx, _opinions(load_user(state), state, "scoring_ids"))
    for text in state.get("candidates", []):
        if run.record(text, ctx.scorer.score(run.items(text))):
            break
    return run.update()


async def aevaluate_candidates(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Async `evaluate_candidates`."""
    run = _Evaluation(state, ctx, _opinions(load_user(state), state, "scoring_ids"))
    for text in state.get("candidates", []):
        if run.record(text, await ctx.scorer.ascore(run.items(text))):
            break
    return run.update()


# ------------------------------------------------------------------------------ misaligned


def extract_misaligned(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Attach to each new prompt its mis-aligned responses: (index, question, user's answer,
    model's answer) where ``s < tau``; the first memory entry shows them to the optimizer."""
    opinions = _opinions(load_user(state), state, "scoring_ids")
    prompts = [
        sp.model_copy(update={"misaligned": misaligned_cases(sp, opinions, ctx.config.tau)})
        for sp in load_prompts(state.get("new_scored"))
    ]
    return {"new_scored": dump_prompts(prompts)}


# ------------------------------------------------------------------------------ memory


def update_memory(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Keep the top-L prompts (ties: `FermiConfig.tie_break`), extend the curve and the
    costs, and record the stop reason that `should_continue` routes on."""
    started = time.perf_counter()
    new = load_prompts(state.get("new_scored"))
    memory = top_memory(
        load_prompts(state.get("memory")),
        new,
        ctx.config.memory_size,
        tie_break=ctx.config.tie_break,
    )
    best = memory[0].score if memory else 0.0
    it_cost = costs(_with_cost(state, Cost(), started))
    total = costs(state.get("cost")) + it_cost
    iteration = state.get("iteration", 0)
    reason = stop_reason(iteration, [*state.get("curve", []), best], total, ctx.config)
    return {
        "scored": dump_prompts(new),
        "memory": dump_prompts(memory),
        "curve": [best],
        "cost_per_iteration": [it_cost.model_dump(mode="json")],
        "cost": total.model_dump(mode="json"),
        "iteration_cost": Cost().model_dump(mode="json"),
        "iteration": iteration + 1,
        "new_scored": [],
        "stop_reason": reason,
    }


def should_continue(state: FermiState) -> str:
    """Route after `update_memory`: back to ``generate_candidates``, or ``END`` once stopped."""
    return END if state.get("stop_reason") else Node.GENERATE_CANDIDATES


NODE_FUNCTIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]] = {
    Node.SPLIT_OPINIONS: (split_opinions, None),
    Node.GENERATE_CANDIDATES: (generate_candidates, agenerate_candidates),
    Node.EVALUATE_CANDIDATES: (evaluate_candidates, aevaluate_candidates),
    Node.EXTRACT_MISALIGNED: (extract_misaligned, None),
    Node.UPDATE_MEMORY: (update_memory, None),
}
"""Node name -> (sync, async) function; pure nodes need no async twin."""
