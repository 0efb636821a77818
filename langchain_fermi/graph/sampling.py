"""Sampling new prompts from the optimizer model: K calls with retries, and their cost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_fermi.errors import LLMCallError
from langchain_fermi.types import Cost, FermiConfig

__all__ = ["asample_replies", "estimate_tokens", "replies_cost", "sample_replies"]

logger = logging.getLogger(__name__)


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
        optimizer_calls=calls, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


def _store(pending: list[int], results: Sequence[Any], out: list[Any]) -> list[int]:
    """Put each result (or its exception) in ``out``; return the indices that failed."""
    for i, res in zip(pending, results, strict=True):
        out[i] = res
    failed = [i for i in pending if isinstance(out[i], BaseException)]
    if failed:
        logger.warning("%d optimizer call(s) failed: %r", len(failed), out[failed[0]])
    return failed


def _error(out: list[Any], pending: list[int], config: FermiConfig) -> LLMCallError:
    cause = out[pending[0]]
    msg = (
        f"optimizer: {len(pending)} call(s) still failed after {config.max_retries + 1} "
        f"attempt(s); last error: {type(cause).__name__}: {cause}"
    )
    return LLMCallError(msg)


def _delay(config: FermiConfig, attempt: int) -> float:
    return config.retry_backoff * 2 ** (attempt - 1) if attempt else 0.0


def sample_replies(
    optimizer: BaseChatModel, prompt: str, n: int, config: FermiConfig
) -> tuple[list[BaseMessage], int]:
    """``n`` replies to ``prompt`` through ``batch`` (``max_concurrency``), and the calls made.

    Failed calls are retried ``max_retries`` times after ``retry_backoff * 2**k`` seconds;
    every attempt counts as a call.

    Raises:
        LLMCallError: some call still failed after the retries.
    """
    messages = [HumanMessage(prompt)]
    out: list[Any] = [None] * n
    pending, calls = list(range(n)), 0
    for attempt in range(config.max_retries + 1):
        time.sleep(_delay(config, attempt))
        results = optimizer.batch(
            [messages] * len(pending),
            config={"max_concurrency": config.max_concurrency},
            return_exceptions=True,
        )
        calls += len(pending)
        pending = _store(pending, results, out)
        if not pending:
            return out, calls
    error = _error(out, pending, config)
    raise error from out[pending[0]]


async def asample_replies(
    optimizer: BaseChatModel, prompt: str, n: int, config: FermiConfig
) -> tuple[list[BaseMessage], int]:
    """Async `sample_replies` (``abatch``)."""
    messages = [HumanMessage(prompt)]
    out: list[Any] = [None] * n
    pending, calls = list(range(n)), 0
    for attempt in range(config.max_retries + 1):
        await asyncio.sleep(_delay(config, attempt))
        results = await optimizer.abatch(
            [messages] * len(pending),
            config={"max_concurrency": config.max_concurrency},
            return_exceptions=True,
        )
        calls += len(pending)
        pending = _store(pending, results, out)
        if not pending:
            return out, calls
    error = _error(out, pending, config)
    raise error from out[pending[0]]
