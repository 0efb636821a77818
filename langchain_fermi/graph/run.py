"""Running Fermi for one user: `optimize_user`, with checkpoints, resume and a progress bar.

A SQLite checkpoint (a path, or any LangGraph checkpointer) makes a killed run resume from its
last completed step; the score cache next to it (`default_cache_path`) means a resumed run never
scores a (prompt, question) twice. With ``FermiConfig(restarts=N)`` the search runs N times on
threads of their own, sharing that cache, and the best one is kept (`graph.restarts`). The
graph itself is `langchain_fermi.graph.builder`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from langchain_fermi.graph.builder import build_fermi_graph
from langchain_fermi.graph.restarts import merge_searches, restart_optimizers, restart_thread
from langchain_fermi.graph.result import result_from_state
from langchain_fermi.graph.rules import last_iteration
from langchain_fermi.graph.state import Node
from langchain_fermi.models import get_chat_model, model_id
from langchain_fermi.scoring import ScoreCache
from langchain_fermi.types import FermiConfig, FermiResult, ScoredPrompt, UserProfile

__all__ = ["aoptimize_user", "default_cache_path", "optimize_user"]

logger = logging.getLogger(__name__)


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
    # one search's settings: `restarts` stays out, so a finished one-search run is restart 0
    settings = config.model_dump(mode="json", exclude={"restarts"})
    raw = json.dumps(
        [inputs["user"], inputs["warm_start"], settings, list(models)],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _progress_bar(enabled: bool, total: int, user_id: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"fermi {user_id}", unit="prompt", leave=True)


def max_prompts(config: FermiConfig, warm_start: int = 0) -> int:
    """Most prompts a run scores: the profile prompt, the warm start, then K per iteration."""
    return 1 + warm_start + config.num_candidates * last_iteration(config)


def _track(bar: Any, mode: str, chunk: Any) -> None:
    """Advance the bar once per scored prompt, with the iteration, best score, calls and tokens
    spent so far in its postfix; at the end the total drops to what was scored (dropped
    optimizer replies are never scored)."""
    if bar is None or not isinstance(chunk, dict):
        return
    if mode == "custom" and chunk.get("event") == "scored":
        bar.update(1)
        bar.best = max(getattr(bar, "best", 0.0), float(chunk.get("score", 0.0)))
        bar.set_postfix_str(
            f"it {chunk.get('iteration', 0)} best {bar.best:.3f} "
            f"calls {chunk.get('calls', 0)} tokens {chunk.get('tokens', 0):,}",
            refresh=True,
        )
    elif mode == "updates" and Node.UPDATE_MEMORY in chunk:
        update = chunk[Node.UPDATE_MEMORY] or {}
        if update.get("stop_reason"):
            bar.total = bar.n
            bar.refresh()


def _stream(
    graph: CompiledStateGraph, inputs: dict[str, Any] | None, run_config: RunnableConfig, bar: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for mode, chunk in graph.stream(
        inputs, run_config, stream_mode=["updates", "custom", "values"]
    ):
        if mode == "values":
            values = cast(dict[str, Any], chunk)
        else:
            _track(bar, mode, chunk)
    return values


@dataclass
class _Run:
    """What `optimize_user` and `aoptimize_user` share: resolved models, inputs, thread."""

    user: UserProfile
    config: FermiConfig
    target: BaseChatModel
    optimizer: BaseChatModel
    inputs: dict[str, Any]
    run_config: RunnableConfig

    def resume_point(self, snapshot: Any) -> tuple[dict[str, Any] | None, int, bool]:
        """From a thread's snapshot: (input or None to resume, prompts scored, finished)."""
        if snapshot is None or snapshot.values.get("fingerprint") != self.inputs["fingerprint"]:
            return self.inputs, 0, False
        if not snapshot.next and snapshot.values.get("stop_reason"):
            logger.info("thread %s is finished; returning its final state", self.run_config)
            return None, 0, True
        done = len(snapshot.values.get("curve", []))
        logger.info("resuming thread %s after %d iteration(s)", self.run_config, done)
        return None, len(snapshot.values.get("scored", [])), False

    def bar(self, progress: bool, done: int) -> Any:
        """A bar over the prompts to score; ``done`` of them were scored before a resume."""
        total = max_prompts(self.config, len(self.inputs["warm_start"]))
        bar = _progress_bar(progress, total, self.user.user_id)
        if bar is not None:
            bar.update(done)
        return bar


OptimizerModels = str | BaseChatModel | Sequence[BaseChatModel] | None
"""An optimizer: a name, a model, ``None`` for the offline default, or one model per restart."""


def _prepare(
    user: UserProfile | dict[str, Any],
    target_model: str | BaseChatModel | None,
    optimizer_model: OptimizerModels,
    config: FermiConfig | None,
    thread_id: str | None,
    warm_start: Sequence[str | ScoredPrompt] | None,
) -> list[_Run]:
    """One `_Run` per restart (one for a plain run): same user, target and inputs, each with
    its optimizer and checkpoint thread."""
    user = user if isinstance(user, UserProfile) else UserProfile.model_validate(user)
    config = config or FermiConfig()
    target = get_chat_model(target_model, role="target", temperature=config.target_temperature)
    if optimizer_model is None or isinstance(optimizer_model, str | BaseChatModel):
        optimizer_model = get_chat_model(
            optimizer_model, role="optimizer", temperature=config.optimizer_temperature
        )
    optimizers = restart_optimizers(optimizer_model, config.restarts, config.seed)
    search = config.model_copy(update={"restarts": 1})
    texts = [w.text if isinstance(w, ScoredPrompt) else str(w) for w in warm_start or []]
    runs = []
    for restart, optimizer in enumerate(optimizers):
        inputs: dict[str, Any] = {"user": user.model_dump(mode="json"), "warm_start": texts}
        inputs["fingerprint"] = _fingerprint(
            inputs, search, [model_id(target), model_id(optimizer)]
        )
        thread = restart_thread(thread_id or user.user_id, restart)
        run_config: RunnableConfig = {"configurable": {"thread_id": thread}}
        runs.append(_Run(user, search, target, optimizer, inputs, run_config))
    return runs


def _finish(results: list[FermiResult], config: FermiConfig | None) -> FermiResult:
    """One search's result as it is; several merged (`merge_searches`)."""
    config = config or FermiConfig()
    return results[0] if config.restarts == 1 else merge_searches(results, config)


def _search(
    run: _Run,
    saver: BaseCheckpointSaver | None,
    cache: ScoreCache | str | Path | None,
    progress: bool,
) -> FermiResult:
    """Run (or resume, or read back) one search on its thread."""
    graph = build_fermi_graph(
        run.target, run.optimizer, config=run.config, checkpointer=saver, cache=cache
    )
    snapshot = graph.get_state(run.run_config) if saver is not None else None
    start, done, finished = run.resume_point(snapshot)
    if finished and snapshot is not None:
        return result_from_state(snapshot.values, run.config)
    bar = run.bar(progress, done)
    try:
        values = _stream(graph, start, run.run_config, bar)
    finally:
        if bar is not None:
            bar.close()
    if saver is not None:
        values = graph.get_state(run.run_config).values
    return result_from_state(values, run.config)


def optimize_user(
    user: UserProfile | dict[str, Any],
    target_model: str | BaseChatModel | None = None,
    optimizer_model: OptimizerModels = None,
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
        optimizer_model: the model that writes prompts (offline default when ``None``), or
            one model per restart (``config.restarts``; by default restart i > 0 of a local
            model samples from its own seed, `graph.restarts.restart_seed`).
        config: hyperparameters.
        checkpointer: a checkpoint saver, or a path to a SQLite file. With one, a run that
            was killed resumes from its last completed step when called again with the same
            thread id; a finished thread returns its final state without any model call.
        thread_id: defaults to the user id (restart i > 0: ``<thread_id>-r<i>``).
        cache: a `ScoreCache` or a path. Defaults to ``<checkpoint>.scores.sqlite`` next to a
            SQLite checkpoint, so a resumed run never scores a (prompt, question) twice.
        warm_start: prompts from a previous optimization, scored in iteration 0 next to the
            initial prompt (re-scored on the current opinions; cheap for unchanged ones).
        progress: show a tqdm bar over iterations (and candidate scoring).

    Raises:
        LLMCallError: a model call still failed after its retries (the checkpoint keeps the
            last completed step).
    """
    runs = _prepare(user, target_model, optimizer_model, config, thread_id, warm_start)
    with _checkpointer(checkpointer) as saver:
        if cache is None and saver is not None and (db := _sqlite_file(saver)) is not None:
            cache = default_cache_path(db)
        if len(runs) > 1 and not isinstance(cache, ScoreCache):
            cache = ScoreCache(cache)  # one cache for every restart (in memory without a path)
        results = [_search(run, saver, cache, progress) for run in runs]
    return _finish(results, config)


@asynccontextmanager
async def _acheckpointer(
    checkpointer: BaseCheckpointSaver | str | Path | None,
) -> AsyncIterator[BaseCheckpointSaver | None]:
    """A path opens an `AsyncSqliteSaver` for the run and closes it afterwards."""
    if checkpointer is None or isinstance(checkpointer, BaseCheckpointSaver):
        yield checkpointer
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = Path(checkpointer).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        yield saver


async def _astream(
    graph: CompiledStateGraph, inputs: dict[str, Any] | None, run_config: RunnableConfig, bar: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    async for mode, chunk in graph.astream(
        inputs, run_config, stream_mode=["updates", "custom", "values"]
    ):
        if mode == "values":
            values = cast(dict[str, Any], chunk)
        else:
            _track(bar, mode, chunk)
    return values


async def aoptimize_user(
    user: UserProfile | dict[str, Any],
    target_model: str | BaseChatModel | None = None,
    optimizer_model: OptimizerModels = None,
    *,
    config: FermiConfig | None = None,
    checkpointer: BaseCheckpointSaver | str | Path | None = None,
    thread_id: str | None = None,
    cache: ScoreCache | str | Path | None = None,
    warm_start: Sequence[str | ScoredPrompt] | None = None,
    progress: bool = False,
) -> FermiResult:
    """Async `optimize_user`: the graph's ``astream`` (``ascore``/``abatch`` model calls), so
    many users run concurrently on one event loop (`langchain_fermi.scale.aoptimize_users`).

    Same arguments as `optimize_user`; the checkpointer must support async access
    (``InMemorySaver``, ``AsyncSqliteSaver``, ``AsyncPostgresSaver``), and a path opens an
    ``AsyncSqliteSaver``, with the score cache at ``<checkpoint>.scores.sqlite`` beside it.
    Restarts (``config.restarts``) run concurrently.

    Raises:
        LLMCallError: a model call still failed after its retries (the checkpoint keeps the
            last completed step).
    """
    runs = _prepare(user, target_model, optimizer_model, config, thread_id, warm_start)
    if cache is None and isinstance(checkpointer, str | Path):
        cache = default_cache_path(Path(checkpointer).expanduser())
    if isinstance(cache, str | Path) or (cache is None and len(runs) > 1):
        # one cache for every restart; opening SQLite touches the disk: not on the event loop
        cache = await asyncio.to_thread(ScoreCache, cache)
    async with _acheckpointer(checkpointer) as saver:
        results = await asyncio.gather(*(_asearch(run, saver, cache, progress) for run in runs))
    return _finish(list(results), config)


async def _asearch(
    run: _Run, saver: BaseCheckpointSaver | None, cache: ScoreCache | None, progress: bool
) -> FermiResult:
    """Async `_search`."""
    graph = build_fermi_graph(
        run.target, run.optimizer, config=run.config, checkpointer=saver, cache=cache
    )
    snapshot = await graph.aget_state(run.run_config) if saver is not None else None
    start, done, finished = run.resume_point(snapshot)
    if finished and snapshot is not None:
        return result_from_state(snapshot.values, run.config)
    bar = run.bar(progress, done)
    try:
        values = await _astream(graph, start, run.run_config, bar)
    finally:
        if bar is not None:
            bar.close()
    if saver is not None:
        values = (await graph.aget_state(run.run_config)).values
    return result_from_state(values, run.config)
