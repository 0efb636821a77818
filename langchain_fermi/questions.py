"""What the target model sees: the profile prompt, a rendered question, and its reply read back.

The same text is used while optimizing (scoring prompts) and at inference (`FermiPersonalizer`),
so a learned prompt sees questions exactly as it was scored on them, and the profile prompt that
starts every optimization is the one served as the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from langchain_fermi.types import OPTION_LETTERS, UserProfile, validate_choices

__all__ = [
    "ANSWER_INSTRUCTION",
    "NO_PROFILE",
    "PROFILE_PROMPT",
    "ParsedAnswer",
    "format_question",
    "parse_answer",
    "profile_addendum",
    "profile_prompt",
    "profile_prompt_with",
]

ANSWER_INSTRUCTION = "Answer with the letter only."

PROFILE_PROMPT = (
    "Here is some information about a person.\n"
    "{profile}\n\n"
    "Answer the following question as this person would. "
    "Choose the proper answer among the choices."
)
"""Fermi's P_0: the profile text + "choose the proper answer among the choices" (FERMI.md)."""

NO_PROFILE = "(no personal information is known)"


def profile_prompt(user: UserProfile) -> str:
    """The profile-only prompt: where every optimization starts, and the no-prompt fallback."""
    return PROFILE_PROMPT.format(profile=user.profile_text() or NO_PROFILE)


def profile_prompt_with(user: UserProfile, paragraph: str) -> str:
    """The profile prompt with ``paragraph`` (what is learned about the person) added after the
    personal information, before the final instruction: the ``"addendum"`` prompt form."""
    paragraph = paragraph.strip()
    if not paragraph:
        return profile_prompt(user)
    head, _, tail = profile_prompt(user).rpartition("\n\n")
    return f"{head}\n{paragraph}\n\n{tail}"


def profile_addendum(user: UserProfile, prompt: str) -> str | None:
    """What `profile_prompt_with` added to ``user``'s profile prompt in ``prompt``: ``""`` for
    the profile prompt itself, ``None`` when ``prompt`` is not of that form."""
    base = profile_prompt(user)
    head, _, tail = base.rpartition("\n\n")
    text = prompt.strip()
    if text == base:
        return ""
    start, end = f"{head}\n", f"\n\n{tail}"
    if text.startswith(start) and text.endswith(end) and len(text) > len(start) + len(end):
        return text[len(start) : -len(end)].strip()
    return None


def format_question(question: str, choices: Sequence[str]) -> str:
    """Render ``question`` with lettered options and the answer instruction.

    Raises:
        ValueError: ``choices`` are not 2-26 distinct option texts (a ``None`` would be shown
            as "None", a 27th option has no letter).
    """
    choices = validate_choices(choices, f"question {question.strip()[:60]!r}")
    lines = [f"Question: {question.strip()}"]
    lines += [f"{OPTION_LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    lines.append(ANSWER_INSTRUCTION)
    return "\n".join(lines)


class ParsedAnswer(NamedTuple):
    """A parsed reply: the option index, or ``None`` with the reason it could not be read."""

    index: int | None  # type: ignore[assignment]  # shadows tuple.index, kept for the API
    reason: str | None = None


_LEAD = r"^[\s*_\"'`\[(]*"
_LETTER_END = r"[*_\"'`\]).:,\-–—]"
_WORDS = re.compile(r"[^\w\s]")


def _norm(text: str) -> str:
    return " ".join(_WORDS.sub(" ", text.lower()).split())


def _leading_letter(text: str, choices: Sequence[str]) -> tuple[int, str] | None:
    """A letter at the start: ``"B"``, ``"(B)"``, ``"B."``, ``"b)"``, ``"**B**"``, ``"B Some"``.

    Returns the option index and the text after the letter.
    """
    letters = OPTION_LETTERS[: len(choices)]
    m = re.match(_LEAD + r"([A-Za-z])(?=(" + _LETTER_END + r"|\s|$))", text)
    if not m or m.group(1).upper() not in letters:
        return None
    letter, rest = m.group(1), text[m.end() :]
    index = letters.index(letter.upper())
    if not rest.strip() or rest.startswith(("\n", "\r")):
        return index, rest  # the letter alone on its line
    if letter.islower():
        # "b)" / "b." are letters; "a lot ..." is an English word.
        return (index, rest) if rest[0] in ").]" else None
    if re.match(_LETTER_END, rest[0]):
        return index, rest
    # "B Some": a space, then an option's text. "A lot of ..." / "I think ..." are words.
    return (index, rest) if _text_after(rest, choices) is not None else None


def _named_letter(text: str, letters: str) -> tuple[int, str] | None:
    """``"Answer: B"``, ``"the answer is (C)"``, ``"option D"``, ``"My answer: (d)"``.

    Returns the option index and the text after the letter.
    """
    for m in re.finditer(
        r"\b(?:answer|option|choice|letter)\s*(?:is|:|=|-)?\s*[\s*(\[\"':]*([A-Za-z])(?![\w])(.?)",
        text,
        re.IGNORECASE,
    ):
        letter, after = m.group(1), m.group(2)
        if letter.upper() not in letters:
            continue
        if letter.islower() and after not in ("", ")", ".", "]", "*", '"', "'"):
            continue  # "my answer is a firm no": an article, not option A
        return letters.index(letter.upper()), text[m.end(1) :]
    return None


def _text_after(rest: str, choices: Sequence[str]) -> int | None:
    """The option whose text starts the rest of the letter's line (``"B. Some"`` -> Some).

    Longest first, whole words only: "Somewhat oppose" is not "Some".
    """
    line = _norm(rest.split("\n", 1)[0])
    found = [
        (len(c), i)
        for i, c in enumerate(_norm(c) for c in choices)
        if c and (line == c or line.startswith(c + " "))
    ]
    return max(found)[1] if found else None


def _options_named(text: str, choices: Sequence[str]) -> set[int]:
    """Options whose text appears in ``text`` as whole words, unless inside a longer one's."""
    low = _norm(text)
    norms = [_norm(c) for c in choices]
    found = {
        i for i, c in enumerate(norms) if c and re.search(rf"(?<!\w){re.escape(c)}(?!\w)", low)
    }
    return {
        i
        for i in found
        if not any(
            j != i and re.search(rf"(?<!\w){re.escape(norms[i])}(?!\w)", norms[j]) for j in found
        )
    }


def _option_text(text: str, choices: Sequence[str]) -> int | None:
    """The option's own text (longest match first, so "Not at all" beats "All")."""
    low = _norm(text)
    matches = []
    for i, c in enumerate(choices):
        cl = _norm(c)
        if cl and re.search(rf"(?<!\w){re.escape(cl)}(?!\w)", low):
            matches.append((len(cl), low.find(cl), i))
    if not matches:
        return None
    longest = max(m[0] for m in matches)
    return min((pos, i) for length, pos, i in matches if length == longest)[1]


def _lone_capital(text: str, letters: str) -> int | None:
    """A single option letter standing alone somewhere ("I think B"); None if several."""
    found = set()
    for m in re.finditer(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])", text):
        ch = m.group(1)
        if ch in "AI" and re.match(r"\s+(?!(?:or|nor|and|vs)\b)[a-z]", text[m.end() :]):
            continue  # the words "A" and "I" ("I think", "A lot")
        if ch in letters:
            found.add(ch)
    return letters.index(found.pop()) if len(found) == 1 else None


def parse_answer(reply: str, choices: Sequence[str]) -> ParsedAnswer:
    """Read the chosen option from a short generation.

    Tried in order: a letter at the start (``"B"``, ``"(B)"``, ``"B."``, ``"b)"``, ``"**B**"``,
    ``"B: text"``); a named letter (``"Answer: B"``, ``"The answer is (C)"``, ``"option D"``); the
    option's own text (longest match first); one lone option letter anywhere (``"I think B"``).

    When a letter and the option text right after it disagree (``"B. Somewhat oppose"`` where B
    is "Somewhat support" and C is "Somewhat oppose"), the text wins: small models mislabel
    options more often than they misquote them, and a letter alone never overrides what the
    reply says in words. Text after the letter that names no option (``"A. Not sure"``) leaves
    the letter. A letter beyond the options (``"E"`` with four options), a hedge between letters
    (``"A or B"``) and a reply with no option (``"I don't know"``) give ``index=None``. Never
    raises: an unreadable reply returns ``ParsedAnswer(None, reason)``, which scoring counts as
    wrong.
    """
    letters = OPTION_LETTERS[: len(choices)]
    text = (reply or "").strip()
    if not text:
        return ParsedAnswer(None, "empty reply")
    lettered = _leading_letter(text, choices) or _named_letter(text, letters)
    if lettered is not None:
        index, rest = lettered
        after = _text_after(rest, choices)
        if after is not None:
            return ParsedAnswer(after)  # "B. <option C's text>": the words win
        pos = len(text) - len(rest)
        line = text[text.rfind("\n", 0, pos) + 1 :].split("\n", 1)[0]
        named = _options_named(line, choices)
        if named and index not in named:
            said = ", ".join(f"{letters[i]} ({choices[i]!r})" for i in sorted(named))
            reason = f"the letter {letters[index]} disagrees with the option text for {said}"
            return ParsedAnswer(None, reason)
        return ParsedAnswer(index)
    for rule in (
        lambda: _option_text(text, choices),
        lambda: _lone_capital(text, letters),
    ):
        found = rule()
        if found is not None:
            return ParsedAnswer(found)
    return ParsedAnswer(None, f"no option found in reply {text[:80]!r}")
