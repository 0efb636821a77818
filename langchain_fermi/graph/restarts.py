"""Independent restarts (`FermiConfig.restarts`): run the search N times, keep the best one.

With a small optimizer a search is mostly decided by the K descriptions it draws in iteration 1:
on the planted benchmark one user's held-out accuracy moves by 0.23 on average between two
optimizer draws. Restarts are the cheap remedy: N searches that share the score cache (each
(prompt, question) is still scored once), each with its own optimizer samples, and the one whose
best served prompt fits the user's scoring opinions best is kept. Selection reads only those
training scores, never held-out opinions.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel

from langchain_fermi.models import seeded_copy
from langchain_fermi.types import Cost, FermiConfig, FermiResult

__all__ = [
    "merge_searches",
    "pick_search",
    "restart_optimizers",
    "restart_seed",
    "restart_thread",
    "search_key",
]


def restart_seed(seed: int, restart: int) -> int:
    """The sampling seed of restart ``restart`` > 0 of a local optimizer: a hash, not
    ``seed + restart``, because a seeded model advances its seed by one per call, so nearby
    seeds would draw the same samples shifted by one call."""
    return zlib.crc32(f"{seed}:restart:{restart}".encode())


def restart_optimizers(
    optimizer: BaseChatModel | Sequence[BaseChatModel], restarts: int, seed: int
) -> list[BaseChatModel]:
    """One optimizer per restart: the models given (one per restart), else the model itself
    for restart 0 and, for a local llama.cpp model, a copy sampling from `restart_seed` for
    the others (a remote model at temperature > 0 samples differently on its own).

    Raises:
        ValueError: a list of models whose length is not ``restarts``.
    """
    if isinstance(optimizer, BaseChatModel):
        return [optimizer] + [
            seeded_copy(optimizer, restart_seed(seed, i)) for i in range(1, restarts)
        ]
    models = list(optimizer)
    if len(models) != restarts:
        msg = (
            f"got {len(models)} optimizer model(s) for {restarts} restart(s); give one per restart"
        )
        raise ValueError(msg)
    return models


def restart_thread(thread_id: str, restart: int) -> str:
    """The checkpoint thread of one restart: restart 0 keeps the run's own thread, so a
    finished one-search run resumes as the first of several."""
    return thread_id if restart == 0 else f"{thread_id}-r{restart}"


def search_key(result: FermiResult, tie_break: str = "order") -> tuple[float, float]:
    """How a search ranks: its best served prompt's score on the scoring opinions, then (with
    ``tie_break="likelihood"``) that prompt's mean probability of the user's options."""
    try:
        best = result.best_served
    except ValueError:  # nothing scored at all
        return (float("-inf"), float("-inf"))
    likelihood = best.likelihood if best.likelihood is not None else float("-inf")
    return (best.score, likelihood if tie_break == "likelihood" else 0.0)


def pick_search(results: Sequence[FermiResult], tie_break: str = "order") -> int:
    """The index of the search to keep: the highest `search_key`, the first on ties."""
    if not results:
        msg = "no search to pick from"
        raise ValueError(msg)
    return max(range(len(results)), key=lambda i: (search_key(results[i], tie_break), -i))


def merge_searches(results: Sequence[FermiResult], config: FermiConfig) -> FermiResult:
    """The kept search as the user's result, with every search attached (`searches`) and
    the cost and dropped replies summed over all of them (what the optimization paid)."""
    chosen = pick_search(results, config.tie_break)
    dropped: Counter[str] = Counter()
    for result in results:
        dropped.update(result.dropped)
    return results[chosen].model_copy(
        update={
            "restart": chosen,
            "searches": list(results),
            "cost": sum((r.cost for r in results), Cost()),
            "dropped": dict(dropped),
            "config": config,
        }
    )
