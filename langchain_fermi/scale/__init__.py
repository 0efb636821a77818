"""Optimizing many users at once: in-process concurrency, one rate limit, Ray, Postgres.

* `optimize_users` / `aoptimize_users` (`engine`): N users at once on one event loop, per-user
  checkpoint threads, failures reported per user, finished users skipped on a re-run.
* `RateLimit`, `RateLimits`, `SlidingWindowLimiter`, `with_rate_limit` (`ratelimit`): requests
  and tokens per minute, per role, shared by every call of a process.
* `optimize_users_ray` (`ray_engine`): users as Ray tasks, with Postgres checkpoints and scores
  (`postgres`) and a Chroma server; a cluster-wide limit through one Ray actor.
* `local`: throw-away PostgreSQL / Chroma / Ray on 127.0.0.1 for tests and benchmarks.

Ray and Postgres need the ``scale`` extra (``pip install 'langchain-fermi[scale]'``); they are
imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_fermi.scale.cli import optimize_users_file
    from langchain_fermi.scale.engine import (
        BatchResult,
        UserOutcome,
        aoptimize_users,
        optimize_users,
    )
    from langchain_fermi.scale.postgres import (
        PostgresResponseCache,
        PostgresScoreCache,
        apostgres_checkpointer,
        postgres_checkpointer,
    )
    from langchain_fermi.scale.ratelimit import (
        RateLimit,
        RateLimits,
        SlidingWindowLimiter,
        with_rate_limit,
    )
    from langchain_fermi.scale.ray_engine import optimize_users_ray

_EXPORTS = {
    "BatchResult": "batch",
    "UserOutcome": "batch",
    "aoptimize_users": "engine",
    "optimize_users": "engine",
    "PostgresResponseCache": "postgres",
    "PostgresScoreCache": "postgres",
    "apostgres_checkpointer": "postgres",
    "postgres_checkpointer": "postgres",
    "RateLimit": "ratelimit",
    "RateLimits": "ratelimit",
    "SlidingWindowLimiter": "ratelimit",
    "with_rate_limit": "ratelimit",
    "optimize_users_ray": "ray_engine",
    "optimize_users_file": "cli",
}

__all__ = [
    "BatchResult",
    "PostgresResponseCache",
    "PostgresScoreCache",
    "RateLimit",
    "RateLimits",
    "SlidingWindowLimiter",
    "UserOutcome",
    "aoptimize_users",
    "apostgres_checkpointer",
    "optimize_users",
    "optimize_users_file",
    "optimize_users_ray",
    "postgres_checkpointer",
    "with_rate_limit",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
