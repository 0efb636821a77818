"""Scoring a prompt on multiple-choice opinions: which option does the target model pick?

`AnswerScorer` shows the target ``[SystemMessage(prompt), HumanMessage(format_question(...))]`` and
reads its answer in the cheapest reliable way the model allows:

1. `LocalLlamaChatModel`: the option letters' next-token logits, with KV-prefix reuse
   (`langchain_fermi.scoring.llama`); no generation at all.
2. OpenAI-compatible models (`ChatOpenAI`): one generated token with ``top_logprobs``.
3. Any other chat model: a short generation read by `parse_answer`.

Every result goes through `ScoreCache`, keyed by (model id, prompt, question, choices), so Fermi's
repeated evaluations (memory prompts re-scored each iteration) cost nothing.

With ``calibration="neutral"`` the answer is read from the option probabilities divided by the
neutral prompt's for the same question (`langchain_fermi.scoring.calibration`); raw answers and
the neutral pass stay cached under the raw keys, calibrated ones under keys that name the mode.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable

from langchain_fermi.models import (
    LocalLlamaChatModel,
    get_chat_model,
    model_id,
    openai_max_tokens,
    to_chat_messages,
)
from langchain_fermi.models.retry import RetryPolicy, abatch_with_retry, batch_with_retry
from langchain_fermi.questions import format_question, parse_answer
from langchain_fermi.scoring.cache import ScoreCache, ScoredAnswer, agreement
from langchain_fermi.scoring.calibration import (
    NEUTRAL_PROMPT,
    Calibration,
    calibrated_answer,
    calibration_tag,
)
from langchain_fermi.types import OPTION_LETTERS, Opinion

__all__ = ["AnswerScorer", "ScoreCache", "ScoredAnswer", "ScoringMethod", "agreement"]

ScoringMethod = Literal["auto", "logits", "logprobs", "parse"]
_PARSE_MAX_TOKENS = 8
_TOP_LOGPROBS = 20


# ------------------------------------------------------------------------------------------
# reading a reply
# ------------------------------------------------------------------------------------------


def _usage(message: Any, messages: list[BaseMessage], reply: str) -> tuple[int, int]:
    usage = getattr(message, "usage_metadata", None)
    if usage:
        return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    from langchain_fermi.tokens import count_message_tokens, count_tokens

    return count_message_tokens(messages), count_tokens(reply)


def _from_reply(message: Any, messages: list[BaseMessage], choices: Sequence[str]) -> ScoredAnswer:
    reply = str(message.text) if hasattr(message, "text") else str(message)
    parsed = parse_answer(reply, choices)
    p_tok, c_tok = _usage(message, messages, reply)
    return ScoredAnswer(
        index=parsed.index,
        reason=parsed.reason,
        method="parse",
        prompt_tokens=p_tok,
        completion_tokens=c_tok,
        reply=reply,
    )


def _letter_logprobs(top: Sequence[dict[str, Any]], n: int) -> list[float]:
    """Per option, the log-sum-exp of the top tokens that read as its letter ("B", " B")."""
    out = [-math.inf] * n
    for entry in top:
        letter = str(entry.get("token", "")).strip()
        if len(letter) == 1 and letter in OPTION_LETTERS[:n]:
            i = OPTION_LETTERS.index(letter)
            lp = float(entry.get("logprob", -math.inf))
            hi = max(out[i], lp)
            if hi > -math.inf:
                out[i] = hi + math.log(math.exp(out[i] - hi) + math.exp(lp - hi))
    return out


def _from_logprobs(
    message: Any, messages: list[BaseMessage], choices: Sequence[str]
) -> ScoredAnswer:
    content = ((getattr(message, "response_metadata", None) or {}).get("logprobs") or {}).get(
        "content"
    ) or []
    top = content[0].get("top_logprobs") or [] if content else []
    lps = _letter_logprobs(top, len(choices))
    if all(lp == -math.inf for lp in lps):
        return _from_reply(message, messages, choices)  # no letter among the top tokens
    hi = max(lps)
    p = [math.exp(lp - hi) for lp in lps]
    total = sum(p)
    reply = str(message.text) if hasattr(message, "text") else None
    p_tok, c_tok = _usage(message, messages, reply or "")
    return ScoredAnswer(
        index=max(range(len(p)), key=p.__getitem__),
        method="logprobs",
        probs=[x / total for x in p],
        prompt_tokens=p_tok,
        completion_tokens=c_tok,
        reply=reply,
    )


# ------------------------------------------------------------------------------------------
# the scorer
# ------------------------------------------------------------------------------------------


def _resolve_method(model: BaseChatModel, method: ScoringMethod) -> str:
    if method not in ("auto", "logits", "logprobs", "parse"):
        msg = f"method must be 'auto', 'logits', 'logprobs' or 'parse', got {method!r}"
        raise ValueError(msg)
    if method == "logits" and not isinstance(model, LocalLlamaChatModel):
        msg = f"method='logits' needs a LocalLlamaChatModel, got {type(model).__name__}"
        raise ValueError(msg)
    if method != "auto":
        return method
    if isinstance(model, LocalLlamaChatModel):
        return "logits"
    return "logprobs" if _is_openai(model) else "parse"


def _is_openai(model: BaseChatModel) -> bool:
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return False
    return isinstance(model, BaseChatOpenAI)


def _openai_limit(model: BaseChatModel, max_tokens: int) -> dict[str, Any]:
    base_url = str(getattr(model, "openai_api_base", None) or "")
    return openai_max_tokens(base_url, max_tokens, getattr(model, "extra_body", None))


def _bound_model(model: BaseChatModel, method: str) -> Runnable:
    """The model with the call options of ``method`` (one token with logprobs, or a short reply)."""
    if method == "logprobs":
        limit = _openai_limit(model, 1) if _is_openai(model) else {"max_tokens": 1}
        return model.bind(logprobs=True, top_logprobs=_TOP_LOGPROBS, **limit)
    if isinstance(model, LocalLlamaChatModel):
        return model.bind(max_tokens=_PARSE_MAX_TOKENS)
    if _is_openai(model):
        return model.bind(**_openai_limit(model, _PARSE_MAX_TOKENS))
    return model


_Request = tuple[str, str, tuple[str, ...]]  # prompt, question, choices


def _requests(items: Sequence[tuple[str, Opinion]]) -> list[_Request]:
    return [(prompt, op.question, tuple(op.choices)) for prompt, op in items]


class AnswerScorer:
    """Scores (prompt, opinion) pairs on a target model, cached and deduplicated.

    Args:
        model: the target chat model, or a name for `get_chat_model`.
        method: ``"auto"`` (logits for local llama.cpp models, logprobs for OpenAI-compatible
            models, else parse), or force ``"logits"``, ``"logprobs"`` or ``"parse"``.
        cache: a `ScoreCache` (a fresh in-memory one by default).
        max_concurrency: parallel calls for the logprobs / parse paths.
        max_retries: retries of a failing call, each after ``retry_backoff * 2**k`` seconds
            (`RetryPolicy`); errors no retry can fix (`NOT_RETRIED`: a prompt longer than the
            context, a missing model) are raised at once.
        retry_backoff: seconds before the first retry.
        calibration: ``None`` (raw answers) or ``"neutral"``: per question, divide the option
            probabilities by those under ``neutral_prompt`` and renormalise (contextual
            calibration; needs option probabilities, so not the ``"parse"`` method).
        neutral_prompt: the no-persona prompt of the calibration pass.

    Example:
        >>> scorer = AnswerScorer(get_chat_model("smollm2"))
        >>> [a.letter for a in scorer.score([("You are a nurse.", opinion)])]
    """

    def __init__(
        self,
        model: BaseChatModel | str,
        *,
        method: ScoringMethod = "auto",
        cache: ScoreCache | None = None,
        max_concurrency: int = 4,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        calibration: Calibration = None,
        neutral_prompt: str = NEUTRAL_PROMPT,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0 or retry_backoff < 0:
            msg = (
                "need max_concurrency >= 1, max_retries >= 0, retry_backoff >= 0; got "
                f"{max_concurrency}, {max_retries}, {retry_backoff}"
            )
            raise ValueError(msg)
        self.model = get_chat_model(model, role="target") if isinstance(model, str) else model
        self.method = _resolve_method(self.model, method)
        if calibration not in (None, "neutral"):
            msg = f"calibration must be None or 'neutral', got {calibration!r}"
            raise ValueError(msg)
        if calibration is not None and self.method == "parse":
            msg = (
                f"calibration={calibration!r} needs option probabilities, which the 'parse' "
                f"method of {type(self.model).__name__} does not give; use calibration=None"
            )
            raise ValueError(msg)
        self.calibration: Calibration = calibration
        self.neutral_prompt = neutral_prompt
        self.cache = cache if cache is not None else ScoreCache()
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.model_id = model_id(self.model)
        self.retry = RetryPolicy(max_retries, retry_backoff, label=f"scoring on {self.model_id!r}")
        """Retries of the scoring calls (`RetryPolicy`, shared with the optimizer's sampling)."""
        self.raw_cache_model = f"{self.model_id}#{self.method}"
        """The model part of the raw answers' cache keys (shared by every calibration mode)."""
        self.cache_model = self.raw_cache_model + calibration_tag(calibration, neutral_prompt)
        """The model part of this scorer's cache keys (`ScoreCache.make_key`): the model, the
        method and the calibration mode."""
        self._letters: Any = None
        if self.method == "logits":
            from langchain_fermi.scoring.llama import LlamaLetterScorer

            self._letters = LlamaLetterScorer(self.model)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- shared, pure helpers
    @staticmethod
    def messages(prompt: str, question: str, choices: Sequence[str]) -> list[BaseMessage]:
        """What the target sees for one item."""
        return [SystemMessage(prompt), HumanMessage(format_question(question, choices))]

    def _plan(
        self, requests: Sequence[_Request], cache_model: str
    ) -> tuple[list[str], dict[str, ScoredAnswer], dict[str, _Request]]:
        """Keys per item, cache hits, and the unique misses grouped by prompt (first-seen order)."""
        keys: list[str] = []
        hits: dict[str, ScoredAnswer] = {}
        misses: dict[str, _Request] = {}
        for request in requests:
            key = ScoreCache.make_key(cache_model, *request)
            keys.append(key)
            if key in hits or key in misses:
                continue
            hit = self.cache.get(key)
            if hit is not None:
                hits[key] = hit
            else:
                misses[key] = request
        first_seen: dict[str, int] = {}
        for prompt, _, _ in misses.values():
            first_seen.setdefault(prompt, len(first_seen))
        grouped = dict(sorted(misses.items(), key=lambda kv: first_seen[kv[1][0]]))  # stable
        return keys, hits, grouped

    def _finish(
        self, keys: list[str], hits: dict[str, ScoredAnswer], new: dict[str, ScoredAnswer]
    ) -> list[ScoredAnswer]:
        self.cache.put_many(new)
        return [hits[k] if k in hits else new[k] for k in keys]

    def _score_logits(self, requests: list[_Request]) -> list[ScoredAnswer]:
        items = [(to_chat_messages(self.messages(p, q, c)), len(c)) for p, q, c in requests]
        return [
            ScoredAnswer(
                index=s.index, method="logprobs", probs=s.probs, prompt_tokens=s.prompt_tokens
            )
            for s in self._letters.score(items)
        ]

    def _read(self, outputs: list[Any], requests: list[_Request]) -> list[ScoredAnswer]:
        read: Callable[..., ScoredAnswer] = (
            _from_logprobs if self.method == "logprobs" else _from_reply
        )
        return [
            read(out, self.messages(p, q, c), c)
            for out, (p, q, c) in zip(outputs, requests, strict=True)
        ]

    # ---------------------------------------------------------------- I/O with retries
    def _logits_with_retries(self, requests: list[_Request]) -> list[ScoredAnswer]:
        if not requests:
            return []
        return self.retry.call(lambda: self._score_logits(requests), calls=len(requests))

    def _calls(self, requests: list[_Request]) -> tuple[Runnable, list[list[BaseMessage]]]:
        """The bound model and its inputs, for ``batch_with_retry`` / ``abatch_with_retry``."""
        inputs = [self.messages(p, q, c) for p, q, c in requests]
        return _bound_model(self.model, self.method), inputs

    def _batch(self, requests: list[_Request]) -> list[ScoredAnswer]:
        if not requests:
            return []
        runnable, inputs = self._calls(requests)
        outputs, _ = batch_with_retry(
            runnable, inputs, self.retry, max_concurrency=self.max_concurrency
        )
        return self._read(outputs, requests)

    async def _abatch(self, requests: list[_Request]) -> list[ScoredAnswer]:
        runnable, inputs = self._calls(requests)
        outputs, _ = await abatch_with_retry(
            runnable, inputs, self.retry, max_concurrency=self.max_concurrency
        )
        return await asyncio.to_thread(self._read, outputs, requests)

    # ---------------------------------------------------------------- raw answers
    def _raw(self, requests: list[_Request]) -> list[ScoredAnswer]:
        """Raw (uncalibrated) answers, through the cache under the raw keys."""
        keys, hits, misses = self._plan(requests, self.raw_cache_model)
        todo = list(misses.values())
        answers = (self._logits_with_retries if self.method == "logits" else self._batch)(todo)
        return self._finish(keys, hits, dict(zip(misses, answers, strict=True)))

    async def _araw(self, requests: list[_Request]) -> list[ScoredAnswer]:
        keys, hits, misses = await asyncio.to_thread(self._plan, requests, self.raw_cache_model)
        todo = list(misses.values())
        if todo and self.method == "logits":
            answers = await asyncio.to_thread(self._logits_with_retries, todo)
        elif todo:
            answers = await self._abatch(todo)
        else:
            answers = []
        new = dict(zip(misses, answers, strict=True))
        return await asyncio.to_thread(self._finish, keys, hits, new)

    # ---------------------------------------------------------------- calibration
    def _with_neutral(self, requests: list[_Request]) -> list[_Request]:
        """``requests`` followed by the neutral pass of each distinct question among them."""
        questions = dict.fromkeys((q, c) for _, q, c in requests)
        return [*requests, *((self.neutral_prompt, q, c) for q, c in questions)]

    def _calibrated(
        self, misses: dict[str, _Request], answers: list[ScoredAnswer]
    ) -> dict[str, ScoredAnswer]:
        """Calibrated answers of ``misses`` from their raw answers, then the neutral ones."""
        n = len(misses)
        requests = list(misses.values())
        questions = list(dict.fromkeys((q, c) for _, q, c in requests))
        neutral = dict(zip(questions, answers[n:], strict=True))
        used: set[tuple[str, tuple[str, ...]]] = set()
        out: dict[str, ScoredAnswer] = {}
        for key, (_, q, c), raw in zip(misses, requests, answers[:n], strict=True):
            out[key] = calibrated_answer(raw, neutral[(q, c)], first_use=(q, c) not in used)
            used.add((q, c))
        return out

    # ---------------------------------------------------------------- public
    def score(self, items: Sequence[tuple[str, Opinion]]) -> list[ScoredAnswer]:
        """Score ``(prompt, opinion)`` pairs; results in input order.

        Raises:
            LLMCallError: a call still failed after ``max_retries`` retries.
        """
        if self.calibration is None:
            return self._raw(_requests(items))
        keys, hits, misses = self._plan(_requests(items), self.cache_model)
        new: dict[str, ScoredAnswer] = {}
        if misses:
            answers = self._raw(self._with_neutral(list(misses.values())))
            new = self._calibrated(misses, answers)
        return self._finish(keys, hits, new)

    async def ascore(self, items: Sequence[tuple[str, Opinion]]) -> list[ScoredAnswer]:
        """Async `score`, with no blocking call on the event loop.

        Cache reads/writes (SQLite) and the llama.cpp path run in worker threads; the other
        paths call the model's ``abatch``.
        """
        if self.calibration is None:
            return await self._araw(_requests(items))
        keys, hits, misses = await asyncio.to_thread(self._plan, _requests(items), self.cache_model)
        new: dict[str, ScoredAnswer] = {}
        if misses:
            answers = await self._araw(self._with_neutral(list(misses.values())))
            new = self._calibrated(misses, answers)
        return await asyncio.to_thread(self._finish, keys, hits, new)
