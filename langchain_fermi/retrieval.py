"""Retrieval-of-Prompt: pick one of a user's learned prompts for a new question, without LLM calls.

Fermi keeps, for every learned prompt, whether the target model answered each of the user's
scoring opinions correctly under it (``ScoredPrompt.correctness``). For a new question the Ñ most
similar past opinions are retrieved, and the prompt that did best *on those opinions* is used: a
prompt that is right about the user's views on, say, guns is preferred for a gun question even
when another prompt has the higher overall score. Everything here is pure (no I/O); `FermiStore`
supplies the neighbours and `FermiPersonalizer` turns the selection into messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from langchain_fermi.errors import NoPromptsError
from langchain_fermi.questions import profile_prompt
from langchain_fermi.types import Opinion, ScoredPrompt, UserProfile

__all__ = [
    "Neighbour",
    "PromptAccuracy",
    "PromptSelection",
    "Strategy",
    "build_profile_prompt",
    "select_prompt",
]

Strategy = Literal["retrieval", "best", "profile"]
"""``retrieval``: best prompt on the query's nearest opinions (Fermi); ``best``: the single best
prompt overall; ``profile``: the profile-only prompt, no optimization (the paper's baseline)."""

STRATEGIES: tuple[str, ...] = ("retrieval", "best", "profile")


class Neighbour(BaseModel):
    """A past opinion of the user that is close to the query."""

    opinion_id: str
    similarity: float | None = Field(None, description="Cosine similarity to the query.")
    question: str | None = None
    answer: str | None = Field(None, description="What the user answered.")


class PromptAccuracy(BaseModel):
    """How one candidate prompt did on the query's neighbours."""

    index: int = Field(description="Position of the prompt in the candidate list.")
    accuracy: float | None = Field(
        description="Mean correctness on the neighbours it was scored on; None if on none."
    )
    covered: int = Field(description="How many neighbours the prompt has a correctness value for.")
    correct: float = Field(description="Sum of correctness on the covered neighbours.")
    score: float = Field(description="The prompt's overall score (the tie-breaker).")


class PromptSelection(BaseModel):
    """The chosen prompt and why it was chosen.

    Example:
        >>> sel = select_prompt(prompts, [("q3", 0.82), ("q7", 0.75), ("q1", 0.60)])
        >>> sel.prompt.text, sel.explanation
    """

    prompt: ScoredPrompt | None = Field(description="None only for the 'none' fallback.")
    index: int | None = Field(
        None, description="Position of the chosen prompt among the candidates."
    )
    strategy: str
    neighbours: list[Neighbour] = Field(default_factory=list)
    accuracies: list[PromptAccuracy] = Field(default_factory=list)
    explanation: str = ""
    user_id: str | None = None


def build_profile_prompt(user: UserProfile, *, model: str = "unknown") -> ScoredPrompt:
    """The profile prompt as an (unscored) `ScoredPrompt` with ``variant="profile"``."""
    return ScoredPrompt(
        text=profile_prompt(user),
        score=0.0,
        opinion_ids=[],
        correctness=[],
        answers=[],
        model=model,
        variant="profile",
    )


def _as_neighbour(item: object) -> Neighbour:
    if isinstance(item, Neighbour):
        return item
    if isinstance(item, str):
        return Neighbour(opinion_id=item)
    if isinstance(item, Opinion):
        return Neighbour(opinion_id=item.id, question=item.question, answer=item.answer)
    if isinstance(item, tuple) and len(item) == 2:
        head, sim = item
        n = _as_neighbour(head)
        return n.model_copy(update={"similarity": float(sim)})
    msg = f"neighbour must be an id, an Opinion or an (id|Opinion, similarity) pair, got {item!r}"
    raise TypeError(msg)


def accuracy_on(prompt: ScoredPrompt, index: int, neighbour_ids: Sequence[str]) -> PromptAccuracy:
    """Mean correctness of ``prompt`` on the neighbours it was scored on."""
    by_id = prompt.correctness_by_id()
    values = [by_id[i] for i in neighbour_ids if i in by_id]
    acc = sum(values) / len(values) if values else None
    return PromptAccuracy(
        index=index, accuracy=acc, covered=len(values), correct=sum(values), score=prompt.score
    )


def _rank_key(a: PromptAccuracy) -> tuple[float, float, int]:
    # Highest accuracy on the neighbours, then the overall score, then the earlier prompt.
    acc = a.accuracy if a.accuracy is not None else float("-inf")
    return (acc, a.score, -a.index)


def _fmt_sim(n: Neighbour) -> str:
    return f"{n.opinion_id} ({n.similarity:.2f})" if n.similarity is not None else n.opinion_id


def _explain_retrieval(
    chosen: PromptAccuracy, accs: list[PromptAccuracy], neighbours: list[Neighbour]
) -> str:
    near = ", ".join(_fmt_sim(n) for n in neighbours)
    best_overall = max(accs, key=lambda a: (a.score, -a.index))
    if chosen.accuracy is None:
        return (
            f"no prompt was scored on the nearest opinions [{near}]; "
            f"fell back to the best overall prompt #{chosen.index} (score {chosen.score:.2f})"
        )
    line = (
        f"nearest opinions: {near}. Prompt #{chosen.index} is right on "
        f"{chosen.correct:g}/{chosen.covered} of them (overall score {chosen.score:.2f})"
    )
    if best_overall.index != chosen.index:
        other = best_overall.accuracy
        other_txt = (
            f"{best_overall.correct:g}/{best_overall.covered}" if other is not None else "none"
        )
        line += (
            f"; the overall best prompt #{best_overall.index} (score {best_overall.score:.2f}) "
            f"gets {other_txt}"
        )
    ties = [a for a in accs if a.index != chosen.index and a.accuracy == chosen.accuracy]
    if ties:
        line += f"; tied with {len(ties)} other prompt(s) on accuracy, won on overall score/order"
    return line


def select_prompt(
    prompts: Sequence[ScoredPrompt],
    neighbours: Sequence[str | Opinion | Neighbour | tuple[str | Opinion, float]],
    *,
    strategy: Strategy = "retrieval",
    profile_prompt: ScoredPrompt | str | None = None,
    user_id: str | None = None,
) -> PromptSelection:
    """Choose the prompt to answer a new question with (Retrieval-of-Prompt).

    Args:
        prompts: The user's learned prompts (any order; ``best first`` is conventional).
        neighbours: The query's nearest past opinions, nearest first: ids, `Opinion`s,
            `Neighbour`s or ``(id_or_opinion, similarity)`` pairs.
        strategy: ``"retrieval"`` (Fermi), ``"best"`` or ``"profile"``.
        profile_prompt: The profile prompt for ``strategy="profile"`` when ``prompts`` holds no
            prompt with ``variant="profile"``.
        user_id: Only used in messages.

    Returns:
        A `PromptSelection`; ties on neighbour accuracy go to the higher overall score, then to
        the earlier prompt.

    Raises:
        NoPromptsError: ``prompts`` is empty (``retrieval`` / ``best``), or no profile prompt is
            available (``profile``).
        ValueError: Unknown strategy.
    """
    if strategy not in STRATEGIES:
        msg = f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}"
        raise ValueError(msg)
    near = [_as_neighbour(n) for n in neighbours]
    who = f"user {user_id!r}" if user_id else "the user"
    if strategy == "profile":
        return _select_profile(prompts, near, profile_prompt, who, user_id)
    if not prompts:
        msg = f"{who} has no optimized prompts; run the optimization first or use a fallback"
        raise NoPromptsError(msg)
    ids = [n.opinion_id for n in near]
    accs = [accuracy_on(p, i, ids) for i, p in enumerate(prompts)]
    if strategy == "best":
        chosen = max(accs, key=lambda a: (a.score, -a.index))
        explanation = (
            f"strategy 'best': prompt #{chosen.index} has the highest overall score "
            f"({chosen.score:.2f}) of {len(prompts)}"
        )
    else:
        chosen = max(accs, key=_rank_key)
        explanation = _explain_retrieval(chosen, accs, near)
    return PromptSelection(
        prompt=prompts[chosen.index],
        index=chosen.index,
        strategy=strategy,
        neighbours=near,
        accuracies=accs,
        explanation=explanation,
        user_id=user_id,
    )


def _select_profile(
    prompts: Sequence[ScoredPrompt],
    near: list[Neighbour],
    profile_prompt: ScoredPrompt | str | None,
    who: str,
    user_id: str | None,
) -> PromptSelection:
    index = next((i for i, p in enumerate(prompts) if p.variant == "profile"), None)
    if index is not None:
        chosen = prompts[index]
        explanation = f"strategy 'profile': the stored profile prompt (score {chosen.score:.2f})"
    elif profile_prompt is not None:
        chosen = (
            profile_prompt
            if isinstance(profile_prompt, ScoredPrompt)
            else ScoredPrompt(
                text=profile_prompt,
                score=0.0,
                opinion_ids=[],
                correctness=[],
                answers=[],
                variant="profile",
            )
        )
        explanation = "strategy 'profile': the prompt built from the user's profile (not scored)"
    else:
        msg = f"{who} has no profile prompt: pass profile_prompt= or store one"
        raise NoPromptsError(msg)
    return PromptSelection(
        prompt=chosen,
        index=index,
        strategy="profile",
        neighbours=near,
        explanation=explanation,
        user_id=user_id,
    )
