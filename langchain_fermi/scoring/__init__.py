"""Scoring: the target model's answer to each (prompt, opinion), computed once and cached."""

from langchain_fermi.scoring.cache import ScoreCache, ScoredAnswer, agreement
from langchain_fermi.scoring.scorer import AnswerScorer, ScoringMethod

__all__ = ["AnswerScorer", "ScoreCache", "ScoredAnswer", "ScoringMethod", "agreement"]
