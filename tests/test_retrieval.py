"""Retrieval-of-Prompt selection: pure, hand-built cases."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fermi_store_fakes import economy_and_gun_prompts, make_user, prompt

from langchain_fermi.errors import NoPromptsError, UnknownUserError
from langchain_fermi.questions import profile_prompt
from langchain_fermi.retrieval import (
    Neighbour,
    build_profile_prompt,
    select_for_question,
    select_prompt,
)


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


# -- select_for_question: the one selection path --------------------------------------------------
class FakeUser:
    """A stored user's view: neighbours come from a fixed list, filtered like the snapshot's."""

    def __init__(self, prompts, ranking=("o1", "o2", "o3", "o4", "o5"), attributes=None):
        self.prompts = tuple(prompts)
        self.record = SimpleNamespace(attributes=attributes or {"Age": "30-49", "Region": "West"})
        self.ranking = ranking
        self.calls: list[tuple[object, int, object]] = []

    def nearest(self, query, k, *, among=None):
        self.calls.append((query, k, among))
        ids = [i for i in self.ranking if among is None or i in among]
        user = make_user()
        return [(user.opinion(i), 1.0 - n / 10) for n, i in enumerate(ids[:k])]


def test_select_for_question_retrieves_among_scored_opinions_only():
    gun = prompt("gun", {"o2": 1, "o3": 1})
    econ = prompt("econ", {"o4": 1, "o5": 1, "o2": 0}, score=0.9)
    user = FakeUser([econ, gun], ranking=("o1", "o2", "o3", "o4"))
    sel = select_for_question(user, [1.0], user_id="alice", num_neighbors=2)
    assert [n.opinion_id for n in sel.neighbours] == ["o2", "o3"]  # o1: no prompt scored on it
    assert sel.prompt is gun and sel.index == 1 and sel.fallback is None
    assert user.calls[-1][2] == {"o2", "o3", "o4", "o5"}
    sel = select_for_question(user, [1.0], user_id="alice", num_neighbors=2, scored_only=False)
    assert [n.opinion_id for n in sel.neighbours] == ["o1", "o2"]


def test_select_for_question_embeds_only_when_retrieval_needs_it():
    embedded: list[int] = []

    def query():
        embedded.append(1)
        return [1.0]

    user = FakeUser(economy_and_gun_prompts())
    assert select_for_question(user, query, user_id="a", strategy="best").index == 0
    assert select_for_question(user, query, user_id="a", strategy="profile").index is None
    no_prompts = FakeUser([])
    sel = select_for_question(no_prompts, query, user_id="a", fallback="profile")
    assert sel.prompt.text == profile_prompt(make_user()) and sel.fallback == "profile"
    assert "has no optimized prompts; fallback 'profile'" in sel.explanation
    assert embedded == []
    assert select_for_question(user, query, user_id="a").strategy == "retrieval"
    assert embedded == [1]


def test_select_for_question_without_a_question_uses_the_best_prompt():
    user = FakeUser(economy_and_gun_prompts())
    sel = select_for_question(user, None, user_id="alice")
    assert sel.index == 0 and sel.strategy == "best" and not sel.neighbours
    assert sel.explanation.startswith("no question")
    assert user.calls == []


def test_select_for_question_fallbacks():
    empty = FakeUser([])
    with pytest.raises(NoPromptsError, match="'bob' has no optimized prompts"):
        select_for_question(empty, [1.0], user_id="bob")
    none = select_for_question(empty, [1.0], user_id="bob", fallback="none")
    assert none.prompt is None and none.fallback == "none" and none.strategy == "none"
    with pytest.raises(UnknownUserError, match="unknown user 'zed'"):
        select_for_question(None, [1.0], user_id="zed", fallback="profile")
    gone = select_for_question(None, [1.0], user_id="zed", fallback="none")
    assert gone.prompt is None and "unknown user 'zed'" in gone.explanation


def test_selection_trace_carries_the_choice_and_no_opinion_text():
    user = FakeUser(economy_and_gun_prompts())
    trace = select_for_question(user, [1.0], user_id="alice").trace()
    assert trace["prompt"] == "You are a gun owner." and trace["prompt_index"] == 1
    assert trace["strategy"] == "retrieval" and trace["neighbours"] == ["o1", "o2", "o3"]
    assert trace["prompt_score"] == pytest.approx(economy_and_gun_prompts()[1].score)
    assert "3/3" in trace["explanation"] and trace["user_id"] == "alice"
    assert not any("gun ownership" in str(v) for v in trace.values())  # no question texts
