"""What ``fermi optimize --users FILE --concurrency N [--engine ray --address ADDR]`` calls.

The command-line module stays a thin argument parser: it passes its options here and prints the
`BatchResult` (`render_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_fermi.scale.engine import BatchResult, ModelSpec, optimize_users

__all__ = ["optimize_users_file", "render_batch"]


def optimize_users_file(
    path: str | Path,
    target_model: ModelSpec = None,
    optimizer_model: ModelSpec = None,
    *,
    user_ids: Sequence[str] | None = None,
    concurrency: int = 8,
    engine: Literal["local", "ray"] = "local",
    address: str | None = None,
    **kwargs: Any,
) -> BatchResult:
    """Optimize the users of a JSON / JSON Lines / CSV file (`load_users`), many at once.

    Args:
        path: the users file.
        target_model: the target (a name such as ``"openai:gpt-4o-mini"``, or a model).
        optimizer_model: the optimizer.
        user_ids: only these users (in the file's order); all by default.
        concurrency: users at once (per Ray task with ``engine="ray"``).
        engine: ``"local"`` or ``"ray"``.
        address: the Ray cluster for ``engine="ray"``.
        **kwargs: `optimize_users` options (``config``, ``store``, ``checkpointer``, ``cache``,
            ``rate_limits``, ``skip_done``...).

    Raises:
        UnknownUserError: a requested user id is not in the file.
    """
    from langchain_fermi.data import load_users
    from langchain_fermi.errors import UnknownUserError

    users = load_users(path)
    if user_ids is not None:
        wanted = set(user_ids)
        missing = sorted(wanted - {u.user_id for u in users})
        if missing:
            msg = f"user(s) {missing} not in {path}"
            raise UnknownUserError(msg)
        users = [u for u in users if u.user_id in wanted]
    return optimize_users(
        users,
        target_model,
        optimizer_model,
        engine=engine,
        address=address,
        concurrency=concurrency,
        **kwargs,
    )


def render_batch(batch: BatchResult) -> str:
    """The batch summary, one line per failed user, and the calls and tokens spent."""
    cost = batch.cost
    lines = [
        batch.summary(),
        f"{cost.target_calls} target calls ({cost.cache_hits} cached), "
        f"{cost.optimizer_calls} optimizer calls, {cost.total_tokens} tokens",
    ]
    lines += [f"  failed {o.user_id}: {o.error}" for o in batch.failed]
    return "\n".join(lines)
