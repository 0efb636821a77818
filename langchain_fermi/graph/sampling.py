"""Sampling new prompts from the optimizer model: K calls with retries, and their cost.

The retries are `langchain_fermi.models.retry`, the same policy scoring uses. Each reply ends
at its first ``]`` (``FermiConfig.stop_at_bracket``): the new prompt is complete there, and
whatever a model writes after it (explanations, more candidates) costs tokens and time for
nothing. The stop sequence removes the ``]`` itself, so it is put back (`close_stopped_reply`).
The K samples share one meta-prompt; on a local llama.cpp model the KV-prefix cache evaluates
it once and samples 2..K only generate (``benchmarks/bench_optimizer.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable

from langchain_fermi.models import LocalLlamaChatModel, model_id
from langchain_fermi.models.retry import RetryPolicy, abatch_with_retry, batch_with_retry
from langchain_fermi.types import Cost, FermiConfig

__all__ = [
    "BRACKET_STOP",
    "asample_replies",
    "close_stopped_reply",
    "estimate_tokens",
    "replies_cost",
    "sample_replies",
]

BRACKET_STOP = ["]"]
"""The optimizer's stop sequence: the end of the bracketed new prompt."""


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


def _open_brackets(text: str) -> int:
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth > 0:
            depth -= 1
    return depth


def close_stopped_reply(reply: BaseMessage) -> BaseMessage:
    """``reply`` with the ``]`` the stop sequence removed put back.

    Only a reply that stopped (not one cut off by its token limit, ``finish_reason="length"``)
    and left a ``[`` open is changed, so `parse_bracketed` reads the same complete block the
    model wrote. A nested ``[`` inside the prompt ends it early: ``"[Be [very] brief]"``
    stops as ``"[Be [very]"``, which reads as ``"Be [very]"``.
    """
    text = str(reply.text)
    meta = getattr(reply, "response_metadata", None) or {}
    depth = _open_brackets(text)
    if not depth or meta.get("finish_reason") == "length" or not isinstance(reply, AIMessage):
        return reply
    return reply.model_copy(update={"content": text + "]" * depth})


def _sampler(optimizer: BaseChatModel, config: FermiConfig) -> Runnable:
    """The optimizer with the bracket stop sequence bound, when the config asks for it."""
    return optimizer.bind(stop=BRACKET_STOP) if config.stop_at_bracket else optimizer


def _concurrency(optimizer: BaseChatModel, config: FermiConfig) -> int:
    """``max_concurrency``, or 1 for a seeded local model: its calls queue on one lock anyway,
    and one at a time gives the K replies their seeds in input order (a reproducible run)."""
    if isinstance(optimizer, LocalLlamaChatModel) and optimizer.seed is not None:
        return 1
    return config.max_concurrency


def _policy(optimizer: BaseChatModel, config: FermiConfig) -> RetryPolicy:
    label = f"optimizer {model_id(optimizer)!r}"
    return RetryPolicy(config.max_retries, config.retry_backoff, label=label)


def sample_replies(
    optimizer: BaseChatModel, prompt: str, n: int, config: FermiConfig
) -> tuple[list[BaseMessage], int]:
    """``n`` replies to ``prompt`` through ``batch`` (``max_concurrency``), and the calls made.

    Failed calls are retried ``max_retries`` times after ``retry_backoff * 2**k`` seconds
    (`RetryPolicy`); every attempt counts as a call. With ``config.stop_at_bracket`` each
    reply ends at its first ``]`` (`close_stopped_reply`).

    Raises:
        LLMCallError: some call still failed after the retries.
    """
    inputs = [[HumanMessage(prompt)]] * n
    replies, calls = batch_with_retry(
        _sampler(optimizer, config),
        inputs,
        _policy(optimizer, config),
        max_concurrency=_concurrency(optimizer, config),
    )
    return _closed(replies, config), calls


def _closed(replies: list[BaseMessage], config: FermiConfig) -> list[BaseMessage]:
    return [close_stopped_reply(r) for r in replies] if config.stop_at_bracket else replies


async def asample_replies(
    optimizer: BaseChatModel, prompt: str, n: int, config: FermiConfig
) -> tuple[list[BaseMessage], int]:
    """Async `sample_replies` (``abatch``)."""
    inputs = [[HumanMessage(prompt)]] * n
    replies, calls = await abatch_with_retry(
        _sampler(optimizer, config),
        inputs,
        _policy(optimizer, config),
        max_concurrency=_concurrency(optimizer, config),
    )
    return _closed(replies, config), calls
