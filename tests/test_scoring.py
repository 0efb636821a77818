"""AnswerScorer with fake chat models: cache, dedup, retries, the logprob and parse readers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr

from langchain_fermi.errors import LLMCallError, ModelNotInstalledError
from langchain_fermi.scoring import AnswerScorer, ScoreCache, ScoredAnswer, agreement
from langchain_fermi.types import Opinion

GUN = Opinion(id="gun", question="Do you own a gun?", choices=["Yes", "No"], answer="No")
CLIMATE = Opinion(
    id="climate",
    question="How much do you worry about climate change?",
    choices=["A great deal", "Some", "Not too much", "Not at all"],
    answer="Some",
)
TAX = Opinion(
    id="tax",
    question="Should taxes on the rich go up?",
    choices=["Up", "Down", "Same"],
    answer="Same",
)


class ScriptedChat(BaseChatModel):
    """Answers from a question -> reply table, counts calls, optionally fails the first N calls."""

    replies: dict[str, str]
    fail_first: int = 0
    error: type[Exception] = ConnectionError
    logprobs: dict[str, list[dict[str, Any]]] | None = None
    usage: bool = True
    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _seen_kwargs: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        with self._lock:
            self._calls += 1
            n = self._calls
            self._seen_kwargs.append(kw)
        if n <= self.fail_first:
            msg = f"transient failure #{n}"
            raise self.error(msg)
        question = str(messages[-1].content)
        key = next(k for k in self.replies if k in question)
        meta: dict[str, Any] = {}
        if self.logprobs is not None and key in self.logprobs:
            meta["logprobs"] = {"content": [{"token": "x", "top_logprobs": self.logprobs[key]}]}
        usage = {"input_tokens": 42, "output_tokens": 3, "total_tokens": 45} if self.usage else None
        msg = AIMessage(content=self.replies[key], response_metadata=meta, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=msg)])


def scripted(**kw: Any) -> ScriptedChat:
    replies = {"gun": "B", "climate": "The answer is (C)", "taxes": "I don't know"}
    return ScriptedChat(replies=kw.pop("replies", replies), **kw)


def test_parse_path_reads_each_reply_in_input_order() -> None:
    model = scripted()
    scorer = AnswerScorer(model, retry_backoff=0)
    assert scorer.method == "parse"
    out = scorer.score([("p1", CLIMATE), ("p1", GUN), ("p2", TAX)])
    assert [a.index for a in out] == [2, 1, None]
    assert all(a.method == "parse" for a in out)
    assert out[2].reason and "I don't know" in out[2].reason  # unreadable: None + reason, no crash
    assert out[0].reply == "The answer is (C)"
    assert (out[0].prompt_tokens, out[0].completion_tokens) == (42, 3)  # usage_metadata
    assert [agreement(a, o) for a, o in zip(out, [CLIMATE, GUN, TAX], strict=True)] == [0, 1, 0]


def test_tokens_are_counted_when_the_model_reports_no_usage() -> None:
    out = AnswerScorer(scripted(usage=False)).score([("You are a nurse.", GUN)])[0]
    assert out.prompt_tokens > 10  # system + question, counted with tiktoken
    assert out.completion_tokens == 1  # "B"


def test_cache_hit_on_repeat_and_dedup_within_a_call() -> None:
    model = scripted()
    scorer = AnswerScorer(model)
    first = scorer.score([("p", GUN), ("p", CLIMATE), ("p", GUN), ("q", GUN)])
    assert model.calls == 3  # (p, GUN) twice in one call -> scored once
    assert [a.cached for a in first] == [False, False, False, False]
    assert first[0] == first[2]
    again = scorer.score([("q", GUN), ("p", CLIMATE), ("p", TAX)])
    assert model.calls == 4  # only (p, TAX) is new
    assert [a.cached for a in again] == [True, True, False]
    assert [a.index for a in again] == [1, 2, None]


def test_cache_persists_across_restarts(tmp_path: Any) -> None:
    path = tmp_path / "cache" / "scores.sqlite"
    model = scripted()
    cache = ScoreCache(path)
    AnswerScorer(model, cache=cache).score([("p", GUN), ("p", CLIMATE)])
    cache.close()
    assert model.calls == 2

    reopened = ScoreCache(path)
    assert len(reopened) == 2
    fresh = scripted()  # a new object of the same model: same model id
    out = AnswerScorer(fresh, cache=reopened).score([("p", CLIMATE), ("p", GUN)])
    assert fresh.calls == 0
    assert [a.index for a in out] == [2, 1]
    assert all(a.cached for a in out)


def test_cache_key_separates_models_prompts_and_choices() -> None:
    cache = ScoreCache()
    AnswerScorer(scripted(), cache=cache).score([("p", GUN)])
    other = FakeListChatModel(responses=["A"])
    out = AnswerScorer(other, cache=cache).score([("p", GUN)])
    assert out[0].cached is False and out[0].index == 0  # another model: not the cached answer
    k = ScoreCache.make_key
    assert k("m", "p", "q", ["a", "b"]) != k("m", "p", "q", ["b", "a"])
    assert k("m", "p", "q", ["a", "b"]) != k("m", "p2", "q", ["a", "b"])
    assert k("m", "p", "q", ["a", "b"]) == k("m", "p", "q", ("a", "b"))


def test_score_cache_is_thread_safe(tmp_path: Any) -> None:
    cache = ScoreCache(tmp_path / "s.sqlite")

    def work(t: int) -> None:
        for i in range(50):
            cache.put(f"{t}-{i}", ScoredAnswer(index=i % 2, method="parse"))
            assert cache.get(f"{t}-{i}") is not None

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(cache) == 200
    cache.clear()
    assert len(cache) == 0 and "0-0" not in cache


def test_retries_then_success() -> None:
    model = scripted(fail_first=2)
    out = AnswerScorer(model, max_retries=3, retry_backoff=0).score([("p", GUN)])
    assert out[0].index == 1
    assert model.calls == 3


def test_retries_exhausted_raise_llm_call_error_naming_model_and_cause() -> None:
    model = scripted(fail_first=100)
    scorer = AnswerScorer(model, max_retries=2, retry_backoff=0)
    with pytest.raises(LLMCallError) as err:
        scorer.score([("p", GUN), ("p", CLIMATE)])
    assert model.calls == 6  # 2 items x (1 + 2 retries)
    text = str(err.value)
    assert "ScriptedChat" in text and "ConnectionError" in text and "3 attempt" in text
    assert isinstance(err.value.__cause__, ConnectionError)
    assert len(scorer.cache) == 0  # failures are not cached


def test_retry_backoff_doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("langchain_fermi.models.retry.time.sleep", sleeps.append)  # tenacity's
    model = scripted(fail_first=3)
    AnswerScorer(model, max_retries=3, retry_backoff=0.5).score([("p", GUN)])
    assert [s for s in sleeps if s] == [0.5, 1.0, 2.0]


async def test_ascore_matches_score_and_retries() -> None:
    model = scripted(fail_first=1)
    scorer = AnswerScorer(model, retry_backoff=0)
    out = await scorer.ascore([("p", CLIMATE), ("p", GUN), ("p", CLIMATE)])
    assert [a.index for a in out] == [2, 1, 2]
    assert model.calls == 3  # one failure + 2 unique items
    sync = AnswerScorer(scripted()).score([("p", CLIMATE), ("p", GUN), ("p", CLIMATE)])
    assert [a.index for a in sync] == [a.index for a in out]
    again = await scorer.ascore([("p", GUN)])
    assert again[0].cached and model.calls == 3


@pytest.mark.parametrize("error", [ModelNotInstalledError, ValueError])
def test_errors_no_retry_can_fix_are_raised_at_once(error: type[Exception]) -> None:
    model = scripted(fail_first=100, error=error)
    scorer = AnswerScorer(model, max_retries=3, retry_backoff=10)  # a retry would be slow
    with pytest.raises(error, match="transient failure #1"):
        scorer.score([("p", GUN)])
    assert model.calls == 1 and len(scorer.cache) == 0
    with pytest.raises(error):
        asyncio.run(scorer.ascore([("p", GUN)]))
    assert model.calls == 2


async def test_ascore_raises_llm_call_error() -> None:
    scorer = AnswerScorer(scripted(fail_first=100), max_retries=1, retry_backoff=0)
    with pytest.raises(LLMCallError):
        await scorer.ascore([("p", GUN)])


def test_logprob_path_reads_top_logprobs() -> None:
    top = {
        "climate": [
            {"token": "B", "logprob": -0.5},
            {"token": " C", "logprob": -1.5},
            {"token": "C", "logprob": -1.5},  # " C" and "C" are the same option: summed
            {"token": "The", "logprob": -2.0},
            {"token": "E", "logprob": -3.0},  # not an option here
        ],
        "gun": [{"token": "Sure", "logprob": -0.1}],  # no letter: falls back to the text
    }
    model = scripted(logprobs=top)
    scorer = AnswerScorer(model, method="logprobs")
    climate, gun = scorer.score([("p", CLIMATE), ("p", GUN)])
    assert climate.method == "logprobs" and climate.index == 1
    assert climate.probs is not None and len(climate.probs) == 4
    assert sum(climate.probs) == pytest.approx(1.0)
    assert climate.probs[2] / climate.probs[1] == pytest.approx(2 * 2.718281828 ** (-1.0), rel=1e-6)
    assert climate.probs[0] == climate.probs[3] == 0.0
    assert gun.method == "parse" and gun.index == 1  # "B" parsed from the reply
    sent = model._seen_kwargs[0]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20 and sent["max_tokens"] == 1


def test_logprob_binding_for_chat_openai_on_a_custom_endpoint() -> None:
    from langchain_fermi.scoring.scorer import _bound_model

    local = ChatOpenAI(model="m", base_url="http://127.0.0.1:9/v1", api_key="x")
    kw = _bound_model(local, "logprobs").kwargs  # type: ignore[attr-defined]
    assert kw["extra_body"] == {"max_tokens": 1} and kw["max_tokens"] == 1
    assert AnswerScorer(local).method == "logprobs"
    official = ChatOpenAI(model="m", api_key="x")
    assert "extra_body" not in _bound_model(official, "logprobs").kwargs  # type: ignore[attr-defined]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="method"):
        AnswerScorer(scripted(), method="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="LocalLlamaChatModel"):
        AnswerScorer(scripted(), method="logits")
    with pytest.raises(ValueError, match="max_concurrency"):
        AnswerScorer(scripted(), max_concurrency=0)


def test_scored_answer_helpers() -> None:
    a = ScoredAnswer(index=2, method="parse")
    assert a.letter == "C" and a.answer(CLIMATE.choices) == "Not too much"
    none = ScoredAnswer(index=None, reason="empty reply", method="parse")
    assert none.letter is None and none.answer(CLIMATE.choices) is None
    assert agreement(none, CLIMATE) == 0.0
    assert agreement(ScoredAnswer(index=1, method="logprobs"), CLIMATE) == 1.0


def test_empty_input() -> None:
    model = scripted()
    assert AnswerScorer(model).score([]) == []
    assert asyncio.run(AnswerScorer(model).ascore([])) == []
    assert model.calls == 0


async def test_ascore_does_no_blocking_io_on_the_event_loop(tmp_path: Any) -> None:
    blockbuster = pytest.importorskip("blockbuster")
    cache = await asyncio.to_thread(ScoreCache, tmp_path / "scores.sqlite")
    scorer = AnswerScorer(scripted(usage=False), cache=cache)  # usage=False: tiktoken counts
    with blockbuster.blockbuster_ctx():
        first = await scorer.ascore([("p", GUN), ("p", CLIMATE)])
        again = await scorer.ascore([("p", GUN)])
    assert [a.index for a in first] == [1, 2] and again[0].cached
