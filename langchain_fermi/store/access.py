"""How a `FermiStore` reaches Chroma: the client, the collections, the write lock, re-opening.

The client is one of: an embedded folder's (shared per process, see `embedded`), a read-only copy
of a folder this process cannot write, a server's ``HttpClient`` or a client passed in. Reads
retry once on fresh collections when a purge replaced them; loading a user's vectors first
re-opens an embedded client that another process's writes made stale.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import cachetools
import numpy as np

from langchain_fermi.errors import StoreReadOnlyError, UnknownUserError
from langchain_fermi.store import purge
from langchain_fermi.store.client import (
    fresh_persistent_client,
    is_writable,
    make_client,
    read_only_copy,
)
from langchain_fermi.store.embedded import EmbeddedFolder, embedded_folder, lock_timeout_from_env
from langchain_fermi.store.rows import UserRecord
from langchain_fermi.store.snapshot import UserSnapshot
from langchain_fermi.store.tables import Tables, damaged
from langchain_fermi.types import Opinion, validate_user_id

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = ["Embedder", "LockedLRU", "StoreAccess"]

T = TypeVar("T")
logger = logging.getLogger(__name__)


class LockedLRU:
    """A `cachetools.LRUCache` behind a lock (cachetools caches are not thread-safe); size 0
    caches nothing."""

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


class Embedder:
    """The store's `Embeddings` (the offline MiniLM, loaded on first use, unless given) and an
    LRU of query vectors: the same question is often asked for several users."""

    def __init__(self, embeddings: Embeddings | None) -> None:
        self._embeddings = embeddings
        self._lock = threading.Lock()
        self._queries = LockedLRU(256)

    @property
    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            with self._lock:
                if self._embeddings is None:
                    from langchain_fermi.models.embeddings import MiniLMEmbeddings

                    self._embeddings = MiniLMEmbeddings()
        return self._embeddings

    def query(self, text: str) -> np.ndarray:
        vec = self._queries.get(text)
        if vec is None:
            vec = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
            self._queries.put(text, vec)
        return vec

    def questions(self, opinions: Sequence[Opinion]) -> list[list[float]]:
        if not opinions:
            return []
        return self.embeddings.embed_documents([o.question for o in opinions])


class StoreAccess:
    """The Chroma side of one `FermiStore` (see the module docstring).

    Args:
        path: The embedded folder, or None with ``client`` / ``host``.
        client: A client passed in (not locked: one writer).
        host: A Chroma server's host; ``port`` its port.
        prefix: Prefix of the three collection names.
        lock_timeout: Seconds a write waits for the embedded folder's lock (None: from the
            environment, see `embedded.lock_timeout_from_env`).
        read_only: Refuse writes (also chosen when the folder is not writable).
        cache_size: Users whose snapshot is cached.
    """

    def __init__(
        self,
        path: Path | None,
        client: Any,
        host: str | None,
        port: int | None,
        *,
        prefix: str,
        lock_timeout: float | None,
        read_only: bool,
        cache_size: int,
    ) -> None:
        self.path = path
        self.prefix = prefix
        self.lock_timeout = lock_timeout_from_env() if lock_timeout is None else lock_timeout
        if self.lock_timeout < 0:
            msg = f"lock_timeout must be >= 0 seconds, got {lock_timeout}"
            raise ValueError(msg)
        self.read_only = read_only
        self.folder: EmbeddedFolder | None = None
        self._fixed_client = client
        if host is not None:
            self._fixed_client = make_client(host, port)
        elif path is not None:
            if path.exists() and not path.is_dir():
                msg = f"the Fermi store path {path} is a file, not a store folder"
                raise NotADirectoryError(msg)
            if read_only or (path.exists() and not is_writable(path)):
                self.read_only = True
                copy = read_only_copy(path)
                weakref.finalize(self, shutil.rmtree, copy.parent, True)  # at the latest at exit
                self._fixed_client = fresh_persistent_client(copy)
            else:
                self.folder = embedded_folder(path)
        self._lock = threading.RLock()
        self._tables: tuple[int, Tables] | None = None
        self.cache = LockedLRU(cache_size)

    @property
    def tables(self) -> Tables:
        """The collections, rebuilt when the folder's client was re-opened."""
        gen = self.folder.generation if self.folder is not None else 0
        cached = self._tables
        if cached is not None and cached[0] == gen:
            return cached[1]
        with self._lock:
            client = self.folder.client if self.folder is not None else self._fixed_client
            gen = self.folder.generation if self.folder is not None else 0
            self._tables = (gen, self._open_tables(client))
            return self._tables[1]

    def reset_tables(self) -> None:
        """Look the collections up again at the next use (a purge replaced them)."""
        with self._lock:
            self._tables = None

    def _open_tables(self, client: Any) -> Tables:
        from chromadb.errors import NotFoundError

        try:
            return Tables(client, self.prefix, create=False)
        except (NotFoundError, ValueError):
            pass  # a new store, or a purge under way elsewhere: creating needs the write lock
        with nullcontext() if self.read_only else self.writing():
            if self.folder is not None:
                client = self.folder.client  # the lock may have re-opened it
            purge.recover_interrupted_purge(client, self.prefix)
            return Tables(client, self.prefix)

    def writing(self) -> AbstractContextManager[Any]:
        """The context every write runs in: the folder's write lock (or this store's lock).

        Raises:
            StoreReadOnlyError: The store is read-only.
            StoreLockedError: Another process kept the folder's lock past ``lock_timeout``.
        """
        if self.read_only:
            where = self.path if self.path is not None else "this client"
            msg = (
                f"the Fermi store at {where} is read-only (opened with read_only=True, or this "
                "process cannot write its folder): reading works, writing does not"
            )
            raise StoreReadOnlyError(msg)
        if self.folder is not None:
            return self.folder.writing(self.lock_timeout)
        return self._lock

    def read(self, fn: Callable[[Tables], T]) -> T:
        """Run a read; once more on fresh collections if a purge replaced them meanwhile."""
        from chromadb.errors import NotFoundError

        try:
            return fn(self.tables)
        except NotFoundError:
            if self.folder is not None:
                self.folder.refresh()
            self.reset_tables()
            return fn(self.tables)

    def record(self, user_id: str) -> UserRecord | None:
        """The user's record, or None."""
        uid = validate_user_id(user_id)
        return self.read(lambda t: t.read_record(uid))

    def iter_records(self) -> Iterator[UserRecord]:
        """Every user's record, a page at a time (unreadable records are logged and skipped)."""
        for uid, rec in self.tables.iter_records():
            if rec is None:
                logger.warning("user %r: unreadable record row skipped", uid)
            else:
                yield rec

    def require_record(self, user_id: str) -> UserRecord:
        """The user's record.

        Raises:
            UnknownUserError: No such user.
        """
        rec = self.record(user_id)
        if rec is None:
            msg = f"unknown user {validate_user_id(user_id)!r}: the store has no such user"
            raise UnknownUserError(msg)
        return rec

    def snapshot(self, user_id: str, patience: float) -> UserSnapshot:
        """The user's snapshot (cached by revision); retries for ``patience`` seconds while a
        writer changes the rows under it.

        Raises:
            UnknownUserError: No such user.
            DamagedUserError: The rows cannot be read back.
        """
        from chromadb.errors import InternalError

        deadline = time.monotonic() + patience
        attempt, reopened = 0, False
        while attempt == 0 or time.monotonic() < deadline:
            if attempt:
                time.sleep(min(0.001 * attempt, 0.02))
            attempt += 1
            rec = self.require_record(user_id)
            snap = self.cache.get(rec.user_id)
            if snap is not None and snap.record.revision == rec.revision:
                return snap
            if self.folder is not None:
                self.folder.refresh()  # another process wrote: its vectors need a re-open
            try:
                snap = self.read(functools.partial(Tables.load_snapshot, rec=rec))
            except InternalError as e:  # a vector the index does not have
                if reopened or self.folder is None:
                    raise damaged(rec.user_id, f"its vectors cannot be read ({e})") from e
                self.folder.refresh(force=True)
                reopened = True
                continue
            if snap is None:  # rows changed under us: another writer; read the pointer again
                continue
            self.cache.put(rec.user_id, snap)
            return snap
        why = (
            "its rows never matched the user's record (a writer kept changing them, or rows "
            "were lost)"
        )
        raise damaged(validate_user_id(user_id), why)
