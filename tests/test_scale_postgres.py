"""PostgreSQL for many workers: a real server (initdb / pg_ctl), no mocks."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from scale_helpers import new_database, openai_models, stats, synthetic_users

from benchmarks.latency_server import fetch
from langchain_fermi.scale import PostgresResponseCache, PostgresScoreCache, aoptimize_users
from langchain_fermi.scale.postgres import postgres_checkpointer
from langchain_fermi.scoring import AnswerScorer, ScoreCache, ScoredAnswer
from langchain_fermi.types import FermiConfig

pytest_plugins = ("scale_fixtures",)
pytestmark = pytest.mark.scale


def test_the_score_cache_behaves_like_score_cache_and_is_shared(postgres_url: str):
    url = new_database(postgres_url, "cache_parity")
    cache, other = PostgresScoreCache(url), PostgresScoreCache(url)  # two workers
    assert isinstance(cache, ScoreCache) and cache.path is None
    key = ScoreCache.make_key("m", "You are a nurse.", "Q?", ["Yes", "No"])
    assert cache.get(key) is None and key not in cache and len(cache) == 0
    answer = ScoredAnswer(index=1, method="logprobs", probs=[0.3, 0.7], prompt_tokens=12)
    cache.put(key, answer.model_copy(update={"cached": True}))
    hit = other.get(key)  # written by one, read by the other
    assert hit == answer.model_copy(update={"cached": True})
    assert key in other and len(other) == 1
    cache.put_many({key: answer.model_copy(update={"index": 0}), "k2": answer})
    revived = pickle.loads(pickle.dumps(cache))  # what a Ray task receives: a fresh process
    assert len(other) == 2 and revived.get(key).index == 0
    assert revived.get("k2") == answer.model_copy(update={"cached": True})
    other.clear()
    fresh = PostgresScoreCache(url)
    assert len(cache) == 0 and key not in fresh and key not in other
    for c in (cache, other, revived, fresh):
        c.close()
    with pytest.raises(ValueError, match="table name"):
        PostgresScoreCache(url, table="scores; DROP TABLE x")


@pytest.mark.server
def test_each_target_reply_is_kept_as_it_arrives(postgres_url: str, standin: str):
    url = new_database(postgres_url, "replies")
    make_target, _ = openai_models(standin)
    target = make_target(cache=PostgresResponseCache(url))
    user = synthetic_users(1)[0]
    items = [("You are careful.", o) for o in user.opinions[:4]]
    first = AnswerScorer(target).score(items)
    assert stats(standin)["by_kind"] == {"scoring": 4}
    assert first[0].method == "logprobs"
    # a new scorer (empty score cache), as a retried task would have: the replies come back
    # from Postgres, with their logprobs, and nothing is sent again
    revived = pickle.loads(pickle.dumps(target.cache))
    again = AnswerScorer(make_target(cache=revived)).score(items)
    assert [(a.index, a.probs) for a in again] == [(a.index, a.probs) for a in first]
    assert all(a.method == "logprobs" for a in again)
    assert stats(standin)["by_kind"] == {"scoring": 4}
    target.cache.close()
    revived.close()


@pytest.mark.server
def test_users_checkpoint_and_score_in_postgres_and_a_rerun_costs_nothing(
    postgres_url: str, standin: str
):
    url = new_database(postgres_url, "engine")
    make_target, make_optimizer = openai_models(standin)
    users = synthetic_users(3)
    config = FermiConfig(K=2, T=1, max_retries=0)

    async def run():
        return await aoptimize_users(
            users, make_target(), make_optimizer(), config=config, concurrency=3, checkpointer=url
        )

    first = asyncio.run(run())
    assert [o.status for o in first.outcomes] == ["done"] * 3
    sent = stats(standin)["requests"]
    assert sent == 3 * (3 * 16 + 2)
    with postgres_checkpointer(url) as saver:  # one thread per user, finished
        threads = {c.config["configurable"]["thread_id"] for c in saver.list(None)}
    assert threads == {"u0", "u1", "u2"}
    scores = PostgresScoreCache(url)
    assert len(scores) == 3 * 3 * 16  # every (prompt, question) scored, in Postgres
    scores.close()
    fetch(standin, "/reset", post=True)
    again = asyncio.run(run())
    assert stats(standin)["requests"] == 0  # finished threads: no call at all
    assert [o.result.memory for o in again.outcomes] == [o.result.memory for o in first.outcomes]
