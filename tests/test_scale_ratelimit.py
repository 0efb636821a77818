"""One rate limit: requests and tokens per sliding window, exact, shared by every call."""

from __future__ import annotations

import asyncio
import threading

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.rate_limiters import BaseRateLimiter
from scale_helpers import openai_models, synthetic_users

from benchmarks.latency_server import fetch
from langchain_fermi.scale.ratelimit import (
    RateLimit,
    SlidingWindowLimiter,
    estimate_request_tokens,
    with_rate_limit,
)
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.tokens import count_message_tokens

pytest_plugins = ("scale_fixtures",)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RecordingLimiter(SlidingWindowLimiter):
    """Remembers when it admitted what (the test's ground truth)."""

    def __init__(self, limit: RateLimit) -> None:
        super().__init__(limit)
        self.admitted: list[tuple[float, int]] = []
        self._record = threading.Lock()

    def reserve(self, tokens: int = 0) -> float:
        wait = super().reserve(tokens)
        if wait == 0:
            with self._record:
                self.admitted.append((self._log[-1][0], max(int(tokens), 0)))
        return wait


def worst_window(events: list[tuple[float, int]], window: float) -> tuple[int, int]:
    """The most requests and the most tokens in any window of ``window`` seconds."""
    events = sorted(events)
    most_requests = most_tokens = 0
    start = tokens = 0
    for end, (t, n) in enumerate(events):
        tokens += n
        while events[start][0] <= t - window:
            tokens -= events[start][1]
            start += 1
        most_requests = max(most_requests, end - start + 1)
        most_tokens = max(most_tokens, tokens)
    return most_requests, most_tokens


def test_is_a_langchain_rate_limiter_and_checks_its_limits() -> None:
    limiter = SlidingWindowLimiter(RateLimit(requests_per_minute=2))
    assert isinstance(limiter, BaseRateLimiter)
    assert limiter.acquire(blocking=False) and limiter.acquire(blocking=False)
    assert limiter.acquire(blocking=False) is False  # a third request in the same minute
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimit(requests_per_minute=0)
    with pytest.raises(ValueError, match="exceeds tokens_per_minute=100"):
        SlidingWindowLimiter(RateLimit(tokens_per_minute=100)).reserve(101)


def test_requests_and_tokens_leave_the_window_exactly_when_it_slides_past_them() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(
        RateLimit(requests_per_minute=3, tokens_per_minute=100, window_seconds=10), clock=clock
    )
    assert limiter.reserve(60) == 0  # t=100
    clock.now = 103
    assert limiter.reserve(30) == 0  # t=103, 90 tokens in the window
    clock.now = 104
    wait = limiter.reserve(20)  # 110 > 100: the 60 from t=100 must leave first (at t=110)
    assert wait == pytest.approx(6.0, abs=0.01)
    assert limiter.usage() == (2, 90)
    clock.now = 110  # the first request's window has passed
    assert limiter.reserve(20) == 0
    assert limiter.reserve(0) == 0  # 3 requests now (103, 110, 110)
    assert limiter.reserve(0) == pytest.approx(3.0, abs=0.01)  # the 4th waits for t=113
    assert limiter.usage() == (3, 50)


def test_a_call_is_counted_as_its_prompt_plus_max_tokens() -> None:
    messages = [SystemMessage("You are a nurse."), HumanMessage("Question: ...\nA. Yes\nB. No")]
    base = count_message_tokens(messages)
    assert estimate_request_tokens(messages, {"max_tokens": 1}) == base + 1
    assert estimate_request_tokens(messages, {"extra_body": {"max_tokens": 5}}) == base + 5
    assert estimate_request_tokens(messages, {}, completion_tokens=300) == base + 300


def _scoring_items(n_users: int) -> list[tuple[str, object]]:
    users = synthetic_users(n_users, opinions=10)
    return [(f"You answer as person {u.user_id}.", o) for u in users for o in u.opinions]


@pytest.mark.server
def test_no_window_exceeds_the_limit_sync_and_async_sharing_one_limiter(standin: str) -> None:
    """A minute scaled to 2 s: 8 requests and 1100 tokens per window, for 48 scoring calls sent
    by a sync scorer (threads) and an async one at once, through one shared limiter."""
    window = 2.0
    limit = RateLimit(
        requests_per_minute=8, tokens_per_minute=1100, window_seconds=window, margin_seconds=0.1
    )
    limiter = RecordingLimiter(limit)
    make_target, _ = openai_models(standin)
    model = with_rate_limit(make_target(), limiter, completion_tokens=1)
    assert type(model).__name__ == "ChatOpenAI"  # still the logprobs path
    sync_scorer = AnswerScorer(model, max_concurrency=8, max_retries=0)
    async_scorer = AnswerScorer(model, max_concurrency=8, max_retries=0)
    assert sync_scorer.method == "logprobs"
    items = _scoring_items(5)[:48]

    async def main() -> list:
        # warm both HTTP clients up first (the first call opens connections: ~0.5 s)
        await async_scorer.ascore(items[:1])
        await asyncio.to_thread(sync_scorer.score, items[1:2])
        fetch(standin, "/reset", post=True)
        limiter.admitted.clear()
        sync_part = asyncio.to_thread(sync_scorer.score, items[2:25])
        answers, _ = await asyncio.gather(async_scorer.ascore(items[25:]), sync_part)
        return answers

    answers = asyncio.run(main())
    assert all(a.method == "logprobs" and a.index is not None for a in answers)

    # the limiter's own admissions: exact
    assert len(limiter.admitted) == 46
    requests, tokens = worst_window(limiter.admitted, window)
    assert requests <= 8 and tokens <= 1100
    assert requests == 8 or tokens > 1100 - 120  # the limit was reached, not avoided
    # what the server saw, by its own clock
    log = [e for e in fetch(standin, "/log") if e["kind"] == "scoring"]
    assert len(log) == 46
    server_requests, server_tokens = worst_window([(e["t"], e["tokens"]) for e in log], window)
    assert server_requests <= 8 and server_tokens <= 1100
    assert sum(e["tokens"] for e in log) == sum(n for _, n in limiter.admitted)
    span = max(e["t"] for e in log) - min(e["t"] for e in log)
    assert span >= window * (46 // 8 - 1)  # it had to wait: 46 calls need 6 windows
