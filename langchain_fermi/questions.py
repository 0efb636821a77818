"""How a multiple-choice question is shown to a model, and how a free-text reply is read back.

The same formatting is used while optimizing (scoring prompts) and at inference
(`FermiPersonalizer`), so a learned prompt sees questions exactly as it was scored on them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from langchain_fermi.types import OPTION_LETTERS

__all__ = ["ANSWER_INSTRUCTION", "ParsedAnswer", "format_question", "parse_answer"]

ANSWER_INSTRUCTION = "Answer with the letter only."


def format_question(question: str, choices: Sequence[str]) -> str:
    """Render ``question`` with lettered options and the answer instruction."""
    lines = [f"Question: {question.strip()}"]
    lines += [f"{OPTION_LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    lines.append(ANSWER_INSTRUCTION)
    return "\n".join(lines)


class ParsedAnswer(NamedTuple):
    """A parsed reply: the option index, or ``None`` with the reason it could not be read."""

    index: int | None
    reason: str | None = None


def parse_answer(reply: str, choices: Sequence[str]) -> ParsedAnswer:
    """Read the chosen option from a short generation.

    Accepts ``"B"``, ``"(B)"``, ``"B."``, ``"b)"``, ``"Answer: B"``, ``"The answer is B"``,
    ``"**B**"`` and the option's own text. Never raises: an unreadable reply returns
    ``ParsedAnswer(None, reason)``, which scoring counts as wrong.
    """
    n = len(choices)
    letters = OPTION_LETTERS[:n]
    text = (reply or "").strip()
    if not text:
        return ParsedAnswer(None, "empty reply")
    # 1. A letter standing alone at the start: "B", "(B)", "B.", "B)", "**B**", "B: text".
    m = re.match(r"^[\s*_\"'`\[(]*([A-Za-z])(?:[\s*_\"'`\]).:,\-]|$)", text)
    if m and m.group(1).upper() in letters and (m.group(1).isupper() or len(text) <= 3):
        return ParsedAnswer(letters.index(m.group(1).upper()))
    # 2. "Answer: B", "answer is (B)", "option B", "choice: B".
    m = re.search(
        r"\b(?:answer|option|choice)\s*(?:is|:|=)?\s*[\s*(\[\"']*([A-Za-z])\b", text, re.IGNORECASE
    )
    if m and m.group(1).upper() in letters:
        return ParsedAnswer(letters.index(m.group(1).upper()))
    # 3. The option's text (longest match first, so "Not at all" beats "All").
    low = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    matches = []
    for i, c in enumerate(choices):
        cl = " ".join(re.sub(r"[^\w\s]", " ", c.lower()).split())
        if cl and re.search(rf"(?<!\w){re.escape(cl)}(?!\w)", low):
            matches.append((len(cl), low.find(cl), i))
    if matches:
        longest = max(m[0] for m in matches)
        best = min((pos, i) for length, pos, i in matches if length == longest)
        return ParsedAnswer(best[1])
    # 4. A lone capital letter anywhere ("I think B").
    found = {ch for ch in re.findall(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])", text) if ch in letters}
    if len(found) == 1:
        return ParsedAnswer(letters.index(found.pop()))
    return ParsedAnswer(None, f"no option found in reply {text[:80]!r}")
