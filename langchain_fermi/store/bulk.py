"""Load many new users into a `FermiStore` at once (initial imports, migrations, benchmarks).

`FermiStore.save_user` / `save_prompts` make a few Chroma calls per user, which is right for
one re-optimization at a time but slow for 10,000 users. Here opinions are embedded in large
batches and rows are written in Chroma's largest batches, with the same row layout, so the
result is indistinguishable from saving the users one by one (generation 1 each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from langchain_fermi.store.records import (
    UserRecord,
    encode_opinion,
    encode_prompt,
    key_vector,
    opinion_row_id,
    prompt_row_id,
)
from langchain_fermi.types import ScoredPrompt, UserProfile

if TYPE_CHECKING:
    from langchain_fermi.store import FermiStore

__all__ = ["bulk_import"]


def _chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _upsert(collection: Any, batch: int, **columns: Sequence[Any]) -> None:
    n = len(columns["ids"])
    for start in range(0, n, batch):
        collection.upsert(**{k: v[start : start + batch] for k, v in columns.items()})


def bulk_import(
    store: FermiStore,
    items: Iterable[tuple[UserProfile, Sequence[ScoredPrompt]]],
    *,
    users_per_batch: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Add new users, each with their opinions and prompts (best first), in large batches.

    Args:
        store: The target store (its embeddings embed the questions).
        items: ``(user, prompts)`` pairs; the users must not be in the store yet.
        users_per_batch: Users embedded and written per round.
        on_batch: Called with the number of users written so far, after each round.

    Returns:
        The number of users added.

    Raises:
        ValueError: A user is already in the store or appears twice (nothing of that round is
            written).
    """
    max_batch = int(store.client.get_max_batch_size())
    done = 0
    for chunk in _chunks(items, users_per_batch):
        questions = [o.question for u, _ in chunk for o in u.opinions]
        vectors = store.embeddings.embed_documents(questions) if questions else []
        with store._write_lock:
            _write_round(store, chunk, vectors, max_batch)
        done += len(chunk)
        if on_batch is not None:
            on_batch(done)
    return done


def _write_round(
    store: FermiStore,
    chunk: list[tuple[UserProfile, Sequence[ScoredPrompt]]],
    vectors: Sequence[Sequence[float]],
    max_batch: int,
) -> None:
    uids = [u.user_id for u, _ in chunk]
    dupes = sorted({u for u in uids if uids.count(u) > 1})
    existing = store.users.get(ids=list(dict.fromkeys(uids)), include=[])["ids"]
    if dupes or existing:
        msg = f"bulk_import only adds new users; already present or repeated: {existing or dupes}"
        raise ValueError(msg)
    _upsert(
        store.opinions, max_batch,
        ids=[opinion_row_id(u.user_id, o.id) for u, _ in chunk for o in u.opinions],
        documents=[o.question for u, _ in chunk for o in u.opinions],
        metadatas=[encode_opinion(u.user_id, o) for u, _ in chunk for o in u.opinions],
        embeddings=[list(map(float, v)) for v in vectors],
    )  # fmt: skip
    pids = [prompt_row_id(u.user_id, 1, r) for u, ps in chunk for r in range(len(ps))]
    if pids:
        _upsert(
            store.prompts, max_batch,
            ids=pids,
            documents=[p.text for _, ps in chunk for p in ps],
            metadatas=[
                encode_prompt(u.user_id, p, 1, r) for u, ps in chunk for r, p in enumerate(ps)
            ],
            embeddings=[key_vector(i) for i in pids],
        )  # fmt: skip
    # Records last: a reader finds a user only once all of their rows are in place.
    records = [
        UserRecord(u.user_id, dict(u.attributes), [o.id for o in u.opinions], 1, 1, len(ps))
        for u, ps in chunk
    ]
    rows = [r.to_row() for r in records]
    _upsert(
        store.users, max_batch,
        ids=[r.user_id for r in records],
        documents=[doc for doc, _ in rows],
        metadatas=[meta for _, meta in rows],
        embeddings=[key_vector(r.user_id) for r in records],
    )  # fmt: skip
