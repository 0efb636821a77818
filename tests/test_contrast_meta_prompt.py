"""``meta_prompt_style="contrast"``: the best description's mis-aligned answers first, the memory
as texts and scores, no profile and no demonstrations (addendum form only)."""

from __future__ import annotations

import json

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user

from langchain_fermi.evaluation.config import BenchConfig
from langchain_fermi.evaluation.rundir import config_fingerprint
from langchain_fermi.graph import build_meta_prompt, optimize_user
from langchain_fermi.graph.estimate import estimate_cost
from langchain_fermi.graph.prompts import NOTHING_ADDED
from langchain_fermi.questions import profile_prompt, profile_prompt_with
from langchain_fermi.types import FermiConfig, MisalignedCase, ScoredPrompt


def _case(i: int, question: str, user: str, model: str) -> MisalignedCase:
    return MisalignedCase(
        index=i,
        opinion_id=f"q{i}",
        question=question,
        choices=["Trust", "Distrust"],
        user_answer=user,
        model_answer=model,
    )


def _memory(user) -> list[ScoredPrompt]:
    best = ScoredPrompt(
        text=profile_prompt_with(user, "This person is upbeat."),
        score=0.5,
        opinion_ids=["q1", "q2"],
        correctness=[0.0, 1.0],
        answers=["Trust", "Distrust"],
        misaligned=[_case(1, "Do you trust banks?", "Distrust", "Trust")],
    )
    worst = ScoredPrompt(
        text=profile_prompt(user),
        score=0.0,
        opinion_ids=["q1", "q2"],
        correctness=[0.0, 0.0],
        answers=["Trust", "Trust"],
        misaligned=[
            _case(1, "Do you trust banks?", "Distrust", "Trust"),
            _case(2, "Do you trust the press?", "Distrust", "Trust"),
        ],
    )
    return [best, worst]  # best first, as the graph keeps it


def test_contrast_shows_the_best_failures_and_the_memory_not_the_profile() -> None:
    user = make_user()
    text = build_meta_prompt(
        "fermi", _memory(user), user.opinions[:2], user=user, num_questions=2,
        form="addendum", style="contrast",
    )  # fmt: skip
    assert "Do you trust banks?" in text
    assert "Do you trust the press?" not in text  # a failure of the worse text only
    assert "The person's answer: B. Distrust. The model's answer: A. Trust." in text
    # the memory in ascending order, as paragraphs with their scores
    assert text.index(NOTHING_ADDED) < text.index("This person is upbeat.")
    assert "Score: 0.00" in text and "Score: 0.50" in text
    # neither the personal information nor the demonstrations
    assert "POLIDEOLOGY" not in text and "Northeast" not in text
    assert user.opinions[0].question not in text
    assert 'start with "This person"' in text


def test_figure8_stays_the_default_and_contrast_needs_the_addendum_form() -> None:
    user = make_user()
    assert FermiConfig().meta_prompt_style == "figure8"
    with pytest.raises(ValueError, match="addendum"):
        FermiConfig(prompt_form="full", meta_prompt_style="contrast")
    kw = {"user": user, "num_questions": 2}
    with pytest.raises(ValueError, match="addendum"):
        build_meta_prompt("fermi", _memory(user), [], form="full", style="contrast", **kw)
    with pytest.raises(ValueError, match="style"):
        build_meta_prompt("fermi", _memory(user), [], form="addendum", style="terse", **kw)
    # OPRO's meta-prompt has no failure cases, so the style does not change it
    opro = build_meta_prompt("opro", _memory(user), [], form="addendum", style="contrast", **kw)
    assert opro == build_meta_prompt("opro", _memory(user), [], form="addendum", **kw)


def test_loop_runs_with_the_contrast_prompt() -> None:
    user = make_user()
    replies = [f"[{keyword_prompt('t1')}]", f"[{keyword_prompt('t1', 't3')}]"]
    optimizer = ScriptedOptimizer(replies=replies)
    config = FermiConfig(
        K=1, L=3, T=2, max_concurrency=1, retry_backoff=0.0, guard=False,
        meta_prompt_style="contrast",
    )  # fmt: skip
    result = optimize_user(user, KeywordTarget(), optimizer, config=config, progress=False)
    assert result.curve == [0.375, 0.5, 0.625]
    first, second = optimizer.prompts
    assert "Description 1:" in first and NOTHING_ADDED in first
    assert keyword_prompt("t1") in second and "POLIDEOLOGY" not in second
    # the second prompt shows what the best text (the t1 paragraph) still gets wrong
    assert second.count("The person's answer:") < first.count("The person's answer:")
    estimate = estimate_cost(user, config, optimizer_max_tokens=100)
    assert estimate.upper.optimizer_prompt_tokens > 0


def _hash_without(config: BenchConfig, later: set[str]) -> str:
    """The fingerprint of a run made before the ``later`` settings existed (dump without them)."""
    import hashlib

    from langchain_fermi.evaluation.rundir import _NEUTRAL_FIELDS

    data = config.model_dump(mode="json", exclude=set(_NEUTRAL_FIELDS) | later)
    data |= {"target_model_id": "t", "optimizer_model_id": "o"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def test_bench_passes_the_style_and_keeps_older_fingerprints() -> None:
    config = BenchConfig(meta_prompt_style="contrast")
    assert config.fermi_config("fermi").meta_prompt_style == "contrast"
    old = BenchConfig()
    later = {"meta_prompt_style", "max_failures_shown", "tie_break", "optimizer_seed", "restarts"}
    before = _hash_without(old, later)
    assert config_fingerprint(old, "t", "o") == before
    assert config_fingerprint(config, "t", "o") != before


def test_bench_caps_the_cases_shown_and_keeps_older_fingerprints() -> None:
    user = make_user()
    capped = BenchConfig(meta_prompt_style="contrast", max_failures_shown=1)
    assert capped.fermi_config("fermi").max_failures_shown == 1
    memory = [_memory(user)[1]]  # the profile prompt alone, two mis-aligned cases
    kw = {"user": user, "num_questions": 2, "form": "addendum", "style": "contrast"}
    assert build_meta_prompt("fermi", memory, [], **kw).count("The person's answer:") == 2
    shown_one = build_meta_prompt("fermi", memory, [], max_failures_shown=1, **kw)
    assert shown_one.count("The person's answer:") == 1
    # a run made before the option existed (at its default) keeps its fingerprint
    old = BenchConfig(meta_prompt_style="contrast")
    before = _hash_without(old, {"max_failures_shown", "tie_break", "optimizer_seed", "restarts"})
    assert config_fingerprint(old, "t", "o") == before
    assert config_fingerprint(capped, "t", "o") != before
