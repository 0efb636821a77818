"""Helpers for the store / retrieval / personalizer tests: an offline bag-of-words embedding whose
neighbours are predictable, and hand-built users, prompts and results."""

from __future__ import annotations

import hashlib
import re
import threading

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_fermi.types import FermiResult, Opinion, ScoredPrompt, UserProfile

STOP = {
    "the",
    "a",
    "an",
    "of",
    "do",
    "you",
    "is",
    "are",
    "to",
    "in",
    "on",
    "for",
    "about",
    "should",
}


class KeywordEmbeddings(Embeddings):
    """Hashed bag of words (stop words dropped), L2-normalised: texts sharing words are close.

    Counts calls so tests can check what was embedded.
    """

    def __init__(self, dim: int = 128) -> None:
        self.dim = dim
        self.query_calls = 0
        self.document_calls = 0
        self._lock = threading.Lock()

    def _vec(self, text: str) -> list[float]:
        v = np.zeros(self.dim, dtype=np.float64)
        for w in re.findall(r"[a-z]+", text.lower()):
            if w not in STOP:
                v[int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        v[0] += 1e-3  # never the zero vector
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.document_calls += 1
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            self.query_calls += 1
        return self._vec(text)


YN = ["Yes", "No"]

# Two topics: guns (o1-o3) and taxes/economy (o4-o8). The user answers "Yes" on guns.
QUESTIONS = {
    "o1": "Should gun ownership laws be stricter",
    "o2": "Do you own a gun at home",
    "o3": "Is gun violence a big problem",
    "o4": "Should taxes on the rich go up",
    "o5": "Is the economy getting better",
    "o6": "Should the minimum wage rise",
    "o7": "Are income taxes too high",
    "o8": "Is inflation hurting your family budget",
}


def make_user(user_id: str = "alice", *, answer: str = "Yes", extra: str = "") -> UserProfile:
    """A user with the 8 opinions above (all answered ``answer``)."""
    return UserProfile(
        user_id=user_id,
        attributes={"Age": "30-49", "Region": "West"},
        opinions=[
            Opinion(id=oid, question=q + extra + "?", choices=YN, answer=answer, topic=None)
            for oid, q in QUESTIONS.items()
        ],
    )


def prompt(
    text: str, correct: dict[str, float], *, score: float | None = None, **kw
) -> ScoredPrompt:
    """A hand-built scored prompt; ``score`` defaults to the mean correctness."""
    ids = list(correct)
    values = [correct[i] for i in ids]
    return ScoredPrompt(
        text=text,
        score=sum(values) / len(values) if score is None else score,
        opinion_ids=ids,
        correctness=values,
        answers=["Yes" if c else "No" for c in values],
        **kw,
    )


def economy_and_gun_prompts() -> list[ScoredPrompt]:
    """Best overall prompt is wrong on guns; a worse prompt is right on guns (o1-o3)."""
    overall = prompt(
        "You care about the economy.",
        {"o1": 0, "o2": 0, "o3": 0, "o4": 1, "o5": 1, "o6": 1, "o7": 1, "o8": 1},
    )
    guns = prompt(
        "You are a gun owner.",
        {"o1": 1, "o2": 1, "o3": 1, "o4": 0, "o5": 0, "o6": 0, "o7": 0, "o8": 1},
    )
    return [overall, guns]


def make_result(user_id: str, prompts: list[ScoredPrompt]) -> FermiResult:
    """A result whose memory is ``prompts`` (best first) and whose history is the same."""
    ordered = sorted(prompts, key=lambda p: -p.score)
    return FermiResult(user_id=user_id, model="fake", prompts=list(prompts), memory=ordered)
