"""Verified forgetting: leave no byte of deleted users anywhere under the store folder.

Deleting rows in Chroma hides them at once but leaves bytes behind: SQLite free pages, the rows'
entries in Chroma's write-ahead log (``embeddings_queue`` in ``chroma.sqlite3``) and, in each
collection's HNSW segment folder, the deleted vectors (tombstoned, not erased) and their ids.
A purge therefore

1. rewrites each collection: copies every live row into a new collection, drops the old one
   (Chroma deletes its log entries and metadata rows) and gives the new one the old name;
2. compacts the folder (`compact_files`): deletes the segment folders no collection uses any more
   and runs SQLite's ``VACUUM``, which rebuilds the database file without free pages.

It costs one copy of the store (every vector is read and written once). Against a Chroma server
step 1 runs through the API; step 2 is for the server's operator (`compact_files` on the server's
folder while it is stopped, or ``chroma vacuum --path DIR`` plus removing unused segment folders).
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_fermi.store.tables import KINDS, PAGE, Rows, Tables

if TYPE_CHECKING:
    from langchain_fermi.store.access import StoreAccess

__all__ = [
    "TEMP_SUFFIX",
    "compact_files",
    "purge_store",
    "recover_interrupted_purge",
    "rewrite_collections",
]

TEMP_SUFFIX = "__purge"


def _exists(client: Any, name: str) -> bool:
    from chromadb.errors import NotFoundError

    try:
        client.get_collection(name, embedding_function=None)
    except (NotFoundError, ValueError):
        return False
    return True


def _drop(client: Any, name: str) -> None:
    if _exists(client, name):
        client.delete_collection(name)


def rewrite_collections(t: Tables) -> None:
    """Copy every row of the store's three collections into new collections of the same names.

    Run it holding the write lock. If it is interrupted, `recover_interrupted_purge` (called when
    a store opens) finishes or undoes the step that was under way, so no row is lost.
    """
    for kind in KINDS:
        name = f"{t.prefix}_{kind}"
        temp = name + TEMP_SUFFIX
        _drop(t.client, temp)
        new = t.client.create_collection(
            temp, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        old = t.collection(kind)
        offset = 0
        while True:
            got = old.get(
                include=["documents", "metadatas", "embeddings"], limit=PAGE, offset=offset
            )
            rows = Rows(
                list(got["ids"]),
                list(got["documents"]),
                [dict(m or {}) for m in got["metadatas"]],
                [[float(x) for x in v] for v in got["embeddings"]],
            )
            t.upsert(new, rows)
            if len(rows) < PAGE:
                break
            offset += PAGE
        t.client.delete_collection(name)
        _rename(t.client, new, name)


def _rename(client: Any, collection: Any, name: str) -> None:
    """Give ``collection`` the name ``name``; a reader that opened the store in the moment the
    name was free may have created an empty collection under it: that one goes."""
    try:
        collection.modify(name=name)
    except Exception:
        squatter = client.get_collection(name, embedding_function=None)
        if squatter.count():
            raise
        client.delete_collection(name)
        collection.modify(name=name)


def recover_interrupted_purge(client: Any, prefix: str) -> None:
    """Finish a purge that stopped between dropping a collection and renaming its copy, or drop
    a copy whose original still exists. Call it holding the write lock."""
    for kind in KINDS:
        name = f"{prefix}_{kind}"
        temp = name + TEMP_SUFFIX
        if not _exists(client, temp):
            continue
        if _exists(client, name):
            client.delete_collection(temp)
        else:
            client.get_collection(temp, embedding_function=None).modify(name=name)


def _is_uuid(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True


def compact_files(path: str | Path, *, timeout: float = 30.0) -> dict[str, int]:
    """Delete unused segment folders and ``VACUUM`` an embedded Chroma folder.

    Safe while other processes read the store (SQLite waits up to ``timeout`` seconds for their
    reads to finish); run it holding the store's write lock, or with the Chroma server stopped.

    Returns:
        ``{"segment_dirs_removed": n, "bytes_before": b, "bytes_after": a}`` (database file).
    """
    import shutil

    root = Path(path)
    db = root / "chroma.sqlite3"
    before = db.stat().st_size
    con = sqlite3.connect(db, timeout=timeout, isolation_level=None)
    try:
        live = {str(r[0]) for r in con.execute("SELECT id FROM segments")}
        topics = {str(r[0]) for r in con.execute("SELECT id FROM collections")}
        # Log entries of collections that no longer exist (Chroma drops them with the
        # collection; this catches an older Chroma that did not).
        for (topic,) in con.execute("SELECT DISTINCT topic FROM embeddings_queue").fetchall():
            if str(topic).rsplit("/", 1)[-1] not in topics:
                con.execute("DELETE FROM embeddings_queue WHERE topic = ?", (topic,))
        con.execute("VACUUM")
    finally:
        con.close()
    removed = 0
    for child in root.iterdir():
        if child.is_dir() and _is_uuid(child.name) and child.name not in live:
            shutil.rmtree(child)
            removed += 1
    return {
        "segment_dirs_removed": removed,
        "bytes_before": before,
        "bytes_after": db.stat().st_size,
    }


def purge_store(access: StoreAccess) -> dict[str, int]:
    """`FermiStore.purge`: rewrite the collections under the write lock, then (embedded) drop
    the client that knew the old ones and compact the folder's files."""
    with access.writing():
        rewrite_collections(access.tables)
        access.reset_tables()
        folder = access.folder
        if folder is None:
            return {}
        folder.refresh(force=True)
        return compact_files(folder.path)
