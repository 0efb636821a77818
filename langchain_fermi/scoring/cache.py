"""Scored answers and their cache, in memory and optionally in SQLite.

Scoring the same (model, prompt, question) twice always gives the same answer for a greedy target,
and Fermi re-scores its memory prompts every iteration, so every result is cached under a key of
(model id, prompt, question, choices). With a path the cache survives restarts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from langchain_fermi.types import OPTION_LETTERS, Opinion

__all__ = ["ScoreCache", "ScoredAnswer", "agreement"]


class ScoredAnswer(BaseModel):
    """The target model's answer to one (prompt, question).

    Example:
        >>> ScoredAnswer(index=1, method="logprobs", probs=[0.2, 0.8]).letter
        'B'
    """

    index: int | None = Field(description="Chosen option, or None when the reply was unreadable.")
    reason: str | None = Field(None, description="Why `index` is None.")
    method: Literal["logprobs", "parse"]
    probs: list[float] | None = Field(None, description="Option probabilities, renormalised.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    reply: str | None = Field(None, description="The generated text, when there was one.")

    @property
    def letter(self) -> str | None:
        """The chosen option's letter (``"A"`` for the first option)."""
        return None if self.index is None else OPTION_LETTERS[self.index]

    def answer(self, choices: Sequence[str]) -> str | None:
        """The chosen option's text."""
        return None if self.index is None else choices[self.index]


def agreement(answer: ScoredAnswer, opinion: Opinion) -> float:
    """Fermi's multiple-choice metric: 1.0 when the model chose the user's option, else 0.0."""
    return 1.0 if answer.index is not None and answer.index == opinion.answer_index else 0.0


def user_likelihood(answers: Sequence[ScoredAnswer], opinions: Sequence[Opinion]) -> float | None:
    """Mean probability the model gives the user's option, or None when an answer has no
    letter probabilities (a parsed reply): a finer signal than agreement where scores tie."""
    probs = []
    for a, o in zip(answers, opinions, strict=True):
        if a.probs is None or o.answer_index >= len(a.probs):
            return None
        probs.append(a.probs[o.answer_index])
    return sum(probs) / len(probs) if probs else None


class ScoreCache:
    """Scored answers by key, in memory and, when ``path`` is given, in SQLite across restarts.

    Thread-safe; several processes may share one file (SQLite WAL mode).

    Example:
        >>> cache = ScoreCache("~/.cache/langchain-fermi/scores.sqlite")
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self._mem: dict[str, ScoredAnswer] = {}
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value TEXT)")
            self._db.commit()

    @staticmethod
    def make_key(model: str, prompt: str, question: str, choices: Sequence[str]) -> str:
        """sha256 of (model id, prompt, question, choices)."""
        raw = json.dumps([model, prompt, question, list(choices)], ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def get(self, key: str) -> ScoredAnswer | None:
        """The stored answer for ``key`` (with ``cached=True``), or None."""
        with self._lock:
            hit = self._mem.get(key)
            if hit is None and self._db is not None:
                row = self._db.execute("SELECT value FROM scores WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    hit = ScoredAnswer.model_validate_json(row[0])
                    self._mem[key] = hit
        return None if hit is None else hit.model_copy(update={"cached": True})

    def put(self, key: str, answer: ScoredAnswer) -> None:
        """Store ``answer`` under ``key`` (overwriting)."""
        self.put_many({key: answer})

    def put_many(self, answers: dict[str, ScoredAnswer]) -> None:
        """Store several answers in one transaction."""
        clean = {k: a.model_copy(update={"cached": False}) for k, a in answers.items()}
        with self._lock:
            self._mem.update(clean)
            if self._db is not None and clean:
                self._db.executemany(
                    "INSERT OR REPLACE INTO scores (key, value) VALUES (?, ?)",
                    [(k, a.model_dump_json()) for k, a in clean.items()],
                )
                self._db.commit()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            if self._db is None:
                return len(self._mem)
            return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def clear(self) -> None:
        """Forget every entry (also on disk)."""
        with self._lock:
            self._mem.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM scores")
                self._db.commit()

    def close(self) -> None:
        """Close the SQLite connection (the in-memory entries stay usable)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
