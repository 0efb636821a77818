"""Metrics, retrievers, prompt builders and cost model of the benchmark (pure, no models)."""

from __future__ import annotations

import statistics

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_fermi.evaluation.costs import call_tokens, naive_optimization_cost, ratio
from langchain_fermi.evaluation.datasets import sample_users
from langchain_fermi.evaluation.methods import few_shot_prompt, few_shot_prompts
from langchain_fermi.evaluation.metrics import (
    accuracy,
    bootstrap_ci,
    mean_curve,
    paired_bootstrap_ci,
    random_draws,
    random_expected_accuracy,
)
from langchain_fermi.evaluation.retrievers import Bm25Retriever, CachedEmbedder, DenseRetriever
from langchain_fermi.types import Cost, FermiResult, Opinion, ScoredPrompt, UserProfile


def _op(i: int, question: str, choices: list[str] | None = None, answer: int = 0) -> Opinion:
    choices = choices or ["Yes", "No"]
    return Opinion(id=f"q{i}", question=question, choices=choices, answer=choices[answer])


# ---------------------------------------------------------------- accuracy and intervals


def test_accuracy_counts_correct_answers_and_rejects_empty() -> None:
    assert accuracy([1, 0, 1, 1]) == 0.75
    with pytest.raises(ValueError, match="empty"):
        accuracy([])


def test_bootstrap_ci_contains_mean_and_is_seeded() -> None:
    values = [0.2, 0.4, 0.5, 0.9, 0.6, 0.3, 0.7, 0.1]
    ci = bootstrap_ci(values, seed=3)
    assert ci.mean == pytest.approx(statistics.mean(values))
    assert ci.low < ci.mean < ci.high
    assert min(values) <= ci.low and ci.high <= max(values)
    assert bootstrap_ci(values, seed=3) == ci  # reproducible
    # A 95 % interval of the mean is narrower than the data's range and wider than a 50 % one.
    narrow = bootstrap_ci(values, seed=3, level=0.5)
    assert ci.low <= narrow.low and narrow.high <= ci.high


def test_bootstrap_ci_shrinks_with_more_users() -> None:
    few = bootstrap_ci([0.0, 1.0] * 5, seed=0)
    many = bootstrap_ci([0.0, 1.0] * 200, seed=0)
    assert (many.high - many.low) < (few.high - few.low) / 3


def test_bootstrap_ci_degenerate_cases_collapse_to_the_mean() -> None:
    one = bootstrap_ci([0.42])
    assert (one.low, one.mean, one.high, one.n) == (0.42, 0.42, 0.42, 1)
    same = bootstrap_ci([0.5, 0.5, 0.5])
    assert same.low == same.high == same.mean == 0.5
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([0.1, 0.2], level=1.5)


def test_paired_bootstrap_sees_a_consistent_gain_the_unpaired_intervals_hide() -> None:
    base = [0.1, 0.3, 0.5, 0.7, 0.9, 0.2, 0.4, 0.6, 0.8, 0.5]
    better = [b + 0.05 for b in base]
    a, b = bootstrap_ci(better), bootstrap_ci(base)
    assert a.low < b.high  # the methods' own intervals overlap
    d = paired_bootstrap_ci(better, base)
    assert d.mean == pytest.approx(0.05)
    assert d.low > 0  # but the per-user gain is always positive
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_ci([0.1], [0.1, 0.2])


def test_random_baseline_expectation_and_seeded_draws() -> None:
    ops = [_op(1, "a?"), _op(2, "b?", ["w", "x", "y", "z"], 2)]
    assert random_expected_accuracy(ops) == pytest.approx((1 / 2 + 1 / 4) / 2)
    draws = random_draws(ops, seed=7)
    assert draws == random_draws(ops, seed=7)
    assert all(0 <= d < len(o.choices) for d, o in zip(draws, ops, strict=True))
    # Over many opinions a draw's accuracy approaches the expectation.
    many = [_op(i, f"q{i}?", ["a", "b", "c"], i % 3) for i in range(3000)]
    hits = [d == o.answer_index for d, o in zip(random_draws(many, seed=1), many, strict=True)]
    assert accuracy(hits) == pytest.approx(1 / 3, abs=0.03)


def test_mean_curve_carries_early_stops_forward() -> None:
    assert mean_curve([[0.2, 0.4, 0.6], [0.5]]) == pytest.approx([0.35, 0.45, 0.55])
    assert mean_curve([[], []]) == []


# ---------------------------------------------------------------- retrievers and prompts


OPINIONS = [
    _op(1, "Do you support stricter gun laws?"),
    _op(2, "How much do you trust scientists?", ["A lot", "Some", "None"], 1),
    _op(3, "Is climate change a major threat?", answer=1),
    _op(4, "Should the minimum wage be raised?"),
]


def test_bm25_returns_the_lexically_closest_opinions() -> None:
    bm25 = Bm25Retriever(OPINIONS)
    assert [o.id for o in bm25.top_k("Are gun laws strict enough?", 1)] == ["q1"]
    assert bm25.top_k("trust in scientists", 2)[0].id == "q2"
    assert len(bm25.top_k("anything", 10)) == len(OPINIONS)
    with pytest.raises(ValueError, match="k must be"):
        bm25.top_k("x", 0)


def test_dense_retriever_finds_the_same_text_and_embeds_each_text_once() -> None:
    calls: list[int] = []

    class Counting(DeterministicFakeEmbedding):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            calls.append(len(texts))
            return super().embed_documents(texts)

    embedder = CachedEmbedder(Counting(size=32))
    dense = DenseRetriever(embedder, OPINIONS)
    near = dense.top_k_many([OPINIONS[2].question, OPINIONS[0].question], 2)
    assert [n[0].id for n in near] == ["q3", "q1"]
    DenseRetriever(embedder, OPINIONS)  # a second user with the same questions: all cached
    assert sum(calls) == len(OPINIONS)


def test_few_shot_prompt_lists_retrieved_questions_with_the_users_answers() -> None:
    text = few_shot_prompt(OPINIONS[:2], profile="Age: 30-49")
    assert "Do you support stricter gun laws?" in text and "Answer: Yes" in text
    assert "Answer: Some" in text and "Age: 30-49" in text
    user = UserProfile(user_id="u1", attributes={"Age": "65+"}, opinions=OPINIONS)
    test = [_op(9, "Should gun laws be stricter or not?")]
    built = few_shot_prompts(user, test, Bm25Retriever(OPINIONS), k=2)
    assert built.detail[0]["retrieved"][0] == "q1"
    assert "65+" not in built.prompts[0]  # no profile unless asked


# ---------------------------------------------------------------- cost model


def test_naive_optimization_cost_is_one_call_per_prompt_and_scoring_opinion() -> None:
    ops = OPINIONS[:3]
    prompts = [
        ScoredPrompt(
            text=t, score=0.5, opinion_ids=["q1", "q2"], correctness=[1, 0], answers=[None] * 2
        )
        for t in ("p one", "p two", "p three")
    ]
    result = FermiResult(
        user_id="u",
        prompts=prompts,
        memory=prompts[:1],
        cost=Cost(target_calls=2, optimizer_calls=4),
    )
    naive = naive_optimization_cost(
        result, ops, optimizer=Cost(optimizer_calls=4, prompt_tokens=100)
    )
    assert naive.target_calls == 6 and naive.optimizer_calls == 4
    expected = sum(call_tokens(p.text, o.question, o.choices) for p in prompts for o in ops[:2])
    assert naive.prompt_tokens == expected + 100
    assert naive.completion_tokens == 6
    bad = FermiResult(
        user_id="u",
        prompts=[prompts[0].model_copy(update={"opinion_ids": ["q1", "zz"]})],
        memory=[],
    )
    with pytest.raises(ValueError, match="zz"):
        naive_optimization_cost(bad, ops)
    assert ratio(10, 4) == 2.5 and ratio(10, 0) is None


def test_sample_users_is_seeded_and_prefix_stable() -> None:
    users = [UserProfile(user_id=f"u{i}", opinions=[]) for i in range(30)]
    five = [u.user_id for u in sample_users(users, 5, seed=2)]
    assert five == [u.user_id for u in sample_users(list(reversed(users)), 5, seed=2)]
    assert [u.user_id for u in sample_users(users, 10, seed=2)][:5] == five
    assert five != [u.user_id for u in sample_users(users, 5, seed=3)]
