"""Contextual calibration of letter scores: remove the model's letter bias per question.

Small models pick a letter before they read a persona: with the profile prompt Qwen2.5-Coder-1.5B
answers "A" on about two thirds of OpinionQA items. Calibration divides each option's probability
by its probability under a neutral prompt (no persona) for the same question, and renormalises
over the options: ``log p_i - log q_i``, softmax. What is left is how the prompt *moves* the
answer, which is what a persona should do. The neutral pass runs once per distinct question and
is cached like any other answer, so it is shared across users and prompts.

Measured (benchmarks/results/calibration/README.md) on W92 users: it helps Qwen2.5-Coder
and not SmolLM2, so `default_calibration` turns it on per model family.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Literal

from langchain_core.language_models import BaseChatModel

from langchain_fermi.scoring.cache import ScoredAnswer

__all__ = [
    "CALIBRATED_FAMILIES",
    "NEUTRAL_PROMPT",
    "Calibration",
    "calibrate_probs",
    "calibrated_answer",
    "calibration_tag",
    "default_calibration",
    "resolve_calibration",
]

Calibration = Literal["neutral"] | None
"""``None``: raw letter scores; ``"neutral"``: minus the neutral prompt's letter scores."""

NEUTRAL_PROMPT = "Answer the following multiple-choice question."
"""The prompt that says nothing about a person: its answer distribution is the letter bias."""

CALIBRATED_FAMILIES = ("qwen",)
"""Local model families whose held-out accuracy calibration improved (see the module doc)."""

_VERSION = 2
"""Bumped when calibrated answers change for the same inputs (2: ties go to the raw answer)."""

_FLOOR = 1e-6
"""Smallest neutral probability divided by: an option the neutral pass never picks (a top-k
logprobs reply without its letter) must not get an infinite boost."""


def calibrate_probs(probs: Sequence[float], neutral: Sequence[float]) -> list[float]:
    """``probs`` divided by ``neutral`` per option, renormalised to sum to 1.

    Example:
        >>> calibrate_probs([0.6, 0.4], [0.8, 0.2])  # the prompt moved B up against the bias
        [0.2727..., 0.7272...]
    """
    if len(probs) != len(neutral) or not probs:
        msg = f"need one neutral probability per option, got {len(probs)} and {len(neutral)}"
        raise ValueError(msg)
    logs = [
        math.log(max(p, _FLOOR)) - math.log(max(q, _FLOOR))
        for p, q in zip(probs, neutral, strict=True)
    ]
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = sum(weights)
    return [w / total for w in weights]


def calibrated_answer(raw: ScoredAnswer, neutral: ScoredAnswer, *, first_use: bool) -> ScoredAnswer:
    """The calibrated version of ``raw`` for the same question.

    Ties go to the raw answer's preference: the neutral prompt calibrated against itself is
    uniform, and its answer stays the model's own unpersonalized answer (the zero-shot row), not
    the first option. An answer without probabilities (unreadable) is returned as it is. Cost: the
    answer counts as
    cached only when neither pass needed a model call; the neutral pass's tokens are added to
    the first answer that needed it (``first_use``), so each model call is paid once.
    """
    if raw.probs is None or neutral.probs is None:
        return raw
    probs = calibrate_probs(raw.probs, neutral.probs)
    neutral_fresh = first_use and not neutral.cached
    prompt_tokens = (0 if raw.cached else raw.prompt_tokens) + (
        neutral.prompt_tokens if neutral_fresh else 0
    )
    completion_tokens = (0 if raw.cached else raw.completion_tokens) + (
        neutral.completion_tokens if neutral_fresh else 0
    )
    raw_probs = raw.probs
    return ScoredAnswer(
        index=max(range(len(probs)), key=lambda i: (round(probs[i], 9), raw_probs[i])),
        method=raw.method,
        probs=probs,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached=raw.cached and not neutral_fresh,
        reply=raw.reply,
    )


def calibration_tag(calibration: Calibration, neutral_prompt: str) -> str:
    """The cache-key suffix of a calibration mode (empty for raw scores)."""
    if calibration is None:
        return ""
    digest = hashlib.sha256(neutral_prompt.encode("utf-8")).hexdigest()[:12]
    return f"#cal={calibration}.{_VERSION}:{digest}"


def default_calibration(model: BaseChatModel) -> Calibration:
    """``"neutral"`` for the local model families calibration helped (`CALIBRATED_FAMILIES`),
    else ``None`` (SmolLM2, and remote models, which were not measured)."""
    from langchain_fermi.models import LocalLlamaChatModel

    if isinstance(model, LocalLlamaChatModel):
        name = f"{model.model_name} {model.model_path}".lower()
        if any(family in name for family in CALIBRATED_FAMILIES):
            return "neutral"
    return None


def resolve_calibration(setting: str | None, model: BaseChatModel) -> Calibration:
    """A `FermiConfig.calibration` setting (``"auto"``, ``"neutral"``, ``"none"``) for ``model``."""
    if setting == "auto":
        return default_calibration(model)
    if setting in (None, "none"):
        return None
    if setting == "neutral":
        return "neutral"
    msg = f"calibration must be 'auto', 'neutral' or 'none', got {setting!r}"
    raise ValueError(msg)
