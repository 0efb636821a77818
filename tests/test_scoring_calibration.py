"""Contextual calibration: the neutral prompt's letter bias is divided out, once per question."""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Any

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, make_user
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from langchain_fermi.graph import build_fermi_graph
from langchain_fermi.models import LocalLlamaChatModel
from langchain_fermi.scoring import (
    NEUTRAL_PROMPT,
    AnswerScorer,
    ScoreCache,
    calibrate_probs,
    default_calibration,
)
from langchain_fermi.scoring.calibration import resolve_calibration
from langchain_fermi.types import FermiConfig, Opinion

# What the fake model puts on A, B, C: a strong "A" bias everywhere; a persona moves B up.
NEUTRAL = [0.7, 0.2, 0.1]
PERSONA = [0.6, 0.3, 0.1]  # raw: A; calibrated: B (0.3 / 0.2 is the biggest ratio)


class BiasedLogprobsModel(BaseChatModel):
    """Returns OpenAI-style top logprobs: `NEUTRAL` under the neutral prompt, else `PERSONA`."""

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "biased-logprobs"

    @property
    def calls(self) -> Counter[tuple[str, str]]:
        return Counter(self._calls)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
        with self._lock:
            self._calls.append((system, str(messages[-1].content)))
        probs = NEUTRAL if system == NEUTRAL_PROMPT else PERSONA
        top = [{"token": L, "logprob": math.log(p)} for L, p in zip("ABC", probs, strict=True)]
        meta = {"logprobs": {"content": [{"token": "A", "top_logprobs": top}]}}
        usage = {"input_tokens": 20, "output_tokens": 1, "total_tokens": 21}
        message = AIMessage("A", response_metadata=meta, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _opinion(i: int) -> Opinion:
    return Opinion(id=f"q{i}", question=f"Question {i}?", choices=["x", "y", "z"], answer="y")


OPINIONS = [_opinion(i) for i in range(3)]


def _scorer(model: BaseChatModel, cache: ScoreCache | None = None, **kw: Any) -> AnswerScorer:
    return AnswerScorer(model, method="logprobs", cache=cache, max_concurrency=1, **kw)


def test_calibrate_probs_divides_out_the_bias_and_renormalises() -> None:
    out = calibrate_probs(PERSONA, NEUTRAL)
    assert math.isclose(sum(out), 1.0)
    ratios = [p / q for p, q in zip(PERSONA, NEUTRAL, strict=True)]
    assert out == pytest.approx([r / sum(ratios) for r in ratios])
    assert max(range(3), key=out.__getitem__) == 1
    assert calibrate_probs([0.5, 0.5], [0.5, 0.5]) == pytest.approx([0.5, 0.5])
    # an option the neutral pass never chose gets a large but finite boost
    assert all(math.isfinite(x) for x in calibrate_probs([0.5, 0.5], [1.0, 0.0]))
    with pytest.raises(ValueError, match="one neutral probability per option"):
        calibrate_probs([0.5, 0.5], [1.0])


def test_raw_scores_follow_the_bias_and_calibrated_scores_the_persona() -> None:
    model = BiasedLogprobsModel()
    items = [("You are a persona.", o) for o in OPINIONS]
    raw = _scorer(model).score(items)
    calibrated = _scorer(model, calibration="neutral").score(items)
    assert [a.letter for a in raw] == ["A"] * 3
    assert [a.letter for a in calibrated] == ["B"] * 3
    for a in calibrated:
        assert a.probs is not None
        assert math.isclose(sum(a.probs), 1.0)
        assert a.probs == pytest.approx(calibrate_probs(PERSONA, NEUTRAL))


def test_the_neutral_prompt_keeps_its_raw_answer_not_the_first_option() -> None:
    class BiasedToB(BiasedLogprobsModel):
        def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
            probs = zip("ABC", [0.2, 0.7, 0.1], strict=True)
            top = [{"token": L, "logprob": math.log(p)} for L, p in probs]
            meta = {"logprobs": {"content": [{"token": "B", "top_logprobs": top}]}}
            message = AIMessage("B", response_metadata=meta)
            return ChatResult(generations=[ChatGeneration(message=message)])

    calibrated = _scorer(BiasedToB(), calibration="neutral").score(
        [(NEUTRAL_PROMPT, o) for o in OPINIONS]
    )
    for a in calibrated:  # against itself the neutral prompt is uniform: the tie goes to raw B
        assert a.probs == pytest.approx([1 / 3] * 3)
        assert a.letter == "B"


def test_neutral_pass_runs_once_per_question_shared_across_prompts_and_users() -> None:
    model = BiasedLogprobsModel()
    cache = ScoreCache()
    scorer = _scorer(model, cache, calibration="neutral")
    scorer.score([(p, o) for p in ("P1", "P2", "P3") for o in OPINIONS])
    neutral_calls = {q: n for (s, q), n in model.calls.items() if s == NEUTRAL_PROMPT}
    assert len(neutral_calls) == 3
    assert set(neutral_calls.values()) == {1}
    assert sum(model.calls.values()) == 3 * 3 + 3
    # another user's prompt, another scorer on the same cache: no neutral call again
    _scorer(model, cache, calibration="neutral").score([("P4", o) for o in OPINIONS])
    assert sum(n for (s, _), n in model.calls.items() if s == NEUTRAL_PROMPT) == 3
    assert sum(model.calls.values()) == 3 * 3 + 3 + 3
    # a repeat is served from the cache, calibrated, with no call at all
    again = scorer.score([("P1", o) for o in OPINIONS])
    assert all(a.cached for a in again)
    assert [a.letter for a in again] == ["B"] * 3
    assert sum(model.calls.values()) == 15


def test_cache_keys_name_the_calibration_mode() -> None:
    model = BiasedLogprobsModel()
    cache = ScoreCache()
    raw, cal = _scorer(model, cache), _scorer(model, cache, calibration="neutral")
    other = _scorer(model, cache, calibration="neutral", neutral_prompt="Answer.")
    assert len({raw.cache_model, cal.cache_model, other.cache_model}) == 3
    assert cal.raw_cache_model == raw.cache_model  # raw answers are shared
    items = [("P", o) for o in OPINIONS]
    assert [a.letter for a in raw.score(items)] == ["A"] * 3
    calls = sum(model.calls.values())
    # the calibrated scorer reuses the raw answers: only the neutral pass is new
    assert [a.letter for a in cal.score(items)] == ["B"] * 3
    assert sum(model.calls.values()) == calls + 3
    # and the raw scorer still reads raw answers from the same cache
    assert [a.letter for a in raw.score(items)] == ["A"] * 3


def test_cost_counts_each_model_call_once() -> None:
    model = BiasedLogprobsModel()
    answers = _scorer(model, calibration="neutral").score([("P", o) for o in OPINIONS[:1]] * 2)
    fresh = {id(a): a for a in answers if not a.cached}
    # one raw call and one neutral call, both paid by the one answer that needed them
    assert sum(a.prompt_tokens for a in fresh.values()) == 2 * 20


async def test_async_matches_sync() -> None:
    items = [(p, o) for p in ("P1", "P2") for o in OPINIONS]
    sync = _scorer(BiasedLogprobsModel(), calibration="neutral").score(items)
    model = BiasedLogprobsModel()
    asynced = await _scorer(model, calibration="neutral").ascore(items)
    assert [a.index for a in asynced] == [a.index for a in sync]
    assert sum(n for (s, _), n in model.calls.items() if s == NEUTRAL_PROMPT) == 3


def test_calibration_needs_option_probabilities() -> None:
    with pytest.raises(ValueError, match="needs option probabilities"):
        AnswerScorer(KeywordTarget(), calibration="neutral")
    with pytest.raises(ValueError, match="calibration must be None or 'neutral'"):
        AnswerScorer(BiasedLogprobsModel(), method="logprobs", calibration="mean")  # type: ignore[arg-type]


def test_default_calibration_is_chosen_per_model_family() -> None:
    qwen = LocalLlamaChatModel(model_path="/nowhere/qwen.gguf", model_name="qwen2.5-coder-1.5b")
    smol = LocalLlamaChatModel(model_path="/nowhere/smol.gguf", model_name="smollm2")
    assert default_calibration(qwen) == "neutral"
    assert default_calibration(smol) is None
    assert default_calibration(BiasedLogprobsModel()) is None  # remote models: not measured
    assert resolve_calibration("auto", qwen) == "neutral"
    assert resolve_calibration("none", qwen) is None
    assert resolve_calibration("neutral", smol) == "neutral"
    with pytest.raises(ValueError, match="'auto', 'neutral' or 'none'"):
        resolve_calibration("sometimes", smol)


def test_the_graph_builds_its_scorer_with_the_configured_calibration() -> None:
    optimizer = ScriptedOptimizer(replies=["[x]"])
    assert FermiConfig().calibration == "auto"
    # auto on a model without probabilities (parse): raw scores, the loop runs as before
    assert build_fermi_graph(KeywordTarget(), optimizer, config=FermiConfig()) is not None
    # an explicit neutral reaches the scorer: on such a model it is a clear error, before any call
    with pytest.raises(ValueError, match="needs option probabilities"):
        build_fermi_graph(KeywordTarget(), optimizer, config=FermiConfig(calibration="neutral"))


@pytest.mark.local_model
def test_local_model_calibrated_profile_score_matches_the_scorer() -> None:
    from langchain_fermi.graph import optimize_user
    from langchain_fermi.models import get_chat_model
    from langchain_fermi.questions import profile_prompt
    from langchain_fermi.scoring import agreement

    user = make_user(n=5)
    target = get_chat_model("smollm2")
    config = FermiConfig(T=0, calibration="neutral", demo_fraction=0.0)
    result = optimize_user(user, target, ScriptedOptimizer(replies=["[x]"]), config=config)
    scorer = AnswerScorer(target, calibration="neutral")
    answers = scorer.score([(profile_prompt(user), o) for o in user.opinions])
    expected = sum(agreement(a, o) for a, o in zip(answers, user.opinions, strict=True)) / 5
    assert result.prompts[0].score == pytest.approx(expected)
    for a in answers:
        assert a.probs is not None
        assert math.isclose(sum(a.probs), 1.0, rel_tol=1e-6)
