"""Build Fermi's optimization loop as a LangGraph `StateGraph` (compile only).

```
START -> split_opinions -> generate_candidates -> evaluate_candidates -> extract_misaligned
      -> update_memory -(should_continue)-> generate_candidates | END
```
With ``FermiConfig.guard`` the loop ends in ``validate_prompts`` (then END): the learned set is
scored on held-out validation opinions and what may be served is kept (`graph.validation`).

Running it for one user (checkpoints, resume, progress) is `langchain_fermi.graph.run`; turning
its state into a `FermiResult` is `langchain_fermi.graph.result`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from langchain_fermi.graph.nodes import NODE_FUNCTIONS, FermiContext, should_continue
from langchain_fermi.graph.state import FermiInput, FermiOutput, FermiState, Node
from langchain_fermi.graph.validation import avalidate_prompts, validate_prompts
from langchain_fermi.models import get_chat_model
from langchain_fermi.scoring import AnswerScorer, ScoreCache
from langchain_fermi.scoring.calibration import resolve_calibration
from langchain_fermi.types import FermiConfig

__all__ = ["build_fermi_graph"]

_MOVED = {
    "optimize_user": "langchain_fermi.graph.run",
    "default_cache_path": "langchain_fermi.graph.run",
    "result_from_state": "langchain_fermi.graph.result",
}
"""Names this module exported in 0.1.0, now elsewhere (still importable here for one release)."""


def __getattr__(name: str) -> Any:
    """``from langchain_fermi.graph.builder import optimize_user`` still works, with a warning."""
    if name not in _MOVED:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    module = _MOVED[name]
    warnings.warn(
        f"langchain_fermi.graph.builder.{name} moved to {module}.{name} "
        "(or import it from langchain_fermi.graph); the old path goes in 0.3",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)


def _node(
    name: str, func: Callable[..., Any], afunc: Callable[..., Any] | None, ctx: FermiContext
) -> RunnableLambda:
    """A node runnable with both a sync and an async path, the context bound in the closure."""

    def run(state: FermiState) -> dict[str, Any]:
        return func(state, ctx)

    async def arun(state: FermiState) -> dict[str, Any]:
        return await afunc(state, ctx) if afunc is not None else func(state, ctx)

    return RunnableLambda(run, afunc=arun, name=name)


def _as_cache(cache: ScoreCache | str | Path | None) -> ScoreCache | None:
    if cache is None or isinstance(cache, ScoreCache):
        return cache
    return ScoreCache(cache)


def _recursion_limit(config: FermiConfig) -> int:
    """LangGraph's step limit: every iteration's nodes, with room for the split and the end."""
    return len(Node.LOOP) * (config.iterations + 2) + 11


def build_fermi_graph(
    target_model: str | BaseChatModel | None,
    optimizer_model: str | BaseChatModel | None,
    /,
    *,
    config: FermiConfig | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    store: BaseStore | None = None,
    cache: ScoreCache | str | Path | None = None,
    scorer: AnswerScorer | None = None,
) -> CompiledStateGraph:
    """Compile Fermi's loop for one target model and one optimizer model.

    Args:
        target_model: the model being personalized (`M`), a name for `get_chat_model` or a
            chat model; ``None`` picks the offline default. Ignored when ``scorer`` is given.
        optimizer_model: the model that writes prompts (`M_opt`); names are resolved at
            ``config.optimizer_temperature``, instances are used as given.
        config: Fermi's hyperparameters (paper defaults when omitted).
        checkpointer: makes runs resumable by thread id (e.g. `SqliteSaver`).
        store: passed to ``compile``.
        cache: a `ScoreCache` or a path for an on-disk one; persist it to resume cheaply.
        scorer: a ready `AnswerScorer` (its model is the target).

    Returns:
        The compiled graph. Its input is ``{"user": UserProfile-as-dict, "warm_start": [...]}``;
        it streams one small update per node with ``stream_mode="updates"``.

    Example:
        >>> graph = build_fermi_graph("smollm2", "smollm2", config=FermiConfig(K=2, T=2))
        >>> state = graph.invoke({"user": user.model_dump(mode="json")})
    """
    config = config or FermiConfig()
    if (
        scorer is not None
        and isinstance(target_model, BaseChatModel)
        and target_model is not scorer.model
    ):
        msg = "pass either target_model or a scorer built on it, not two different models"
        raise ValueError(msg)
    if scorer is None:
        target = get_chat_model(target_model, role="target", temperature=config.target_temperature)
        scorer = AnswerScorer(
            target,
            cache=_as_cache(cache),
            max_concurrency=config.max_concurrency,
            max_retries=config.max_retries,
            retry_backoff=config.retry_backoff,
            calibration=resolve_calibration(config.calibration, target),
        )
    optimizer = get_chat_model(
        optimizer_model, role="optimizer", temperature=config.optimizer_temperature
    )
    ctx = FermiContext(config=config, optimizer=optimizer, scorer=scorer)
    builder = StateGraph(FermiState, input_schema=FermiInput, output_schema=FermiOutput)
    for name, (func, afunc) in NODE_FUNCTIONS.items():
        builder.add_node(name, _node(name, func, afunc, ctx))
    end = END
    if config.guard:
        end = Node.VALIDATE_PROMPTS
        builder.add_node(end, _node(end, validate_prompts, avalidate_prompts, ctx))
        builder.add_edge(end, END)
    builder.add_edge(START, Node.SPLIT_OPINIONS)
    builder.add_edge(Node.SPLIT_OPINIONS, Node.GENERATE_CANDIDATES)
    builder.add_edge(Node.GENERATE_CANDIDATES, Node.EVALUATE_CANDIDATES)
    builder.add_edge(Node.EVALUATE_CANDIDATES, Node.EXTRACT_MISALIGNED)
    builder.add_edge(Node.EXTRACT_MISALIGNED, Node.UPDATE_MEMORY)
    builder.add_conditional_edges(
        Node.UPDATE_MEMORY,
        should_continue,
        {Node.GENERATE_CANDIDATES: Node.GENERATE_CANDIDATES, END: end},
    )
    graph = builder.compile(checkpointer=checkpointer, store=store, name="fermi")
    return graph.with_config(recursion_limit=_recursion_limit(config))
