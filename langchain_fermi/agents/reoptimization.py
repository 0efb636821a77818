"""`reoptimize`: learn a user's prompts again from their memory, while the agent keeps serving.

Fermi is warm-started from the user's current prompts and runs on every stored opinion, the ones
recorded while serving included. The new prompt set is saved with `FermiStore.save_result`,
which flips the user's generation pointer in one write: readers get the old prompts until then,
the new ones after, never a mix. A run that fails leaves the old prompts untouched.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, overload

from langchain_core.language_models import BaseChatModel

from langchain_fermi.agents.context import resolve_fermi_store
from langchain_fermi.agents.memory import FermiMemoryStore
from langchain_fermi.errors import UnknownUserError
from langchain_fermi.scoring import ScoreCache
from langchain_fermi.store import FermiStore
from langchain_fermi.types import FermiConfig, FermiResult, validate_user_id

__all__ = ["reoptimize"]

logger = logging.getLogger(__name__)

_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()
_USER_LOCKS: dict[str, threading.Lock] = {}


def _executor() -> ThreadPoolExecutor:
    """One background worker: re-optimizations are CPU-heavy, so they queue rather than race."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fermi-reoptimize")
        return _EXECUTOR


def _user_lock(user_id: str) -> threading.Lock:
    with _EXECUTOR_LOCK:
        return _USER_LOCKS.setdefault(user_id, threading.Lock())


def _run(
    fermi: FermiStore,
    user_id: str,
    target_model: str | BaseChatModel | None,
    optimizer_model: str | BaseChatModel | None,
    config: FermiConfig | None,
    cache: ScoreCache | str | Path | None,
    progress: bool,
) -> FermiResult:
    from langchain_fermi.graph import optimize_user  # the graph pulls in llama.cpp lazily

    with _user_lock(user_id):
        user = fermi.get_user(user_id)
        if len(user.opinions) < 2:
            msg = f"user {user_id!r} has {len(user.opinions)} opinion(s); Fermi needs at least 2"
            raise ValueError(msg)
        warm = [p for p in fermi.get_prompts(user_id) if p.variant != "profile"]
        logger.info(
            "re-optimizing %r on %d opinions from %d prompts",
            user_id,
            len(user.opinions),
            len(warm),
        )
        result = optimize_user(
            user,
            target_model,
            optimizer_model,
            config=config,
            cache=cache,
            warm_start=warm,
            progress=progress,
        )
        if not result.memory:
            msg = f"re-optimizing user {user_id!r} produced no scored prompt; old prompts kept"
            raise RuntimeError(msg)
        fermi.save_result(result)  # one pointer flip: readers switch from old to new prompts
        return result


@overload
def reoptimize(
    user_id: str,
    store: FermiStore | FermiMemoryStore,
    target_model: str | BaseChatModel | None = ...,
    optimizer_model: str | BaseChatModel | None = ...,
    *,
    config: FermiConfig | None = ...,
    background: Literal[False] = ...,
    cache: ScoreCache | str | Path | None = ...,
    progress: bool = ...,
) -> FermiResult: ...


@overload
def reoptimize(
    user_id: str,
    store: FermiStore | FermiMemoryStore,
    target_model: str | BaseChatModel | None = ...,
    optimizer_model: str | BaseChatModel | None = ...,
    *,
    config: FermiConfig | None = ...,
    background: Literal[True],
    cache: ScoreCache | str | Path | None = ...,
    progress: bool = ...,
) -> Future[FermiResult]: ...


def reoptimize(
    user_id: str,
    store: FermiStore | FermiMemoryStore,
    target_model: str | BaseChatModel | None = None,
    optimizer_model: str | BaseChatModel | None = None,
    *,
    config: FermiConfig | None = None,
    background: bool = False,
    cache: ScoreCache | str | Path | None = None,
    progress: bool = False,
) -> FermiResult | Future[FermiResult]:
    """Re-run Fermi for one user from their stored memory and save the new prompts atomically.

    Args:
        user_id: The user.
        store: Their memory (`FermiStore` or `FermiMemoryStore`).
        target_model: The model being personalized (a name for `get_chat_model` or a chat
            model; offline default when ``None``). Use the model the agent answers with.
        optimizer_model: The model that writes prompts.
        config: Fermi's hyperparameters (a small ``T`` is usually enough after a warm start).
        background: Run in a background thread and return a `concurrent.futures.Future` at
            once; re-optimizations queue on one worker thread. Readers keep the old prompts
            until the new ones are saved.
        cache: A `ScoreCache` or a path: prompts already scored on unchanged opinions are free.
        progress: Show a progress bar.

    Returns:
        The `FermiResult` (saved), or a future of it when ``background``.

    Raises:
        UnknownUserError: No such user (raised at once, also with ``background``; every later
            error is the future's).
        ValueError: The user has fewer than 2 opinions.
        LLMCallError: A model call kept failing; the old prompts stay in place.
    """
    uid = validate_user_id(user_id)
    fermi = resolve_fermi_store(store)
    if not fermi.has_user(uid):  # fail at once, also in the background mode
        msg = f"unknown user {uid!r}: the store has no such user"
        raise UnknownUserError(msg)
    args: tuple[Any, ...] = (fermi, uid, target_model, optimizer_model, config, cache, progress)
    if background:
        return _executor().submit(_run, *args)
    return _run(*args)
