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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel

from langchain_fermi.data import split_user
from langchain_fermi.evaluation.config import (
    LEARNED_METHODS,
    REFERENCE_METHODS,
    BenchConfig,
    user_seed,
)
from langchain_fermi.evaluation.costs import naive_query_cost
from langchain_fermi.evaluation.leaks import hidden_prompt_check, leak_check
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
from langchain_fermi.evaluation.records import optimization_record
from langchain_fermi.evaluation.references import reference_result
from langchain_fermi.evaluation.retrievers import Bm25Retriever, CachedEmbedder, DenseRetriever
from langchain_fermi.evaluation.schema import (
    LeakCheck,
    MethodResult,
    OptimizationRecord,
    UserResult,
)
from langchain_fermi.scoring import ScoreCache
from langchain_fermi.types import FermiResult, Opinion, UserProfile

if TYPE_CHECKING:
    from langchain_fermi.personalizer import FermiPersonalizer

__all__ = ["BenchContext", "TestLeakError", "evaluate_user", "optimize_variant", "top_up"]

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
    planted: dict[str, str] = field(default_factory=dict)
    """Planted users' hidden prompts by user id (the ceiling row; never given to optimization)."""
    references: Any = None
    """`references.Population` of the other respondents, for the reference rows."""


@dataclass(frozen=True)
class UserSplit:
    """One user's data as the methods see it: the split and the learned results."""

    user: UserProfile
    optimize: list[Opinion]
    test: list[Opinion]
    learned: dict[str, FermiResult]


def paper_user_id(user_id: str) -> str:
    """The id the guard-off Fermi result is served under, next to the user's own."""
    return f"{user_id}.paper"


def first_search_user_id(user_id: str) -> str:
    """The id Fermi's first search alone is served under (``fermi_rop_first_search``)."""
    return f"{user_id}.first"


def optimize_variant(
    user: UserProfile, variant: str, ctx: BenchContext
) -> tuple[FermiResult, RecordingCache]:
    """Run the graph for one optimization (`RUNS` key) on the user's optimization opinions; a
    local optimizer samples from the user's own seed (`seeded_copy`, the same in every run),
    restart i from ``sampling_seed + i``: the draw a one-search run with that seed makes."""
    from langchain_fermi.graph import optimize_user
    from langchain_fermi.models import seeded_copy

    if ctx.optimizer is None:
        msg = f"method(s) {sorted(LEARNED_METHODS)} need an optimizer model"
        raise ValueError(msg)
    recorder = RecordingCache(ctx.cache)
    config = ctx.config.fermi_config(variant)
    seed = ctx.config.sampling_seed
    optimizers = [
        seeded_copy(ctx.optimizer, user_seed(seed + i, user.user_id))
        for i in range(config.restarts)
    ]
    result = optimize_user(
        user,
        ctx.target,
        optimizers,
        config=config,
        cache=recorder,
        progress=ctx.show_progress and ctx.config.jobs == 1,  # parallel bars would interleave
    )
    return result, recorder


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
        return best_prompts(data.learned[LEARNED_METHODS[method]].best_served.text, test)
    if method in _SERVED_AS:
        if ctx.served is None:
            msg = "the Retrieval-of-Prompt method needs the served selection (BenchContext.served)"
            raise ValueError(msg)
        return served_prompts(ctx.served, _SERVED_AS[method](user.user_id), test)
    if method == "hidden_prompt":
        return MethodPrompts(prompts=[ctx.planted[user.user_id]] * len(test))
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
    if method in REFERENCE_METHODS:
        return reference_result(method, data.user, data.optimize, test, ctx.references)
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


_SERVED_AS: dict[str, Callable[[str], str]] = {
    "fermi_rop": lambda uid: uid,
    "fermi_rop_paper": paper_user_id,
    "fermi_rop_first_search": first_search_user_id,
}
"""The Retrieval-of-Prompt methods and the store id each one's prompts are served under."""


def _serve(user: UserProfile, learned: dict[str, FermiResult], ctx: BenchContext) -> None:
    """Save the user as `fermi optimize` would (their optimization opinions and the prompts
    their result serves), so the Retrieval-of-Prompt rows are what ``fermi ask`` selects; the
    first search alone is served too when there were restarts (`fermi_rop_first_search`)."""
    if ctx.served is None:
        return
    store = ctx.served.store
    served: dict[str, FermiResult] = {}
    if "fermi" in learned:
        fermi = learned["fermi"]
        served[user.user_id] = fermi
        if "fermi_rop_first_search" in ctx.config.methods:
            served[first_search_user_id(user.user_id)] = (fermi.searches or [fermi])[0]
    if "fermi_paper" in learned:
        served[paper_user_id(user.user_id)] = learned["fermi_paper"]
    for uid, result in served.items():
        store.save_user(user.model_copy(update={"user_id": uid}))
        store.save_prompts(uid, result.serving_prompts())


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
    learned, records, leak = _optimize(optimize_user_, cfg.variants(), test, ctx)
    _serve(optimize_user_, learned, ctx)
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


def top_up(
    user: UserProfile, result: UserResult, methods: Sequence[str], ctx: BenchContext
) -> UserResult:
    """A finished user's result with ``methods`` added, on the same split.

    Methods that need no optimization (baselines, references, the hidden prompt) are simply
    run. A learned method whose optimization the user lacks (say ``fermi_rop_paper`` added to
    a finished run) gets that optimization, checked for leaks like a fresh one; optimizations
    the user already has are not redone, so their rows stay as they were.

    Raises:
        ValueError: a learned method needs an optimization the user has and the run did not
            keep (only the records are saved, not the prompts' correctness vectors).
        TestLeakError: the new optimization scored a test question.
    """
    by_id = {o.id: o for o in user.opinions}
    optimize = [by_id[i] for i in result.optimize_ids]
    test = [by_id[i] for i in result.test_ids]
    wanted = {LEARNED_METHODS[m] for m in methods if m in LEARNED_METHODS}
    kept = sorted(wanted & set(result.optimization))
    if kept:
        msg = (
            f"user {user.user_id!r}: {kept} optimization(s) are finished but not kept in "
            "memory; run the user again to add methods that read them"
        )
        raise ValueError(msg)
    optimize_user_ = user.model_copy(update={"opinions": optimize})
    learned, records, _ = _optimize(optimize_user_, sorted(wanted), test, ctx)
    _serve(optimize_user_, learned, ctx)
    data = UserSplit(user, optimize, test, learned)
    added = {m: run_method(m, data, ctx) for m in methods}
    return result.model_copy(
        update={
            "methods": {**result.methods, **added},
            "optimization": {**result.optimization, **records},
        }
    )


def _optimize(
    optimize_user_: UserProfile, variants: Sequence[str], test: Sequence[Opinion], ctx: BenchContext
) -> tuple[dict[str, FermiResult], dict[str, OptimizationRecord], LeakCheck]:
    """Run ``variants`` on the user's optimization opinions, check for leaks, record them.

    Raises:
        TestLeakError: an optimization scored a test question, or saw the hidden prompt.
    """
    optimize = list(optimize_user_.opinions)
    learned: dict[str, FermiResult] = {}
    recorders: list[RecordingCache] = []
    for variant in variants:
        result, recorder = optimize_variant(optimize_user_, variant, ctx)
        learned[variant] = result
        recorders.append(recorder)
    leak = leak_check(list(learned.values()), recorders, optimize, test, ctx.scorer)
    uid = optimize_user_.user_id
    if uid in ctx.planted:
        leak.hidden_prompt_leaked = hidden_prompt_check(
            ctx.planted[uid], optimize_user_, list(learned.values()), recorders, ctx.scorer
        )
    if not leak.ok:
        msg = (
            f"user {uid!r}: test opinions scored during optimization: "
            f"{leak.test_ids_scored or leak.test_questions_seen or 'the hidden prompt'}"
        )
        raise TestLeakError(msg)
    records = {
        variant: optimization_record(variant, result, recorder, optimize_user_, ctx.scorer)
        for (variant, result), recorder in zip(learned.items(), recorders, strict=True)
    }
    return learned, records, leak
