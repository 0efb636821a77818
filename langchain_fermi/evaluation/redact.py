"""Keep survey text out of committed benchmark results.

An optimizer may copy a demonstration question into the prompt it writes. Learned prompts are
part of the report, and the survey data is evaluation-only, so any run of ``min_words``
consecutive words that also occurs in a source text (the user's survey questions) is replaced
by a marker before a prompt is written to disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["PROFILE_REDACTED", "REDACTED", "redact_profile", "redact_survey_text"]

REDACTED = "[survey text redacted]"
PROFILE_REDACTED = "[the respondent's profile]"


def redact_profile(text: str, profile_text: str) -> str:
    """``text`` with the respondent's profile block (``UserProfile.profile_text()``, as the
    profile prompt shows it) replaced by a marker: a real respondent's attributes next to their
    id are an extract of the survey data."""
    block = profile_text.strip()
    return text.replace(block, PROFILE_REDACTED) if block else text


def _token(word: str) -> str:
    return re.sub(r"\W+", "", word.lower())


def redact_survey_text(text: str, sources: Iterable[str], *, min_words: int = 6) -> str:
    """Replace each span of ``text`` that shares ``min_words``+ consecutive words with a source.

    Words are compared case- and punctuation-insensitively; overlapping matches merge into one
    marker. Text with no such span comes back unchanged.
    """
    grams: set[tuple[str, ...]] = set()
    for source in sources:
        words = [t for t in (_token(w) for w in source.split()) if t]
        grams.update(tuple(words[i : i + min_words]) for i in range(len(words) - min_words + 1))
    spans = [m for m in re.finditer(r"\S+", text) if _token(m.group())]
    tokens = [_token(m.group()) for m in spans]
    hit = [False] * len(spans)
    for i in range(len(spans) - min_words + 1):
        if tuple(tokens[i : i + min_words]) in grams:
            hit[i : i + min_words] = [True] * min_words
    if not any(hit):
        return text
    out, pos, i = [], 0, 0
    while i < len(spans):
        if not hit[i]:
            i += 1
            continue
        j = i
        while j < len(spans) and hit[j]:
            j += 1
        out += [text[pos : spans[i].start()], REDACTED]
        pos = spans[j - 1].end()
        i = j
    out.append(text[pos:])
    return "".join(out)
