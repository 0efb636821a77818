"""One retry policy (tenacity) for every model call: batches retry only what failed, back off,
give up with `LLMCallError`, and never retry what a retry cannot fix."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.runnables import RunnableLambda

from langchain_fermi.errors import LLMCallError, ModelNotInstalledError
from langchain_fermi.models import RetryPolicy
from langchain_fermi.models.retry import abatch_with_retry, batch_with_retry


class Flaky:
    """Doubles its input; each input fails its first ``failures[x]`` calls with ``error``."""

    def __init__(self, failures: dict[int, int], error: type[Exception] = ConnectionError):
        self.failures = dict(failures)
        self.error = error
        self.seen: list[int] = []

    def __call__(self, x: int) -> int:
        self.seen.append(x)
        if self.failures.get(x, 0) > 0:
            self.failures[x] -= 1
            msg = f"input {x} failed"
            raise self.error(msg)
        return 2 * x

    def runnable(self) -> RunnableLambda:
        return RunnableLambda(self)


NO_WAIT = RetryPolicy(max_retries=3, backoff=0, label="test model")


def test_only_failed_inputs_are_retried_and_every_attempt_counts() -> None:
    flaky = Flaky({2: 1, 3: 2})
    outputs, calls = batch_with_retry(flaky.runnable(), [1, 2, 3, 4], NO_WAIT, max_concurrency=1)
    assert outputs == [2, 4, 6, 8]  # input order
    assert calls == 4 + 2 + 1  # the first batch, then inputs 2 and 3, then input 3
    assert sorted(flaky.seen) == [1, 2, 2, 3, 3, 3, 4]


async def test_async_batch_retries_the_same_way() -> None:
    flaky = Flaky({2: 1, 3: 2})
    outputs, calls = await abatch_with_retry(flaky.runnable(), [1, 2, 3, 4], NO_WAIT)
    assert (outputs, calls) == ([2, 4, 6, 8], 7)


def test_give_up_with_llm_call_error_naming_the_calls_and_the_cause() -> None:
    flaky = Flaky({1: 99, 2: 99})
    policy = RetryPolicy(max_retries=2, backoff=0, label="scoring on 'm'")
    with pytest.raises(LLMCallError) as err:
        batch_with_retry(flaky.runnable(), [1, 2, 3], policy)
    text = str(err.value)
    assert text.startswith("scoring on 'm': 2 of 3 call(s) still failed after 3 attempt(s)")
    assert "ConnectionError: input" in text
    assert isinstance(err.value.__cause__, ConnectionError)
    assert len(flaky.seen) == 3 + 2 + 2


@pytest.mark.parametrize(
    "error", [ValueError, NotImplementedError, ModelNotInstalledError, FileNotFoundError]
)
def test_errors_a_retry_cannot_fix_are_raised_at_once(error: type[Exception]) -> None:
    flaky = Flaky({2: 99}, error=error)
    with pytest.raises(error, match="input 2 failed"):
        batch_with_retry(flaky.runnable(), [1, 2], NO_WAIT)
    assert sorted(flaky.seen) == [1, 2]  # one attempt, no retry
    calls: list[int] = []

    def missing() -> int:
        calls.append(1)
        raise error("input 2 failed")

    with pytest.raises(error):
        NO_WAIT.call(missing)
    assert calls == [1]


def test_waits_double_from_the_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("langchain_fermi.models.retry.time.sleep", sleeps.append)
    flaky = Flaky({1: 3})
    policy = RetryPolicy(max_retries=3, backoff=0.5)
    assert batch_with_retry(flaky.runnable(), [1], policy) == ([2], 4)
    assert sleeps == [0.5, 1.0, 2.0]


async def test_async_waits_double_without_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def blocking(seconds: float) -> None:
        raise AssertionError("time.sleep on the event loop")

    monkeypatch.setattr("langchain_fermi.models.retry.asyncio.sleep", fake_sleep)
    monkeypatch.setattr("langchain_fermi.models.retry.time.sleep", blocking)
    flaky = Flaky({1: 2})
    policy = RetryPolicy(max_retries=2, backoff=0.25)
    assert await abatch_with_retry(flaky.runnable(), [1], policy) == ([2], 3)
    assert sleeps == [0.25, 0.5]


def test_call_retries_a_whole_call_then_gives_up() -> None:
    flaky = Flaky({7: 2})
    assert NO_WAIT.call(lambda: flaky(7)) == 14
    assert len(flaky.seen) == 3
    down = Flaky({7: 99})
    with pytest.raises(LLMCallError, match=r"test model: 5 of 5 call\(s\) .* 4 attempt"):
        NO_WAIT.call(lambda: down(7), calls=5)


def test_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="max_retries >= 0"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="backoff >= 0"):
        RetryPolicy(backoff=-0.1)
    assert RetryPolicy(max_retries=0).attempts == 1


def test_an_empty_batch_makes_no_call() -> None:
    flaky = Flaky({})
    assert batch_with_retry(flaky.runnable(), [], NO_WAIT) == ([], 0)
    assert asyncio.run(abatch_with_retry(flaky.runnable(), [], NO_WAIT)) == ([], 0)
    assert flaky.seen == []
