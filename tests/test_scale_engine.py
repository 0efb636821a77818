"""Many users in one process: concurrency adds no calls, failures stay per user, re-runs skip."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import chromadb
import pytest
from fermi_store_fakes import KeywordEmbeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from scale_helpers import openai_models, stats, synthetic_users

from benchmarks.latency_server import _normalise, fetch
from langchain_fermi.graph import aoptimize_user, optimize_user
from langchain_fermi.scale import BatchResult, aoptimize_users, optimize_users
from langchain_fermi.scale.cli import optimize_users_file, render_batch
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.store import FermiStore
from langchain_fermi.types import FermiConfig

CONFIG = FermiConfig(K=2, T=2, max_retries=0)

pytest_plugins = ("scale_fixtures",)


class Target(BaseChatModel):
    """Answers "A"; raises for a prompt that mentions BOOM (one failing user)."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "scale-test-target"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if "BOOM" in str(messages[0].content):
            raise ConnectionError("the target is down for this prompt")
        self.calls += 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage("A"))])


class Optimizer(BaseChatModel):
    """Writes a new bracketed prompt per call (numbered)."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "scale-test-optimizer"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        text = f"[Answer as a careful person, version {self.calls}.]"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


def _memory(batch: BatchResult) -> dict[str, list[tuple[str, float]]]:
    """Each user's memory; the stand-in's K samples differ only by "(take i)", given in arrival
    order, so that number is left out (which concurrent request came first is not a result)."""
    return {
        o.user_id: [(_normalise(p.text), p.score) for p in o.result.memory]
        for o in batch.outcomes
        if o.result is not None
    }


@pytest.mark.server
def test_the_stand_in_is_scored_through_logprobs_and_writes_bracketed_prompts(standin: str):
    make_target, make_optimizer = openai_models(standin)
    scorer = AnswerScorer(make_target())
    user = synthetic_users(1)[0]
    answers = scorer.score([("You are careful.", o) for o in user.opinions[:3]])
    assert scorer.method == "logprobs"
    assert all(a.method == "logprobs" and a.probs and abs(sum(a.probs) - 1) < 1e-6 for a in answers)
    reply = make_optimizer().invoke("Write a new text in square brackets.")
    assert reply.text.count("[") == 1 and reply.text.rstrip().endswith("(take 0).]")
    assert stats(standin)["by_kind"] == {"scoring": 3, "optimizer": 1}


@pytest.mark.server
def test_concurrency_adds_no_call_and_changes_no_result(standin: str):
    """Users one at a time vs four at a time: the same prompts, scores, calls and tokens."""
    make_target, make_optimizer = openai_models(standin)
    users = synthetic_users(4)
    runs = {}
    for concurrency in (1, 4):
        fetch(standin, "/reset", post=True)
        batch = optimize_users(
            users, make_target(), make_optimizer(), config=CONFIG, concurrency=concurrency
        )
        assert not batch.failed, batch.failed
        runs[concurrency] = (batch, stats(standin))
    (one, one_stats), (four, four_stats) = runs[1], runs[4]
    assert _memory(one) == _memory(four)
    per_user = {
        o.user_id: (o.cost.target_calls, o.cost.optimizer_calls, o.cost.total_tokens)
        for o in one.outcomes
    }
    assert per_user == {
        o.user_id: (o.cost.target_calls, o.cost.optimizer_calls, o.cost.total_tokens)
        for o in four.outcomes
    }
    # (1 + K*T) prompts x 16 scoring opinions, K*T optimizer calls, per user
    assert set(per_user.values()) >= {(80, 4, per_user["u0"][2])}
    assert one_stats["by_kind"] == four_stats["by_kind"] == {"scoring": 320, "optimizer": 16}
    assert one_stats["repeated_pairs"] == four_stats["repeated_pairs"] == 0
    assert four_stats["max_in_flight"] > one_stats["max_in_flight"]
    assert four.wall_seconds < one.wall_seconds


def test_a_failing_user_is_reported_and_the_others_finish_then_a_rerun_skips_them(
    tmp_path: Path,
):
    users = synthetic_users(3)
    users[1] = users[1].model_copy(update={"attributes": {"AGE": "BOOM"}})
    store = FermiStore(client=chromadb.EphemeralClient(), embeddings=KeywordEmbeddings())
    target, optimizer = Target(), Optimizer()
    checkpoint = tmp_path / "runs" / "fermi.sqlite"
    seen = []
    batch = optimize_users(
        users,
        target,
        optimizer,
        config=CONFIG,
        concurrency=3,
        store=store,
        checkpointer=checkpoint,
        on_outcome=seen.append,
    )
    assert [o.status for o in batch.outcomes] == ["done", "failed", "done"]
    assert batch.failed[0].user_id == "u1"
    assert batch.failed[0].error.startswith("LLMCallError")
    assert "the target is down" in batch.failed[0].error
    assert sorted(o.user_id for o in seen) == ["u0", "u1", "u2"]
    assert sorted(store.list_users()) == ["u0", "u2"]
    assert (tmp_path / "runs" / "fermi.scores.sqlite").exists()  # the cache beside it
    calls = target.calls
    assert "2 done, 0 skipped, 1 failed" in render_batch(batch)

    again = optimize_users(
        users, target, optimizer, config=CONFIG, concurrency=3, store=store, checkpointer=checkpoint
    )
    assert [o.status for o in again.outcomes] == ["skipped", "failed", "skipped"]
    assert target.calls == calls  # nothing finished was recomputed
    # without the store, the finished checkpoint threads answer without a model call
    from_threads = optimize_users(
        users, target, optimizer, config=CONFIG, concurrency=3, checkpointer=checkpoint
    )
    assert [o.status for o in from_threads.outcomes] == ["done", "failed", "done"]
    assert target.calls == calls
    assert _memory(from_threads) == _memory(batch)


def test_aoptimize_user_matches_optimize_user_and_resumes_a_finished_thread(tmp_path: Path):
    user = synthetic_users(1)[0]
    sync = optimize_user(user, Target(), Optimizer(), config=CONFIG, progress=False)
    target = Target()
    checkpoint = tmp_path / "a.sqlite"
    result = asyncio.run(
        aoptimize_user(user, target, Optimizer(), config=CONFIG, checkpointer=checkpoint)
    )
    assert [(p.text, p.score) for p in result.prompts] == [(p.text, p.score) for p in sync.prompts]
    assert result.cost.target_calls == sync.cost.target_calls == target.calls
    again = asyncio.run(
        aoptimize_user(user, target, Optimizer(), config=CONFIG, checkpointer=checkpoint)
    )
    assert target.calls == result.cost.target_calls  # finished: no call
    assert again.memory == result.memory


def test_users_file_entry_point_and_argument_checks(tmp_path: Path):
    from langchain_fermi.data import save_users
    from langchain_fermi.errors import UnknownUserError

    path = tmp_path / "users.jsonl"
    save_users(synthetic_users(3), path)
    batch = optimize_users_file(
        path, Target(), Optimizer(), user_ids=["u2", "u0"], config=CONFIG, concurrency=2
    )
    assert [o.user_id for o in batch.outcomes] == ["u0", "u2"]
    assert batch.users_per_minute > 0
    with pytest.raises(UnknownUserError, match="nobody"):
        optimize_users_file(path, Target(), Optimizer(), user_ids=["nobody"])
    with pytest.raises(ValueError, match="appears twice"):
        optimize_users(synthetic_users(1) * 2, Target(), Optimizer())
    with pytest.raises(ValueError, match="concurrency"):
        asyncio.run(aoptimize_users([], Target(), Optimizer(), concurrency=0))
    with pytest.raises(ValueError, match="engine"):
        optimize_users([], Target(), Optimizer(), engine="spark")  # type: ignore[arg-type]


def test_fermi_optimize_concurrency_runs_the_users_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    import langchain_fermi.models
    from langchain_fermi.cli import main
    from langchain_fermi.data import save_users

    def fake_get_chat_model(name=None, *, role="target", **kw):
        if isinstance(name, BaseChatModel):
            return name
        return Target() if role == "target" else Optimizer()

    monkeypatch.setattr(langchain_fermi.models, "get_chat_model", fake_get_chat_model)
    users = synthetic_users(3)
    users[2] = users[2].model_copy(update={"attributes": {"AGE": "BOOM"}})
    path = tmp_path / "users.json"
    save_users(users, path)
    argv = ["optimize", "--users", str(path), "-K", "1", "-T", "1", "--no-store", "-q"]
    checkpoint = str(tmp_path / "cp.sqlite")
    code = main([*argv, "--concurrency", "3", "--checkpoint", checkpoint, "--max-concurrency", "2"])
    out = capsys.readouterr().out
    assert code == 1  # one user failed
    assert "user u0: best" in out and "user u1: best" in out
    assert "user u2: failed: LLMCallError" in out
    assert "2 done, 0 skipped, 1 failed" in out
    assert main([*argv, "--user-id", "u0", "u1", "--concurrency", "2"]) == 0
    assert main([*argv, "--concurrency", "0"]) == 2  # a usage error


@pytest.mark.local_model
@pytest.mark.server
def test_end_to_end_on_the_real_llama_cpp_server(tmp_path: Path):
    """Two users at once against `llama_cpp.server` (SmolLM2), scored through logprobs."""
    pytest.importorskip("llama_cpp")
    from langchain_openai import ChatOpenAI
    from servers import llama_cpp_server

    config = FermiConfig(K=1, T=1, max_retries=0, max_concurrency=2)
    users = synthetic_users(2, opinions=5)  # 4 scored, 1 shown to the optimizer
    with llama_cpp_server(tmp_path) as base:
        common = {"model": "smollm2", "base_url": base, "api_key": "x", "max_retries": 0}
        target = ChatOpenAI(temperature=0.0, **common)
        optimizer = ChatOpenAI(temperature=1.0, max_tokens=60, **common)
        batch = optimize_users(users, target, optimizer, config=config, concurrency=2)
    assert not batch.failed, batch.failed
    for outcome in batch.outcomes:
        assert outcome.cost.optimizer_calls == 1
        assert outcome.cost.target_calls == 4 * len(outcome.result.prompts)
        assert outcome.result.prompts[0].model.startswith("ChatOpenAI:smollm2@")
    assert AnswerScorer(target).method == "logprobs"
