"""Non-LLM reference rows: what the other respondents of the same wave say.

These rows bound what a method could be expected to reach, without any model: the answer most
respondents give (``ref_majority``), the answer most respondents of the user's party and ideology
give (``ref_group_majority``, OpinionQA only), and the majority answer of the respondents who
agreed most with the user on the user's optimization opinions (``ref_knn``). They read only the
*other* respondents and the user's optimization opinions; nothing of theirs is ever given to
Fermi or to any LLM method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from langchain_fermi.evaluation.metrics import accuracy
from langchain_fermi.evaluation.schema import MethodResult
from langchain_fermi.types import Opinion, UserProfile

__all__ = ["GROUP_ATTRIBUTES", "Population", "reference_result"]

GROUP_ATTRIBUTES = ("Political party", "Political ideology")
"""The group of ``ref_group_majority``: respondents with the same party and ideology."""

KNN_K = 25
"""Neighbours whose answers ``ref_knn`` takes the majority of."""
MIN_GROUP = 10
"""Fewest group members with an answer; below it the group row uses the overall majority."""
MIN_OVERLAP = 5
"""Fewest shared optimization questions for a respondent to count as a neighbour."""


@dataclass
class Population:
    """Every respondent's answers as a matrix (respondents x questions; -1: not answered)."""

    user_ids: list[str]
    question_ids: list[str]
    answers: np.ndarray
    groups: list[str | None]

    @classmethod
    def from_users(cls, users: Sequence[UserProfile]) -> Population:
        """Index the answers of ``users`` by opinion id (the survey item key)."""
        question_ids = sorted({o.id for u in users for o in u.opinions})
        col = {q: i for i, q in enumerate(question_ids)}
        answers = np.full((len(users), len(question_ids)), -1, dtype=np.int16)
        groups: list[str | None] = []
        for r, u in enumerate(users):
            for o in u.opinions:
                answers[r, col[o.id]] = o.answer_index
            values = [u.attributes.get(a) for a in GROUP_ATTRIBUTES]
            groups.append(" / ".join(values) if all(values) else None)  # type: ignore[arg-type]
        return cls([u.user_id for u in users], question_ids, answers, groups)

    def _rows(self, user_id: str) -> np.ndarray:
        """Every respondent but ``user_id``."""
        return np.array([uid != user_id for uid in self.user_ids])

    def _majority(self, rows: np.ndarray, question: str) -> tuple[int | None, int]:
        """The most common answer among ``rows`` (ties: the first option) and how many answered."""
        if question not in self.question_ids:
            return None, 0
        column = self.answers[rows, self.question_ids.index(question)]
        column = column[column >= 0]
        if not len(column):
            return None, 0
        return int(np.bincount(column).argmax()), len(column)

    def majority(self, user_id: str, question: str) -> int | None:
        """``ref_majority``: the answer most other respondents gave."""
        return self._majority(self._rows(user_id), question)[0]

    def group_majority(self, user: UserProfile, question: str) -> int | None:
        """``ref_group_majority``: the answer most others of the user's group gave."""
        key = " / ".join(user.attributes.get(a) or "" for a in GROUP_ATTRIBUTES)
        rows = self._rows(user.user_id) & np.array([g == key for g in self.groups])
        answer, n = self._majority(rows, question)
        return answer if n >= MIN_GROUP else self.majority(user.user_id, question)

    def neighbours(
        self, user_id: str, known: Sequence[Opinion], k: int | None = None
    ) -> np.ndarray:
        """The ``k`` (default `KNN_K`) other respondents who agreed most with ``known`` (a
        boolean row mask)."""
        k = KNN_K if k is None else k
        cols = [self.question_ids.index(o.id) for o in known if o.id in self.question_ids]
        wanted = np.array([o.answer_index for o in known if o.id in self.question_ids])
        others = self._rows(user_id)
        if not cols:
            return others
        sub = self.answers[:, cols]
        answered = (sub >= 0).sum(axis=1)
        agree = (sub == wanted).sum(axis=1)
        sim = np.where(answered >= min(MIN_OVERLAP, len(cols)), agree / np.maximum(answered, 1), -1)
        sim = np.where(others, sim, -2)
        top = np.argsort(-sim, kind="stable")[:k]
        mask = np.zeros(len(self.user_ids), dtype=bool)
        mask[top[sim[top] >= 0]] = True
        return mask if mask.any() else others

    def knn(self, user_id: str, near: np.ndarray, question: str) -> int | None:
        """``ref_knn``: the majority answer of the ``near`` respondents (`neighbours`) who
        answered it, else the overall majority."""
        answer, _ = self._majority(near, question)
        return answer if answer is not None else self.majority(user_id, question)


def reference_result(
    method: str,
    user: UserProfile,
    optimize: Sequence[Opinion],
    test: Sequence[Opinion],
    population: Population | None,
) -> MethodResult:
    """A reference row on the user's test questions (no model call, no cost)."""
    if population is None:
        msg = f"the reference row {method!r} needs the dataset's other respondents"
        raise ValueError(msg)
    if method == "ref_majority":
        predictions = [population.majority(user.user_id, o.id) for o in test]
    elif method == "ref_group_majority":
        predictions = [population.group_majority(user, o.id) for o in test]
    elif method == "ref_knn":
        near = population.neighbours(user.user_id, optimize)
        predictions = [population.knn(user.user_id, near, o.id) for o in test]
    else:
        msg = f"unknown reference row {method!r}"
        raise ValueError(msg)
    correct = [int(p == o.answer_index) for p, o in zip(predictions, test, strict=True)]
    return MethodResult(accuracy=accuracy(correct), correct=correct, predictions=predictions)
