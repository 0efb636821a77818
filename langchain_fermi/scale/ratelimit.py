"""One rate limit for every concurrent call: requests and tokens per minute, per model role.

Hosted APIs cap both requests per minute (RPM) and tokens per minute (TPM), counted over a
sliding minute, and count a request's tokens when it is sent (prompt + ``max_tokens``).
langchain-core's `InMemoryRateLimiter` is a token bucket over requests only, and a bucket that
refills at ``limit / 60`` per second and may hold a burst lets up to twice the limit through
in one 60-second window. `SlidingWindowLimiter` keeps the log of what it admitted in the last
``window_seconds`` and admits a request only when that window, with the request added, stays
within both limits, so no window ever exceeds them.

A limiter is shared by giving the same object to every model of one role in a process
(`with_rate_limit`); across processes and machines the same logic runs in one Ray actor
(`langchain_fermi.scale.ray_engine.RayRateLimiter`). Both implement langchain-core's
`BaseRateLimiter` (``acquire`` / ``aacquire``, one request of no tokens), so a limiter can also
be passed as a chat model's own ``rate_limiter=`` to limit requests alone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.rate_limiters import BaseRateLimiter

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "RateLimit",
    "RateLimits",
    "SlidingWindowLimiter",
    "WindowLimiter",
    "estimate_request_tokens",
    "with_rate_limit",
]

DEFAULT_COMPLETION_TOKENS = 256
"""Completion tokens counted for a call that sets no ``max_tokens`` (an optimizer call)."""

_MAX_WAIT_STEP = 1.0  # re-check at least this often (another process may free the window)


@dataclass(frozen=True)
class RateLimit:
    """Requests and tokens allowed per window (a minute by default); ``None`` is unlimited.

    Example:
        >>> RateLimit(requests_per_minute=500, tokens_per_minute=200_000)
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    window_seconds: float = 60.0
    margin_seconds: float = 0.0
    """How much longer than the window a request stays counted: covers the time between our
    admitting it and the provider receiving it (its clock decides)."""

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                msg = f"{name} must be positive or None, got {value!r}"
                raise ValueError(msg)
        if self.window_seconds <= 0 or self.margin_seconds < 0:
            msg = (
                "need window_seconds > 0 and margin_seconds >= 0, got "
                f"{self.window_seconds!r}, {self.margin_seconds!r}"
            )
            raise ValueError(msg)

    @property
    def span(self) -> float:
        """Seconds a request stays counted: the window plus the margin."""
        return self.window_seconds + self.margin_seconds


@dataclass(frozen=True)
class RateLimits:
    """One `RateLimit` per model role: the target (scoring) and the optimizer (writing prompts).

    Example:
        >>> RateLimits(target=RateLimit(3500, 2_000_000), optimizer=RateLimit(500, 300_000))
    """

    target: RateLimit | None = None
    optimizer: RateLimit | None = None


class WindowLimiter(BaseRateLimiter):
    """A `BaseRateLimiter` whose requests may carry tokens; subclasses decide admission.

    ``reserve(tokens)`` either admits a request now (returns ``0.0``) or says how many seconds
    to wait before asking again; ``acquire``/``aacquire`` loop on it, so the same waiting code
    serves a limiter in this process and one in a Ray actor.
    """

    @abstractmethod
    def reserve(self, tokens: int = 0) -> float:
        """Admit one request of ``tokens`` now (``0.0``), or the seconds to wait first."""

    async def areserve(self, tokens: int = 0) -> float:
        """Async `reserve` (the local one never blocks, so it is called directly)."""
        return self.reserve(tokens)

    def acquire(self, *, blocking: bool = True, tokens: int = 0) -> bool:
        """Take one request (and ``tokens``); wait for room when ``blocking``."""
        while True:
            wait = self.reserve(tokens)
            if wait <= 0:
                return True
            if not blocking:
                return False
            time.sleep(min(wait, _MAX_WAIT_STEP))

    async def aacquire(self, *, blocking: bool = True, tokens: int = 0) -> bool:
        """Async `acquire`: waits with ``asyncio.sleep``, never blocking the event loop."""
        while True:
            wait = await self.areserve(tokens)
            if wait <= 0:
                return True
            if not blocking:
                return False
            await asyncio.sleep(min(wait, _MAX_WAIT_STEP))


class SlidingWindowLimiter(WindowLimiter):
    """Requests and tokens per sliding window, exact, shared by threads and event loops.

    Args:
        limit: the `RateLimit` to keep.
        clock: seconds, monotonic (injectable for tests).

    Raises:
        ValueError: from `reserve`, for a single request larger than ``tokens_per_minute``
            (it could never be admitted).

    Example:
        >>> limiter = SlidingWindowLimiter(RateLimit(requests_per_minute=60))
        >>> model = with_rate_limit(ChatOpenAI(model="gpt-4o-mini"), limiter)
    """

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._log: deque[tuple[float, int]] = deque()  # (admitted at, tokens), oldest first
        self._tokens = 0

    def _expire(self, now: float) -> None:
        horizon = now - self.limit.span
        while self._log and self._log[0][0] <= horizon:
            self._tokens -= self._log.popleft()[1]

    def _wait_for_tokens(self, tokens: int, now: float) -> float:
        cap = self.limit.tokens_per_minute
        if cap is None or self._tokens + tokens <= cap:
            return 0.0
        freed = self._tokens + tokens - cap  # tokens that must leave the window first
        for admitted_at, used in self._log:
            freed -= used
            if freed <= 0:
                return admitted_at + self.limit.span - now
        return self.limit.span  # pragma: no cover - tokens <= cap is checked first

    def reserve(self, tokens: int = 0) -> float:
        """Admit one request of ``tokens`` now (``0.0``), or the seconds until it would fit."""
        tokens = max(int(tokens), 0)
        cap = self.limit.tokens_per_minute
        if cap is not None and tokens > cap:
            msg = f"one request of {tokens} tokens exceeds tokens_per_minute={cap:g}"
            raise ValueError(msg)
        with self._lock:
            now = self._clock()
            self._expire(now)
            wait = self._wait_for_tokens(tokens, now)
            rpm = self.limit.requests_per_minute
            if rpm is not None and len(self._log) + 1 > rpm:
                wait = max(wait, self._log[0][0] + self.limit.span - now)
            if wait > 0:
                return wait + 1e-3  # strictly past the expiry of what must leave
            self._log.append((now, tokens))
            self._tokens += tokens
            return 0.0

    def usage(self) -> tuple[int, int]:
        """Requests and tokens admitted in the current window."""
        with self._lock:
            self._expire(self._clock())
            return len(self._log), self._tokens


# ------------------------------------------------------------------------------------------
# counting a call's tokens, and hooking the limiter into a chat model
# ------------------------------------------------------------------------------------------


def _max_tokens(params: dict[str, Any] | None) -> int | None:
    params = params or {}
    extra = params.get("extra_body") or {}
    for value in (
        params.get("max_tokens"),
        params.get("max_completion_tokens"),
        extra.get("max_tokens") if isinstance(extra, dict) else None,
    ):
        if isinstance(value, int) and value > 0:
            return value
    return None


def estimate_request_tokens(
    messages: Sequence[BaseMessage],
    invocation_params: dict[str, Any] | None = None,
    *,
    completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
) -> int:
    """Tokens a provider counts against TPM when a call is sent: prompt + ``max_tokens``.

    The prompt is counted with `langchain_fermi.tokens.count_message_tokens` (tiktoken,
    offline); the completion is the call's ``max_tokens`` when set, else ``completion_tokens``.
    """
    from langchain_fermi.tokens import count_message_tokens

    limit = _max_tokens(invocation_params)
    return count_message_tokens(messages) + (limit if limit is not None else completion_tokens)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _SyncLimitCallback(BaseCallbackHandler):
    """Blocks a sync model call (a worker thread) until the limiter admits it."""

    raise_error = True

    def __init__(self, limiter: WindowLimiter, completion_tokens: int) -> None:
        self.limiter = limiter
        self.completion_tokens = completion_tokens

    @property
    def ignore_chat_model(self) -> bool:
        return _in_event_loop()  # an async call: `_AsyncLimitCallback` waits instead

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        params = kwargs.get("invocation_params")
        for batch in messages:
            tokens = estimate_request_tokens(
                batch, params, completion_tokens=self.completion_tokens
            )
            self.limiter.acquire(tokens=tokens)


class _AsyncLimitCallback(AsyncCallbackHandler):
    """Awaits room for an async model call, without blocking the event loop."""

    raise_error = True
    run_inline = True

    def __init__(self, limiter: WindowLimiter, completion_tokens: int) -> None:
        self.limiter = limiter
        self.completion_tokens = completion_tokens

    @property
    def ignore_chat_model(self) -> bool:
        return not _in_event_loop()  # a sync call: `_SyncLimitCallback` waits instead

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        params = kwargs.get("invocation_params")
        for batch in messages:
            tokens = await asyncio.to_thread(
                estimate_request_tokens, batch, params, completion_tokens=self.completion_tokens
            )
            await self.limiter.aacquire(tokens=tokens)


def with_rate_limit(
    model: BaseChatModel,
    limiter: WindowLimiter | None,
    *,
    completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
) -> BaseChatModel:
    """A copy of ``model`` whose every call (sync or async, retries too) waits for ``limiter``.

    The wait happens in ``on_chat_model_start``, which sees the messages and call options, so
    the request's tokens are counted (`estimate_request_tokens`); the copy is the same class as
    ``model``, so the scorer still picks the logprobs path for a `ChatOpenAI`. A llama.cpp model
    scored from its logits makes no chat call and is not limited (it is local).

    Example:
        >>> shared = SlidingWindowLimiter(RateLimit(requests_per_minute=500))
        >>> target = with_rate_limit(ChatOpenAI(model="gpt-4o-mini", logprobs=True), shared)
    """
    if limiter is None:
        return model
    handlers = [
        _SyncLimitCallback(limiter, completion_tokens),
        _AsyncLimitCallback(limiter, completion_tokens),
    ]
    existing = model.callbacks
    if existing is None:
        callbacks: Any = handlers
    elif isinstance(existing, list):
        callbacks = [*existing, *handlers]
    else:  # a callback manager: copy it, add ours
        callbacks = existing.copy()
        for handler in handlers:
            callbacks.add_handler(handler, inherit=False)
    return model.model_copy(update={"callbacks": callbacks})
