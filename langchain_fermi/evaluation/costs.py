"""Cost of each method, measured and as the naive loop would have paid it.

The naive loop is FERMI.md's cost model: one target call per (prompt, scoring opinion) pair and
per test query, no cache, no shared prefixes, generation of a one-letter answer; optimizer calls
cannot be cached, so it pays the same optimizer calls. It is computed, not run: from the prompts
the optimization actually scored (each `ScoredPrompt` lists the opinions it was scored on) and
from the test queries, so the ratio compares the same work done both ways.

Target-model tokens are counted one way for both sides: tiktoken ``cl100k_base`` on the OpenAI
chat format (`count_message_tokens`), what an API would bill, whatever tokenizer the local model
has. Savings from KV-prefix reuse inside llama.cpp show in wall time, not in these tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from langchain_core.messages import HumanMessage, SystemMessage

from langchain_fermi.questions import format_question
from langchain_fermi.tokens import count_message_tokens
from langchain_fermi.types import Cost, FermiResult, Opinion

__all__ = [
    "NAIVE_COMPLETION_TOKENS",
    "call_tokens",
    "naive_optimization_cost",
    "naive_query_cost",
    "optimization_cost",
    "optimizer_share",
    "ratio",
]

NAIVE_COMPLETION_TOKENS = 1
"""A naive call generates the answer letter: one completion token."""


def call_tokens(prompt: str, question: str, choices: Sequence[str]) -> int:
    """Prompt tokens of one scoring call: the system prompt and the formatted question."""
    messages = [
        SystemMessage(content=prompt),
        HumanMessage(content=format_question(question, choices)),
    ]
    return count_message_tokens(messages)


def naive_query_cost(pairs: Iterable[tuple[str, Opinion]]) -> Cost:
    """One uncached call per (prompt, opinion) pair."""
    calls = 0
    tokens = 0
    for prompt, opinion in pairs:
        calls += 1
        tokens += call_tokens(prompt, opinion.question, opinion.choices)
    return Cost(
        target_calls=calls,
        target_prompt_tokens=tokens,
        target_completion_tokens=calls * NAIVE_COMPLETION_TOKENS,
    )


def optimizer_share(cost: Cost) -> Cost:
    """The optimizer's calls and tokens out of ``cost`` (`Cost` records who spent what)."""
    return Cost(
        optimizer_calls=cost.optimizer_calls,
        optimizer_prompt_tokens=cost.optimizer_prompt_tokens,
        optimizer_completion_tokens=cost.optimizer_completion_tokens,
    )


def naive_optimization_cost(
    result: FermiResult, opinions: Sequence[Opinion], *, optimizer: Cost | None = None
) -> Cost:
    """What the naive loop pays to score every prompt ``result`` scored, on the same opinions.

    Args:
        result: The optimization result; ``result.all_prompts`` is every prompt scored (by
            every restart).
        opinions: The user's optimization opinions (to look questions up by id).
        optimizer: The optimizer's own calls and tokens, added unchanged (the naive loop makes
            the same optimizer calls); default: the optimizer's share of ``result.cost``.
    """
    by_id = {o.id: o for o in opinions}
    prompts = result.all_prompts
    missing = sorted({i for p in prompts for i in p.opinion_ids if i not in by_id})
    if missing:
        msg = f"user {result.user_id!r}: prompts were scored on unknown opinion ids {missing!r}"
        raise ValueError(msg)
    pairs = ((p.text, by_id[i]) for p in prompts for i in p.opinion_ids)
    naive = naive_query_cost(pairs)
    return naive + optimizer_share(optimizer if optimizer is not None else result.cost)


def optimization_cost(
    result: FermiResult, paid: Iterable[tuple[str, Opinion]], opinions: Sequence[Opinion]
) -> tuple[Cost, Cost]:
    """The optimization's actual and naive cost, target tokens counted the same way for both.

    Both come from ``result.cost``, which records the target's and the optimizer's calls and
    tokens apart. Only the target's prompt tokens are re-counted, with `call_tokens` over the
    ``paid`` (prompt, opinion) pairs (the calls the target actually made), since the graph counts
    them in the local model's own tokenizer and the naive loop in tiktoken's.

    Args:
        result: The optimization result.
        paid: The (prompt, opinion) pairs the target was actually called on (not cache hits).
        opinions: The user's optimization opinions (to look questions up by id).
    """
    recount = naive_query_cost(paid)
    actual = result.cost.model_copy(update={"target_prompt_tokens": recount.target_prompt_tokens})
    return actual, naive_optimization_cost(result, opinions)


def ratio(naive: float, actual: float) -> float | None:
    """``naive / actual``, or ``None`` when nothing was spent (no ratio of zero calls)."""
    if actual <= 0:
        return None
    return float(naive) / float(actual)
