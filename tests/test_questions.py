"""format_question / parse_answer on the messy replies real models give."""

from __future__ import annotations

import pytest

from langchain_fermi.questions import ANSWER_INSTRUCTION, format_question, parse_answer

CLIMATE = ["A great deal", "Some", "Not too much", "Not at all"]


def test_format_question_letters_options_and_instruction() -> None:
    text = format_question("  Do you own a gun? ", ["Yes", "No"])
    assert text.splitlines() == [
        "Question: Do you own a gun?",
        "A. Yes",
        "B. No",
        ANSWER_INSTRUCTION,
    ]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", 1),
        ("(B)", 1),
        ("B.", 1),
        ("b)", 1),
        ("b", 1),
        ("  C  ", 2),
        ("[B]", 1),
        ('"C"', 2),
        ("**A**", 0),
        ("C)", 2),
        ("A\n", 0),
        ("Answer: B", 1),
        ("**Answer:** C", 2),
        ("The answer is (C)", 2),
        ("The answer is: **B**", 1),
        ("Option D", 3),
        ("Letter: B", 1),
        ("My answer: (d)", 3),
        ("D: Not at all", 3),
        ("B) Some", 1),
        ("B - Some", 1),
        ("B Some", 1),
        ("a) A great deal", 0),
        ("C\n\nExplanation: as a nurse I", 2),
        ("A. A great deal\nB.", 0),  # SmolLM2 goes on listing options: the first line counts
        ("The correct answer is B. Some", 1),
        ("I think it is B", 1),
        ("I think the answer is C", 2),
        ("Some", 1),
        ("not at all", 3),
        ("I choose Some.", 1),
        ("Not too much, honestly", 2),
        ("As a nurse, I worry a great deal.", 0),
        ("A great deal", 0),
        ("A great deal, not at all", 0),  # longest option text wins, then the earliest
    ],
)
def test_parse_answer_reads_messy_replies(reply: str, expected: int) -> None:
    parsed = parse_answer(reply, CLIMATE)
    assert parsed.index == expected, parsed
    assert parsed.reason is None


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "I don't know",
        "Not sure",
        "Z",  # a letter beyond the options
        "E",
        "E. None",
        "A or B",  # a hedge
        "Neither A nor B",
        "A and B",
        "A lot, really",  # "A" the article, not option A
        "I would say b",  # a lowercase letter inside a sentence is too ambiguous
    ],
)
def test_parse_answer_unreadable_gives_none_with_reason(reply: str) -> None:
    parsed = parse_answer(reply, CLIMATE)
    assert parsed.index is None
    assert parsed.reason


SUPPORT = ["Strongly support", "Somewhat support", "Somewhat oppose", "Strongly oppose"]


def test_option_text_after_a_letter_wins_over_the_letter() -> None:
    # Issue 13 item 8: the letter never silently overrides the words (0.1 read these as the letter).
    assert parse_answer("B. Somewhat oppose", SUPPORT) == (2, None)
    assert parse_answer("A. Not at all", CLIMATE).index == 3
    assert parse_answer("The answer is B. Strongly oppose", SUPPORT).index == 3
    assert parse_answer("b) Strongly support", SUPPORT).index == 0
    assert parse_answer("**C**: Somewhat support", SUPPORT).index == 1
    # "Some" is not the start of "Somewhat oppose": whole words only
    assert parse_answer("B. Somewhat", ["Some", "Somewhat"]).index == 1
    # letter and text agree, or the text names no option: the letter
    assert parse_answer("B. Somewhat support", SUPPORT).index == 1
    assert parse_answer("A. Not sure", CLIMATE).index == 0
    assert parse_answer("B. No, not yes", ["Yes", "No"]).index == 1
    # only the letter's own line counts
    assert parse_answer("C\nStrongly support is what others say", SUPPORT).index == 2


def test_a_letter_contradicted_on_its_line_is_unparsed_with_a_reason() -> None:
    parsed = parse_answer("Somewhat oppose. Answer: B", SUPPORT)
    assert parsed.index is None
    assert parsed.reason and "B" in parsed.reason and "Somewhat oppose" in parsed.reason
    assert parse_answer("I somewhat support it. Answer: B", SUPPORT) == (1, None)


def test_article_is_not_option_a() -> None:
    assert parse_answer("My answer is a firm no", ["Yes", "No"]).index == 1
    assert parse_answer("A lot of people choose C", CLIMATE).index == 2


def test_pronoun_i_is_not_option_i_when_there_are_nine_options() -> None:
    choices = [f"Choice {n}" for n in range(10)]
    assert parse_answer("I think B", choices).index == 1
    assert parse_answer("I think B is right", choices).index == 1
    assert parse_answer("I", choices).index == 8
    assert parse_answer("I.", choices).index == 8


def test_never_raises_on_odd_input() -> None:
    for reply in [None, "\x00", "(((", "**", "Answer:", "?" * 500]:
        parsed = parse_answer(reply, CLIMATE)  # type: ignore[arg-type]
        assert parsed.index is None and parsed.reason
