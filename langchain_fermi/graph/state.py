"""The Fermi graph's typed state.

State holds only JSON-compatible values (dicts, lists, strings, numbers) so any LangGraph
checkpointer can store it; pydantic objects (`UserProfile`, `ScoredPrompt`, `Cost`) are dumped
with ``model_dump(mode="json")`` and rebuilt where a node needs them. Config and models live in
the graph's closure, never in state.

Lists that only grow (every prompt scored, the curve, the per-iteration costs) use an
``operator.add`` reducer, so each node's streamed update carries only what is new.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict

from langchain_fermi.types import Cost, ScoredPrompt, UserProfile

__all__ = [
    "DROP_REASONS",
    "FermiInput",
    "FermiOutput",
    "FermiState",
    "Node",
    "costs",
    "dump_prompts",
    "load_prompts",
    "load_user",
]

DROP_REASONS = ("duplicate", "empty", "unparseable")
"""Why an optimizer output was not scored."""


class Node:
    """The graph's node names, written once: builder edges, router, progress and tests use these.

    Example:
        >>> chunk = {Node.UPDATE_MEMORY: {"curve": [0.6]}}  # a ``stream_mode="updates"`` chunk
    """

    SPLIT_OPINIONS = "split_opinions"
    GENERATE_CANDIDATES = "generate_candidates"
    EVALUATE_CANDIDATES = "evaluate_candidates"
    EXTRACT_MISALIGNED = "extract_misaligned"
    UPDATE_MEMORY = "update_memory"

    LOOP: tuple[str, ...] = (
        GENERATE_CANDIDATES,
        EVALUATE_CANDIDATES,
        EXTRACT_MISALIGNED,
        UPDATE_MEMORY,
    )
    """One iteration, in order (``update_memory`` routes back to its first node or ends)."""
    ALL: tuple[str, ...] = (SPLIT_OPINIONS, *LOOP)
    """Every node of the paper's loop, in the order a run first reaches them."""
    VALIDATE_PROMPTS = "validate_prompts"
    """With ``FermiConfig.guard``: after the loop, keep the prompts to serve (then the end)."""
    GUARDED: tuple[str, ...] = (*ALL, VALIDATE_PROMPTS)
    """Every node of a guarded graph."""


class FermiInput(TypedDict, total=False):
    """What a run starts from: a user (a `UserProfile` as a dict) and optional warm-start prompts.

    Example:
        >>> {"user": {"user_id": "alice", "attributes": {"AGE": "30-49"}, "opinions": [...]}}
    """

    user: dict[str, Any]
    warm_start: list[str]
    fingerprint: str


class FermiState(TypedDict, total=False):
    """The whole optimization of one user.

    Attributes:
        user: the user, ``UserProfile.model_dump(mode="json")``.
        warm_start: prompt texts scored in iteration 0 next to the initial prompt.
        fingerprint: hash of the inputs and config a run was started with (resume checks it).
        scoring_ids: ids of the opinions prompts are scored on (about 80 %; 60 % with the guard).
        demo_ids: ids of the opinions shown to the optimizer as demonstrations (about 20 %).
        validation_ids: guard: ids held out from scoring to validate the served prompts.
        iteration: index of the iteration in progress (0 scores the initial prompt).
        candidates: prompt texts waiting to be scored in this iteration.
        new_scored: this iteration's scored prompts (`ScoredPrompt` dicts).
        scored: every prompt scored so far, in scoring order.
        memory: the top-L prompts, best first (ties: the earlier scored first).
        curve: the best score after each iteration.
        iteration_cost: the `Cost` of the iteration in progress.
        cost_per_iteration: one `Cost` per finished iteration.
        cost: the total `Cost`.
        dropped: optimizer outputs not scored, by reason (see `DROP_REASONS`).
        stop_reason: why the loop stopped (empty while it runs).
        served: guard: the prompts to serve (`ScoredPrompt` dicts), best first.
        validation: guard: validation accuracy by prompt text.
        fallback: guard: only the profile prompt is served.
    """

    user: dict[str, Any]
    warm_start: list[str]
    fingerprint: str
    scoring_ids: list[str]
    demo_ids: list[str]
    validation_ids: list[str]
    iteration: int
    candidates: list[str]
    new_scored: list[dict[str, Any]]
    scored: Annotated[list[dict[str, Any]], operator.add]
    memory: list[dict[str, Any]]
    curve: Annotated[list[float], operator.add]
    iteration_cost: dict[str, Any]
    cost_per_iteration: Annotated[list[dict[str, Any]], operator.add]
    cost: dict[str, Any]
    dropped: dict[str, int]
    stop_reason: str
    served: list[dict[str, Any]] | None
    validation: dict[str, float]
    fallback: bool


class FermiOutput(TypedDict, total=False):
    """What a finished run returns (a subset of `FermiState`)."""

    user: dict[str, Any]
    scored: list[dict[str, Any]]
    memory: list[dict[str, Any]]
    curve: list[float]
    cost_per_iteration: list[dict[str, Any]]
    cost: dict[str, Any]
    dropped: dict[str, int]
    stop_reason: str
    validation_ids: list[str]
    served: list[dict[str, Any]] | None
    validation: dict[str, float]
    fallback: bool


def load_user(state: FermiState | dict[str, Any]) -> UserProfile:
    """The state's user as a `UserProfile` (raises ``ValueError`` when the input has none)."""
    raw = state.get("user")
    if raw is None:
        msg = "the Fermi graph needs an input with a 'user' (a UserProfile as a dict)"
        raise ValueError(msg)
    return raw if isinstance(raw, UserProfile) else UserProfile.model_validate(raw)


def load_prompts(raw: list[dict[str, Any]] | None) -> list[ScoredPrompt]:
    """Rebuild `ScoredPrompt` objects from their state dicts."""
    return [p if isinstance(p, ScoredPrompt) else ScoredPrompt.model_validate(p) for p in raw or []]


def dump_prompts(prompts: list[ScoredPrompt]) -> list[dict[str, Any]]:
    """`ScoredPrompt` objects as JSON-compatible dicts for the state."""
    return [p.model_dump(mode="json") for p in prompts]


def costs(raw: dict[str, Any] | None) -> Cost:
    """A state cost dict as a `Cost` (zero when absent)."""
    return Cost.model_validate(raw) if raw else Cost()
