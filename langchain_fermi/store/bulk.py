"""Load many new users into a `FermiStore` at once (initial imports, migrations, benchmarks).

`FermiStore.save_user` / `save_prompts` make a few Chroma calls per user, which is right for
one re-optimization at a time but slow for 10,000 users. `FermiStore.bulk_import` embeds the
opinions of many users in one batch and writes each round's rows together, through the same row
builders and writer (`tables.Tables.upsert`) as single saves, so the result is indistinguishable
from saving the users one by one (generation 1 each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from langchain_fermi.store.rows import UserRecord
from langchain_fermi.store.tables import Rows, Tables, opinion_rows, prompt_rows
from langchain_fermi.types import ScoredPrompt, UserProfile

if TYPE_CHECKING:
    from langchain_fermi.store.fermi_store import FermiStore

__all__ = ["bulk_import", "chunks", "import_rounds", "write_round"]

Item = tuple[UserProfile, Sequence[ScoredPrompt]]


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    if size < 1:
        msg = f"users_per_batch must be >= 1, got {size}"
        raise ValueError(msg)
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def write_round(tables: Tables, chunk: list[Item], vectors: Sequence[Sequence[float]]) -> None:
    """Write one round of new users: opinions, prompts, then the records (a reader finds a user
    only once all of their rows are in place). Call it holding the store's write lock.

    Raises:
        ValueError: A user is already in the store or appears twice (nothing is written).
    """
    uids = [u.user_id for u, _ in chunk]
    dupes = sorted({u for u in uids if uids.count(u) > 1})
    existing = tables.get(tables.users, list(dict.fromkeys(uids)), [])["ids"]
    if dupes or existing:
        msg = f"bulk_import only adds new users; already present or repeated: {existing or dupes}"
        raise ValueError(msg)
    opinions, prompts, at = Rows(), Rows(), 0
    for user, ps in chunk:
        n = len(user.opinions)
        opinions.extend(opinion_rows(user.user_id, user.opinions, vectors[at : at + n]))
        prompts.extend(prompt_rows(user.user_id, list(ps), 1))
        at += n
    tables.upsert(tables.opinions, opinions)
    tables.upsert(tables.prompts, prompts)
    tables.write_records(
        [
            UserRecord(u.user_id, dict(u.attributes), [o.id for o in u.opinions], 1, 1, len(ps))
            for u, ps in chunk
        ]
    )


def import_rounds(
    items: Iterable[Item],
    users_per_batch: int,
    embed: Callable[[list[Any]], Sequence[Sequence[float]]],
    write: Callable[[list[Item], Sequence[Sequence[float]]], None],
    on_batch: Callable[[int], None] | None,
) -> int:
    """Embed then ``write`` each round of ``users_per_batch`` users; returns the users written."""
    done = 0
    for chunk in chunks(items, users_per_batch):
        write(chunk, embed([o for u, _ in chunk for o in u.opinions]))
        done += len(chunk)
        if on_batch is not None:
            on_batch(done)
    return done


def bulk_import(
    store: FermiStore,
    items: Iterable[Item],
    *,
    users_per_batch: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """``store.bulk_import(items, ...)`` (see `FermiStore.bulk_import`)."""
    return store.bulk_import(items, users_per_batch=users_per_batch, on_batch=on_batch)
