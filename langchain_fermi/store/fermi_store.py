"""`FermiStore`: users, their opinions and their learned prompts in Chroma.

Three collections (``{prefix}_users``, ``{prefix}_opinions``, ``{prefix}_prompts``) in one Chroma
database, embedded (``PersistentClient``) or on a server (``HttpClient``). Opinion vectors come from
the `Embeddings` object given to the store (offline MiniLM by default); Chroma's own, downloading
default embedding function is never used.

Reads are get-by-ids through the user's record and served from an in-process per-user snapshot
(opinion vectors + current prompts), revalidated on every read by the record's revision number, so
a re-optimization written by another process is seen at the next read.

Saving prompts is "atomic enough": the new generation's rows are written first, then the user's
``generation`` pointer is flipped, then the old rows are deleted. Readers only read the generation
the pointer names (and retry if it vanished under them), so they never see a mix.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_fermi.errors import UnknownUserError
from langchain_fermi.store.client import default_store_path, make_client, resolve_target
from langchain_fermi.store.records import (
    DUMP_FORMAT,
    LRUCache,
    UserRecord,
    UserSnapshot,
    decode_opinion,
    decode_prompt,
    dump_user,
    encode_opinion,
    encode_prompt,
    key_vector,
    load_dump,
    normalise_rows,
    opinion_row_id,
    prompt_row_id,
    result_prompts,
)
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

logger = logging.getLogger(__name__)

_PAGE = 5000  # rows per paged get(): one get() of a huge collection hits SQLite's variable limit
_READ_PATIENCE_S = 5.0  # a save deletes old rows after the pointer flip: a reader may retry


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
        self.client = client if client is not None else make_client(path, host, port)
        self.path = (
            None if client is not None or host is not None else Path(path or default_store_path())
        )
        self._embeddings = embeddings
        self.collection_prefix = collection_prefix
        cols = {}
        for kind in ("users", "opinions", "prompts"):
            cols[kind] = self.client.get_or_create_collection(
                f"{collection_prefix}_{kind}",
                embedding_function=None,
                metadata={"hnsw:space": "cosine"},
            )
        self.users, self.opinions, self.prompts = cols["users"], cols["opinions"], cols["prompts"]
        self._write_lock = threading.RLock()
        self._embed_lock = threading.Lock()
        self._cache: LRUCache[str, UserSnapshot] = LRUCache(cache_size)
        self._query_cache: LRUCache[str, np.ndarray] = LRUCache(256)

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

    # -- records --------------------------------------------------------------------------------
    def _read_record(self, user_id: str) -> UserRecord | None:
        got = self.users.get(ids=[user_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        return UserRecord.from_row(got["documents"][0], got["metadatas"][0])

    def _require_record(self, user_id: str) -> UserRecord:
        uid = validate_user_id(user_id)
        rec = self._read_record(uid)
        if rec is None:
            msg = f"unknown user {uid!r}: the store has no such user"
            raise UnknownUserError(msg)
        return rec

    def _write_record(self, rec: UserRecord) -> None:
        doc, meta = rec.to_row()
        self.users.upsert(
            ids=[rec.user_id],
            documents=[doc],
            metadatas=[meta],
            embeddings=[key_vector(rec.user_id)],
        )
        self._invalidate(rec.user_id)

    def _invalidate(self, user_id: str) -> None:
        self._cache.pop(user_id)

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
        vectors = (
            self.embeddings.embed_documents([o.question for o in opinions]) if opinions else []
        )
        with self._write_lock:
            rec = self._read_record(uid) or UserRecord(uid, {}, [])
            if opinions:
                self.opinions.upsert(
                    ids=[opinion_row_id(uid, o.id) for o in opinions],
                    documents=[o.question for o in opinions],
                    metadatas=[encode_opinion(uid, o) for o in opinions],
                    embeddings=[list(map(float, v)) for v in vectors],
                )
            known = set(rec.opinion_ids)
            ids = rec.opinion_ids + [o.id for o in opinions if o.id not in known]
            ids = list(dict.fromkeys(ids))
            self._write_record(
                UserRecord(
                    uid,
                    rec.attributes if attributes is None else dict(attributes),
                    ids,
                    rec.revision + 1,
                    rec.generation,
                    rec.n_prompts,
                    rec.summary,
                )
            )

    def save_prompts(
        self, user_id: str, prompts: list[ScoredPrompt], *, summary: dict[str, Any] | None = None
    ) -> int:
        """Replace a user's prompts with ``prompts`` (kept in the given order: best first).

        Returns:
            The new generation number.
        """
        uid = validate_user_id(user_id)
        with self._write_lock:
            rec = self._read_record(uid) or UserRecord(uid, {}, [])
            gen = rec.generation + 1
            if prompts:
                ids = [prompt_row_id(uid, gen, r) for r in range(len(prompts))]
                self.prompts.upsert(
                    ids=ids,
                    documents=[p.text for p in prompts],
                    metadatas=[encode_prompt(uid, p, gen, r) for r, p in enumerate(prompts)],
                    embeddings=[key_vector(i) for i in ids],
                )
            # Flip the pointer: from here on readers load generation `gen`.
            self._write_record(
                UserRecord(
                    uid,
                    rec.attributes,
                    rec.opinion_ids,
                    rec.revision + 1,
                    gen,
                    len(prompts),
                    summary if summary is not None else rec.summary,
                )
            )
            old = rec.prompt_ids()
            if old:
                self.prompts.delete(ids=old)
            # Sweep rows an interrupted earlier save may have left behind (never newer ones).
            self.prompts.delete(where={"$and": [{"user_id": uid}, {"generation": {"$lt": gen}}]})
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
        with self._write_lock:
            # The record first: readers stop finding the user at once, never half of them.
            self.users.delete(ids=[uid])
            self._invalidate(uid)
            if rec.opinion_ids:
                self.opinions.delete(ids=[opinion_row_id(uid, o) for o in rec.opinion_ids])
            self.opinions.delete(where={"user_id": uid})
            self.prompts.delete(where={"user_id": uid})

    # -- reads ----------------------------------------------------------------------------------
    def list_users(self) -> list[str]:
        """All user ids, sorted."""
        out: list[str] = []
        offset = 0
        while True:
            got = self.users.get(include=[], limit=_PAGE, offset=offset)
            out += got["ids"]
            if len(got["ids"]) < _PAGE:
                return sorted(out)
            offset += _PAGE

    def has_user(self, user_id: str) -> bool:
        """Whether the store knows this user."""
        return self._read_record(validate_user_id(user_id)) is not None

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

    def _load_snapshot(self, rec: UserRecord) -> UserSnapshot | None:
        uid = rec.user_id
        opinions: list[Opinion] = []
        vectors: list[Any] = []
        if rec.opinion_ids:
            row_ids = [opinion_row_id(uid, o) for o in rec.opinion_ids]
            got = self.opinions.get(ids=row_ids, include=["documents", "metadatas", "embeddings"])
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
            got = self.prompts.get(ids=pids, include=["documents", "metadatas"])
            pos = {i: k for k, i in enumerate(got["ids"])}
            if len(pos) != len(pids):
                return None
            prompts = [
                decode_prompt(got["documents"][pos[i]], got["metadatas"][pos[i]]) for i in pids
            ]
        return UserSnapshot(rec, tuple(opinions), normalise_rows(vectors), tuple(prompts))

    def get_user(self, user_id: str) -> UserProfile:
        """The user's profile with all their stored opinions."""
        snap = self.snapshot(user_id)
        return UserProfile(
            user_id=snap.user_id, attributes=snap.record.attributes, opinions=list(snap.opinions)
        )

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

    def delete_opinions(self, user_id: str, opinion_ids: list[str]) -> None:
        """Remove some opinions of a user (unknown ids ignored); the record first, then the rows."""
        uid = validate_user_id(user_id)
        with self._write_lock:
            rec = self._read_record(uid)
            drop = set(opinion_ids)
            gone = [o for o in rec.opinion_ids if o in drop] if rec else []
            if not rec or not gone:
                return
            keep = [o for o in rec.opinion_ids if o not in drop]
            self._write_record(replace(rec, opinion_ids=keep, revision=rec.revision + 1))
            self.opinions.delete(ids=[opinion_row_id(uid, o) for o in gone])

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
