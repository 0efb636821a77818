"""`FermiStore`: users, their opinions and their learned prompts in Chroma.

Three collections (``{prefix}_users``, ``{prefix}_opinions``, ``{prefix}_prompts``) in one Chroma
database, embedded (``PersistentClient``) or on a server (``HttpClient``). Opinion vectors come from
the `Embeddings` object given to the store (offline MiniLM by default); Chroma's own, downloading
default embedding function is never used. Only this package touches Chroma: callers use the
public methods below (records, snapshots, listings, bulk import), never the collections.

Reads are get-by-ids through the user's record and served from an in-process per-user snapshot
(opinion vectors + current prompts), revalidated on every read by the record's revision number, so
a re-optimization written by another process is seen at the next read.

Saving prompts is "atomic enough": the new generation's rows are written first, then the user's
``generation`` pointer is flipped, then the old rows are deleted. Readers only read the generation
the pointer names (and retry if it vanished under them), so they never see a mix.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cachetools
import numpy as np

from langchain_fermi.errors import UnknownUserError
from langchain_fermi.models.embeddings import normalise_rows
from langchain_fermi.store import bulk
from langchain_fermi.store.client import default_store_path, make_client, resolve_target
from langchain_fermi.store.dump import DUMP_FORMAT, dump_user, load_dump, result_prompts
from langchain_fermi.store.rows import (
    UserRecord,
    decode_opinion,
    decode_prompt,
    opinion_row_id,
)
from langchain_fermi.store.snapshot import UserSnapshot
from langchain_fermi.store.tables import Tables, opinion_rows, prompt_rows
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

__all__ = ["DUMP_FORMAT", "FermiStore", "UserSnapshot", "default_store_path", "result_prompts"]

_READ_PATIENCE_S = 5.0  # a save deletes old rows after the pointer flip: a reader may retry


class _LockedLRU:
    """A `cachetools.LRUCache` behind a lock (cachetools caches are not thread-safe)."""

    def __init__(self, size: int) -> None:
        self._data: cachetools.LRUCache[Any, Any] | None = (
            cachetools.LRUCache(maxsize=size) if size > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        if self._data is None:
            return None
        with self._lock:
            return self._data.get(key)

    def put(self, key: Any, value: Any) -> None:
        if self._data is not None:
            with self._lock:
                self._data[key] = value

    def pop(self, key: Any) -> None:
        if self._data is not None:
            with self._lock:
                self._data.pop(key, None)


class FermiStore:
    """Persistent per-user Fermi memory: profiles, opinions (embedded) and scored prompts.

    Args:
        path: Folder of an embedded Chroma database. Default: `default_store_path()`.
        client: A ready Chroma client (e.g. ``chromadb.EphemeralClient()`` in tests).
        host: Chroma server host (``HttpClient``); default ``$FERMI_CHROMA_HOST``.
        port: Chroma server port; default ``$FERMI_CHROMA_PORT`` or 8000.
        embeddings: LangChain `Embeddings` for opinions and queries. Default: the offline
            `MiniLMEmbeddings`, loaded on first use.
        collection_prefix: Prefix of the three collection names.
        cache_size: Users whose snapshot is kept in memory (LRU); about 31 kB each for 20 opinions.

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
    ) -> None:
        path, host, port = resolve_target(path, client, host, port)
        self.path = (
            None if client is not None or host is not None else Path(path or default_store_path())
        )
        self.collection_prefix = collection_prefix
        self._embeddings = embeddings
        self._tables = Tables(
            client if client is not None else make_client(path, host, port), collection_prefix
        )
        self._thread_lock = threading.RLock()
        self._embed_lock = threading.Lock()
        self._cache = _LockedLRU(cache_size)
        self._query_cache = _LockedLRU(256)

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "client"
        return f"FermiStore({str(where)!r}, collection_prefix={self.collection_prefix!r})"

    # Chroma objects, for this package and its tests only.
    @property
    def _client(self) -> Any:
        return self._tables.client

    @property
    def _users(self) -> Any:
        return self._tables.users

    @property
    def _opinions(self) -> Any:
        return self._tables.opinions

    @property
    def _prompts(self) -> Any:
        return self._tables.prompts

    # -- embeddings ---------------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        """The `Embeddings` used for opinions and queries (offline MiniLM unless given)."""
        if self._embeddings is None:
            with self._embed_lock:
                if self._embeddings is None:
                    from langchain_fermi.models.embeddings import MiniLMEmbeddings

                    self._embeddings = MiniLMEmbeddings()
        return self._embeddings

    def embed_query(self, text: str) -> np.ndarray:
        """Embed a query (LRU-cached: the same question is often asked for several users)."""
        vec = self._query_cache.get(text)
        if vec is None:
            vec = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
            self._query_cache.put(text, vec)
        return vec

    def _embed_questions(self, opinions: Sequence[Opinion]) -> list[list[float]]:
        if not opinions:
            return []
        return self.embeddings.embed_documents([o.question for o in opinions])

    # -- records --------------------------------------------------------------------------------
    def get_record(self, user_id: str) -> UserRecord | None:
        """The user's record (profile, opinion ids, revision, generation, ``updated_at``), or
        None: one cheap read, without loading opinions or prompts."""
        return self._tables.read_record(validate_user_id(user_id))

    def _require_record(self, user_id: str) -> UserRecord:
        rec = self.get_record(user_id)
        if rec is None:
            msg = f"unknown user {validate_user_id(user_id)!r}: the store has no such user"
            raise UnknownUserError(msg)
        return rec

    def iter_records(self) -> Iterator[UserRecord]:
        """Every user's record, a page at a time (unreadable rows are skipped)."""
        for _, rec in self._tables.iter_records():
            if rec is not None:
                yield rec

    def _write_record(self, rec: UserRecord) -> None:
        self._tables.write_records([rec])
        self._cache.pop(rec.user_id)

    # -- writes ---------------------------------------------------------------------------------
    def _writing(self) -> Any:
        """The context every write of this store runs in."""
        return self._thread_lock

    def save_user(self, user: UserProfile) -> None:
        """Store a user's profile and upsert their opinions (existing opinions are kept)."""
        self._upsert_opinions(user.user_id, user.opinions, attributes=user.attributes)

    def add_opinions(self, user_id: str, opinions: list[Opinion]) -> None:
        """Add (or replace, by id) opinions of a user, creating the user if needed."""
        self._upsert_opinions(validate_user_id(user_id), list(opinions), attributes=None)

    def _upsert_opinions(
        self, uid: str, opinions: list[Opinion], *, attributes: dict[str, str] | None
    ) -> None:
        vectors = self._embed_questions(opinions)
        with self._writing():
            rec = self._tables.read_record(uid) or UserRecord(uid, {}, [])
            self._tables.upsert(self._tables.opinions, opinion_rows(uid, opinions, vectors))
            ids = list(dict.fromkeys(rec.opinion_ids + [o.id for o in opinions]))
            attrs = rec.attributes if attributes is None else dict(attributes)
            self._write_record(
                replace(rec, attributes=attrs, opinion_ids=ids, revision=rec.revision + 1)
            )

    def save_prompts(
        self, user_id: str, prompts: list[ScoredPrompt], *, summary: dict[str, Any] | None = None
    ) -> int:
        """Replace a user's prompts with ``prompts`` (kept in the given order: best first).

        Returns:
            The new generation number.
        """
        uid = validate_user_id(user_id)
        with self._writing():
            rec = self._tables.read_record(uid) or UserRecord(uid, {}, [])
            gen = rec.generation + 1
            self._tables.upsert(self._tables.prompts, prompt_rows(uid, prompts, gen))
            # Flip the pointer: from here on readers load generation `gen`.
            self._write_record(
                replace(
                    rec,
                    revision=rec.revision + 1,
                    generation=gen,
                    n_prompts=len(prompts),
                    summary=summary if summary is not None else rec.summary,
                )
            )
            # The old rows, and any an interrupted earlier save left behind (never newer ones).
            self._tables.delete(
                self._tables.prompts,
                ids=rec.prompt_ids(),
                where={"$and": [{"user_id": uid}, {"generation": {"$lt": gen}}]},
            )
        return gen

    def save_result(
        self,
        result: FermiResult,
        user: UserProfile | None = None,
        *,
        include_last_generation: bool = True,
    ) -> int:
        """Save an optimization's prompt set (see `result_prompts`) and, if given, the user.

        Returns:
            The new generation number.
        """
        if user is not None:
            if user.user_id != result.user_id:
                msg = f"result is for user {result.user_id!r} but user= is {user.user_id!r}"
                raise ValueError(msg)
            self.save_user(user)
        summary = result.model_dump(
            mode="json", include={"model", "variant", "stop_reason", "curve", "cost", "config"}
        )
        prompts = result_prompts(result, include_last_generation=include_last_generation)
        return self.save_prompts(result.user_id, prompts, summary=summary)

    def delete_user(self, user_id: str) -> None:
        """Remove everything of one user: profile, opinions, prompts and cached snapshot."""
        rec = self._require_record(user_id)
        uid = rec.user_id
        with self._writing():
            # The record first: readers stop finding the user at once, never half of them.
            self._tables.delete(self._tables.users, ids=[uid])
            self._cache.pop(uid)
            ids = [opinion_row_id(uid, o) for o in rec.opinion_ids]
            self._tables.delete(self._tables.opinions, ids=ids, where={"user_id": uid})
            self._tables.delete(self._tables.prompts, where={"user_id": uid})

    def delete_opinions(self, user_id: str, opinion_ids: list[str]) -> None:
        """Remove some opinions of a user (unknown ids ignored); the record first, then the rows."""
        uid = validate_user_id(user_id)
        with self._writing():
            rec = self._tables.read_record(uid)
            drop = set(opinion_ids)
            gone = [o for o in rec.opinion_ids if o in drop] if rec else []
            if not rec or not gone:
                return
            keep = [o for o in rec.opinion_ids if o not in drop]
            self._write_record(replace(rec, opinion_ids=keep, revision=rec.revision + 1))
            self._tables.delete(self._tables.opinions, ids=[opinion_row_id(uid, o) for o in gone])

    def bulk_import(
        self,
        items: Iterable[tuple[UserProfile, Sequence[ScoredPrompt]]],
        *,
        users_per_batch: int = 500,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Add many new users, each with their opinions and prompts (best first), in large
        batches: the same rows as saving them one by one (generation 1 each), much faster.

        Args:
            items: ``(user, prompts)`` pairs; the users must not be in the store yet.
            users_per_batch: Users embedded and written per round.
            on_batch: Called with the number of users written so far, after each round.

        Returns:
            The number of users added.

        Raises:
            ValueError: A user is already in the store or appears twice (nothing of that round
                is written).
        """
        done = 0
        for chunk in bulk.chunks(items, users_per_batch):
            vectors = self._embed_questions([o for u, _ in chunk for o in u.opinions])
            with self._writing():
                bulk.write_round(self._tables, chunk, vectors)
            done += len(chunk)
            if on_batch is not None:
                on_batch(done)
        return done

    # -- reads ----------------------------------------------------------------------------------
    def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[str]:
        """User ids, sorted; ``limit`` / ``offset`` page through them."""
        ids = sorted(self._tables.list_ids(self._tables.users))
        return ids[offset:] if limit is None else ids[offset : offset + limit]

    def has_user(self, user_id: str) -> bool:
        """Whether the store knows this user."""
        return self.get_record(user_id) is not None

    def snapshot(self, user_id: str) -> UserSnapshot:
        """A consistent, cached view of one user (one cheap record read when cached)."""
        deadline = time.monotonic() + _READ_PATIENCE_S
        attempt = 0
        while attempt == 0 or time.monotonic() < deadline:
            if attempt:
                time.sleep(min(0.001 * attempt, 0.02))
            attempt += 1
            rec = self._require_record(user_id)
            snap = self._cache.get(rec.user_id)
            if snap is not None and snap.record.revision == rec.revision:
                return snap
            snap = self._load_snapshot(rec)
            if snap is None:  # rows changed under us: another writer; read the pointer again
                continue
            self._cache.put(rec.user_id, snap)
            return snap
        msg = (
            f"user {user_id!r}: the rows never matched the user's record (a writer kept changing "
            "them, or the store is damaged: save or delete the user again)"
        )
        raise RuntimeError(msg)

    def iter_snapshots(self) -> Iterator[UserSnapshot]:
        """Every user's snapshot, in user id order."""
        for uid in self.list_users():
            try:
                yield self.snapshot(uid)
            except UnknownUserError:  # deleted while listing
                continue

    def _load_snapshot(self, rec: UserRecord) -> UserSnapshot | None:
        uid, t = rec.user_id, self._tables
        opinions: list[Opinion] = []
        vectors: list[Any] = []
        if rec.opinion_ids:
            row_ids = [opinion_row_id(uid, o) for o in rec.opinion_ids]
            got = t.get(t.opinions, row_ids, ["documents", "metadatas", "embeddings"])
            pos = {i: k for k, i in enumerate(got["ids"])}
            if len(pos) != len(row_ids):
                return None
            for rid in row_ids:  # get() does not keep the order of ids
                k = pos[rid]
                opinions.append(decode_opinion(got["documents"][k], got["metadatas"][k]))
                vectors.append(got["embeddings"][k])
        prompts: list[ScoredPrompt] = []
        if rec.n_prompts:
            pids = rec.prompt_ids()
            got = t.get(t.prompts, pids, ["documents", "metadatas"])
            pos = {i: k for k, i in enumerate(got["ids"])}
            if len(pos) != len(pids):
                return None
            prompts = [
                decode_prompt(got["documents"][pos[i]], got["metadatas"][pos[i]]) for i in pids
            ]
        return UserSnapshot(rec, tuple(opinions), normalise_rows(vectors), tuple(prompts))

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
        return dump_user(self.snapshot(user_id))

    def import_user(self, data: dict[str, Any], *, replace: bool = False) -> str:
        """Load a dump written by `export_user`, re-embedding the opinions with this store's
        embeddings. Returns the user id.

        Raises:
            ValueError: Not a dump, or the user exists and ``replace`` is false.
        """
        user, prompts, summary = load_dump(data)
        if self.has_user(user.user_id):
            if not replace:
                msg = f"user {user.user_id!r} already exists: delete it first or pass replace=True"
                raise ValueError(msg)
            self.delete_user(user.user_id)
        self.save_user(user)
        self.save_prompts(user.user_id, prompts, summary=summary)
        return user.user_id
