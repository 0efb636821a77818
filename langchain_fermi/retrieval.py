"""Retrieval-of-Prompt: pick one of a user's learned prompts for a new question, without LLM calls.

Fermi keeps, for every learned prompt, whether the target model answered each of the user's
scoring opinions correctly under it (``ScoredPrompt.correctness``). For a new question the Ñ most
similar past opinions are retrieved, and the prompt that did best *on those opinions* is used: a
prompt that is right about the user's views on, say, guns is preferred for a gun question even
when another prompt has the higher overall score. Everything here is pure (no I/O); `FermiStore`
supplies the neighbours and `FermiPersonalizer` turns the selection into messages.

`select_for_question` (through `PromptSelector`, which reads a store) is the one selection path:
`FermiPersonalizer`, the agent middleware and the benchmark all choose through it, so what the
benchmark measures is what users are served.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from langchain_fermi.errors import NoPromptsError, UnknownUserError
from langchain_fermi.questions import profile_prompt
from langchain_fermi.types import (
    DEFAULT_NUM_NEIGHBORS,
    Opinion,
    ScoredPrompt,
    UserProfile,
    scored_opinion_ids,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FALLBACKS",
    "STRATEGIES",
    "Fallback",
    "Neighbour",
    "PromptAccuracy",
    "PromptSelection",
    "Strategy",
    "UserView",
    "build_profile_prompt",
    "select_for_question",
    "select_prompt",
]

Strategy = Literal["retrieval", "best", "profile"]
"""``retrieval``: best prompt on the query's nearest opinions (Fermi); ``best``: the single best
prompt overall; ``profile``: the profile-only prompt, no optimization (the paper's baseline)."""

STRATEGIES: tuple[str, ...] = ("retrieval", "best", "profile")

Fallback = Literal["profile", "none", "raise"]
"""For a user without learned prompts: the profile prompt, no system prompt, or raise
`NoPromptsError`. An unknown user gets no system prompt under ``"none"`` and raises
`UnknownUserError` otherwise (there is no profile to build a prompt from)."""

FALLBACKS: tuple[str, ...] = ("profile", "none", "raise")


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
    fallback: str | None = Field(
        None, description="The fallback that chose this ('profile', 'none'); None: no fallback."
    )

    def trace(self) -> dict[str, Any]:
        """What a trace should show: the choice and the reason, opinion ids but no texts."""
        p = self.prompt
        return {
            "user_id": self.user_id,
            "strategy": self.strategy,
            "fallback": self.fallback,
            "prompt": p.text if p is not None else None,
            "prompt_index": self.index,
            "prompt_score": p.score if p is not None else None,
            "neighbours": [n.opinion_id for n in self.neighbours],
            "explanation": self.explanation,
        }


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


# -- the one selection path -----------------------------------------------------------------------
class UserView(Protocol):
    """What selection reads of a stored user (`FermiStore.snapshot` returns one)."""

    @property
    def prompts(self) -> Sequence[ScoredPrompt]: ...  # best first

    @property
    def record(self) -> Any: ...  # its ``attributes`` build the profile prompt

    def nearest(
        self, query: np.ndarray, k: int, *, among: Collection[str] | None = None
    ) -> list[tuple[Opinion, float]]: ...  # nearest first


def _no_prompt(user_id: str, explanation: str) -> PromptSelection:
    return PromptSelection(
        prompt=None, strategy="none", explanation=explanation, user_id=user_id, fallback="none"
    )


def select_for_question(
    user: UserView | None,
    query_vector: np.ndarray | Callable[[], np.ndarray] | None,
    *,
    user_id: str,
    strategy: Strategy = "retrieval",
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
    fallback: Fallback = "raise",
    scored_only: bool = True,
) -> PromptSelection:
    """Choose a stored user's prompt for one question: the selection every caller shares.

    Pure apart from ``query_vector`` when it is a function (called only when retrieval needs
    the embedding, so ``best``/``profile`` and users without prompts embed nothing).

    Args:
        user: The user's stored view (`FermiStore.snapshot`); ``None`` for an unknown user.
        query_vector: The question's embedding, a function returning it, or ``None`` when there
            is no question (``retrieval`` then uses the best prompt overall).
        user_id: The user, for messages.
        strategy: ``"retrieval"`` (Fermi), ``"best"`` or ``"profile"``.
        num_neighbors: Ñ, the nearest past opinions compared on.
        fallback: For a user without learned prompts (see `Fallback`).
        scored_only: Retrieve only among the opinions the prompts were scored on.

    Raises:
        UnknownUserError: ``user`` is None and ``fallback`` is not ``"none"``.
        NoPromptsError: The user has no learned prompts and ``fallback`` is ``"raise"``.
    """
    if user is None:
        if fallback == "none":
            return _no_prompt(
                user_id, f"unknown user {user_id!r}: fallback 'none', no system prompt"
            )
        msg = f"unknown user {user_id!r}: the store has no such user"
        raise UnknownUserError(msg)
    prompts = list(user.prompts)
    if strategy == "profile" or (not prompts and fallback == "profile"):
        profile = UserProfile(user_id=user_id, attributes=user.record.attributes)
        model = prompts[0].model if prompts else "unknown"
        built = build_profile_prompt(profile, model=model)
        sel = _select_profile(prompts, [], built, repr(user_id), user_id)
        if strategy != "profile":
            sel.fallback = "profile"
            sel.explanation = (
                f"user {user_id!r} has no optimized prompts; fallback 'profile': {sel.explanation}"
            )
        return sel
    if not prompts:
        if fallback == "none":
            return _no_prompt(
                user_id, f"user {user_id!r} has no optimized prompts; fallback 'none'"
            )
        msg = (
            f"user {user_id!r} has no optimized prompts: run `fermi optimize` / optimize_user and "
            "save the result, or select with fallback='profile' or 'none'"
        )
        raise NoPromptsError(msg)
    if strategy != "retrieval":
        return select_prompt(prompts, [], strategy=strategy, user_id=user_id)
    query = query_vector() if callable(query_vector) else query_vector
    if query is None:
        sel = select_prompt(prompts, [], strategy="best", user_id=user_id)
        sel.explanation = f"no question to retrieve neighbours for; {sel.explanation}"
        return sel
    among = scored_opinion_ids(prompts) if scored_only else None
    neighbours = user.nearest(query, num_neighbors, among=among or None)
    return select_prompt(prompts, neighbours, strategy="retrieval", user_id=user_id)
