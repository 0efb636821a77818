"""`FermiStore`: users, their opinions and their learned prompts in Chroma.

Three collections (``{prefix}_users``, ``{prefix}_opinions``, ``{prefix}_prompts``) in one Chroma
database, embedded (``PersistentClient``) or on a server (``HttpClient``); opinion vectors come from
the store's `Embeddings` (offline MiniLM by default), never Chroma's downloading default. Only this
package touches Chroma. Reads are get-by-ids through the user's record, served from a per-user
snapshot revalidated by the record's revision, so another process's write is seen at the next read.

Guarantees (details in `writes`, `embedded` and `purge`):

* **One writer per embedded folder.** Writes take a file lock in the folder (waiting up to
  ``lock_timeout`` seconds, then `StoreLockedError`); readers never wait for it. Many writer
  processes need a Chroma server (``chroma run --path DIR``, then ``FermiStore(host=, port=)``),
  which orders their writes itself. A client passed as ``client=`` is not locked: one writer.
* **No lost data.** Every write puts its new rows first and then flips the user's record, so a
  failure at any point leaves either the old user or the new one, complete; a replaced user
  (``import_user(replace=True)``, ``save_prompts``) keeps the old version until the new one is
  fully written. Writes larger than Chroma's batch limit are split.
* **Forgetting.** `delete_user` makes the user invisible at once and deletes their rows, but their
  bytes may stay on disk (SQLite free pages, Chroma's write-ahead log, the vector index's
  tombstones) until a purge. ``delete_user(..., purge=True)`` (or `purge` after several deletes)
  rewrites the collections and compacts the folder: afterwards no byte of the user's texts or
  vectors is left under it. Against a server the rewrite runs through the API; the server's
  operator then runs `purge.compact_files` (or ``chroma vacuum``) on its folder while it is stopped.
* **Read-only folders are readable**: opened through a temporary copy (a snapshot as of opening,
  one copy of the folder); every write raises `StoreReadOnlyError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_fermi.errors import DamagedUserError, UnknownUserError
from langchain_fermi.store import bulk, dump, purge, writes
from langchain_fermi.store.access import Embedder, LockedLRU, StoreAccess
from langchain_fermi.store.client import default_store_path, resolve_target
from langchain_fermi.store.rows import UserRecord
from langchain_fermi.store.snapshot import UserSnapshot
from langchain_fermi.types import (
    FermiResult,
    Opinion,
    ScoredPrompt,
    UserProfile,
    scored_opinion_ids,
    validate_user_id,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = ["FermiStore"]

logger = logging.getLogger(__name__)

_READ_PATIENCE_S = 5.0  # a save deletes old rows after the pointer flip: a reader may retry
_LIST_PATIENCE_S = 0.5  # listings give a user whose rows never match less time


class FermiStore:
    """Persistent per-user Fermi memory: profiles, opinions (embedded) and scored prompts.

    See the module docstring for the one-writer rule and what delete and purge guarantee.

    Args:
        path: Folder of an embedded Chroma database. Default: `default_store_path()`.
        client: A ready Chroma client (e.g. ``chromadb.EphemeralClient()`` in tests).
        host: Chroma server host (``HttpClient``); default ``$FERMI_CHROMA_HOST``.
        port: Chroma server port; default ``$FERMI_CHROMA_PORT`` or 8000.
        embeddings: LangChain `Embeddings` for opinions and queries. Default: the offline
            `MiniLMEmbeddings`, loaded on first use.
        collection_prefix: Prefix of the three collection names.
        cache_size: Users whose snapshot is kept in memory (LRU); about 31 kB each for 20 opinions.
        lock_timeout: Seconds a write waits for another process writing the same embedded
            folder; default ``$FERMI_STORE_LOCK_TIMEOUT`` or 10.
        read_only: Open for reading only; also chosen when this process cannot write ``path``.

    Example:
        >>> store = FermiStore(".fermi/chroma")
        >>> store.save_result(result, user=user)
        >>> store.get_prompts("alice")[0].text
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        client: Any = None,
        host: str | None = None,
        port: int | None = None,
        embeddings: Embeddings | None = None,
        collection_prefix: str = "fermi",
        cache_size: int = 2048,
        lock_timeout: float | None = None,
        read_only: bool = False,
    ) -> None:
        path, host, port = resolve_target(path, client, host, port)
        self.path = (
            None if client is not None or host is not None else Path(path or default_store_path())
        )
        self.collection_prefix = collection_prefix
        self._embedder = Embedder(embeddings)
        self._access = StoreAccess(
            *(self.path, client, host, port),
            prefix=collection_prefix,
            lock_timeout=lock_timeout,
            read_only=read_only,
            cache_size=cache_size,
        )
        _ = self._access.tables  # open (or create) the collections now: errors surface here

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "client"
        mode = ", read_only=True" if self.read_only else ""
        return f"FermiStore({str(where)!r}, collection_prefix={self.collection_prefix!r}{mode})"

    @property
    def read_only(self) -> bool:
        """Whether writes are refused (opened with ``read_only=True`` or an unwritable folder)."""
        return self._access.read_only

    @property
    def max_batch_size(self) -> int:
        """Rows per Chroma write or delete call (larger writes are split)."""
        return self._tables.max_batch

    @property
    def lock_timeout(self) -> float:
        """Seconds a write waits for another process writing the same embedded folder."""
        return self._access.lock_timeout

    # Chroma objects, for this package and its tests only.
    _tables = property(lambda self: self._access.tables)
    _client = property(lambda self: self._tables.client)
    _users = property(lambda self: self._tables.users)
    _opinions = property(lambda self: self._tables.opinions)
    _prompts = property(lambda self: self._tables.prompts)

    @property
    def _cache(self) -> LockedLRU:
        return self._access.cache

    def _writing(self) -> AbstractContextManager[Any]:
        return self._access.writing()

    # -- embeddings ---------------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        """The `Embeddings` used for opinions and queries (offline MiniLM unless given)."""
        return self._embedder.embeddings

    def embed_query(self, text: str) -> np.ndarray:
        """Embed a query (LRU-cached: the same question is often asked for several users)."""
        return self._embedder.query(text)

    # -- records --------------------------------------------------------------------------------
    def get_record(self, user_id: str) -> UserRecord | None:
        """The user's record (profile, opinion ids, revision, generation, ``updated_at``), or
        None: one cheap read, without loading opinions or prompts."""
        return self._access.record(user_id)

    def _require_record(self, user_id: str) -> UserRecord:
        return self._access.require_record(user_id)

    def iter_records(self) -> Iterator[UserRecord]:
        """Every user's record, a page at a time (unreadable records are logged and skipped)."""
        return self._access.iter_records()

    # -- writes ---------------------------------------------------------------------------------
    def save_user(self, user: UserProfile) -> None:
        """Store a user's profile and upsert their opinions (existing opinions are kept)."""
        self._upsert_opinions(user.user_id, user.opinions, attributes=user.attributes)

    def add_opinions(self, user_id: str, opinions: list[Opinion]) -> None:
        """Add (or replace, by id) opinions of a user, creating the user if needed."""
        self._upsert_opinions(validate_user_id(user_id), list(opinions), attributes=None)

    def _upsert_opinions(
        self, uid: str, opinions: list[Opinion], *, attributes: dict[str, str] | None
    ) -> None:
        vectors = self._embedder.questions(opinions)
        with self._writing():
            writes.upsert_opinions(self._tables, uid, opinions, vectors, attributes=attributes)
            self._cache.pop(uid)

    def save_prompts(
        self, user_id: str, prompts: list[ScoredPrompt], *, summary: dict[str, Any] | None = None
    ) -> int:
        """Replace a user's prompts with ``prompts`` (kept in the given order: best first); the
        old ones stay in place until the new ones are completely written.

        Returns:
            The new generation number.

        Raises:
            ValueError: A score or correctness value is not finite (nothing is written).
        """
        uid = validate_user_id(user_id)
        with self._writing():
            rec = writes.replace_prompts(self._tables, uid, prompts, summary)
            self._cache.pop(uid)
        return rec.generation

    def save_result(
        self,
        result: FermiResult,
        user: UserProfile | None = None,
        *,
        include_last_generation: bool = True,
    ) -> int:
        """Save an optimization's prompt set (see `result_prompts`) and, if given, the user
        (as `save_user`), in one hold of the write lock.

        Returns:
            The new generation number.
        """
        if user is not None and user.user_id != result.user_id:
            msg = f"result is for user {result.user_id!r} but user= is {user.user_id!r}"
            raise ValueError(msg)
        uid = validate_user_id(result.user_id)
        summary = dump.result_summary(result)
        prompts = dump.result_prompts(result, include_last_generation=include_last_generation)
        vectors = self._embedder.questions(user.opinions) if user is not None else []
        with self._writing():
            if user is not None:
                writes.upsert_opinions(
                    self._tables, uid, user.opinions, vectors, attributes=user.attributes
                )
            rec = writes.replace_prompts(self._tables, uid, prompts, summary)
            self._cache.pop(uid)
        return rec.generation

    def delete_user(self, user_id: str, *, purge: bool = False) -> None:
        """Remove everything of one user: profile, opinions, prompts and cached snapshot.

        The user is invisible at once and their rows are deleted, but their bytes may stay on
        disk until a purge; ``purge=True`` runs `purge` right away (it rewrites the store).
        """
        rec = self._require_record(user_id)
        with self._writing():
            writes.remove_user(self._tables, rec)
            self._cache.pop(rec.user_id)
            if purge:
                self.purge()

    def purge(self) -> dict[str, int]:
        """Erase the bytes deleted users left behind: rewrite the collections, then (embedded)
        delete unused segment folders and VACUUM the database; costs one copy of the store.

        Returns:
            What the compaction did (empty for a server or an injected client).
        """
        return purge.purge_store(self._access)

    def delete_opinions(self, user_id: str, opinion_ids: list[str]) -> None:
        """Remove some opinions of a user (unknown ids ignored); the record first, then the rows."""
        uid = validate_user_id(user_id)
        with self._writing():
            if writes.remove_opinions(self._tables, uid, opinion_ids) is not None:
                self._cache.pop(uid)

    def bulk_import(
        self,
        items: Iterable[tuple[UserProfile, Sequence[ScoredPrompt]]],
        *,
        users_per_batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Add many new users (``(user, prompts best first)`` pairs), ``users_per_batch`` per
        round (one embedding call and one lock hold each): the same rows as saving them one by
        one (generation 1 each), much faster. ``on_batch`` gets the count after each round.
        Returns the number of users added.

        Raises:
            ValueError: A user is already in the store or appears twice (nothing of that round
                is written).
        """

        def write(chunk: list[Any], vectors: Sequence[Sequence[float]]) -> None:
            with self._writing():
                bulk.write_round(self._tables, chunk, vectors)

        return bulk.import_rounds(items, users_per_batch, self._embedder.questions, write, on_batch)

    # -- reads ----------------------------------------------------------------------------------
    def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[str]:
        """User ids, sorted; ``limit`` / ``offset`` page through them."""
        ids = sorted(self._access.read(lambda t: t.list_ids(t.users)))
        return ids[offset:] if limit is None else ids[offset : offset + limit]

    def has_user(self, user_id: str) -> bool:
        """Whether the store knows this user."""
        return self.get_record(user_id) is not None

    def snapshot(self, user_id: str) -> UserSnapshot:
        """A consistent, cached view of one user (one cheap record read when cached).

        Raises:
            UnknownUserError: No such user.
            DamagedUserError: The user's rows cannot be read back.
        """
        return self._access.snapshot(user_id, _READ_PATIENCE_S)

    def _scan(self, patience: float) -> Iterator[tuple[str, UserSnapshot | Exception]]:
        """Each user's snapshot, or the error reading it (users deleted meanwhile are skipped)."""
        for uid in self.list_users():
            try:
                yield uid, self._access.snapshot(uid, patience)
            except UnknownUserError:  # deleted while listing
                continue
            except Exception as e:  # damage: the caller reports it and goes on
                yield uid, e

    def iter_snapshots(self, *, skip_damaged: bool = False) -> Iterator[UserSnapshot]:
        """Every user's snapshot, in user id order.

        Args:
            skip_damaged: Log and skip a user whose rows cannot be read (`DamagedUserError`)
                instead of raising, so one damaged user never hides the others.
        """
        for _, got in self._scan(_LIST_PATIENCE_S if skip_damaged else _READ_PATIENCE_S):
            if isinstance(got, UserSnapshot):
                yield got
            elif skip_damaged and isinstance(got, DamagedUserError):
                logger.warning("%s", got)
            else:
                raise got

    def describe_users(self) -> list[dict[str, Any]]:
        """One row per user, for listings: `UserSnapshot.describe`, or ``{"user_id", "error"}``
        for a user whose rows cannot be read (reported, never hiding the users after it)."""
        return [
            got.describe()
            if isinstance(got, UserSnapshot)
            else {"user_id": uid, "error": str(got).splitlines()[0]}
            for uid, got in self._scan(_LIST_PATIENCE_S)
        ]

    def get_user(self, user_id: str) -> UserProfile:
        """The user's profile with all their stored opinions."""
        return self.snapshot(user_id).profile()

    def get_prompts(self, user_id: str) -> list[ScoredPrompt]:
        """The user's current prompts, best first (empty if never optimized)."""
        return list(self.snapshot(user_id).prompts)

    def get_summary(self, user_id: str) -> dict[str, Any] | None:
        """The last saved result's summary (model, curve, cost, config, stop reason), if any."""
        return self._require_record(user_id).summary

    def nearest_opinions(
        self, user_id: str, question: str, k: int = 3, *, scored_only: bool = False
    ) -> list[tuple[Opinion, float]]:
        """The user's ``k`` past opinions most similar to ``question`` (cosine), nearest first.

        Args:
            scored_only: Only opinions the current prompts have correctness values for (the
                scoring split); all opinions when no prompt covers any.
        """
        snap = self.snapshot(user_id)
        among = scored_opinion_ids(snap.prompts) if scored_only else None
        return snap.nearest(self.embed_query(question), k, among=among or None)

    # -- export / import ------------------------------------------------------------------------
    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything of one user as JSON data (see `dump_user`: no vectors, re-embedding is
        deterministic); `import_user` of it gives back an identical export."""
        return dump.dump_user(self.snapshot(user_id))

    def import_user(self, data: dict[str, Any], *, replace: bool = False) -> str:
        """Load a dump written by `export_user`, re-embedding the opinions with this store's
        embeddings. Returns the user id.

        With ``replace``, the stored user stays exactly as it was until the new one is
        completely written, then readers switch to it at once; a failure on the way leaves the
        old user untouched.

        Raises:
            ValueError: Not a dump, or the user exists and ``replace`` is false.
        """
        user, prompts, summary = dump.load_dump(data)
        uid = user.user_id
        exists = f"user {uid!r} already exists: delete it first or pass replace=True"
        if not replace and self.has_user(uid):
            raise ValueError(exists)
        vectors = self._embedder.questions(user.opinions)
        with self._writing():
            if not replace and self._tables.read_record(uid) is not None:  # written meanwhile
                raise ValueError(exists)
            writes.put_user(self._tables, user, vectors, prompts, summary)
            self._cache.pop(uid)
        return uid
