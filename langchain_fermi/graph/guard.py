"""The guard against degenerate prompts (``FermiConfig.guard``): pure rules, no model calls.

A small optimizer and a few scoring opinions make a bad pair: "A", "1", "optimal answer" or a
copied survey question can beat the profile prompt on 6-22 scored opinions by luck (or by a
letter bias that happens to match the user) and then become a user's system prompt. Two rules
stop that:

1. `degenerate_reason`: a candidate that is an option letter or label, a copy of a question,
   choice or demonstration, the optimizer's refusal ("I'm sorry, as an AI language model I
   cannot ..."), or too short to be an instruction is never scored (counted in the result's
   ``dropped`` under `DEGENERATE_REASONS`).
2. `served_prompts`: a few opinions are held out from scoring (`split_validation`); the prompts
   a user is served are those that do no worse than the profile prompt on them, or the profile
   prompt alone when none does (a fallback).

With ``guard=False`` neither rule applies: the paper's exact loop.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from langchain_fermi.types import OPTION_LETTERS, Opinion, ScoredPrompt

__all__ = [
    "DEGENERATE_REASONS",
    "MIN_VALIDATION",
    "degenerate_reason",
    "served_prompts",
    "split_validation",
]

DEGENERATE_REASONS = ("option_label", "copied_text", "refusal", "too_short")
"""Why a candidate was rejected before scoring (keys of ``dropped``, next to the others)."""

MIN_VALIDATION = 3
"""Fewest validation opinions worth holding out; a user with fewer gets no validation split."""

_MIN_COPY_WORDS = 6
"""A question this long (in words) found verbatim inside a prompt makes the prompt a copy."""

_REFUSAL_RE = re.compile(
    r"^(?:i m sorry|i am sorry|sorry|unfortunately|i apologi[sz]e|i cannot|i can t|i can not|"
    r"i m unable|i am unable|i m not able|i am not able)\b|\bas an ai(?: language)? model\b"
)
"""An optimizer declining the task: a prompt that starts so, or says it is an AI model."""

_WORD_RE = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_LABEL_RE = re.compile(
    r"^(?:(?:the\s+)?(?:option|answer|choice|letter|response)\s*(?:is\s*)?[:#-]?\s*)?"
    r"\(?([a-z]|\d{1,2})\)?[.)]?$"
)


def _norm(text: str) -> str:
    """Lower-case words only: punctuation, quotes and spacing do not make a prompt new."""
    return " ".join(_WORD_RE.findall(text.lower()))


def _is_label(norm: str, choices: set[str]) -> bool:
    if _LABEL_RE.match(norm) or norm in choices:
        return True
    head, _, rest = norm.partition(" ")  # "b top priority": a letter and its option text
    return len(head) == 1 and head in OPTION_LETTERS.lower() and rest in choices


def degenerate_reason(text: str, opinions: Sequence[Opinion], *, min_words: int) -> str | None:
    """Why ``text`` cannot be a system prompt, or ``None`` when it can.

    Args:
        text: the candidate prompt.
        opinions: the user's opinions the optimizer could have seen (questions, choices and
            answers of the scoring split and the demonstrations).
        min_words: the fewest words an instruction has.

    Returns:
        ``"option_label"`` (a letter, a number, "option B", an option's text), ``"copied_text"``
        (a question, choice or demonstration, or a part of one, or a prompt that embeds a whole
        question), ``"refusal"`` (the optimizer declined) or ``"too_short"`` (fewer than
        ``min_words`` words); else ``None``.
    """
    norm = _norm(text)
    choices = {_norm(c) for o in opinions for c in o.choices}
    if not norm or _is_label(norm, choices):
        return "option_label"
    sources = [_norm(o.question) for o in opinions]
    sources += [_norm(f"{o.question} {' '.join(o.choices)} {o.answer}") for o in opinions]
    padded = f" {norm} "
    if any(padded in f" {s} " for s in [*sources, *choices]):
        return "copied_text"
    questions = {_norm(o.question) for o in opinions}
    if any(len(q.split()) >= _MIN_COPY_WORDS and f" {q} " in padded for q in questions):
        return "copied_text"
    if _REFUSAL_RE.search(norm):
        return "refusal"
    if len(norm.split()) < min_words:
        return "too_short"
    return None


def split_validation(
    scoring_ids: Sequence[str], user_id: str, *, n_opinions: int, fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Hold out about ``fraction`` of a user's ``n_opinions`` from the scoring split.

    Ranked by sha256(seed, user id, opinion id) like the demonstration split, so it is the same
    in every process. Returns (scoring ids, validation ids), both in the user's order; no
    validation split when it would hold fewer than `MIN_VALIDATION` opinions or leave fewer
    than two to score on.
    """
    n_val = round(n_opinions * fraction)
    if n_val < MIN_VALIDATION or len(scoring_ids) - n_val < 2:
        return list(scoring_ids), []

    def rank(oid: str) -> bytes:
        return hashlib.sha256(f"{seed}\x1fvalidation\x1f{user_id}\x1f{oid}".encode()).digest()

    held = set(sorted(scoring_ids, key=rank)[:n_val])
    return [i for i in scoring_ids if i not in held], [i for i in scoring_ids if i in held]


def served_prompts(
    candidates: Sequence[ScoredPrompt], validation: Mapping[str, float], profile: ScoredPrompt
) -> tuple[list[ScoredPrompt], bool]:
    """The prompts to serve: ``candidates`` that do no worse than ``profile`` on validation.

    Args:
        candidates: the learned prompt set (memory and last generation), best first.
        validation: accuracy on the validation opinions by prompt text (the profile's too).
        profile: the profile prompt, scored in iteration 0.

    Returns:
        The kept prompts, best first (by scoring score), and whether the user fell back to the
        profile prompt alone because no learned prompt was kept.
    """
    floor = validation[profile.text]
    kept = [p for p in candidates if validation.get(p.text, -1.0) >= floor]
    if not any(p.text != profile.text for p in kept):
        return [profile], True
    return kept, False
