"""Learned prompts written to benchmark reports never carry survey text."""

from __future__ import annotations

from langchain_fermi.evaluation.redact import REDACTED, redact_survey_text

QUESTION = "How often do people in your town help their neighbours with everyday chores?"


def test_copied_question_span_is_redacted() -> None:
    prompt = (
        "You are a careful respondent. Remember: people in your TOWN help their neighbours, "
        "with everyday chores? Choose the best option."
    )
    out = redact_survey_text(prompt, [QUESTION])
    assert "everyday chores" not in out.lower()
    assert out.count(REDACTED) == 1
    assert out.startswith("You are a careful respondent. Remember:")
    assert out.endswith(" Choose the best option.")


def test_text_without_long_overlap_is_unchanged() -> None:
    prompt = "Answer as a 45-year-old moderate from Ohio who helps neighbours in town."
    assert redact_survey_text(prompt, [QUESTION]) == prompt


def test_two_separate_copies_give_two_markers() -> None:
    other = "Would you favor or oppose a national ban on the sale of assault-style weapons?"
    prompt = f"First: {QUESTION} Then something else entirely. Second: {other}"
    out = redact_survey_text(prompt, [QUESTION, other])
    assert out.count(REDACTED) == 2
    assert "Then something else entirely." in out


def test_threshold_is_respected() -> None:
    prompt = "help their neighbours with everyday"  # 5 shared words only
    assert redact_survey_text(prompt, [QUESTION], min_words=6) == prompt
    assert redact_survey_text(prompt, [QUESTION], min_words=5) == REDACTED


def test_the_profile_block_is_replaced() -> None:
    from langchain_fermi.evaluation.redact import PROFILE_REDACTED, redact_profile

    profile = "Region: West\nAge: 30-49"
    text = f"Here is some information about a person.\n{profile}\nThis person is calm.\n\nAnswer."
    out = redact_profile(text, profile)
    assert "Region: West" not in out and PROFILE_REDACTED in out and "This person is calm." in out
    assert redact_profile(text, "") == text
