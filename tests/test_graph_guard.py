"""The guard (``FermiConfig.guard``): degenerate candidates are never scored, and the prompts a
user is served never do worse than the profile prompt on held-out validation opinions."""

from __future__ import annotations

import pytest
from fermi_graph_fakes import USER_LETTERS, KeywordTarget, ScriptedOptimizer, make_user

from langchain_fermi.graph import Node, build_fermi_graph, optimize_user
from langchain_fermi.graph.guard import (
    DEGENERATE_REASONS,
    MIN_VALIDATION,
    degenerate_reason,
    served_prompts,
    split_validation,
)
from langchain_fermi.graph.rules import split_scoring_and_demos
from langchain_fermi.questions import profile_prompt
from langchain_fermi.types import FermiConfig, FermiResult, Opinion, ScoredPrompt

OPINIONS = [
    Opinion(
        id="climate",
        question="How high a priority should slowing climate change be for the national "
        "government?",
        choices=["Top priority", "Important, but not a top priority", "A low priority"],
        answer="Top priority",
    ),
    Opinion(id="gun", question="Do you personally own a gun?", choices=["Yes", "No"], answer="No"),
]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A", "option_label"),
        ("B.", "option_label"),
        ("(c)", "option_label"),
        ("Option B", "option_label"),
        ("answer: d", "option_label"),
        ("The answer is C", "option_label"),
        ("1", "option_label"),
        ("'Top priority'", "option_label"),  # an option's text
        ("B. Important, but not a top priority", "option_label"),
        ("", "option_label"),
        (
            "How high a priority should slowing climate change be for the national government?",
            "copied_text",
        ),
        ("slowing climate change be for the national government", "copied_text"),
        (
            "Be honest. How high a priority should slowing climate change be for the national "
            "government? Think of the person.",
            "copied_text",
        ),
        ("Do you personally own a gun? No", "copied_text"),  # a demonstration
        ("I'm sorry, but as an AI language model, I cannot create or modify text.", "refusal"),
        ("Unfortunately I can't write a text about a real person.", "refusal"),
        ("Sure. As an AI model I will answer like this person.", "refusal"),
        ("optimal answer", "too_short"),
        ("not just", "too_short"),
        ("Answer thoughtfully.", "too_short"),
    ],
)
def test_degenerate_candidates_are_named(text: str, reason: str) -> None:
    assert degenerate_reason(text, OPINIONS, min_words=4) == reason
    assert reason in DEGENERATE_REASONS


@pytest.mark.parametrize(
    "text",
    [
        "Answer as a young progressive city dweller who worries about the climate would.",
        "You distrust institutions and expect things to get worse; answer as this person.",
        "You cannot stand waste: you think the government spends too much.",
        "You are sorry about how the country has changed.",
        profile_prompt(make_user()),
    ],
)
def test_real_instructions_pass(text: str) -> None:
    assert degenerate_reason(text, OPINIONS, min_words=4) is None


def test_validation_split_is_seeded_disjoint_and_skipped_for_small_users() -> None:
    ids = [f"q{i}" for i in range(16)]
    scoring, held = split_validation(ids, "u1", n_opinions=20, fraction=0.2, seed=0)
    assert len(held) == 4 and len(scoring) == 12
    assert set(held).isdisjoint(scoring) and set(held) | set(scoring) == set(ids)
    assert scoring == [i for i in ids if i in scoring]  # the user's order is kept
    assert (scoring, held) == split_validation(
        list(reversed(ids))[::-1], "u1", n_opinions=20, fraction=0.2, seed=0
    )
    assert held != split_validation(ids, "u1", n_opinions=20, fraction=0.2, seed=1)[1]
    # 10 opinions x 0.2 = 2 < MIN_VALIDATION: no validation split at all
    assert MIN_VALIDATION > 2
    assert split_validation(ids[:8], "u1", n_opinions=10, fraction=0.2, seed=0) == (ids[:8], [])


def _sp(text: str, score: float) -> ScoredPrompt:
    return ScoredPrompt(text=text, score=score, opinion_ids=[], correctness=[], answers=[])


def test_served_prompts_drop_those_worse_than_the_profile_and_fall_back() -> None:
    profile = _sp("profile", 0.4)
    learned = [_sp("good", 0.8), _sp("overfit", 0.7), profile, _sp("tie", 0.5)]
    validation = {"profile": 0.5, "good": 0.75, "overfit": 0.25, "tie": 0.5}
    served, fallback = served_prompts(learned, validation, profile)
    assert [p.text for p in served] == ["good", "profile", "tie"]  # ties are not worse
    assert not fallback
    served, fallback = served_prompts(learned, {**validation, "good": 0.0, "tie": 0.25}, profile)
    assert [p.text for p in served] == ["profile"]
    assert fallback


# ------------------------------------------------------------------------------ the graph

USER = make_user(n=20)  # topics t10..t19 are answered "A", like the profile prompt does


def _splits(config: FermiConfig) -> tuple[list[str], list[str]]:
    scoring, _ = split_scoring_and_demos(
        USER.opinions, USER.user_id, demo_fraction=config.demo_fraction, seed=config.seed
    )
    return split_validation(
        scoring, USER.user_id, n_opinions=20, fraction=config.validation_fraction, seed=0
    )


def _topic(opinion_id: str) -> str:
    return "t" + opinion_id[1:]


def _keys(ids: list[str], *, wrong: bool = False) -> str:
    """KeywordTarget keys: the user's letter for each id, or a wrong one."""
    out = []
    for i in ids:
        right = USER_LETTERS.get(_topic(i), "A")
        letter = ("B" if right != "B" else "C") if wrong else right
        out.append(f"{_topic(i)}={letter}")
    return " ".join(out)


def _run(replies: list[str], **kw: object) -> tuple[FermiResult, KeywordTarget]:
    config = FermiConfig(
        **{"K": 2, "L": 3, "T": 2, "max_concurrency": 1, "prompt_form": "full", **kw}
    )
    target = KeywordTarget()
    result = optimize_user(
        USER, target, ScriptedOptimizer(replies=replies), config=config, progress=False
    )
    return result, target


def test_degenerate_replies_are_dropped_and_counted_never_scored() -> None:
    scoring, _ = _splits(FermiConfig())
    good = f"[Answer as this person would answer. {_keys(scoring)}]"
    question = USER.opinions[0].question
    result, target = _run(["[B]", f"[{question}]", "[optimal answer]", good])
    assert result.dropped["option_label"] == 1
    assert result.dropped["copied_text"] == 1
    assert result.dropped["too_short"] == 1
    scored = {p.text for p in result.prompts}
    assert {"B", question, "optimal answer"}.isdisjoint(scored)
    assert {s for s, _ in target.call_log}.isdisjoint({"B", question, "optimal answer"})


def test_validation_opinions_are_never_scored_in_the_loop() -> None:
    config = FermiConfig()
    scoring, held = _splits(config)
    result, target = _run([f"[Answer as this person would answer. {_keys(scoring)}]"])
    assert result.validation_ids == held and len(held) == 4
    for p in result.prompts:
        assert set(p.opinion_ids) == set(scoring)
    # the validation questions reach the target only in the validation node
    held_questions = {o.question for o in USER.opinions if o.id in held}
    texts = {s for s, q in target.call_log if q.splitlines()[0][10:] in held_questions}
    assert texts <= {p.text for p in result.learned_prompts()}


def test_served_set_excludes_prompts_worse_than_the_profile_on_validation() -> None:
    scoring, held = _splits(FermiConfig())
    helpful = f"Answer as this person would answer. {_keys(scoring)}"
    overfit = f"Answer as this person would, always. {_keys(scoring)} {_keys(held, wrong=True)}"
    result, _ = _run([f"[{overfit}]", f"[{helpful}]"], T=1)
    by_text = {p.text: p for p in result.prompts}
    assert by_text[overfit].score == by_text[helpful].score == 1.0  # the same on scoring
    profile = profile_prompt(USER)
    assert result.validation[overfit] < result.validation[profile] <= result.validation[helpful]
    served = [p.text for p in result.served or []]
    assert helpful in served and overfit not in served
    assert overfit in [p.text for p in result.learned_prompts()]  # the paper would serve it
    assert not result.fallback
    assert [p.text for p in result.serving_prompts()] == served


def test_every_learned_prompt_worse_on_validation_falls_back_to_the_profile() -> None:
    scoring, held = _splits(FermiConfig())
    overfit = f"Answer as this person would, always. {_keys(scoring)} {_keys(held, wrong=True)}"
    result, _ = _run([f"[{overfit}]", f"[{overfit} Really.]"], T=1)
    assert result.fallback
    assert [p.text for p in result.served or []] == [profile_prompt(USER)]
    assert [p.text for p in result.serving_prompts()] == [profile_prompt(USER)]
    assert result.best.text != profile_prompt(USER)  # the memory itself is the paper's


def test_validation_cost_is_counted() -> None:
    scoring, _ = _splits(FermiConfig())
    helpful = f"Answer as this person would answer. {_keys(scoring)}"
    guarded, target = _run([f"[{helpful}]"], T=1)
    validation_calls = sum(1 for s, q in target.call_log if s == helpful) - len(scoring)
    assert validation_calls == 4
    assert guarded.cost.target_calls == target.calls


def test_guard_off_is_the_papers_graph() -> None:
    optimizer = ScriptedOptimizer(replies=["[B]"])
    full = FermiConfig(prompt_form="full")
    guarded = build_fermi_graph(KeywordTarget(), optimizer, config=full)
    paper = build_fermi_graph(
        KeywordTarget(), optimizer, config=full.model_copy(update={"guard": False})
    )
    assert set(guarded.get_graph().nodes) == {"__start__", "__end__", *Node.GUARDED}
    assert set(paper.get_graph().nodes) == {"__start__", "__end__", *Node.ALL}
    result, _ = _run(["[B]"], guard=False)
    assert "B" in {p.text for p in result.prompts}  # scored, as the paper would
    assert result.served is None and result.validation_ids == []
    assert set(result.dropped) == {"duplicate", "empty", "unparseable"}


async def test_async_guarded_run_matches_the_sync_run() -> None:
    from langchain_fermi.graph import aoptimize_user

    scoring, held = _splits(FermiConfig())
    overfit = f"Answer as this person would, always. {_keys(scoring)} {_keys(held, wrong=True)}"
    replies = [f"[{overfit}]", f"[Answer as this person would answer. {_keys(scoring)}]", "[B]"]
    config = FermiConfig(K=2, L=3, T=2, max_concurrency=1, prompt_form="full")
    sync, _ = _run(replies)
    result = await aoptimize_user(
        USER, KeywordTarget(), ScriptedOptimizer(replies=replies), config=config, progress=False
    )
    assert [p.text for p in result.served or []] == [p.text for p in sync.served or []]
    assert result.validation == sync.validation
    assert result.dropped == sync.dropped


def test_the_store_serves_the_guarded_set(tmp_path) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_fermi.store import FermiStore, result_prompts

    scoring, held = _splits(FermiConfig())
    helpful = f"Answer as this person would answer. {_keys(scoring)}"
    overfit = f"Answer as this person would, always. {_keys(scoring)} {_keys(held, wrong=True)}"
    result, _ = _run([f"[{overfit}]", f"[{helpful}]"], T=1)
    store = FermiStore(tmp_path / "store", embeddings=DeterministicFakeEmbedding(size=8))
    store.save_result(result, user=USER)
    stored = [p.text for p in store.get_prompts(USER.user_id)]
    assert (
        stored == [p.text for p in result_prompts(result)] == [p.text for p in result.served or []]
    )
    assert overfit not in stored and helpful in stored
