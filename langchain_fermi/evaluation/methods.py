"""What each benchmark method puts in front of the target model for a user's test questions.

Every method but ``random`` answers a test question the same way: a system prompt, then the
question formatted by `format_question`, scored by the same `AnswerScorer` with the same target
model. Methods differ only in the system prompt they choose per question, built here from what
the method may see: nothing (zero-shot), the profile, the user's retrieved optimization opinions
(few-shot), or the prompts learned on the optimization opinions (OPRO, Fermi). Fermi's
Retrieval-of-Prompt is not re-implemented here: `served_prompts` asks `FermiPersonalizer`, the
selection users get from ``fermi ask`` and the agent middleware.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from langchain_fermi.evaluation.retrievers import Bm25Retriever, DenseRetriever
from langchain_fermi.questions import profile_prompt
from langchain_fermi.types import Opinion, UserProfile

if TYPE_CHECKING:
    from langchain_fermi.personalizer import FermiPersonalizer

__all__ = [
    "MethodPrompts",
    "best_prompts",
    "few_shot_prompt",
    "few_shot_prompts",
    "profile_prompts",
    "served_prompts",
    "zero_shot_prompts",
]

FEW_SHOT_HEAD = "Here are some questions this person answered before, with the person's answers:"
FEW_SHOT_TAIL = "Answer the next question as this person would."


class MethodPrompts(BaseModel):
    """The system prompt a method uses for each test question, plus what it was built from."""

    prompts: list[str]
    detail: list[dict[str, object]] = Field(
        default_factory=list,
        description="Per question: ids only (retrieved opinion ids, chosen prompt index).",
    )


def zero_shot_prompts(test: Sequence[Opinion], neutral: str) -> MethodPrompts:
    """The same neutral prompt for every question: no personalization at all."""
    return MethodPrompts(prompts=[neutral] * len(test))


def profile_prompts(user: UserProfile, test: Sequence[Opinion]) -> MethodPrompts:
    """Fermi's initial, profile-only prompt (P_0) for every question."""
    return MethodPrompts(prompts=[profile_prompt(user)] * len(test))


def few_shot_prompt(examples: Sequence[Opinion], *, profile: str | None = None) -> str:
    """A prompt listing the retrieved past (question, answer) pairs of the user.

    Only the question and the chosen option's text are shown, which keeps the prompt short
    enough for small local models' context windows.
    """
    lines: list[str] = []
    if profile:
        lines += [f"Here is some information about a person:\n{profile}", ""]
    lines.append(FEW_SHOT_HEAD)
    for o in examples:
        lines += [f"Question: {o.question.strip()}", f"Answer: {o.answer}"]
    lines.append(FEW_SHOT_TAIL)
    return "\n".join(lines)


def few_shot_prompts(
    user: UserProfile,
    test: Sequence[Opinion],
    retriever: Bm25Retriever | DenseRetriever,
    *,
    k: int,
    with_profile: bool = False,
) -> MethodPrompts:
    """Few-shot prompts: for each test question, its ``k`` most similar optimization opinions.

    ``retriever`` must index only ``user``'s optimization opinions; the retrieved ids are
    recorded so the report can show that no test opinion was ever put in a prompt.
    """
    k = min(k, len(retriever.opinions))
    if isinstance(retriever, DenseRetriever):
        retrieved = retriever.top_k_many([o.question for o in test], k)
    else:
        retrieved = [retriever.top_k(o.question, k) for o in test]
    profile = user.profile_text() if with_profile else None
    return MethodPrompts(
        prompts=[few_shot_prompt(ex, profile=profile) for ex in retrieved],
        detail=[{"retrieved": [o.id for o in ex]} for ex in retrieved],
    )


def best_prompts(best: str, test: Sequence[Opinion]) -> MethodPrompts:
    """One learned prompt for every question: the best (highest score on the scoring opinions)
    of those the user may be served (`FermiResult.serving_prompts`)."""
    return MethodPrompts(prompts=[best] * len(test))


def served_prompts(
    personalizer: FermiPersonalizer, user_id: str, test: Sequence[Opinion]
) -> MethodPrompts:
    """Fermi's inference as it is served: per question, `FermiPersonalizer.select_prompt`.

    The user's optimization result must be saved in the personalizer's store (with only the
    optimization opinions), so the candidates are what serving has (the memory plus the last
    generation) and the neighbours are the opinions the prompts were scored on.
    """
    prompts: list[str] = []
    detail: list[dict[str, object]] = []
    for o in test:
        sel = personalizer.select_prompt(user_id, o.question)
        if sel.prompt is None:  # only fallback "none" selects no prompt
            msg = f"user {user_id!r}: the served selection chose no prompt ({sel.explanation})"
            raise RuntimeError(msg)
        prompts.append(sel.prompt.text)
        detail.append(
            {"neighbours": [n.opinion_id for n in sel.neighbours], "prompt_index": sel.index}
        )
    return MethodPrompts(prompts=prompts, detail=detail)
