"""Fault injection and raw row counts, for the store's fault tests and reliability benchmark.

They live here because only this package touches Chroma.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from langchain_fermi.store.tables import KINDS

if TYPE_CHECKING:
    from langchain_fermi.store.fermi_store import FermiStore

__all__ = ["fail_on_call", "row_counts", "set_batch_size"]


@contextmanager
def fail_on_call(n: int, method: str = "upsert") -> Iterator[list[int]]:
    """Make the ``n``-th call of Chroma's ``Collection.upsert`` (or ``.delete``) in this process
    raise ``OSError``: every batch the store writes or deletes is one call. Yields ``[calls]``,
    the number of calls so far."""
    from chromadb.api.models.Collection import Collection

    original = getattr(Collection, method)
    calls = [0]

    def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == n:
            msg = f"injected failure in Chroma {method} call {n}"
            raise OSError(msg)
        return original(self, *args, **kwargs)

    setattr(Collection, method, failing)
    try:
        yield calls
    finally:
        setattr(Collection, method, original)


def row_counts(store: FermiStore, user_id: str) -> dict[str, int]:
    """Rows of ``user_id`` in each collection, visible or not (leftovers of failed writes too)."""
    tables = store._tables
    out = {"users": len(tables.users.get(ids=[user_id], include=[])["ids"])}
    for kind in KINDS[1:]:
        got = tables.collection(kind).get(where={"user_id": user_id}, include=[])
        out[kind] = len(got["ids"])
    return out


def set_batch_size(store: FermiStore, rows: int) -> None:
    """Write and delete at most ``rows`` rows per Chroma call (quick runs with many batches),
    until the store's collections are next re-opened."""
    store._tables.max_batch = rows
