"""`UserSnapshot`: one consistent, immutable view of a user, with nearest-opinion search.

`FermiStore` caches one snapshot per user and replaces it (never mutates it) when the user's
revision changes, so a snapshot can be shared between threads and read without locks.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from langchain_fermi.models.embeddings import normalise_rows
from langchain_fermi.store.rows import UserRecord
from langchain_fermi.types import Opinion, ScoredPrompt, UserProfile

__all__ = ["UserSnapshot"]


@dataclass(frozen=True)
class UserSnapshot:
    """One consistent view of a user: opinions with their vectors and the current prompts.

    Example:
        >>> snap = store.snapshot("alice")
        >>> [(o.id, round(s, 2)) for o, s in snap.nearest(store.embed_query("guns?"), k=2)]
    """

    record: UserRecord
    opinions: tuple[Opinion, ...]
    matrix: np.ndarray = field(repr=False)  # (n_opinions, dim), L2-normalised rows
    prompts: tuple[ScoredPrompt, ...]

    @property
    def user_id(self) -> str:
        return self.record.user_id

    def profile(self) -> UserProfile:
        """The user's profile with all their opinions."""
        return UserProfile(
            user_id=self.user_id, attributes=self.record.attributes, opinions=list(self.opinions)
        )

    def describe(self) -> dict[str, Any]:
        """Counts and the best score of the user, for listings."""
        best = self.prompts[0] if self.prompts else None
        return {
            "user_id": self.user_id,
            "opinions": len(self.opinions),
            "prompts": len(self.prompts),
            "generation": self.record.generation,
            "best_score": best.score if best else None,
            "model": best.model if best else None,
        }

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``query`` (any norm) with every opinion, in stored order.

        Raises:
            ValueError: The query's dimension differs from the stored vectors'.
        """
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if not self.opinions:
            return np.zeros(0, dtype=np.float32)
        if q.shape[0] != self.matrix.shape[1]:
            msg = (
                f"query embedding has dimension {q.shape[0]} but user {self.user_id!r}'s opinions "
                f"were stored with dimension {self.matrix.shape[1]}: use the same embeddings"
            )
            raise ValueError(msg)
        return self.matrix @ normalise_rows(q)[0]

    def nearest(
        self, query: np.ndarray, k: int, *, among: Collection[str] | None = None
    ) -> list[tuple[Opinion, float]]:
        """The ``k`` opinions most similar to ``query`` (cosine), nearest first.

        Args:
            query: The query embedding (any norm).
            k: How many to return (fewer if the user has fewer).
            among: Only consider these opinion ids (e.g. the ones the prompts were scored on);
                ignored when none of them is stored.
        """
        if not self.opinions or k <= 0:
            return []
        sims = self.similarities(query)
        idx = np.arange(len(self.opinions))
        if among is not None:
            keep = np.array([o.id in among for o in self.opinions], dtype=bool)
            if keep.any():
                idx = idx[keep]
        # Stable sort on -similarity: equal similarities keep the stored order.
        order = idx[np.argsort(-sims[idx], kind="stable")][:k]
        return [(self.opinions[i], float(sims[i])) for i in order]
