"""Turning the graph's state into a `FermiResult`: what a finished (or resumed) run returns."""

from __future__ import annotations

from typing import Any

from langchain_fermi.graph.state import costs, load_prompts
from langchain_fermi.types import FermiConfig, FermiResult

__all__ = ["result_from_state"]


def result_from_state(
    values: dict[str, Any], config: FermiConfig | None = None, *, model: str = "unknown"
) -> FermiResult:
    """A `FermiResult` from a finished run's state (``graph.invoke`` output or ``get_state``)."""
    config = config or FermiConfig()
    user = values.get("user") or {}
    prompts = load_prompts(values.get("scored"))
    return FermiResult(
        user_id=user.get("user_id", "unknown"),
        variant=config.variant,
        model=prompts[0].model if prompts else model,
        prompts=prompts,
        memory=load_prompts(values.get("memory")),
        curve=list(values.get("curve", [])),
        cost=costs(values.get("cost")),
        cost_per_iteration=[costs(c) for c in values.get("cost_per_iteration", [])],
        stop_reason=values.get("stop_reason", ""),
        dropped=dict(values.get("dropped") or {}),
        served=None if values.get("served") is None else load_prompts(values.get("served")),
        validation=dict(values.get("validation") or {}),
        validation_ids=list(values.get("validation_ids") or []),
        fallback=bool(values.get("fallback")),
        config=config,
    )
