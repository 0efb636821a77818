"""How an optimization did on questions it never saw: held-out accuracy, iteration by iteration.

`heldout_progress` takes the best prompt after each iteration (by the score on the scoring
opinions, as the memory keeps it) and scores it on held-out questions, so a walkthrough can show
training and held-out accuracy side by side, from the profile prompt (iteration 0) on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from langchain_fermi.types import FermiResult, Opinion

if TYPE_CHECKING:
    from langchain_fermi.scoring import AnswerScorer

__all__ = ["ProgressPoint", "heldout_accuracy", "heldout_progress"]


class ProgressPoint(BaseModel):
    """The best prompt after one iteration: its training score and its held-out accuracy."""

    iteration: int
    train: float
    heldout: float
    text: str


def heldout_accuracy(
    prompts: str | Sequence[str], test: Sequence[Opinion], scorer: AnswerScorer
) -> float:
    """Accuracy on ``test`` with one prompt, or one prompt per question."""
    if not test:
        msg = "heldout_accuracy needs at least one held-out question"
        raise ValueError(msg)
    texts = [prompts] * len(test) if isinstance(prompts, str) else list(prompts)
    answers = scorer.score(list(zip(texts, test, strict=True)))
    return sum(a.index == o.answer_index for a, o in zip(answers, test, strict=True)) / len(test)


def heldout_progress(
    result: FermiResult, test: Sequence[Opinion], scorer: AnswerScorer
) -> list[ProgressPoint]:
    """One point per iteration: the best prompt scored so far (ties: the earlier one)."""
    points: list[ProgressPoint] = []
    best = None
    for iteration in sorted({p.iteration for p in result.prompts}):
        for p in (p for p in result.prompts if p.iteration == iteration):
            if best is None or p.score > best.score:
                best = p
        assert best is not None
        points.append(
            ProgressPoint(
                iteration=iteration,
                train=best.score,
                heldout=heldout_accuracy(best.text, test, scorer),
                text=best.text,
            )
        )
    return points
