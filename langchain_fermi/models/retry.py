"""Calling a model with retries: one policy, written once with tenacity, for every model call.

The optimizer's sampling (`langchain_fermi.graph.sampling`) and the target's scoring
(`langchain_fermi.scoring.scorer`) both send a batch of inputs through ``batch``/``abatch`` with
``return_exceptions=True`` and retry only the inputs that failed, after ``backoff * 2**k``
seconds. An error a retry cannot fix (`NOT_RETRIED`: a prompt longer than the context, an
unsupported or missing model) is raised at once, as it is; anything else still failing after
the last attempt becomes an `LLMCallError` that names the model and the cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.runnables import Runnable, RunnableConfig
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from langchain_fermi.errors import LLMCallError

__all__ = ["NOT_RETRIED", "RetryPolicy", "abatch_with_retry", "batch_with_retry"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_RETRIED: tuple[type[BaseException], ...] = (
    ValueError,
    NotImplementedError,
    ImportError,  # also ModelNotInstalledError
    FileNotFoundError,
)
"""Errors a retry cannot fix: a prompt longer than ``n_ctx``, an unsupported or missing model."""


class _Failed(Exception):
    """Some calls of a batch failed (retryable); carries the last error."""

    def __init__(self, failed: int, cause: BaseException) -> None:
        super().__init__(f"{failed} call(s) failed: {cause!r}")
        self.failed = failed
        self.cause = cause


def _retryable(error: BaseException) -> bool:
    return not isinstance(error, NOT_RETRIED)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failing model call.

    Args:
        max_retries: retries after the first attempt (``0``: one attempt only).
        backoff: seconds before the first retry; each further retry waits twice as long.
        label: names the calls in logs and errors (``"optimizer"``, ``"model 'x' (scoring)"``).

    Example:
        >>> policy = RetryPolicy(max_retries=2, backoff=0.5, label="optimizer")
        >>> replies, calls = batch_with_retry(model, [[HumanMessage("hi")]] * 4, policy)
    """

    max_retries: int = 3
    backoff: float = 1.0
    label: str = "model"

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff < 0:
            msg = f"need max_retries >= 0 and backoff >= 0, got {self.max_retries}, {self.backoff}"
            raise ValueError(msg)

    @property
    def attempts(self) -> int:
        """Attempts in all: the first one and the retries."""
        return self.max_retries + 1

    def _options(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.attempts),
            "wait": wait_exponential(multiplier=self.backoff, exp_base=2, min=0),
            "retry": retry_if_exception(_retryable),
            "before_sleep": self._log,
            "reraise": True,
        }

    def retrying(self) -> Retrying:
        """A tenacity `Retrying` with this policy (sleeps with ``time.sleep``)."""
        return Retrying(sleep=time.sleep, **self._options())

    def aretrying(self) -> AsyncRetrying:
        """A tenacity `AsyncRetrying` with this policy (sleeps with ``asyncio.sleep``)."""
        return AsyncRetrying(sleep=asyncio.sleep, **self._options())

    def _log(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        failed, cause = (error.failed, error.cause) if isinstance(error, _Failed) else (1, error)
        logger.warning(
            "%s: %d call(s) failed (attempt %d of %d): %r",
            self.label,
            failed,
            state.attempt_number,
            self.attempts,
            cause,
        )

    def error(self, failed: int, total: int, cause: BaseException) -> LLMCallError:
        """The error raised when ``failed`` of ``total`` calls still failed after every attempt."""
        msg = (
            f"{self.label}: {failed} of {total} call(s) still failed after {self.attempts} "
            f"attempt(s); last error: {type(cause).__name__}: {cause}"
        )
        return LLMCallError(msg)

    def call(self, func: Callable[[], T], *, calls: int = 1) -> T:
        """``func()`` with retries (a call that does its own batching, e.g. llama.cpp logits).

        Raises:
            LLMCallError: ``func`` still failed after every attempt.
        """
        try:
            for attempt in self.retrying():
                with attempt:
                    return func()
        except Exception as e:
            if not _retryable(e):
                raise
            raise self.error(calls, calls, e) from e
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


@dataclass
class _Batch:
    """The inputs of one retried batch, its outputs so far and the calls made."""

    inputs: list[Any]
    outputs: list[Any] = field(init=False)
    pending: list[int] = field(init=False)
    calls: int = 0

    def __post_init__(self) -> None:
        self.outputs = [None] * len(self.inputs)
        self.pending = list(range(len(self.inputs)))

    def todo(self) -> list[Any]:
        return [self.inputs[i] for i in self.pending]

    def take(self, results: Sequence[Any]) -> None:
        """Keep the successes; raise what failed (as is when no retry can fix it)."""
        self.calls += len(self.pending)
        failed: list[int] = []
        for i, res in zip(self.pending, results, strict=True):
            if isinstance(res, BaseException):
                failed.append(i)
            else:
                self.outputs[i] = res
        self.pending = failed
        errors = [r for r in results if isinstance(r, BaseException)]
        if fatal := next((e for e in errors if not _retryable(e)), None):
            raise fatal
        if errors:
            raise _Failed(len(failed), errors[-1])


def _config(max_concurrency: int) -> RunnableConfig:
    return {"max_concurrency": max_concurrency}


def batch_with_retry(
    runnable: Runnable, inputs: Sequence[Any], policy: RetryPolicy, *, max_concurrency: int = 4
) -> tuple[list[Any], int]:
    """``runnable.batch(inputs)``, retrying only the inputs that failed.

    Returns:
        The outputs in input order, and the calls made (every attempt of every input counts).

    Raises:
        LLMCallError: some input still failed after ``policy.attempts`` attempts.
    """
    batch = _Batch(list(inputs))
    try:
        for attempt in policy.retrying():
            with attempt:
                todo = batch.todo()
                batch.take(
                    runnable.batch(todo, config=_config(max_concurrency), return_exceptions=True)
                )
    except _Failed as e:
        raise policy.error(e.failed, len(batch.inputs), e.cause) from e.cause
    return batch.outputs, batch.calls


async def abatch_with_retry(
    runnable: Runnable, inputs: Sequence[Any], policy: RetryPolicy, *, max_concurrency: int = 4
) -> tuple[list[Any], int]:
    """Async `batch_with_retry` (``abatch``; waits with ``asyncio.sleep``)."""
    batch = _Batch(list(inputs))
    try:
        async for attempt in policy.aretrying():
            with attempt:
                todo = batch.todo()
                batch.take(
                    await runnable.abatch(
                        todo, config=_config(max_concurrency), return_exceptions=True
                    )
                )
    except _Failed as e:
        raise policy.error(e.failed, len(batch.inputs), e.cause) from e.cause
    return batch.outputs, batch.calls
