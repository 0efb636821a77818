"""Retrieval-of-Prompt selection: pure, hand-built cases."""

from __future__ import annotations

import pytest
from fermi_store_fakes import economy_and_gun_prompts, make_user, prompt

from langchain_fermi.errors import NoPromptsError
from langchain_fermi.retrieval import (
    Neighbour,
    build_profile_prompt,
    select_prompt,
)
from langchain_fermi.questions import profile_prompt


def test_nearest_opinions_favour_a_prompt_that_is_not_the_overall_best():
    prompts = economy_and_gun_prompts()
    assert prompts[0].score > prompts[1].score  # #0 is the overall best
    sel = select_prompt(prompts, [("o2", 0.9), ("o1", 0.8), ("o3", 0.7)])
    assert sel.index == 1
    assert sel.prompt is prompts[1]
    assert [a.accuracy for a in sel.accuracies] == [0.0, 1.0]
    assert [n.opinion_id for n in sel.neighbours] == ["o2", "o1", "o3"]
    assert sel.neighbours[0].similarity == pytest.approx(0.9)
    assert "3/3" in sel.explanation and "overall best prompt #0" in sel.explanation


def test_economy_neighbours_pick_the_overall_best():
    prompts = economy_and_gun_prompts()
    sel = select_prompt(prompts, ["o4", "o5", "o6"])
    assert sel.index == 0
    assert sel.accuracies[0].correct == 3 and sel.accuracies[1].correct == 0


def test_best_strategy_ignores_neighbours():
    prompts = economy_and_gun_prompts()
    sel = select_prompt(prompts, ["o1", "o2", "o3"], strategy="best")
    assert sel.index == 0 and sel.strategy == "best"


def test_ties_go_to_overall_score_then_order():
    a = prompt("A", {"o1": 1, "o2": 0}, score=0.4)
    b = prompt("B", {"o1": 1, "o2": 0}, score=0.7)
    c = prompt("C", {"o1": 1, "o2": 0}, score=0.7)
    sel = select_prompt([a, b, c], ["o1", "o2"])
    assert sel.index == 1  # same 1/2 accuracy: higher score wins; equal score: earlier wins
    assert "tied with 2" in sel.explanation
    assert select_prompt([c, b], ["o1"]).index == 0


def test_neighbours_only_count_where_scored():
    # Prompt 0 was scored on o1 only (right), prompt 1 on o1 and o2 (right on o1 only).
    p0 = prompt("P0", {"o1": 1}, score=0.5)
    p1 = prompt("P1", {"o1": 1, "o2": 0}, score=0.9)
    sel = select_prompt([p0, p1], ["o1", "o2"])
    assert [(a.covered, a.accuracy) for a in sel.accuracies] == [(1, 1.0), (2, 0.5)]
    assert sel.index == 0


def test_no_covered_neighbour_falls_back_to_overall_best():
    prompts = economy_and_gun_prompts()
    sel = select_prompt(prompts, ["zz1", "zz2"])
    assert sel.index == 0
    assert all(a.accuracy is None for a in sel.accuracies)
    assert "fell back" in sel.explanation


def test_neighbour_forms_are_accepted():
    user = make_user()
    op = user.opinion("o1")
    sel = select_prompt(
        economy_and_gun_prompts(),
        [(op, 0.5), Neighbour(opinion_id="o2", similarity=0.4), "o3"],
    )
    assert [n.opinion_id for n in sel.neighbours] == ["o1", "o2", "o3"]
    assert sel.neighbours[0].question == op.question and sel.neighbours[0].answer == "Yes"
    with pytest.raises(TypeError, match="neighbour"):
        select_prompt(economy_and_gun_prompts(), [42])


def test_empty_prompts_and_bad_strategy():
    with pytest.raises(NoPromptsError, match="'bob' has no optimized prompts"):
        select_prompt([], ["o1"], user_id="bob")
    with pytest.raises(ValueError, match="unknown strategy 'oracle'"):
        select_prompt(economy_and_gun_prompts(), [], strategy="oracle")  # type: ignore[arg-type]


def test_profile_strategy():
    user = make_user()
    text = profile_prompt(user)
    assert "Age: 30-49" in text and "Region: West" in text
    built = build_profile_prompt(user)
    assert built.variant == "profile" and built.text == text
    # a stored, scored profile prompt wins over the built one
    stored = prompt("profile prompt", {"o1": 1}, score=0.3, variant="profile")
    sel = select_prompt([*economy_and_gun_prompts(), stored], [], strategy="profile")
    assert sel.prompt is stored and sel.index == 2
    sel = select_prompt(economy_and_gun_prompts(), [], strategy="profile", profile_prompt=text)
    assert sel.prompt.text == text and sel.index is None
    with pytest.raises(NoPromptsError, match="profile"):
        select_prompt(economy_and_gun_prompts(), [], strategy="profile")
