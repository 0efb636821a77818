"""Scoring: the target model's answer to each (prompt, opinion), computed once and cached."""

from langchain_fermi.scoring.cache import ScoreCache, ScoredAnswer, agreement, user_likelihood
from langchain_fermi.scoring.calibration import (
    NEUTRAL_PROMPT,
    Calibration,
    calibrate_probs,
    default_calibration,
)
from langchain_fermi.scoring.scorer import AnswerScorer, ScoringMethod

__all__ = [
    "NEUTRAL_PROMPT",
    "AnswerScorer",
    "Calibration",
    "ScoreCache",
    "ScoredAnswer",
    "ScoringMethod",
    "agreement",
    "calibrate_probs",
    "default_calibration",
    "user_likelihood",
]
