"""How `FermiStore` lays users, opinions and prompts out as Chroma rows.

Chroma metadata must be scalar, so lists (choices, correctness vectors, mis-aligned cases) are JSON
strings. Ids are deterministic: ``"{user}"`` (profile), ``"{user}:{opinion}"`` (opinion) and
``"{user}:p:{generation}:{rank}"`` (prompt), so every read of one user is a get-by-ids: no
``where``-filtered vector search on the hot path (PERF_NOTES: 122 ms against 3-4 ms).

A user replaced as a whole (``import_user(..., replace=True)``) gets their opinions written under a
new *epoch*, ``"{user}~{epoch}:{opinion}"``, next to the old rows; the record's single upsert then
switches readers to them. ``~`` never occurs in a user id, so these ids cannot collide with the
epoch-0 ids of any user.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_fermi.types import MisalignedCase, Opinion, ScoredPrompt

__all__ = [
    "KEY_DIM",
    "UserRecord",
    "decode_opinion",
    "decode_prompt",
    "encode_opinion",
    "encode_prompt",
    "key_vector",
    "opinion_row_id",
    "prompt_row_id",
]

KEY_DIM = 8
"""Dimension of the placeholder vectors of the users and prompts collections (key-value tables)."""


def opinion_row_id(user_id: str, opinion_id: str, epoch: int = 0) -> str:
    """Chroma id of one opinion of the given epoch; user ids cannot contain ``:`` or ``~``, so
    the prefix is unambiguous."""
    return f"{user_id}:{opinion_id}" if epoch == 0 else f"{user_id}~{epoch}:{opinion_id}"


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


def encode_opinion(user_id: str, o: Opinion, epoch: int = 0) -> dict[str, Any]:
    """Scalar metadata of one opinion row (the document is the question text)."""
    meta: dict[str, Any] = {
        "user_id": user_id,
        "opinion_id": o.id,
        "answer": o.answer,
        "choices": json.dumps(o.choices, ensure_ascii=False),
        "epoch": epoch,
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
    """Scalar metadata of one prompt row (the document is the prompt text).

    Raises:
        ValueError: A score or correctness value is NaN or infinite (Chroma would drop it and
            the user would become unreadable); `ScoredPrompt` validation stops these earlier,
            this catches objects built with ``model_construct`` or changed afterwards.
    """
    bad = [x for x in (p.score, *p.correctness) if not math.isfinite(float(x))]
    if bad:
        msg = (
            f"user {user_id!r}: prompt #{rank} has a non-finite score or correctness ({bad[0]!r}); "
            "only finite numbers can be stored"
        )
        raise ValueError(msg)
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
        # Chroma metadata cannot hold None: the key is left out when there is no likelihood
        **({"likelihood": float(p.likelihood)} if p.likelihood is not None else {}),
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
        likelihood=float(meta["likelihood"]) if meta.get("likelihood") is not None else None,
    )


@dataclass(frozen=True)
class UserRecord:
    """A user's row in the users collection: the profile and the pointers readers follow.

    ``revision`` grows with every write of the user (caches compare it); ``generation`` names the
    current prompt rows and ``epoch`` the current opinion rows; ``updated_at`` is the time of the
    last write (seconds since the Unix epoch).

    Example:
        >>> rec = store.get_record("alice")
        >>> rec.revision, rec.generation, rec.n_prompts
    """

    user_id: str
    attributes: dict[str, str]
    opinion_ids: list[str]
    revision: int = 0
    generation: int = 0
    n_prompts: int = 0
    summary: dict[str, Any] | None = None
    updated_at: float = 0.0
    epoch: int = 0

    def to_row(self) -> tuple[str, dict[str, Any]]:
        """(document, metadata) for Chroma, stamped with the current time."""
        meta: dict[str, Any] = {
            "user_id": self.user_id,
            "revision": self.revision,
            "generation": self.generation,
            "n_prompts": self.n_prompts,
            "opinion_ids": json.dumps(self.opinion_ids, ensure_ascii=False),
            "updated_at": time.time(),
            "epoch": self.epoch,
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
            updated_at=float(meta.get("updated_at") or 0.0),
            epoch=int(meta.get("epoch", 0)),
        )

    def opinion_row_ids(self) -> list[str]:
        """Chroma ids of the user's opinion rows, in the record's order."""
        return [opinion_row_id(self.user_id, o, self.epoch) for o in self.opinion_ids]

    def prompt_ids(self) -> list[str]:
        """Ids of the current generation's prompts, best first."""
        return [prompt_row_id(self.user_id, self.generation, r) for r in range(self.n_prompts)]
