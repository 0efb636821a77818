"""``FermiConfig(tie_break="likelihood")``: equal scores on a dozen opinions are common, so the
memory can rank them by how much probability the target gives the user's options."""

from __future__ import annotations

import pytest
from fermi_graph_fakes import make_user

from langchain_fermi.evaluation.config import BenchConfig
from langchain_fermi.evaluation.rundir import config_fingerprint
from langchain_fermi.graph.rules import top_memory
from langchain_fermi.scoring import ScoredAnswer, user_likelihood
from langchain_fermi.store.rows import decode_prompt, encode_prompt
from langchain_fermi.types import FermiConfig, ScoredPrompt


def _prompt(text: str, score: float, likelihood: float | None) -> ScoredPrompt:
    return ScoredPrompt(
        text=text,
        score=score,
        opinion_ids=["q1", "q2"],
        correctness=[score, score],
        answers=["x", "y"],
        likelihood=likelihood,
    )


def test_likelihood_is_the_mean_probability_of_the_users_options() -> None:
    opinions = make_user().opinions[:2]
    answers = []
    for o in opinions:
        probs = [0.1] * len(o.choices)
        probs[o.answer_index] = 0.6
        answers.append(ScoredAnswer(index=0, method="logprobs", probs=probs))
    assert user_likelihood(answers, opinions) == pytest.approx(0.6)
    parsed = [ScoredAnswer(index=0, method="parse"), *answers[1:]]
    assert user_likelihood(parsed, opinions) is None  # a parsed reply has no probabilities


def test_ties_go_to_the_higher_likelihood_only_when_asked() -> None:
    first = _prompt("first", 0.5, 0.30)
    second = _prompt("second", 0.5, 0.45)
    no_probs = _prompt("no probs", 0.5, None)
    better = _prompt("better", 1.0, 0.10)
    kept = top_memory([first], [no_probs, second, better], 3)
    assert [p.text for p in kept] == ["better", "first", "no probs"]  # order: earlier first
    kept = top_memory([first], [no_probs, second, better], 3, tie_break="likelihood")
    assert [p.text for p in kept] == ["better", "second", "first"]  # the score still comes first
    with pytest.raises(ValueError, match="tie_break"):
        top_memory([first], [], 1, tie_break="random")
    with pytest.raises(ValueError, match="likelihood"):
        _prompt("nan", 0.5, float("nan"))


def test_the_store_keeps_the_likelihood() -> None:
    for likelihood in (0.42, None):
        row = encode_prompt("u1", _prompt("p", 0.5, likelihood), generation=1, rank=0)
        assert None not in row.values()  # Chroma metadata cannot hold None
        assert decode_prompt("p", row).likelihood == likelihood


def test_bench_sets_it_for_fermi_only_and_keeps_older_fingerprints() -> None:
    assert FermiConfig().tie_break == "order"
    config = BenchConfig(meta_prompt_style="contrast", tie_break="likelihood")
    assert config.fermi_config("fermi").tie_break == "likelihood"
    assert config.fermi_config("opro").tie_break == "order"  # OPRO stays the control
    # runs made before the setting existed: tests/test_contrast_meta_prompt.py (_hash_without)
    old = BenchConfig(meta_prompt_style="contrast")
    assert config_fingerprint(old, "t", "o") != config_fingerprint(config, "t", "o")
