"""What each benchmark method puts in front of the target model for a user's test questions.

Every method but ``random`` answers a test question the same way: a system prompt, then the
question formatted by `format_question`, scored by the same `AnswerScorer` with the same target
model. Methods differ only in the system prompt they choose per question, built here from what
the method may see: nothing (zero-shot), the profile, the user's retrieved optimization opinions
(few-shot), or the prompts learned on the optimization opinions (OPRO, Fermi).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from langchain_fermi.evaluation.retrievers import Bm25Retriever, DenseRetriever
from langchain_fermi.questions import profile_prompt
from langchain_fermi.retrieval import select_prompt
from langchain_fermi.types import FermiResult, Opinion, UserProfile

__all__ = [
    "MethodPrompts",
    "best_prompts",
    "few_shot_prompt",
    "few_shot_prompts",
    "profile_prompts",
    "retrieval_of_prompt",
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


def best_prompts(result: FermiResult, test: Sequence[Opinion]) -> MethodPrompts:
    """The single best learned prompt (highest score on the scoring opinions) for every question."""
    return MethodPrompts(prompts=[result.best.text] * len(test))


def retrieval_of_prompt(
    result: FermiResult,
    test: Sequence[Opinion],
    retriever: DenseRetriever,
    *,
    num_neighbors: int,
) -> MethodPrompts:
    """Fermi's inference: per question, the learned prompt that is best on its Ñ neighbours.

    ``retriever`` must index the opinions the prompts were scored on (the optimization
    opinions that carry correctness values); neighbours come from it only.
    """
    k = min(num_neighbors, len(retriever.opinions))
    neighbours = retriever.top_k_many([o.question for o in test], k)
    prompts: list[str] = []
    detail: list[dict[str, object]] = []
    for near in neighbours:
        sel = select_prompt(result.memory, [o.id for o in near], strategy="retrieval")
        assert sel.prompt is not None  # "retrieval" always picks a prompt or raises
        prompts.append(sel.prompt.text)
        detail.append({"neighbours": [o.id for o in near], "prompt_index": sel.index})
    return MethodPrompts(prompts=prompts, detail=detail)


def scored_opinions(result: FermiResult, optimize: Sequence[Opinion]) -> list[Opinion]:
    """The optimization opinions that the learned prompts carry a correctness value for.

    Retrieval-of-Prompt can only compare prompts on opinions they were scored on; the
    demonstration split (shown to the optimizer, not scored) is left out.
    """
    scored = {i for p in result.memory for i in p.opinion_ids}
    return [o for o in optimize if o.id in scored]
