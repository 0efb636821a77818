"""Fermi's pure decision rules: the opinion split, mis-aligned cases, memory and stopping.

No I/O here: the graph nodes call these, and tests can check each rule on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from langchain_fermi.types import Cost, FermiConfig, MisalignedCase, Opinion, ScoredPrompt

__all__ = [
    "budget_spent",
    "last_iteration",
    "misaligned_cases",
    "split_scoring_and_demos",
    "stop_reason",
    "top_memory",
]


def split_scoring_and_demos(
    opinions: Sequence[Opinion], user_id: str, *, demo_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split opinion ids into scoring (about ``1 - demo_fraction``) and demonstration ids.

    Opinions are ranked by sha256(seed, user id, opinion id), so the split is the same in every
    process and for any order of the opinions; both parts keep the user's order. At least one
    opinion is always kept for scoring.

    Raises:
        ValueError: the user has no opinions.
    """
    if not opinions:
        msg = f"user {user_id!r} has no opinions: Fermi needs some to score prompts on"
        raise ValueError(msg)
    n_demo = min(round(len(opinions) * demo_fraction), len(opinions) - 1)

    def rank(o: Opinion) -> bytes:
        return hashlib.sha256(f"{seed}\x1fdemo\x1f{user_id}\x1f{o.id}".encode()).digest()

    demo = {o.id for o in sorted(opinions, key=rank)[:n_demo]}
    return [o.id for o in opinions if o.id not in demo], [o.id for o in opinions if o.id in demo]


def misaligned_cases(
    prompt: ScoredPrompt, opinions: Sequence[Opinion], tau: float
) -> list[MisalignedCase]:
    """The scoring opinions where the prompt's answer scored ``s < tau``.

    ``index`` is the opinion's position in the scoring split, the number the meta-prompt shows.
    """
    by_id = {o.id: o for o in opinions}
    out = []
    rows = zip(prompt.opinion_ids, prompt.correctness, prompt.answers, strict=True)
    for index, (oid, s, answer) in enumerate(rows):
        if s < tau:
            o = by_id[oid]
            out.append(
                MisalignedCase(
                    index=index,
                    opinion_id=oid,
                    question=o.question,
                    choices=list(o.choices),
                    user_answer=o.answer,
                    model_answer=answer,
                    score=s,
                )
            )
    return out


def top_memory(
    memory: Sequence[ScoredPrompt],
    new: Sequence[ScoredPrompt],
    size: int,
    *,
    tie_break: str = "order",
) -> list[ScoredPrompt]:
    """The best ``size`` prompts, best first.

    Tie-break: among equal scores the earlier scored prompt comes first (and is kept when only
    one fits). The sort is stable, the old memory comes before the new prompts, and new
    prompts arrive in scoring order. ``tie_break="likelihood"``: equal scores go first to the
    higher `ScoredPrompt.likelihood` (a prompt without one ranks as if it were lowest), then
    by order.
    """
    if tie_break not in ("order", "likelihood"):
        msg = f"unknown tie_break {tie_break!r}; expected 'order' or 'likelihood'"
        raise ValueError(msg)
    if tie_break == "order":
        return sorted([*memory, *new], key=lambda p: -p.score)[:size]

    def key(p: ScoredPrompt) -> tuple[float, float]:
        return (-p.score, -(p.likelihood if p.likelihood is not None else float("-inf")))

    return sorted([*memory, *new], key=key)[:size]


def budget_spent(cost: Cost, config: FermiConfig) -> str | None:
    """The name of the first budget in ``config`` that ``cost`` has used up, else ``None``."""
    if config.max_target_calls is not None and cost.target_calls >= config.max_target_calls:
        return "max_target_calls"
    opt = config.max_optimizer_calls
    if opt is not None and cost.optimizer_calls >= opt:
        return "max_optimizer_calls"
    if config.max_tokens is not None and cost.total_tokens >= config.max_tokens:
        return "max_tokens"
    return None


def last_iteration(config: FermiConfig) -> int:
    """Index of the last iteration: ``T`` when the last generation is scored, else ``T - 1``.

    Iteration 0 scores the initial prompt and each later one scores K new prompts, so a full
    run makes 1 + K·T prompt evaluations and T optimizer rounds (FERMI.md). With
    ``include_final_candidates=False`` the last generation would never be scored, so it is not
    generated at all.
    """
    if config.include_final_candidates:
        return config.iterations
    return max(config.iterations - 1, 0)


def stop_reason(iteration: int, curve: Sequence[float], total: Cost, config: FermiConfig) -> str:
    """Why the loop stops after ``iteration`` (0-based), or ``""`` to go on.

    Checked in order: ``"iterations"`` (the last iteration is done), a budget
    (``"max_target_calls"``, ``"max_optimizer_calls"``, ``"max_tokens"``), ``"patience"`` (the
    best score has not improved for ``patience`` iterations).
    """
    if iteration >= last_iteration(config):
        return "iterations"
    if spent := budget_spent(total, config):
        return spent
    p = config.patience
    if p is not None and len(curve) > p and curve[-1] <= curve[-1 - p]:
        return "patience"
    return ""
