"""The guard's last node: score the learned prompt set on the validation opinions, keep what
may be served (`langchain_fermi.graph.guard.served_prompts`).

It runs once, after the loop stops, and only in a guarded graph (``FermiConfig.guard``). The
validation opinions were never scored during the loop nor shown to the optimizer, so they tell a
prompt that generalises from one that beat the profile prompt on the scoring opinions by luck.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_fermi.graph.guard import served_prompts
from langchain_fermi.graph.nodes import FermiContext, _answers_cost, _emit, _opinions
from langchain_fermi.graph.result import result_from_state
from langchain_fermi.graph.state import FermiState, costs, dump_prompts, load_user
from langchain_fermi.questions import profile_prompt
from langchain_fermi.scoring import agreement

__all__ = ["avalidate_prompts", "validate_prompts"]


def _plan(state: FermiState, ctx: FermiContext) -> tuple[Any, ...] | None:
    """(validation opinions, learned set, profile prompt, texts to score), or None to skip."""
    user = load_user(state)
    held = _opinions(user, state, "validation_ids")
    result = result_from_state(dict(state), ctx.config)
    text = profile_prompt(user)
    profile = next((p for p in result.prompts if p.text == text), None)
    if not held or profile is None:  # nothing held out, or a budget stopped iteration 0
        return None
    learned = result.learned_prompts()
    texts = list(dict.fromkeys([profile.text, *(p.text for p in learned)]))
    return held, learned, profile, texts


def _update(
    state: FermiState, plan: tuple[Any, ...], answers: list[Any], started: float
) -> dict[str, Any]:
    held, learned, profile, texts = plan
    n = len(held)
    accuracy = {
        t: sum(agreement(a, o) for a, o in zip(answers[i * n : (i + 1) * n], held, strict=True)) / n
        for i, t in enumerate(texts)
    }
    served, fallback = served_prompts(learned, accuracy, profile)
    spent = _answers_cost(answers)
    spent.wall_seconds += time.perf_counter() - started
    _emit({"event": "validated", "served": len(served), "fallback": fallback})
    return {
        "served": dump_prompts(served),
        "validation": accuracy,
        "fallback": fallback,
        "cost": (costs(state.get("cost")) + spent).model_dump(mode="json"),
    }


def _skipped() -> dict[str, Any]:
    return {"served": None, "validation": {}, "fallback": False}


def validate_prompts(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Score the profile prompt and the learned set (memory and last generation) on the
    validation opinions; serve those that do no worse than the profile prompt.

    Raises:
        LLMCallError: a scoring call still failed after ``max_retries`` retries.
    """
    started = time.perf_counter()
    plan = _plan(state, ctx)
    if plan is None:
        return _skipped()
    held, _, _, texts = plan
    answers = ctx.scorer.score([(t, o) for t in texts for o in held])
    return _update(state, plan, answers, started)


async def avalidate_prompts(state: FermiState, ctx: FermiContext) -> dict[str, Any]:
    """Async `validate_prompts`."""
    started = time.perf_counter()
    plan = _plan(state, ctx)
    if plan is None:
        return _skipped()
    held, _, _, texts = plan
    answers = await ctx.scorer.ascore([(t, o) for t in texts for o in held])
    return _update(state, plan, answers, started)
