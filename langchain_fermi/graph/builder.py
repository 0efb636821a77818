"""Build Fermi's optimization loop as a LangGraph `StateGraph`, and run it for one user.

```
START -> split_opinions -> generate_candidates -> evaluate_candidates -> extract_misaligned
      -> update_memory -(should_continue)-> generate_candidates | END
```
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from langchain_fermi.graph.nodes import NODE_FUNCTIONS, FermiContext, should_continue
from langchain_fermi.graph.rules import last_iteration
from langchain_fermi.graph.state import FermiInput, FermiOutput, FermiState, costs, load_prompts
from langchain_fermi.models import get_chat_model, model_id
from langchain_fermi.scoring import AnswerScorer, ScoreCache
from langchain_fermi.types import FermiConfig, FermiResult, ScoredPrompt, UserProfile

__all__ = ["build_fermi_graph", "default_cache_path", "optimize_user", "result_from_state"]

logger = logging.getLogger(__name__)

_STEPS_PER_ITERATION = 4


def _node(name: str, func: Callable[..., Any], afunc: Callable[..., Any] | None, ctx: FermiContext):
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
    return _STEPS_PER_ITERATION * (config.iterations + 2) + 10


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
        )
    optimizer = get_chat_model(
        optimizer_model, role="optimizer", temperature=config.optimizer_temperature
    )
    ctx = FermiContext(config=config, optimizer=optimizer, scorer=scorer)
    builder = StateGraph(FermiState, input_schema=FermiInput, output_schema=FermiOutput)
    for name, (func, afunc) in NODE_FUNCTIONS.items():
        builder.add_node(name, _node(name, func, afunc, ctx))
    builder.add_edge(START, "split_opinions")
    builder.add_edge("split_opinions", "generate_candidates")
    builder.add_edge("generate_candidates", "evaluate_candidates")
    builder.add_edge("evaluate_candidates", "extract_misaligned")
    builder.add_edge("extract_misaligned", "update_memory")
    builder.add_conditional_edges(
        "update_memory",
        should_continue,
        {"generate_candidates": "generate_candidates", END: END},
    )
    graph = builder.compile(checkpointer=checkpointer, store=store, name="fermi")
    return graph.with_config(recursion_limit=_recursion_limit(config))


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
        config=config,
    )


# ------------------------------------------------------------------------------ optimize_user


def _sqlite_file(saver: BaseCheckpointSaver) -> Path | None:
    """The database file behind a `SqliteSaver` (None for other savers or ``:memory:``)."""
    conn = getattr(saver, "conn", None)
    if not isinstance(conn, sqlite3.Connection):
        return None
    rows = conn.execute("PRAGMA database_list").fetchall()
    files = [r[2] for r in rows if r[1] == "main" and r[2]]
    return Path(files[0]) if files else None


def default_cache_path(checkpoint_path: str | Path) -> Path:
    """Where the score cache lives next to a checkpoint database: ``<name>.scores.sqlite``."""
    path = Path(checkpoint_path)
    return path.with_name(f"{path.stem}.scores.sqlite")


@contextmanager
def _checkpointer(
    checkpointer: BaseCheckpointSaver | str | Path | None,
) -> Iterator[BaseCheckpointSaver | None]:
    """A path opens a `SqliteSaver` for the run and closes it afterwards."""
    if checkpointer is None or isinstance(checkpointer, BaseCheckpointSaver):
        yield checkpointer
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(checkpointer).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def _fingerprint(inputs: dict[str, Any], config: FermiConfig, models: Sequence[str]) -> str:
    raw = json.dumps(
        [inputs["user"], inputs["warm_start"], config.model_dump(mode="json"), list(models)],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _progress_bar(enabled: bool, total: int, user_id: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"fermi {user_id}", unit="it", leave=True)


def _track(bar: Any, mode: str, chunk: Any) -> None:
    """Advance the progress bar on iteration ends; show candidate scoring in its postfix."""
    if bar is None:
        return
    if mode == "custom" and isinstance(chunk, dict) and chunk.get("event") == "scored":
        bar.set_postfix_str(f"scoring {chunk['done']}/{chunk['total']}", refresh=True)
    elif mode == "updates" and isinstance(chunk, dict) and "update_memory" in chunk:
        update = chunk["update_memory"] or {}
        bar.update(1)
        best = (update.get("curve") or [0.0])[-1]
        bar.set_postfix_str(f"best {best:.3f}", refresh=True)


def _stream(
    graph: CompiledStateGraph, inputs: dict[str, Any] | None, run_config: RunnableConfig, bar: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for mode, chunk in graph.stream(
        inputs, run_config, stream_mode=["updates", "custom", "values"]
    ):
        if mode == "values":
            values = chunk
        else:
            _track(bar, mode, chunk)
    return values


def optimize_user(
    user: UserProfile | dict[str, Any],
    target_model: str | BaseChatModel | None = None,
    optimizer_model: str | BaseChatModel | None = None,
    *,
    config: FermiConfig | None = None,
    checkpointer: BaseCheckpointSaver | str | Path | None = None,
    thread_id: str | None = None,
    cache: ScoreCache | str | Path | None = None,
    warm_start: Sequence[str | ScoredPrompt] | None = None,
    progress: bool = True,
) -> FermiResult:
    """Run Fermi for one user and return the learned prompts.

    Args:
        user: the user (profile + opinions).
        target_model: the model to personalize (offline default when ``None``).
        optimizer_model: the model that writes prompts (offline default when ``None``).
        config: hyperparameters.
        checkpointer: a checkpoint saver, or a path to a SQLite file. With one, a run that
            was killed resumes from its last completed step when called again with the same
            thread id; a finished thread returns its final state without any model call.
        thread_id: defaults to the user id.
        cache: a `ScoreCache` or a path. Defaults to ``<checkpoint>.scores.sqlite`` next to a
            SQLite checkpoint, so a resumed run never scores a (prompt, question) twice.
        warm_start: prompts from a previous optimization, scored in iteration 0 next to the
            initial prompt (re-scored on the current opinions; cheap for unchanged ones).
        progress: show a tqdm bar over iterations (and candidate scoring).

    Raises:
        LLMCallError: a model call still failed after its retries (the checkpoint keeps the
            last completed step).
    """
    user = user if isinstance(user, UserProfile) else UserProfile.model_validate(user)
    config = config or FermiConfig()
    target = get_chat_model(target_model, role="target", temperature=config.target_temperature)
    optimizer = get_chat_model(
        optimizer_model, role="optimizer", temperature=config.optimizer_temperature
    )
    texts = [w.text if isinstance(w, ScoredPrompt) else str(w) for w in warm_start or []]
    inputs: dict[str, Any] = {"user": user.model_dump(mode="json"), "warm_start": texts}
    inputs["fingerprint"] = _fingerprint(inputs, config, [model_id(target), model_id(optimizer)])
    run_config: RunnableConfig = {"configurable": {"thread_id": thread_id or user.user_id}}
    with _checkpointer(checkpointer) as saver:
        if cache is None and saver is not None and (db := _sqlite_file(saver)) is not None:
            cache = default_cache_path(db)
        graph = build_fermi_graph(target, optimizer, config=config, checkpointer=saver, cache=cache)
        start: dict[str, Any] | None = inputs
        done = 0
        if saver is not None:
            snapshot = graph.get_state(run_config)
            if snapshot.values.get("fingerprint") == inputs["fingerprint"]:
                if not snapshot.next and snapshot.values.get("stop_reason"):
                    logger.info("thread %s is finished; returning its final state", run_config)
                    return result_from_state(snapshot.values, config)
                start, done = None, len(snapshot.values.get("curve", []))
                logger.info("resuming thread %s after %d iteration(s)", run_config, done)
        bar = _progress_bar(progress, last_iteration(config) + 1, user.user_id)
        if bar is not None:
            bar.update(done)
        try:
            values = _stream(graph, start, run_config, bar)
        finally:
            if bar is not None:
                bar.close()
        if saver is not None:
            values = graph.get_state(run_config).values
    return result_from_state(values, config)
