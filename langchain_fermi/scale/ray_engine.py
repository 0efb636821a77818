"""Many users across machines: Ray tasks, Postgres checkpoints and scores, a Chroma server.

The users are cut into ``tasks`` chunks; each chunk is one Ray task (``num_cpus`` declared,
``max_retries`` on worker death, ``retry_exceptions`` for lost connections) that runs
`aoptimize_users` on its chunk, ``concurrency`` users at once. Everything a retried task needs
is outside the worker: the checkpoints (``AsyncPostgresSaver``, one thread per user), the score
cache (`PostgresScoreCache`), each target reply as it arrives (`PostgresResponseCache`), and the
results (`FermiStore` on a Chroma server). So a task retried after its worker died skips the
users it had saved, resumes the one it was in the middle of from its last checkpoint, and scores
no (prompt, question) whose answer had come back.

Rate limits hold for the whole cluster: one `RateLimitActor` keeps the sliding windows, and
every worker's model calls reserve through it (`RayRateLimiter`, one round trip per call).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from langchain_fermi.errors import ModelNotInstalledError
from langchain_fermi.scale.engine import (
    BatchResult,
    ModelSpec,
    UserOutcome,
    _as_users,
    is_postgres_url,
)
from langchain_fermi.scale.ratelimit import RateLimits, SlidingWindowLimiter, WindowLimiter
from langchain_fermi.types import FermiConfig, UserProfile

__all__ = ["RateLimitActor", "RayRateLimiter", "optimize_users_ray"]

logger = logging.getLogger(__name__)

StoreSpec = Mapping[str, Any] | Callable[[], Any] | None
"""How a worker opens the store: `FermiStore` keyword arguments or a zero-argument factory."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as e:
        msg = "engine='ray' needs the scale extra: pip install 'langchain-fermi[scale]'"
        raise ModelNotInstalledError(msg) from e
    return ray


class RateLimitActor:
    """The cluster's sliding windows, one per role; run as a Ray actor (one process, serial).

    Every admission is decided by this one actor with its own clock, so the windows are exact
    for all workers together; the price is one round trip per model call (about a millisecond,
    next to hundreds for the call itself).
    """

    def __init__(self, limits: RateLimits) -> None:
        self._limiters = {
            role: SlidingWindowLimiter(limit)
            for role, limit in (("target", limits.target), ("optimizer", limits.optimizer))
            if limit is not None
        }

    def reserve(self, role: str, tokens: int) -> float:
        """Admit one request of ``tokens`` for ``role`` now (``0.0``) or the seconds to wait."""
        limiter = self._limiters.get(role)
        return 0.0 if limiter is None else limiter.reserve(tokens)

    def usage(self) -> dict[str, tuple[int, int]]:
        """Requests and tokens in each role's current window."""
        return {role: limiter.usage() for role, limiter in self._limiters.items()}


class RayRateLimiter(WindowLimiter):
    """A `WindowLimiter` that reserves through the cluster's `RateLimitActor`.

    Example:
        >>> actor = ray.remote(RateLimitActor).remote(RateLimits(target=RateLimit(3000)))
        >>> target = with_rate_limit(model, RayRateLimiter(actor, "target"))
    """

    def __init__(self, actor: Any, role: str) -> None:
        self.actor = actor
        self.role = role

    def reserve(self, tokens: int = 0) -> float:
        """Ask the actor (blocking on the round trip)."""
        return float(_ray().get(self.actor.reserve.remote(self.role, int(tokens))))

    async def areserve(self, tokens: int = 0) -> float:
        """Ask the actor without blocking the event loop (Ray object refs are awaitable)."""
        return float(await self.actor.reserve.remote(self.role, int(tokens)))


# ------------------------------------------------------------------------------ the task


def _open_store(spec: StoreSpec) -> Any:
    if spec is None:
        return None
    if callable(spec):
        return spec()
    from langchain_fermi.store import FermiStore

    return FermiStore(**dict(spec))


def _mark(progress_dir: str | None, chunk: int) -> None:
    """Leave ``task-<chunk>-<pid>`` in ``progress_dir``: which worker process runs which chunk."""
    if progress_dir:
        Path(progress_dir, f"task-{chunk}-{os.getpid()}").write_text(f"{time.time()}\n")


def _run_chunk(
    chunk: int, users: list[dict[str, Any]], job: dict[str, Any]
) -> list[dict[str, Any]]:
    """One Ray task: optimize ``users`` (``job["concurrency"]`` at once) and return outcomes."""
    import asyncio

    from langchain_fermi.scale.engine import aoptimize_users, limited_models

    _mark(job["progress_dir"], chunk)
    config = FermiConfig.model_validate(job["config"])
    actor = job["actor"]
    limiters = (
        (RayRateLimiter(actor, "target"), RayRateLimiter(actor, "optimizer"))
        if actor is not None
        else None
    )
    target, optimizer = limited_models(job["target"], job["optimizer"], config, limiters=limiters)
    replies = None
    if job["response_cache"] and is_postgres_url(job["cache"]):
        from langchain_fermi.scale.postgres import PostgresResponseCache

        replies = PostgresResponseCache(job["cache"])
        target = target.model_copy(update={"cache": replies})
    try:
        batch = asyncio.run(
            aoptimize_users(
                users,
                target,
                optimizer,
                config=config,
                concurrency=job["concurrency"],
                store=_open_store(job["store"]),
                checkpointer=job["checkpointer"],
                cache=job["cache"],
                skip_done=job["skip_done"],
                keep_results=job["keep_results"],
            )
        )
    finally:
        if replies is not None:
            replies.close()
    return [o.model_dump(mode="json") for o in batch.outcomes]


def _create_tables(checkpointer: str | None, cache: str | None, response_cache: bool) -> None:
    """Create the Postgres tables once, on the driver, before any task starts."""
    if checkpointer is None and cache is None:
        return
    from langchain_fermi.scale import postgres

    if checkpointer is not None:
        with postgres.postgres_checkpointer(checkpointer, pool_size=1):
            pass
    if cache is not None:
        postgres.PostgresScoreCache(cache, pool_size=1).close()
        if response_cache:
            postgres.PostgresResponseCache(cache, pool_size=1).close()


def _retry_exceptions() -> list[type[BaseException]]:
    """Task errors worth a retry: lost connections (the database, the store, the API)."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    with contextlib.suppress(ImportError):
        import psycopg

        kinds.append(psycopg.OperationalError)
    return kinds


def _chunks(users: list[UserProfile], n: int) -> list[list[UserProfile]]:
    """Round-robin ``users`` into ``n`` non-empty chunks (similar sizes, input order kept)."""
    n = max(1, min(n, len(users)))
    return [users[i::n] for i in range(n)]


def optimize_users_ray(
    users: Iterable[UserProfile | dict[str, Any]],
    target_model: ModelSpec = None,
    optimizer_model: ModelSpec = None,
    *,
    address: str | None = None,
    config: FermiConfig | None = None,
    concurrency: int = 8,
    tasks: int | None = None,
    num_cpus: float = 1.0,
    max_retries: int = 3,
    store: StoreSpec = None,
    checkpointer: str | None = None,
    cache: str | None = None,
    rate_limits: RateLimits | None = None,
    response_cache: bool = True,
    skip_done: bool = True,
    keep_results: bool = True,
    progress_dir: str | Path | None = None,
    on_outcome: Callable[[UserOutcome], None] | None = None,
) -> BatchResult:
    """Optimize ``users`` on a Ray cluster: chunks of users as Ray tasks, state in Postgres.

    Args:
        users: the users (unique ids).
        target_model: a model name or a zero-argument factory, built in each worker (a model
            object cannot cross processes: its HTTP clients do not pickle).
        optimizer_model: the same for the optimizer.
        address: the cluster (``host:port``); ``None`` reads ``RAY_ADDRESS`` or starts a local
            Ray in this process.
        config: hyperparameters.
        concurrency: users in flight at once inside each task.
        tasks: chunks (Ray tasks); default twice the cluster's CPUs, so a retried task redoes
            little and idle workers take the next chunk.
        num_cpus: CPUs each task declares (a task mostly waits on the API: ``0.5`` packs two
            per core).
        max_retries: Ray retries of a task whose worker died or that raised a connection error.
        store: `FermiStore` keyword arguments (``{"host": ..., "port": ...}`` for a Chroma
            server) or a factory; each worker opens its own.
        checkpointer: a ``postgresql://`` URL (every worker must reach it); ``None`` runs
            without checkpoints (a retried task then starts its users over).
        cache: the score cache's ``postgresql://`` URL; default: the checkpointer's.
        rate_limits: per-role limits for the whole cluster (one `RateLimitActor`).
        response_cache: also keep each target reply in Postgres as it arrives
            (`PostgresResponseCache`), so a killed worker loses only calls in flight.
        skip_done: skip users the store holds a finished optimization for.
        keep_results: bring each `FermiResult` back to the driver.
        progress_dir: each task writes ``task-<chunk>-<worker pid>`` there when it starts.
        on_outcome: called on the driver with each outcome as its task finishes.

    Returns:
        A `BatchResult` in input order (a chunk whose retries ran out marks its users failed).
    """
    ray = _ray()
    people = _as_users(users)
    config = config or FermiConfig()
    if checkpointer is not None and not is_postgres_url(checkpointer):
        msg = (
            f"engine='ray' checkpoints in Postgres: pass a postgresql:// URL, got {checkpointer!r}"
        )
        raise ValueError(msg)
    cache = cache or checkpointer
    _create_tables(checkpointer, cache, response_cache)
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, ignore_reinit_error=True, logging_level=logging.WARNING)
    try:
        actor = None
        if rate_limits is not None:
            actor = ray.remote(RateLimitActor).options(num_cpus=0).remote(rate_limits)
        job = {
            "config": config.model_dump(mode="json", by_alias=False),
            "target": target_model,
            "optimizer": optimizer_model,
            "concurrency": concurrency,
            "store": store,
            "checkpointer": checkpointer,
            "cache": cache,
            "actor": actor,
            "response_cache": response_cache,
            "skip_done": skip_done,
            "keep_results": keep_results,
            "progress_dir": str(progress_dir) if progress_dir else None,
        }
        n = tasks or max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(_run_chunk).options(
            num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=_retry_exceptions()
        )
        started = time.perf_counter()
        chunks = _chunks(people, n)
        refs = {
            remote.remote(i, [u.model_dump(mode="json") for u in chunk], job): chunk
            for i, chunk in enumerate(chunks)
        }
        by_id: dict[str, UserOutcome] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            outcomes = _collect(ray, ready[0], refs[ready[0]])
            for outcome in outcomes:
                by_id[outcome.user_id] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)
        return BatchResult(
            outcomes=[by_id[u.user_id] for u in people],
            wall_seconds=time.perf_counter() - started,
        )
    finally:
        if started_ray:
            ray.shutdown()


def _collect(ray: Any, ref: Any, chunk: list[UserProfile]) -> list[UserOutcome]:
    """A finished task's outcomes; a task that failed for good fails each of its users."""
    try:
        return [UserOutcome.model_validate(o) for o in ray.get(ref)]
    except Exception as e:
        error = f"{type(e).__name__}: {e}".splitlines()[0]
        logger.warning("a task of %d user(s) failed after its retries: %s", len(chunk), error)
        return [UserOutcome(user_id=u.user_id, status="failed", error=error) for u in chunk]
