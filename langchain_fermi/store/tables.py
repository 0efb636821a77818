"""The three Chroma collections of a `FermiStore`, and the one place their rows are written.

Every write of the store (single users, re-optimizations, bulk imports, purges) goes through
`Tables.upsert` / `Tables.delete`, which split the rows into Chroma's largest batches
(``client.get_max_batch_size()``, 5,461 on SQLite), and every multi-row read through
`Tables.get`, which does the same for ids (SQLite limits the variables of one statement).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_fermi.errors import DamagedUserError
from langchain_fermi.models.embeddings import normalise_rows
from langchain_fermi.store.rows import (
    UserRecord,
    decode_opinion,
    decode_prompt,
    encode_opinion,
    encode_prompt,
    key_vector,
    opinion_row_id,
    prompt_row_id,
)
from langchain_fermi.store.snapshot import UserSnapshot
from langchain_fermi.types import Opinion, ScoredPrompt

__all__ = [
    "KINDS",
    "PAGE",
    "Rows",
    "Tables",
    "damaged",
    "opinion_rows",
    "prompt_rows",
    "record_rows",
]

T = TypeVar("T")
KINDS = ("users", "opinions", "prompts")
PAGE = 5000
"""Rows per paged ``get()``: one get() of a huge collection hits SQLite's variable limit."""


@dataclass
class Rows:
    """The columns of one upsert: ids, documents, scalar metadata and vectors, aligned."""

    ids: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    metadatas: list[dict[str, Any]] = field(default_factory=list)
    embeddings: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, other: Rows) -> Rows:
        """Append ``other``'s rows (in place); returns self."""
        self.ids += other.ids
        self.documents += other.documents
        self.metadatas += other.metadatas
        self.embeddings += other.embeddings
        return self

    def slice(self, start: int, stop: int) -> Rows:
        """Rows ``start:stop``."""
        return Rows(
            self.ids[start:stop],
            self.documents[start:stop],
            self.metadatas[start:stop],
            self.embeddings[start:stop],
        )


def damaged(user_id: str, why: str) -> DamagedUserError:
    """The error for a user whose rows cannot be read back (the message says what to do)."""
    msg = (
        f"user {user_id!r} is damaged: {why}. Other users are unaffected; delete this user "
        "(FermiStore.delete_user / `fermi users delete`) and import or optimize them again"
    )
    return DamagedUserError(msg)


def opinion_rows(
    user_id: str, opinions: Sequence[Opinion], vectors: Sequence[Sequence[float]], epoch: int = 0
) -> Rows:
    """The opinion rows of one user (``vectors`` embed the questions, in the same order)."""
    if len(vectors) != len(opinions):
        msg = f"user {user_id!r}: {len(opinions)} opinions but {len(vectors)} vectors"
        raise ValueError(msg)
    return Rows(
        [opinion_row_id(user_id, o.id, epoch) for o in opinions],
        [o.question for o in opinions],
        [encode_opinion(user_id, o, epoch) for o in opinions],
        [[float(x) for x in v] for v in vectors],
    )


def prompt_rows(user_id: str, prompts: Sequence[ScoredPrompt], generation: int) -> Rows:
    """The rows of one saved prompt generation, best first (rank = position)."""
    ids = [prompt_row_id(user_id, generation, r) for r in range(len(prompts))]
    return Rows(
        ids,
        [p.text for p in prompts],
        [encode_prompt(user_id, p, generation, r) for r, p in enumerate(prompts)],
        [key_vector(i) for i in ids],
    )


def record_rows(records: Sequence[UserRecord]) -> Rows:
    """The users-collection rows of ``records``."""
    rows = [r.to_row() for r in records]
    return Rows(
        [r.user_id for r in records],
        [doc for doc, _ in rows],
        [meta for _, meta in rows],
        [key_vector(r.user_id) for r in records],
    )


class Tables:
    """The users, opinions and prompts collections of one store (``{prefix}_users`` ...).

    Args:
        client: A Chroma client (embedded, server or ephemeral).
        prefix: Prefix of the three collection names.
        create: Create missing collections (False: raise Chroma's ``NotFoundError``).
    """

    def __init__(self, client: Any, prefix: str, *, create: bool = True) -> None:
        self.client = client
        self.prefix = prefix
        cols = {}
        for kind in KINDS:
            name = f"{prefix}_{kind}"
            if create:
                cols[kind] = client.get_or_create_collection(
                    name, embedding_function=None, metadata={"hnsw:space": "cosine"}
                )
            else:
                cols[kind] = client.get_collection(name, embedding_function=None)
        self.users, self.opinions, self.prompts = cols["users"], cols["opinions"], cols["prompts"]
        self.max_batch = max(1, int(client.get_max_batch_size()))

    def collection(self, kind: str) -> Any:
        """The collection of one of `KINDS`."""
        return {"users": self.users, "opinions": self.opinions, "prompts": self.prompts}[kind]

    # -- writes -------------------------------------------------------------------------------
    def upsert(self, collection: Any, rows: Rows) -> None:
        """Write ``rows`` in batches of at most ``max_batch`` rows."""
        for start in range(0, len(rows), self.max_batch):
            part = rows.slice(start, start + self.max_batch)
            collection.upsert(
                ids=part.ids,
                documents=part.documents,
                metadatas=part.metadatas,
                embeddings=part.embeddings,
            )

    def delete(
        self,
        collection: Any,
        ids: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete rows by ids (in batches) or by a metadata filter."""
        if ids:
            ids = list(ids)
            for start in range(0, len(ids), self.max_batch):
                collection.delete(ids=ids[start : start + self.max_batch])
        if where is not None:
            collection.delete(where=dict(where))

    def write_records(self, records: Sequence[UserRecord]) -> None:
        """Upsert user records: the single write that makes a user's new rows visible."""
        self.upsert(self.users, record_rows(records))

    # -- reads --------------------------------------------------------------------------------
    def get(self, collection: Any, ids: Sequence[str], include: list[str]) -> dict[str, Any]:
        """``collection.get(ids=...)`` in batches; the columns of all batches concatenated."""
        out: dict[str, list[Any]] = {"ids": []}
        for key in include:
            out[key] = []
        ids = list(ids)
        for start in range(0, len(ids), self.max_batch):
            got = collection.get(ids=ids[start : start + self.max_batch], include=include)
            out["ids"] += got["ids"]
            for key in include:
                out[key] += list(got[key]) if got[key] is not None else []
        return out

    def read_record(self, user_id: str) -> UserRecord | None:
        """The user's record, or None.

        Raises:
            DamagedUserError: The record row cannot be parsed.
        """
        got = self.users.get(ids=[user_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        try:
            return UserRecord.from_row(got["documents"][0], got["metadatas"][0])
        except (KeyError, TypeError, ValueError) as e:
            raise damaged(user_id, f"its record row is unreadable ({type(e).__name__}: {e})") from e

    def load_snapshot(self, rec: UserRecord) -> UserSnapshot | None:
        """The user's opinions (with vectors) and current prompts, as ``rec`` points to them;
        None when some rows are missing (a writer changed them: read the record again).

        Raises:
            DamagedUserError: A row exists but cannot be decoded.
        """
        uid = rec.user_id
        oids, pids = rec.opinion_row_ids(), rec.prompt_ids()
        got = self.get(self.opinions, oids, ["documents", "metadatas", "embeddings"])
        opinions = _decode(uid, oids, got, decode_opinion)
        if opinions is None:
            return None
        pos = {i: k for k, i in enumerate(got["ids"])}
        vectors = [got["embeddings"][pos[i]] for i in oids]
        prompts = _decode(
            uid, pids, self.get(self.prompts, pids, ["documents", "metadatas"]), decode_prompt
        )
        if prompts is None:
            return None
        return UserSnapshot(rec, tuple(opinions), normalise_rows(vectors), tuple(prompts))

    def iter_records(self, *, page: int = PAGE) -> Iterator[tuple[str, UserRecord | None]]:
        """``(user_id, record)`` of every user, a page at a time; None for an unreadable row."""
        offset = 0
        while True:
            got = self.users.get(include=["documents", "metadatas"], limit=page, offset=offset)
            for uid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                try:
                    yield uid, UserRecord.from_row(doc, meta)
                except (KeyError, TypeError, ValueError):
                    yield uid, None
            if len(got["ids"]) < page:
                return
            offset += page

    def list_ids(self, collection: Any, *, page: int = PAGE) -> list[str]:
        """Every row id of ``collection``."""
        out: list[str] = []
        offset = 0
        while True:
            got = collection.get(include=[], limit=page, offset=offset)
            out += got["ids"]
            if len(got["ids"]) < page:
                return out
            offset += page


def _decode(
    user_id: str, ids: Sequence[str], got: Mapping[str, Any], decode: Callable[[str, Any], T]
) -> list[T] | None:
    """Decode rows in the order of ``ids`` (get() does not keep it); None if any is missing."""
    pos = {i: k for k, i in enumerate(got["ids"])}
    if len(pos) != len(ids):
        return None
    out = []
    for i in ids:
        k = pos[i]
        try:
            out.append(decode(got["documents"][k], got["metadatas"][k] or {}))
        except (KeyError, TypeError, ValueError) as e:  # ValidationError is a ValueError
            why = f"row {i!r} is unreadable ({type(e).__name__}: {str(e).splitlines()[0]})"
            raise damaged(user_id, why) from e
    return out
