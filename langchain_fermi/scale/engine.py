"""Many users at once in one process: N users on one event loop, one rate limit, per-user threads.

Each user runs `aoptimize_user` (the graph's ``astream``: candidates scored through the
scorer's ``ascore``, the optimizer sampled through ``abatch``) with the user id as its checkpoint
thread. ``concurrency`` workers take users from a queue; a user that fails is recorded in the
`BatchResult` and the others go on. A re-run skips the users already finished: those the store
holds a finished optimization for, and (through `aoptimize_user`) those whose checkpoint thread
has finished, which cost no model call.

Every model call of every user passes the same `SlidingWindowLimiter` per role
(`langchain_fermi.scale.ratelimit`), so ``RateLimits`` hold for the process as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver

from langchain_fermi.models import get_chat_model
from langchain_fermi.scale.batch import BatchResult, UserOutcome
from langchain_fermi.scale.ratelimit import (
    RateLimits,
    SlidingWindowLimiter,
    WindowLimiter,
    with_rate_limit,
)
from langchain_fermi.scoring import ScoreCache
from langchain_fermi.types import FermiConfig, UserProfile

if TYPE_CHECKING:
    from langchain_fermi.store import FermiStore

__all__ = [
    "BatchResult",
    "UserOutcome",
    "aoptimize_users",
    "is_postgres_url",
    "limited_models",
    "optimize_users",
    "stored_as_finished",
]

logger = logging.getLogger(__name__)


def is_postgres_url(value: object) -> bool:
    """True for a ``postgresql://`` / ``postgres://`` URL."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


def stored_as_finished(store: FermiStore, user_id: str) -> bool:
    """True when ``store`` holds a finished optimization of the user (its summary has a stop
    reason: `FermiStore.save_result` writes one)."""
    try:
        summary = store.get_summary(user_id)
    except KeyError:
        return False
    return bool(summary and summary.get("stop_reason"))


# ------------------------------------------------------------------------------ resources


@contextlib.asynccontextmanager
async def _open_checkpointer(
    checkpointer: BaseCheckpointSaver | str | Path | None,
) -> AsyncIterator[BaseCheckpointSaver | None]:
    """One saver for the whole batch: a Postgres URL or a SQLite path is opened once."""
    if checkpointer is None or isinstance(checkpointer, BaseCheckpointSaver):
        yield checkpointer
    elif is_postgres_url(checkpointer):
        from langchain_fermi.scale.postgres import apostgres_checkpointer

        async with apostgres_checkpointer(str(checkpointer)) as saver:
            yield saver
    else:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = Path(checkpointer).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            yield saver


def _open_cache(
    cache: ScoreCache | str | Path | None, checkpointer: BaseCheckpointSaver | str | Path | None
) -> ScoreCache:
    """One score cache for every user (also shared between users with identical prompts)."""
    if isinstance(cache, ScoreCache):
        return cache
    if is_postgres_url(cache):
        from langchain_fermi.scale.postgres import PostgresScoreCache

        return PostgresScoreCache(str(cache))
    if cache is not None:
        return ScoreCache(cache)
    if is_postgres_url(checkpointer):
        from langchain_fermi.scale.postgres import PostgresScoreCache

        return PostgresScoreCache(str(checkpointer))
    if isinstance(checkpointer, str | Path):
        from langchain_fermi.graph.run import default_cache_path

        return ScoreCache(default_cache_path(Path(checkpointer).expanduser()))
    return ScoreCache()


ModelSpec = str | BaseChatModel | Callable[[], BaseChatModel] | None
"""A model name, a chat model, or a zero-argument factory (what a Ray worker can rebuild)."""


def _built(model: ModelSpec) -> str | BaseChatModel | None:
    if model is None or isinstance(model, str | BaseChatModel):
        return model
    if callable(model):
        return model()
    msg = f"a model must be a name, a BaseChatModel or a factory, got {type(model).__name__}"
    raise TypeError(msg)


def limited_models(
    target_model: ModelSpec,
    optimizer_model: ModelSpec,
    config: FermiConfig,
    rate_limits: RateLimits | None = None,
    limiters: tuple[WindowLimiter | None, WindowLimiter | None] | None = None,
) -> tuple[BaseChatModel, BaseChatModel]:
    """The target and optimizer models, each behind its role's limiter (one per process).

    ``limiters`` (target, optimizer) wins over ``rate_limits``; the Ray engine passes its
    actor-backed limiters here.
    """
    target = get_chat_model(
        _built(target_model), role="target", temperature=config.target_temperature
    )
    optimizer = get_chat_model(
        _built(optimizer_model), role="optimizer", temperature=config.optimizer_temperature
    )
    if limiters is None and rate_limits is not None:
        limiters = (
            SlidingWindowLimiter(rate_limits.target) if rate_limits.target else None,
            SlidingWindowLimiter(rate_limits.optimizer) if rate_limits.optimizer else None,
        )
    if limiters is not None:
        target = with_rate_limit(target, limiters[0], completion_tokens=1)
        optimizer = with_rate_limit(optimizer, limiters[1])
    return target, optimizer


# ------------------------------------------------------------------------------ one user


async def _one(
    user: UserProfile,
    *,
    target: BaseChatModel,
    optimizer: BaseChatModel,
    config: FermiConfig,
    saver: BaseCheckpointSaver | None,
    cache: ScoreCache,
    store: FermiStore | None,
    skip_done: bool,
    keep_results: bool,
) -> UserOutcome:
    from langchain_fermi.graph.run import aoptimize_user

    started = time.perf_counter()
    uid = user.user_id
    try:
        if (
            skip_done
            and store is not None
            and await asyncio.to_thread(stored_as_finished, store, uid)
        ):
            return UserOutcome(user_id=uid, status="skipped")
        result = await aoptimize_user(
            user, target, optimizer, config=config, checkpointer=saver, cache=cache
        )
        if store is not None:
            await asyncio.to_thread(store.save_result, result, user)
    except Exception as e:  # one user's failure is reported, the batch goes on
        logger.warning("user %s failed: %s: %s", uid, type(e).__name__, e)
        return UserOutcome(
            user_id=uid,
            status="failed",
            error=f"{type(e).__name__}: {e}",
            seconds=time.perf_counter() - started,
        )
    return UserOutcome(
        user_id=uid,
        status="done",
        seconds=time.perf_counter() - started,
        cost=result.cost,
        best_score=result.memory[0].score if result.memory else None,
        result=result if keep_results else None,
    )


# ------------------------------------------------------------------------------ many users


def _as_users(users: Iterable[UserProfile | dict[str, Any]]) -> list[UserProfile]:
    out = [u if isinstance(u, UserProfile) else UserProfile.model_validate(u) for u in users]
    seen: set[str] = set()
    for u in out:
        if u.user_id in seen:
            msg = f"user id {u.user_id!r} appears twice: each user is one checkpoint thread"
            raise ValueError(msg)
        seen.add(u.user_id)
    return out


async def aoptimize_users(
    users: Iterable[UserProfile | dict[str, Any]],
    target_model: ModelSpec = None,
    optimizer_model: ModelSpec = None,
    *,
    config: FermiConfig | None = None,
    concurrency: int = 8,
    store: FermiStore | None = None,
    checkpointer: BaseCheckpointSaver | str | Path | None = None,
    cache: ScoreCache | str | Path | None = None,
    rate_limits: RateLimits | None = None,
    limiters: tuple[WindowLimiter | None, WindowLimiter | None] | None = None,
    skip_done: bool = True,
    keep_results: bool = True,
    on_outcome: Callable[[UserOutcome], None] | None = None,
) -> BatchResult:
    """Optimize ``users`` with ``concurrency`` of them in flight at once, on this event loop.

    Args:
        users: the users (ids must be unique: each is one checkpoint thread).
        target_model: the model to personalize (shared by every user).
        optimizer_model: the model that writes prompts (shared by every user).
        config: hyperparameters; ``config.max_concurrency`` calls per user are in flight at
            once, so up to ``concurrency * max_concurrency`` in all.
        concurrency: users optimized at the same time.
        store: where each finished user's prompt set is saved (and what ``skip_done`` reads).
        checkpointer: an async-capable saver, a SQLite path, or a ``postgresql://`` URL.
        cache: the score cache (a `ScoreCache`, a path or a ``postgresql://`` URL). Default:
            beside a SQLite checkpoint, in the Postgres database of a Postgres one, else in
            memory; one cache for all users either way.
        rate_limits: requests/tokens per minute for the target and the optimizer, shared by
            every call of this process.
        limiters: ready limiters (target, optimizer) instead of ``rate_limits``.
        skip_done: skip users the store holds a finished optimization for.
        keep_results: keep each `FermiResult` in its outcome (turn off for huge batches).
        on_outcome: called with each user's outcome as soon as it is known.

    Returns:
        A `BatchResult`; failures are listed in it, not raised.
    """
    if concurrency < 1:
        msg = f"concurrency must be >= 1, got {concurrency}"
        raise ValueError(msg)
    people = _as_users(users)
    config = config or FermiConfig()
    target, optimizer = limited_models(
        target_model, optimizer_model, config, rate_limits=rate_limits, limiters=limiters
    )
    score_cache = await asyncio.to_thread(_open_cache, cache, checkpointer)
    outcomes: list[UserOutcome | None] = [None] * len(people)
    started = time.perf_counter()
    try:
        async with _open_checkpointer(checkpointer) as saver:
            await _work(
                people,
                outcomes,
                concurrency,
                on_outcome,
                target=target,
                optimizer=optimizer,
                config=config,
                saver=saver,
                cache=score_cache,
                store=store,
                skip_done=skip_done,
                keep_results=keep_results,
            )
    finally:
        if score_cache is not cache:  # opened here: close it here
            await asyncio.to_thread(score_cache.close)
    return BatchResult(
        outcomes=[o for o in outcomes if o is not None],
        wall_seconds=time.perf_counter() - started,
    )


async def _work(
    people: list[UserProfile],
    outcomes: list[UserOutcome | None],
    concurrency: int,
    on_outcome: Callable[[UserOutcome], None] | None,
    **job: Any,
) -> None:
    """``concurrency`` workers taking users from a queue until it is empty."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(people)):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            outcome = await _one(people[i], **job)
            outcomes[i] = outcome
            if on_outcome is not None:
                on_outcome(outcome)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(people)) or 1)))


def optimize_users(
    users: Iterable[UserProfile | dict[str, Any]],
    target_model: ModelSpec = None,
    optimizer_model: ModelSpec = None,
    *,
    engine: Literal["local", "ray"] = "local",
    address: str | None = None,
    **kwargs: Any,
) -> BatchResult:
    """Sync entry point: `aoptimize_users` on a new event loop, or the Ray engine.

    Args:
        users: the users.
        target_model: the target (for ``engine="ray"``: a name or a zero-argument factory,
            built again in each worker).
        optimizer_model: the optimizer (same rule).
        engine: ``"local"`` (this process, ``concurrency`` users at once) or ``"ray"``
            (`langchain_fermi.scale.ray_engine.optimize_users_ray`: users spread over a Ray
            cluster's workers).
        address: the Ray cluster (``host:port``; ``None`` reads ``RAY_ADDRESS`` or starts a
            local one) for ``engine="ray"``.
        **kwargs: the options of `aoptimize_users` (and of ``optimize_users_ray``).

    Example:
        >>> batch = optimize_users(users, "openai:gpt-4o-mini", "openai:gpt-4o", concurrency=32,
        ...                        store=FermiStore(), checkpointer="runs/fermi.sqlite")
        >>> print(batch.summary())
    """
    if engine == "ray":
        from langchain_fermi.scale.ray_engine import optimize_users_ray

        return optimize_users_ray(users, target_model, optimizer_model, address=address, **kwargs)
    if engine != "local":
        msg = f"engine must be 'local' or 'ray', got {engine!r}"
        raise ValueError(msg)
    if address is not None:
        msg = "address= is for engine='ray'"
        raise ValueError(msg)
    future = asyncio.run_coroutine_threadsafe(
        aoptimize_users(users, target_model, optimizer_model, **kwargs), _background_loop()
    )
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop for every sync `optimize_users` call, in a daemon thread.

    Async HTTP clients (langchain-openai keeps one per model) are bound to the loop they were
    first used on; ``asyncio.run`` per call would leave them on a closed loop for the next one.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            thread = threading.Thread(target=_LOOP.run_forever, name="fermi-users", daemon=True)
            thread.start()
        return _LOOP
