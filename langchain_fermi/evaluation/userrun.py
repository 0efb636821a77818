"""Evaluate every selected method on one user: optimize on 20 opinions, answer 30 held-out ones.

The learned methods (OPRO, Fermi) get a copy of the user that holds only the optimization
opinions, and the graph's score cache is wrapped per user to record every question the target
model is asked while optimizing; `LeakCheck` then proves no test question was among them.
Fermi's Retrieval-of-Prompt row is served, not simulated: the user's result is saved into the
run's `FermiStore` and each test question asks `FermiPersonalizer.select_prompt`.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from langchain_core.language_models import BaseChatModel

from langchain_fermi.data import split_user
from langchain_fermi.evaluation import costs
from langchain_fermi.evaluation.config import LEARNED_METHODS, BenchConfig
from langchain_fermi.evaluation.costs import naive_query_cost
from langchain_fermi.evaluation.meter import RecordingCache, TestScorer
from langchain_fermi.evaluation.methods import (
    MethodPrompts,
    best_prompts,
    few_shot_prompts,
    profile_prompts,
    served_prompts,
    zero_shot_prompts,
)
from langchain_fermi.evaluation.metrics import accuracy, random_draws, random_expected_accuracy
from langchain_fermi.evaluation.redact import redact_survey_text
from langchain_fermi.evaluation.retrievers import Bm25Retriever, CachedEmbedder, DenseRetriever
from langchain_fermi.evaluation.schema import (
    LeakCheck,
    MethodResult,
    OptimizationRecord,
    UserResult,
)
from langchain_fermi.scoring import ScoreCache
from langchain_fermi.types import Cost, FermiResult, Opinion, UserProfile, scored_opinion_ids

if TYPE_CHECKING:
    from langchain_fermi.personalizer import FermiPersonalizer

__all__ = ["BenchContext", "TestLeakError", "evaluate_user", "optimize_variant"]

logger = logging.getLogger(__name__)


class TestLeakError(RuntimeError):
    """A test question was scored during optimization: the run's numbers would be invalid."""

    __test__ = False  # not a pytest test class, despite the name


@dataclass
class BenchContext:
    """What every user of a run shares: settings, models, the score cache, the embedder and
    the served selection."""

    config: BenchConfig
    target: BaseChatModel
    optimizer: BaseChatModel | None
    scorer: TestScorer
    cache: ScoreCache
    """The on-disk cache shared by the optimization and the test queries."""
    embedder: CachedEmbedder | None
    fingerprint: str
    show_progress: bool = False
    served: FermiPersonalizer | None = None
    """What ``fermi ask`` would use, over the run's store: Fermi's Retrieval-of-Prompt row."""


@dataclass(frozen=True)
class UserSplit:
    """One user's data as the methods see it: the split and the learned results."""

    user: UserProfile
    optimize: list[Opinion]
    test: list[Opinion]
    learned: dict[str, FermiResult]


def user_seed(seed: int, user_id: str) -> int:
    """A per-user seed that is the same in every process (``hash()`` is salted per process)."""
    return zlib.crc32(f"{seed}:{user_id}".encode())


def optimize_variant(
    user: UserProfile, variant: Literal["fermi", "opro"], ctx: BenchContext
) -> tuple[FermiResult, RecordingCache]:
    """Run the graph for one variant on the user's optimization opinions only."""
    from langchain_fermi.graph import optimize_user

    if ctx.optimizer is None:
        msg = f"method(s) {sorted(LEARNED_METHODS)} need an optimizer model"
        raise ValueError(msg)
    recorder = RecordingCache(ctx.cache)
    result = optimize_user(
        user,
        ctx.target,
        ctx.optimizer,
        config=ctx.config.fermi_config(variant),
        cache=recorder,
        progress=ctx.show_progress and ctx.config.jobs == 1,  # parallel bars would interleave
    )
    return result, recorder


def optimization_cost(
    result: FermiResult, recorder: RecordingCache, optimize: Sequence[Opinion], scorer: TestScorer
) -> tuple[Cost, Cost]:
    """The optimization's actual and naive cost, target tokens counted the same way for both.

    `Cost` records the target's and the optimizer's share apart (`costs.optimization_cost`);
    the target calls actually made are those this optimization wrote to the cache.
    """
    by_id = {o.id: o for o in optimize}
    pairs = ((p.text, by_id[i]) for p in result.prompts for i in p.opinion_ids)
    paid = recorder.paid_pairs(pairs, scorer.key)
    return costs.optimization_cost(result, paid, optimize)


def _record(
    result: FermiResult, recorder: RecordingCache, optimize: Sequence[Opinion], ctx: BenchContext
) -> OptimizationRecord:
    best = result.best
    actual, naive = optimization_cost(result, recorder, optimize, ctx.scorer)
    questions = [o.question for o in optimize]
    return OptimizationRecord(
        variant=result.variant,
        curve=list(result.curve),
        stop_reason=result.stop_reason,
        cost=actual,
        naive=naive,
        reported_cost=result.cost,
        prompts_scored=len(result.prompts),
        pairs_scored=sum(len(p.opinion_ids) for p in result.prompts),
        best_prompt=redact_survey_text(best.text, questions),
        best_score=best.score,
        memory=[
            {
                "text": redact_survey_text(p.text, questions),
                "score": p.score,
                "iteration": p.iteration,
            }
            for p in result.memory
        ],
    )


def leak_check(
    results: Sequence[FermiResult],
    recorders: Sequence[RecordingCache],
    optimize: Sequence[Opinion],
    test: Sequence[Opinion],
    scorer: TestScorer,
) -> LeakCheck:
    """Compare what the optimization scored with the test set, by id and by cache key.

    Args:
        results: The variants' optimization results (every prompt they scored).
        recorders: The per-user cache views the optimizations ran with.
        optimize: The optimization opinions.
        test: The held-out opinions.
        scorer: Computes cache keys the way the target's scorer does.
    """
    scored = sorted(scored_opinion_ids(p for r in results for p in r.prompts))
    allowed = {o.id for o in optimize}
    test_ids = {o.id for o in test}
    bad_ids = sorted(i for i in scored if i in test_ids or i not in allowed)
    looked_up: set[str] = set().union(*(rec.keys for rec in recorders)) if recorders else set()
    prompts = {p.text for r in results for p in r.prompts}
    by_id = {o.id: o for o in optimize}
    verified = any(
        scorer.key(p.text, by_id[i]) in looked_up
        for r in results
        for p in r.prompts
        for i in p.opinion_ids
        if i in by_id
    )
    # A test question with the exact text and choices of an optimization opinion shares its
    # cache key; only keys that can come from the test set alone count as a leak.
    opt_keys = {(o.question, tuple(o.choices)) for o in optimize}
    seen = sorted(
        o.id
        for o in test
        if (o.question, tuple(o.choices)) not in opt_keys
        and any(scorer.key(p, o) in looked_up for p in prompts)
    )
    return LeakCheck(
        scored_ids=scored,
        test_ids_scored=bad_ids,
        keys_looked_up=len(looked_up),
        cache_verified=verified,
        test_questions_seen=seen,
    )


def _method_prompts(method: str, data: UserSplit, ctx: BenchContext) -> MethodPrompts:
    cfg, user, test = ctx.config, data.user, data.test
    if method == "zero_shot":
        return zero_shot_prompts(test, cfg.neutral_prompt)
    if method == "profile":
        return profile_prompts(user, test)
    if method in ("few_shot_bm25", "few_shot_dense"):
        retriever = (
            Bm25Retriever(data.optimize)
            if method == "few_shot_bm25"
            else DenseRetriever(_embedder(ctx), data.optimize)
        )
        return few_shot_prompts(
            user, test, retriever, k=cfg.few_shot_k, with_profile=cfg.few_shot_with_profile
        )
    if method in ("opro", "fermi_best"):
        return best_prompts(data.learned[LEARNED_METHODS[method]], test)
    if method == "fermi_rop":
        if ctx.served is None:
            msg = "the Retrieval-of-Prompt method needs the served selection (BenchContext.served)"
            raise ValueError(msg)
        return served_prompts(ctx.served, user.user_id, test)
    msg = f"unknown method {method!r}"
    raise ValueError(msg)


def _embedder(ctx: BenchContext) -> CachedEmbedder:
    if ctx.embedder is None:
        msg = "the dense few-shot method needs an embedder"
        raise ValueError(msg)
    return ctx.embedder


def _random_result(user_id: str, test: Sequence[Opinion], seed: int) -> MethodResult:
    draws = random_draws(test, seed=user_seed(seed, user_id))
    correct = [int(d == o.answer_index) for d, o in zip(draws, test, strict=True)]
    return MethodResult(
        accuracy=accuracy(correct),
        correct=correct,
        predictions=list(draws),
        expected_accuracy=random_expected_accuracy(test),
    )


def run_method(method: str, data: UserSplit, ctx: BenchContext) -> MethodResult:
    """Answer the user's test questions with one method and grade the answers."""
    test = data.test
    if method == "random":
        return _random_result(data.user.user_id, test, ctx.config.seed)
    built = _method_prompts(method, data, ctx)
    pairs = list(zip(built.prompts, test, strict=True))
    predictions, cost = ctx.scorer.predict(pairs)
    correct = [
        int(p is not None and p == o.answer_index) for p, o in zip(predictions, test, strict=True)
    ]
    return MethodResult(
        accuracy=accuracy(correct),
        correct=correct,
        predictions=predictions,
        cost=cost,
        naive=naive_query_cost(pairs),
        detail=built.detail,
    )


def evaluate_user(user: UserProfile, ctx: BenchContext) -> UserResult:
    """Split, optimize (each variant once), run every method and check for test leakage.

    Raises:
        ValueError: The user has no test question left after the split.
        TestLeakError: The optimization scored a test question (never expected; a bug guard).
    """
    cfg = ctx.config
    start = time.perf_counter()
    optimize_user_, test = split_user(
        user, n_optimize=cfg.n_optimize, n_test=cfg.n_test, seed=cfg.seed
    )
    if not test:
        msg = f"user {user.user_id!r}: no test question left after the split"
        raise ValueError(msg)
    optimize = list(optimize_user_.opinions)
    learned: dict[str, FermiResult] = {}
    recorders: list[RecordingCache] = []
    records: dict[str, OptimizationRecord] = {}
    for variant in cfg.variants():
        result, recorder = optimize_variant(optimize_user_, variant, ctx)
        learned[variant] = result
        recorders.append(recorder)
    leak = leak_check(list(learned.values()), recorders, optimize, test, ctx.scorer)
    if not leak.ok:
        msg = (
            f"user {user.user_id!r}: test opinions scored during optimization: "
            f"{leak.test_ids_scored or leak.test_questions_seen}"
        )
        raise TestLeakError(msg)
    for (variant, result), recorder in zip(learned.items(), recorders, strict=True):
        records[variant] = _record(result, recorder, optimize, ctx)
    if ctx.served is not None and "fermi" in learned:
        # Serve the user as `fermi ask` would: their result and optimization opinions only.
        ctx.served.store.save_result(learned["fermi"], user=optimize_user_)
    data = UserSplit(user, optimize, list(test), learned)
    methods = {m: run_method(m, data, ctx) for m in cfg.methods}
    return UserResult(
        user_id=user.user_id,
        fingerprint=ctx.fingerprint,
        optimize_ids=[o.id for o in optimize],
        test_ids=[o.id for o in test],
        methods=methods,
        optimization=records,
        leak_check=leak,
        wall_seconds=time.perf_counter() - start,
    )
