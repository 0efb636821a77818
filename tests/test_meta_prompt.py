"""The initial prompt, the Fermi and OPRO meta-prompts, and the bracket parser."""

from __future__ import annotations

import pytest
from fermi_graph_fakes import make_user

from langchain_fermi.graph.prompts import (
    FERMI_META_PROMPT,
    INSERTION_MARKER,
    OPRO_META_PROMPT,
    build_meta_prompt,
    format_fermi_memory,
    parse_bracketed,
)
from langchain_fermi.graph.rules import misaligned_cases
from langchain_fermi.questions import profile_prompt
from langchain_fermi.types import ScoredPrompt, UserProfile

# ----------------------------------------------------------------------------- parse_bracketed


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Here it is: [Answer as a cautious voter.]", "Answer as a cautious voter."),
        ("[first] then a better one: [second]", "second"),
        ("[Be [very] brief and honest]", "Be [very] brief and honest"),
        ("[  spaced out \n text ]", "spaced out \n text"),
        ("[complete] and then [cut off by the token li", "complete"),
        ("Sure! [The text was cut off by the token li", "The text was cut off by the token li"),
        ("a stray ] closing bracket [kept]", "kept"),
        ("[]", ""),
        ("[   ]", ""),
        ("no brackets at all", None),
        ("only a closing ] bracket", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_bracketed(reply: str | None, expected: str | None) -> None:
    assert parse_bracketed(reply) == expected


# ----------------------------------------------------------------------------- initial prompt


def test_initial_prompt_has_profile_and_instruction() -> None:
    user = make_user()
    text = profile_prompt(user)
    assert "REGION: Northeast" in text
    assert "POLIDEOLOGY: Very liberal" in text
    assert "choose the proper answer among the choices" in text.lower()


def test_initial_prompt_without_attributes_says_so() -> None:
    user = UserProfile(user_id="anon", opinions=make_user().opinions)
    assert "no personal information" in profile_prompt(user)


# ----------------------------------------------------------------------------- memory rendering


def _prompt(text: str, score: float, wrong: list[int], user: UserProfile) -> ScoredPrompt:
    """A prompt wrong (answering 'Unsure') on the scoring positions in ``wrong``."""
    ops = user.opinions[:8]
    correctness = [0.0 if i in wrong else 1.0 for i in range(len(ops))]
    answers = ["Unsure" if i in wrong else o.answer for i, o in enumerate(ops)]
    sp = ScoredPrompt(
        text=text,
        score=score,
        opinion_ids=[o.id for o in ops],
        correctness=correctness,
        answers=answers,
    )
    return sp.model_copy(update={"misaligned": misaligned_cases(sp, ops, 1.0)})


@pytest.fixture
def memory() -> list[ScoredPrompt]:
    user = make_user()
    # best first, as the graph keeps it
    return [
        _prompt("BEST TEXT", 0.75, [1, 7], user),
        _prompt("MIDDLE TEXT", 0.625, [1, 2, 5], user),
        _prompt("WORST TEXT", 0.5, [1, 2, 3, 4], user),
    ]


def test_fermi_memory_is_ascending_with_full_cases_for_the_first(memory) -> None:
    text = format_fermi_memory(memory)
    assert text.index("WORST TEXT") < text.index("MIDDLE TEXT") < text.index("BEST TEXT")
    first = text[: text.index("MIDDLE TEXT")]
    for i in (1, 2, 3, 4):  # the first listed (lowest score) shows every failure in full
        assert f"Q{i}: [t{i}] What do you think about issue number {i}?" in first
    assert first.count("The person's answer:") == 4
    assert first.count("The model's answer: C. Unsure.") == 4
    assert "The person's answer: B. No." in first  # t1's user answer
    assert "Score: 0.50" in first
    # the others: only the failures shared with the first one, plus a count of the rest
    rest = text[text.index("MIDDLE TEXT") :]
    assert "The person's answer" not in rest
    assert "issue number" not in rest
    middle, best = rest.split("BEST TEXT")
    assert "shared with Text 1: Q1, Q2; other mis-aligned questions: 1." in middle
    assert "shared with Text 1: Q1; other mis-aligned questions: 1." in best


def test_fermi_memory_caps_the_cases_shown(memory) -> None:
    text = format_fermi_memory(memory, max_failures_shown=2)
    assert text.count("The person's answer:") == 2
    assert "... and 2 more." in text
    assert "Mis-aligned questions (4):" in text


def test_fermi_meta_prompt_has_framing_profile_demos_and_instruction(memory) -> None:
    user = make_user()
    demos = user.opinions[8:]
    text = build_meta_prompt("fermi", memory, demos, user=user, num_questions=8)
    assert "as a specific person would" in text
    assert "POLIDEOLOGY: Very liberal" in text.split("Text 1:")[0]  # the profile, before memory
    assert "ascending order of score" in text
    assert text.count(INSERTION_MARKER) >= len(demos) + 1  # marker explained + one per demo
    for d in demos:
        assert d.question in text
        assert f"Answer: {d.answer_letter} ({d.answer})" in text
    assert "square brackets" in text.split("Text 3:")[1]
    assert "mean over 8 questions" in text


def test_opro_meta_prompt_has_no_failures_profile_or_personal_framing(memory) -> None:
    user = make_user()
    # the initial prompt carries the profile; as a memory *text* OPRO may show it, nothing else
    memory = [*memory, _prompt(profile_prompt(user), 0.25, [0, 1, 2], user)]
    text = build_meta_prompt("opro", memory, user.opinions[8:], user=user, num_questions=8)
    assert text.index("score:\n0.25") < text.index("WORST TEXT") < text.index("BEST TEXT")
    for sp in memory:
        text = text.replace(sp.text, "")
    for value in user.attributes.values():
        assert value not in text
    assert "person" not in text.lower()
    assert "mis-aligned" not in text.lower()
    assert "issue number" not in text  # no questions: neither failure cases nor demos
    assert INSERTION_MARKER not in text
    assert "square brackets" in text


def test_opro_meta_prompt_can_show_demos_like_the_original_opro(memory) -> None:
    user = make_user()
    text = build_meta_prompt(
        "opro", memory, user.opinions[8:], user=user, num_questions=8, opro_include_demos=True
    )
    assert INSERTION_MARKER in text
    assert user.opinions[8].question in text
    assert "mis-aligned" not in text.lower()


def test_unknown_variant_is_rejected(memory) -> None:
    with pytest.raises(ValueError, match="unknown variant 'gpt'"):
        build_meta_prompt("gpt", memory, [], user=make_user(), num_questions=8)


def test_templates_are_format_strings() -> None:
    assert "{memory}" in FERMI_META_PROMPT and "{demos}" in FERMI_META_PROMPT
    assert "{memory}" in OPRO_META_PROMPT and "{profile}" not in OPRO_META_PROMPT


def test_empty_memory_renders_a_placeholder() -> None:
    user = make_user()
    text = build_meta_prompt("fermi", [], [], user=user, num_questions=8)
    assert "(no previous texts)" in text
    assert INSERTION_MARKER not in text
