"""How `FermiStore` lays users, opinions and prompts out as Chroma rows, and the per-user snapshot.

Chroma metadata must be scalar, so lists (choices, correctness vectors, mis-aligned cases) are JSON
strings. Ids are deterministic: ``"{user}"`` (profile), ``"{user}:{opinion}"`` (opinion) and
``"{user}:p:{generation}:{rank}"`` (prompt), so every read of one user is a get-by-ids: no
``where``-filtered vector search on the hot path (PERF_NOTES: 122 ms against 3-4 ms).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from langchain_fermi.types import FermiResult, MisalignedCase, Opinion, ScoredPrompt, UserProfile

__all__ = [
    "DUMP_FORMAT",
    "KEY_DIM",
    "LRUCache",
    "UserRecord",
    "UserSnapshot",
    "decode_opinion",
    "decode_prompt",
    "dump_user",
    "encode_opinion",
    "encode_prompt",
    "key_vector",
    "load_dump",
    "normalise_rows",
    "opinion_row_id",
    "prompt_row_id",
    "result_prompts",
]

DUMP_FORMAT = "langchain-fermi.user/1"
KEY_DIM = 8
"""Dimension of the placeholder vectors of the users and prompts collections (key-value tables)."""


def opinion_row_id(user_id: str, opinion_id: str) -> str:
    """Chroma id of one opinion; user ids cannot contain ``:``, so the prefix is unambiguous."""
    return f"{user_id}:{opinion_id}"


def prompt_row_id(user_id: str, generation: int, rank: int) -> str:
    """Chroma id of the ``rank``-th best prompt of one saved generation."""
    return f"{user_id}:p:{generation}:{rank}"


def key_vector(key: str) -> list[float]:
    """A fixed unit vector derived from ``key``.

    Chroma stores a vector with every row; the users and prompts collections are looked up by
    id only, so they get this cheap, distinct placeholder instead of a model embedding.
    """
    raw = hashlib.sha256(key.encode()).digest()[:KEY_DIM]
    v = [(b - 127.5) / 127.5 for b in raw]
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


def encode_opinion(user_id: str, o: Opinion) -> dict[str, Any]:
    """Scalar metadata of one opinion row (the document is the question text)."""
    meta: dict[str, Any] = {
        "user_id": user_id,
        "opinion_id": o.id,
        "answer": o.answer,
        "choices": json.dumps(o.choices, ensure_ascii=False),
    }
    if o.topic is not None:
        meta["topic"] = o.topic
    return meta


def decode_opinion(document: str, meta: Mapping[str, Any]) -> Opinion:
    """Rebuild an `Opinion` from its row."""
    return Opinion(
        id=str(meta["opinion_id"]),
        question=document,
        choices=json.loads(str(meta["choices"])),
        answer=str(meta["answer"]),
        topic=meta.get("topic"),
    )


def encode_prompt(user_id: str, p: ScoredPrompt, generation: int, rank: int) -> dict[str, Any]:
    """Scalar metadata of one prompt row (the document is the prompt text)."""
    return {
        "user_id": user_id,
        "generation": generation,
        "rank": rank,
        "score": float(p.score),
        "opinion_ids": json.dumps(p.opinion_ids, ensure_ascii=False),
        "correctness": json.dumps(p.correctness),
        "answers": json.dumps(p.answers, ensure_ascii=False),
        "misaligned": json.dumps(
            [m.model_dump(mode="json") for m in p.misaligned], ensure_ascii=False
        ),
        "model": p.model,
        "iteration": int(p.iteration),
        "variant": p.variant,
    }


def decode_prompt(document: str, meta: Mapping[str, Any]) -> ScoredPrompt:
    """Rebuild a `ScoredPrompt` from its row."""
    return ScoredPrompt(
        text=document,
        score=float(meta["score"]),
        opinion_ids=json.loads(str(meta["opinion_ids"])),
        correctness=json.loads(str(meta["correctness"])),
        answers=json.loads(str(meta["answers"])),
        misaligned=[MisalignedCase.model_validate(m) for m in json.loads(str(meta["misaligned"]))],
        iteration=int(meta.get("iteration", 0)),
        model=str(meta.get("model", "unknown")),
        variant=meta.get("variant", "fermi"),
    )


@dataclass(frozen=True)
class UserRecord:
    """The user's row in the users collection: the profile and the pointers readers follow."""

    user_id: str
    attributes: dict[str, str]
    opinion_ids: list[str]
    revision: int = 0
    generation: int = 0
    n_prompts: int = 0
    summary: dict[str, Any] | None = None

    def to_row(self) -> tuple[str, dict[str, Any]]:
        """(document, metadata) for Chroma."""
        meta: dict[str, Any] = {
            "user_id": self.user_id,
            "revision": self.revision,
            "generation": self.generation,
            "n_prompts": self.n_prompts,
            "opinion_ids": json.dumps(self.opinion_ids, ensure_ascii=False),
            "updated_at": time.time(),
        }
        if self.summary is not None:
            meta["summary"] = json.dumps(self.summary, ensure_ascii=False)
        return json.dumps({"attributes": self.attributes}, ensure_ascii=False), meta

    @classmethod
    def from_row(cls, document: str, meta: Mapping[str, Any]) -> UserRecord:
        """Parse a row written by `to_row`."""
        summary = meta.get("summary")
        return cls(
            user_id=str(meta["user_id"]),
            attributes=dict(json.loads(document or "{}").get("attributes", {})),
            opinion_ids=list(json.loads(str(meta.get("opinion_ids", "[]")))),
            revision=int(meta.get("revision", 0)),
            generation=int(meta.get("generation", 0)),
            n_prompts=int(meta.get("n_prompts", 0)),
            summary=json.loads(str(summary)) if summary else None,
        )

    def prompt_ids(self) -> list[str]:
        """Ids of the current generation's prompts, best first."""
        return [prompt_row_id(self.user_id, self.generation, r) for r in range(self.n_prompts)]


@dataclass(frozen=True)
class UserSnapshot:
    """One consistent view of a user: opinions with their vectors and the current prompts.

    Cached by `FermiStore` per user and replaced (never mutated) when the user's revision changes.
    """

    record: UserRecord
    opinions: tuple[Opinion, ...]
    matrix: np.ndarray = field(repr=False)  # (n_opinions, dim), L2-normalised rows
    prompts: tuple[ScoredPrompt, ...]

    @property
    def user_id(self) -> str:
        return self.record.user_id

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

    def nearest(
        self, query: np.ndarray, k: int, *, among: Collection[str] | None = None
    ) -> list[tuple[Opinion, float]]:
        """The ``k`` opinions most similar to ``query`` (cosine), nearest first.

        Args:
            query: The query embedding (any norm).
            k: How many to return (fewer if the user has fewer).
            among: Only consider these opinion ids (e.g. the ones the prompts were scored on).
        """
        if not self.opinions or k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.matrix.shape[1]:
            msg = (
                f"query embedding has dimension {q.shape[0]} but user {self.user_id!r}'s opinions "
                f"were stored with dimension {self.matrix.shape[1]}: use the same embeddings"
            )
            raise ValueError(msg)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        sims = self.matrix @ q
        idx = np.arange(len(self.opinions))
        if among is not None:
            keep = np.array([o.id in among for o in self.opinions], dtype=bool)
            if keep.any():
                idx = idx[keep]
        # Stable sort on -similarity: equal similarities keep the stored order.
        order = idx[np.argsort(-sims[idx], kind="stable")][:k]
        return [(self.opinions[i], float(sims[i])) for i in order]


def normalise_rows(vectors: Sequence[Sequence[float]] | np.ndarray, dim: int = 0) -> np.ndarray:
    """Stack vectors as float32 rows of unit length (an empty (0, dim) matrix when none)."""
    m = np.asarray(vectors, dtype=np.float32)
    if m.size == 0:
        return np.zeros((0, dim), dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.clip(norms, 1e-12, None)


def result_prompts(
    result: FermiResult, *, include_last_generation: bool = True
) -> list[ScoredPrompt]:
    """The prompt set learned for a user, best first: the memory plus, optionally, the last
    scored generation (FERMI.md *(choice)*), deduplicated by text. Ties keep memory order."""
    chosen = list(result.memory)
    if include_last_generation and result.prompts:
        last = max(p.iteration for p in result.prompts)
        chosen += [p for p in result.prompts if p.iteration == last]
    seen: set[str] = set()
    unique = [p for p in chosen if not (p.text in seen or seen.add(p.text))]
    return sorted(unique, key=lambda p: -p.score)


K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)


def dump_user(snap: UserSnapshot) -> dict[str, Any]:
    """A user as plain JSON data: profile, opinions, prompts (best first) and result summary.

    Vectors are left out: importing re-embeds the questions, which is deterministic for the
    same embedding model and lets a dump move to a store that uses another one.
    """
    user = UserProfile(
        user_id=snap.user_id, attributes=snap.record.attributes, opinions=list(snap.opinions)
    )
    return {
        "format": DUMP_FORMAT,
        "user": user.model_dump(mode="json"),
        "prompts": [p.model_dump(mode="json") for p in snap.prompts],
        "summary": snap.record.summary,
    }


def load_dump(data: Any) -> tuple[UserProfile, list[ScoredPrompt], dict[str, Any] | None]:
    """Validate a `dump_user` dump.

    Raises:
        ValueError: Not a dump of this format, or invalid content.
    """
    if not isinstance(data, dict) or data.get("format") != DUMP_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        msg = f"not a langchain-fermi user dump (format {got!r}, expected {DUMP_FORMAT!r})"
        raise ValueError(msg)
    user = UserProfile.model_validate(data["user"])
    prompts = [ScoredPrompt.model_validate(p) for p in data.get("prompts") or []]
    return user, prompts, data.get("summary")
