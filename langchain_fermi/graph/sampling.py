"""Sampling new prompts from the optimizer model: K calls with retries, and their cost.

The retries are `langchain_fermi.models.retry`, the same policy scoring uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_fermi.models import model_id
from langchain_fermi.models.retry import RetryPolicy, abatch_with_retry, batch_with_retry
from langchain_fermi.types import Cost, FermiConfig

__all__ = ["asample_replies", "estimate_tokens", "replies_cost", "sample_replies"]


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` with tiktoken (offline cache), or about 4 characters a token."""
    try:
        from langchain_fermi.tokens import count_tokens

        return count_tokens(text)
    except Exception:  # tiktoken cache missing: a rough estimate is enough for budgets
        return max(1, len(text) // 4) if text else 0


def replies_cost(prompt: str, replies: Sequence[BaseMessage], calls: int) -> Cost:
    """Optimizer calls and tokens: the model's usage metadata, else a tiktoken estimate."""
    prompt_tokens = completion_tokens = 0
    for r in replies:
        usage = getattr(r, "usage_metadata", None)
        if usage:
            prompt_tokens += int(usage.get("input_tokens", 0))
            completion_tokens += int(usage.get("output_tokens", 0))
        else:
            prompt_tokens += estimate_tokens(prompt)
            completion_tokens += estimate_tokens(str(r.text))
    return Cost(
        optimizer_calls=calls,
        optimizer_prompt_tokens=prompt_tokens,
        optimizer_completion_tokens=completion_tokens,
    )


def _policy(optimizer: BaseChatModel, config: FermiConfig) -> RetryPolicy:
    label = f"optimizer {model_id(optimizer)!r}"
    return RetryPolicy(config.max_retries, config.retry_backoff, label=label)


def sample_replies(
    optimizer: BaseChatModel, prompt: str, n: int, config: FermiConfig
) -> tuple[list[BaseMessage], int]:
    """``n`` replies to ``prompt`` through ``batch`` (``max_concurrency``), and the calls made.

    Failed calls are retried ``max_retries`` times after ``retry_backoff * 2**k`` seconds
    (`RetryPolicy`); every attempt counts as a call.

    Raises:
        LLMCallError: some call still failed after the retries.
    """
    inputs = [[HumanMessage(prompt)]] * n
    return batch_with_retry(
        optimizer, inputs, _policy(optimizer, config), max_concurrency=config.max_concurrency
    )


async def asample_replies(
    optimizer: BaseChatModel, prompt: str, n: int, config: FermiConfig
) -> tuple[list[BaseMessage], int]:
    """Async `sample_replies` (``abatch``)."""
    inputs = [[HumanMessage(prompt)]] * n
    return await abatch_with_retry(
        optimizer, inputs, _policy(optimizer, config), max_concurrency=config.max_concurrency
    )
