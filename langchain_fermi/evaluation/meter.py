"""Metered scoring for the benchmark: what each method's test queries cost, and what the
optimization looked up in the score cache.

`TestScorer` wraps one `AnswerScorer` (the same target model and on-disk `ScoreCache` as the
optimization) and turns its `ScoredAnswer`s into predictions plus a `Cost` (calls actually made,
cache hits, tokens, wall time). `RecordingCache` is a per-user view of the shared cache that
remembers every key the optimization asked for, so the leak check can prove no (prompt, test
question) key was ever looked up.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from langchain_core.language_models import BaseChatModel

from langchain_fermi.evaluation.costs import call_tokens
from langchain_fermi.scoring import AnswerScorer, Calibration, ScoreCache, ScoredAnswer
from langchain_fermi.types import Cost, Opinion

__all__ = ["NAIVE_MAX_TOKENS", "LatencyProbe", "RecordingCache", "TestScorer", "probe_latency"]

NAIVE_MAX_TOKENS = 8
"""A naive call generates a short answer (the letter, often followed by the option text)."""


class RecordingCache(ScoreCache):
    """A view of a shared `ScoreCache` that remembers every key read or written through it.

    A subclass, so the graph accepts it wherever it takes a `ScoreCache`; storage stays in
    ``inner`` (nothing is duplicated). ``fresh`` holds the answers the model actually produced
    through this view (written, not read), i.e. the calls this optimization paid for.

    Example:
        >>> rec = RecordingCache(shared_cache)
        >>> optimize_user(user, target, optimizer, cache=rec)
        >>> len(rec.keys), len(rec.fresh)
    """

    def __init__(self, inner: ScoreCache) -> None:  # no super().__init__: no storage of its own
        self.inner = inner
        self.path = inner.path
        self.keys: set[str] = set()
        self.fresh: dict[str, ScoredAnswer] = {}
        self._lock = threading.RLock()

    def get(self, key: str) -> ScoredAnswer | None:
        with self._lock:
            self.keys.add(key)
        return self.inner.get(key)

    def put(self, key: str, answer: ScoredAnswer) -> None:
        self.put_many({key: answer})

    def put_many(self, answers: dict[str, ScoredAnswer]) -> None:
        with self._lock:
            self.keys.update(answers)
            self.fresh.update(answers)
        self.inner.put_many(answers)

    def paid_pairs(
        self, pairs: Iterable[tuple[str, Opinion]], key: Callable[[str, Opinion], str]
    ) -> list[tuple[str, Opinion]]:
        """The pairs whose answer the model produced through this view, each once, in order.

        Args:
            pairs: (prompt, opinion) pairs, e.g. every pair an optimization scored.
            key: the cache key of a pair (`TestScorer.key`).
        """
        paid: dict[str, tuple[str, Opinion]] = {}
        with self._lock:
            for prompt, opinion in pairs:
                k = key(prompt, opinion)
                if k in self.fresh:
                    paid.setdefault(k, (prompt, opinion))
        return list(paid.values())

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            with self._lock:
                self.keys.add(key)
        return key in self.inner

    def __len__(self) -> int:
        return len(self.inner)

    def clear(self) -> None:
        msg = "RecordingCache is a view of a shared cache: clear the shared cache itself"
        raise TypeError(msg)

    def close(self) -> None:
        """Nothing to close: the shared cache is closed by its owner."""


class TestScorer:
    """Scores test queries through the shared cache and reports what they cost.

    Args:
        model: The target model (the same for every method).
        cache: The run's `ScoreCache`, shared with the optimization.
        max_concurrency: Parallel calls for remote models.
        calibration: The letter-score calibration, the optimization's (`AnswerScorer`).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        model: BaseChatModel,
        cache: ScoreCache,
        *,
        max_concurrency: int = 4,
        calibration: Calibration = None,
    ) -> None:
        self.scorer = AnswerScorer(
            model, cache=cache, max_concurrency=max_concurrency, calibration=calibration
        )

    @property
    def model_id(self) -> str:
        return self.scorer.model_id

    @property
    def cache_model(self) -> str:
        """The model part of the cache keys (model id and scoring method)."""
        return str(self.scorer.cache_model)

    def key(self, prompt: str, opinion: Opinion) -> str:
        """The cache key the scorer uses for ``(prompt, opinion)``."""
        return ScoreCache.make_key(self.cache_model, prompt, opinion.question, opinion.choices)

    def predict(self, pairs: Sequence[tuple[str, Opinion]]) -> tuple[list[int | None], Cost]:
        """Chosen option per pair, and the cost: one call per distinct uncached pair."""
        start = time.perf_counter()
        answers = self.scorer.score(list(pairs)) if pairs else []
        wall = time.perf_counter() - start
        made: dict[tuple[str, str, tuple[str, ...]], ScoredAnswer] = {}
        hits = 0
        for (prompt, op), ans in zip(pairs, answers, strict=True):
            if ans.cached:
                hits += 1
            else:
                made.setdefault((prompt, op.question, tuple(op.choices)), ans)
        cost = Cost(
            target_calls=len(made),
            target_prompt_tokens=sum(call_tokens(p, q, c) for p, q, c in made),
            target_completion_tokens=sum(a.completion_tokens for a in made.values()),
            cache_hits=hits + (len(pairs) - hits - len(made)),
            wall_seconds=wall,
        )
        return [a.index for a in answers], cost


class LatencyProbe(NamedTuple):
    """Seconds per target call on the same pairs, the naive way and through our scorer."""

    naive: float
    scored: float
    pairs: int


def probe_latency(
    model: BaseChatModel,
    groups: Sequence[tuple[str, Sequence[Opinion]]],
    *,
    n: int,
    seed: int = 0,
    per_prompt: int = 8,
) -> LatencyProbe | None:
    """Time the naive loop and our scorer on the same sample of (prompt, opinion) pairs.

    The sample mirrors how optimization scores: a few prompts, each on ``per_prompt`` opinions.
    Naive: one plain chat completion per pair (a short generation, parsed), in loop order,
    with whatever prefix reuse the backend does by itself. Ours: `AnswerScorer` with a fresh,
    empty cache (so nothing is a cache hit) on the same pairs. ``None`` when there is nothing
    to probe.

    Args:
        model: The target model.
        groups: Candidate prompts, each with the opinions it may be scored on.
        n: Pairs to time (about; whole prompt groups).
        seed: Which prompts and opinions.
        per_prompt: Opinions per prompt in the sample.
    """
    if n <= 0 or not groups:
        return None
    rng = random.Random(seed)
    order = list(groups)
    rng.shuffle(order)
    pairs: list[tuple[str, Opinion]] = []
    for prompt, opinions in order:
        if len(pairs) >= n:
            break
        take = rng.sample(list(opinions), min(per_prompt, len(opinions), n - len(pairs)))
        pairs += [(prompt, o) for o in take]
    if not pairs:
        return None
    start = time.perf_counter()
    for prompt, op in pairs:
        messages = AnswerScorer.messages(prompt, op.question, op.choices)
        model.invoke(messages, max_tokens=NAIVE_MAX_TOKENS)
    naive = (time.perf_counter() - start) / len(pairs)
    start = time.perf_counter()
    AnswerScorer(model, cache=ScoreCache()).score(pairs)
    scored = (time.perf_counter() - start) / len(pairs)
    return LatencyProbe(naive=naive, scored=scored, pairs=len(pairs))
