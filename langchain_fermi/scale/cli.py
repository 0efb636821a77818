"""What ``fermi optimize --users FILE --concurrency N [--engine ray --address ADDR]`` calls.

The command-line module stays a thin argument parser: it passes its options here and prints the
`BatchResult` (`render_batch`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal

from langchain_fermi.scale.engine import BatchResult, ModelSpec, optimize_users

__all__ = ["optimize_users_file", "render_batch", "run_batch", "store_spec"]


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


def store_spec(path: Path | None) -> dict[str, Any]:
    """How a Ray worker opens the store the command names: the Chroma server of
    ``$FERMI_CHROMA_HOST``/``$FERMI_CHROMA_PORT`` (workers do not inherit the driver's
    environment), else the ``--store`` folder (a folder every worker sees), else the default."""
    host = os.environ.get("FERMI_CHROMA_HOST")
    if host and path is None:
        return {"host": host, "port": int(os.environ.get("FERMI_CHROMA_PORT") or 8000)}
    return {"path": str(path)} if path is not None else {}


def run_batch(
    args: argparse.Namespace,
    users: Sequence[Any],
    models: tuple[Any, Any],
    config: Any,
    *,
    store: Any,
    cache: Any,
    out: IO[str],
) -> BatchResult:
    """``fermi optimize --concurrency N [--engine ray --address ADDR]``: the users at once,
    one line per user as it finishes, then the batch summary (`render_batch`).

    With ``--engine ray`` the models go to the workers by name (``--model``,
    ``--optimizer-model``), the checkpoint must be a ``postgresql://`` URL, and the store is
    `store_spec`.
    """

    def report(outcome: Any) -> None:
        if outcome.status == "failed":
            print(f"user {outcome.user_id}: failed: {outcome.error}", file=out, flush=True)
        elif outcome.status == "skipped":
            print(f"user {outcome.user_id}: already in the store, skipped", file=out, flush=True)
        else:
            best = f"{outcome.best_score:.3f}" if outcome.best_score is not None else "?"
            line = f"user {outcome.user_id}: best {best}, {outcome.cost.target_calls} target calls"
            print(f"{line}, {outcome.seconds:.1f} s", file=out, flush=True)

    options: dict[str, Any] = {"config": config, "concurrency": args.concurrency}
    if args.engine == "ray":
        models = (args.model, args.optimizer_model)
        options |= {"engine": "ray", "address": args.address, "checkpointer": args.checkpoint}
        options["store"] = None if store is None else store_spec(getattr(args, "store", None))
    else:
        options |= {"store": store, "checkpointer": args.checkpoint, "cache": cache}
    batch = optimize_users(list(users), *models, on_outcome=report, **options)
    print(render_batch(batch), file=out, flush=True)
    return batch
