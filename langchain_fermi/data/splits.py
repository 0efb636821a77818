"""Per-user optimization / test splits, and where the shared evaluation data lives."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import NamedTuple

from langchain_fermi.types import Opinion, UserProfile

__all__ = ["DATA_DIR_ENV", "UserSplit", "find_shared_data_dir", "split_user"]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "FERMI_DATA_DIR"
"""Environment variable naming the folder that holds the evaluation data."""


class UserSplit(NamedTuple):
    """A user's opinions split into the few shown to Fermi and the held-out test queries.

    Example:
        >>> optimize, test = split_user(user, n_optimize=20, n_test=30, seed=0)
    """

    optimize: UserProfile
    """The user (same id and attributes) with only the optimization opinions."""
    test: list[Opinion]
    """Held-out opinions, never shown to the optimizer."""


def _rank_key(seed: int, user_id: str, opinion_id: str) -> bytes:
    # A hash, not `random` or `hash()`: the same on every run, Python version and
    # PYTHONHASHSEED, and independent of the order the opinions are listed in.
    return hashlib.sha256(f"{seed}\x1f{user_id}\x1f{opinion_id}".encode()).digest()


def split_user(
    user: UserProfile, *, n_optimize: int = 20, n_test: int | None = 30, seed: int = 0
) -> UserSplit:
    """Split a user's opinions at random, deterministically, into optimization and test sets.

    Opinions are ranked by a SHA-256 hash of ``(seed, user id, opinion id)``: the same seed
    gives the same split in every process, whatever the order of ``user.opinions``, and
    different users get different shuffles. Both parts keep the user's original order.

    When the user has fewer than ``n_optimize + n_test`` opinions, the optimization set is
    filled first (up to ``n_optimize``) and the test set gets what is left, possibly fewer
    than ``n_test`` or none: a user with few opinions can still be personalized, and
    evaluations that need a test set filter on ``len(split.test)``.

    Args:
        user: The user to split.
        n_optimize: Opinions given to the optimizer (Fermi's few-shot ``U_opi``).
        n_test: Held-out opinions; ``None`` keeps every remaining opinion for test.
        seed: Changes the shuffle.

    Returns:
        A `UserSplit` whose two parts are disjoint.
    """
    if n_optimize < 0 or (n_test is not None and n_test < 0):
        msg = (
            f"user {user.user_id!r}: n_optimize and n_test must be >= 0, got {n_optimize}, {n_test}"
        )
        raise ValueError(msg)
    ranked = sorted(
        range(len(user.opinions)),
        key=lambda i: _rank_key(seed, user.user_id, user.opinions[i].id),
    )
    opt_idx = set(ranked[:n_optimize])
    rest = ranked[n_optimize:] if n_test is None else ranked[n_optimize : n_optimize + n_test]
    test_idx = set(rest)
    if len(user.opinions) < n_optimize + (n_test or 0):
        logger.debug(
            "user %r has %d opinions: %d for optimization, %d for test",
            user.user_id,
            len(user.opinions),
            len(opt_idx),
            len(test_idx),
        )
    optimize = user.model_copy(
        update={"opinions": [o for i, o in enumerate(user.opinions) if i in opt_idx]}
    )
    test = [o for i, o in enumerate(user.opinions) if i in test_idx]
    return UserSplit(optimize=optimize, test=test)


def find_shared_data_dir() -> Path | None:
    """Locate the evaluation data: ``$FERMI_DATA_DIR``, else ``../shared/data``.

    ``../shared/data`` is looked up next to the source checkout, then next to the current
    directory. Returns ``None`` when nothing is found (tests then skip), and also when
    ``FERMI_DATA_DIR`` is set to a folder that does not exist: an explicit setting is not
    silently replaced by a guess.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            return path.resolve()
        logger.warning("%s=%s is not a folder; no shared data", DATA_DIR_ENV, env)
        return None
    repo_root = Path(__file__).resolve().parents[2]
    for base in (repo_root, Path.cwd().resolve()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None
