"""The signal check at the top of every survey report: can the target model show personalization?

Two opposite personas (a very liberal Democrat and a very conservative Republican on OpinionQA;
on GlobalOpinionQA the two countries with the most questions in common, which in its sparse
country x question table is a handful) answer every question both real groups answered, through
the benchmark's own scorer. If the model barely changes its answers between them, or
changes them in a direction unrelated to how the real groups differ, no method can personalize
it, and the report says so in plain words before any accuracy is read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from langchain_fermi.evaluation.references import Population
from langchain_fermi.questions import profile_prompt
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.types import Opinion, UserProfile

__all__ = ["SignalCheck", "persona_sensitivity", "survey_questions"]

MIN_DISTANCE = 0.1
"""Mean total-variation distance between the personas below which the model "barely reacts"."""
MIN_CORRELATION = 0.3
"""Correlation with the real difference below which the shift "does not point the real way"."""

OPINIONQA_PERSONAS = (
    {"Political party": "Democrat", "Political ideology": "Very liberal"},
    {"Political party": "Republican", "Political ideology": "Very conservative"},
)
_PARTY = "Political party"


class SignalCheck(BaseModel):
    """How far the target model moves between two opposite personas, against the real gap."""

    personas: list[str]
    questions: int
    flips: int
    distance: float
    real_flips: int
    real_distance: float
    correlation: float | None
    personalizable: bool
    verdict: str


def survey_questions(users: Sequence[UserProfile]) -> list[Opinion]:
    """One opinion per distinct question of the dataset (its text and choices; the answer is a
    placeholder, never read)."""
    seen: dict[str, Opinion] = {}
    for u in users:
        for o in u.opinions:
            seen.setdefault(o.id, o)
    return [seen[k] for k in sorted(seen)]


def _probs(scorer: AnswerScorer, prompt: str, questions: Sequence[Opinion]) -> list[np.ndarray]:
    out = []
    for a, o in zip(scorer.score([(prompt, q) for q in questions]), questions, strict=True):
        if a.probs is not None:
            out.append(np.asarray(a.probs, dtype=float))
        else:  # a generated answer: one-hot (or uniform when unreadable)
            p = np.full(len(o.choices), 1.0 / len(o.choices))
            if a.index is not None:
                p = np.eye(len(o.choices))[a.index]
            out.append(p)
    return out


def _real(population: Population, rows: np.ndarray, question: str, n: int) -> np.ndarray | None:
    column = population.answers[rows, population.question_ids.index(question)]
    column = column[column >= 0]
    if not len(column):
        return None
    return np.bincount(column, minlength=n)[:n] / len(column)


def _groups(
    population: Population, users: Sequence[UserProfile], dataset: str
) -> tuple[list[dict[str, str]], list[np.ndarray]]:
    """The two personas' attributes and the rows of the real groups they stand for."""
    if dataset == "opinionqa":
        party = [u.attributes.get(_PARTY) for u in users]
        rows = [np.array([p == a[_PARTY] for p in party]) for a in OPINIONQA_PERSONAS]
        return [dict(a) for a in OPINIONQA_PERSONAS], rows
    answered = (population.answers >= 0).astype(np.int32)
    shared = answered @ answered.T  # the pair of countries with the most questions in common
    np.fill_diagonal(shared, -1)
    top = np.unravel_index(int(np.argmax(shared)), shared.shape)
    rows = [np.arange(len(users)) == i for i in top]
    return [dict(users[int(i)].attributes) for i in top], rows


def persona_sensitivity(
    scorer: AnswerScorer, users: Sequence[UserProfile], population: Population, dataset: str
) -> SignalCheck:
    """Answer every question as two opposite personas and compare with the real groups.

    Args:
        scorer: the benchmark's scorer (target model, calibration, cache).
        users: every respondent of the dataset (the population's rows, same order).
        population: their answers.
        dataset: ``"opinionqa"`` (party personas) or ``"globalopinionqa"`` (country personas).
    """
    personas, rows = _groups(population, users, dataset)
    questions = [  # the questions both real groups answered (all of a Pew wave's)
        q
        for q in survey_questions(users)
        if q.id in population.question_ids
        and all(_real(population, r, q.id, len(q.choices)) is not None for r in rows)
    ]
    prompts = [profile_prompt(UserProfile(user_id="persona", attributes=a)) for a in personas]
    model = [_probs(scorer, p, questions) for p in prompts]
    flips = real_flips = 0
    dist: list[float] = []
    real_dist: list[float] = []
    shift: list[float] = []
    real_shift: list[float] = []
    for i, q in enumerate(questions):
        p, r = model[0][i], model[1][i]
        flips += int(p.argmax() != r.argmax())
        dist.append(0.5 * float(np.abs(p - r).sum()))
        a = _real(population, rows[0], q.id, len(q.choices))
        b = _real(population, rows[1], q.id, len(q.choices))
        assert a is not None and b is not None  # kept above
        real_flips += int(a.argmax() != b.argmax())
        real_dist.append(0.5 * float(np.abs(a - b).sum()))
        shift += list(p - r)
        real_shift += list(a - b)
    corr = None
    if len(shift) > 2 and np.std(shift) > 0 and np.std(real_shift) > 0:
        corr = float(np.corrcoef(shift, real_shift)[0, 1])
    check = SignalCheck(
        personas=[", ".join(f"{k}: {v}" for k, v in a.items()) for a in personas],
        questions=len(questions),
        flips=flips,
        distance=float(np.mean(dist)) if dist else 0.0,
        real_flips=real_flips,
        real_distance=float(np.mean(real_dist)) if real_dist else 0.0,
        correlation=corr,
        personalizable=False,
        verdict="",
    )
    return _with_verdict(check)


def _with_verdict(c: SignalCheck) -> SignalCheck:
    moves = c.distance >= MIN_DISTANCE
    aligned = c.correlation is not None and c.correlation >= MIN_CORRELATION
    corr = "n/a" if c.correlation is None else f"{c.correlation:.2f}"
    facts = (
        f"two opposite personas ({' vs '.join(c.personas)}) change {c.flips}/{c.questions} of "
        f"its answers (the real groups: {c.real_flips}) and move its answer distribution by "
        f"{c.distance:.2f} (real: {c.real_distance:.2f}); the shift correlates {corr} with the "
        "real difference."
    )
    if moves and aligned:
        verdict = f"The target model follows a persona: {facts}"
    else:
        why = "barely reacts to who the person is" if not moves else "moves the wrong way"
        verdict = (
            f"The target model {why}: {facts} No method can show personalization with this "
            "model on this data: read the LLM rows as a test of the pipeline, and the reference "
            "rows for what the data make reachable."
        )
    return c.model_copy(update={"personalizable": moves and aligned, "verdict": verdict})
