"""One writer per embedded store folder, and readers that see other processes' writes.

Chroma's embedded client keeps each collection's vector index in memory and, after loading it
once, only applies its own process's writes to it. Two processes writing one folder each save
their own stale index over the other's (measured: 29 of 400 users damaged with 2 processes x 200
saves), and a reader process misses vectors written after it loaded the index.

So every `FermiStore` of a process on one folder shares an `EmbeddedFolder`, which holds

* a ``filelock.FileLock`` (``fermi-write.lock`` in the folder) taken around every write, waited
  for up to ``lock_timeout`` seconds (`StoreLockedError` after that); readers never take it. A
  writer waits in a queue lock (``fermi-write.queue``) first, so a process that writes in a loop
  cannot take the write lock again before a process already waiting for it;
* a stamp (``fermi-write.stamp``): a new random value after every write. A writer that finds a
  stamp it has not written re-opens its Chroma client (`client.fresh_persistent_client`) before
  writing, so it writes on top of what the folder holds now; a reader that finds a new stamp does
  the same before loading a user's vectors.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from langchain_fermi.errors import StoreLockedError
from langchain_fermi.store.client import fresh_persistent_client

__all__ = [
    "DEFAULT_LOCK_TIMEOUT_S",
    "LOCK_FILE",
    "QUEUE_FILE",
    "STAMP_FILE",
    "EmbeddedFolder",
    "embedded_folder",
    "lock_timeout_from_env",
]

LOCK_FILE = "fermi-write.lock"
QUEUE_FILE = "fermi-write.queue"
STAMP_FILE = "fermi-write.stamp"
DEFAULT_LOCK_TIMEOUT_S = 10.0
ENV_LOCK_TIMEOUT = "FERMI_STORE_LOCK_TIMEOUT"


def lock_timeout_from_env() -> float:
    """``$FERMI_STORE_LOCK_TIMEOUT`` seconds, else `DEFAULT_LOCK_TIMEOUT_S`.

    Raises:
        ValueError: The variable is not a number >= 0.
    """
    raw = os.environ.get(ENV_LOCK_TIMEOUT)
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        msg = f"{ENV_LOCK_TIMEOUT}={raw!r} must be a number of seconds >= 0"
        raise ValueError(msg)
    return value


class EmbeddedFolder:
    """The Chroma client, write lock and stamp of one store folder, shared within a process.

    Args:
        path: The store folder (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()  # this process's writers and re-opens, one at a time
        self._flock = FileLock(str(path / LOCK_FILE), thread_local=False)
        self._queue = FileLock(str(path / QUEUE_FILE), thread_local=False)
        self._depth = 0
        self._seen: str | None = None
        self._client: Any = None
        self.generation = 0  # grows with every (re-)open; stores rebuild their collections

    @property
    def client(self) -> Any:
        """The current Chroma client (opened on first use)."""
        if self._client is None:
            with self._mutex:
                if self._client is None:
                    self._open()
        return self._client

    def _stamp(self) -> str:
        try:
            return (self.path / STAMP_FILE).read_text(encoding="ascii")
        except (FileNotFoundError, UnicodeDecodeError):
            return ""

    def _open(self) -> None:
        stamp = self._stamp()  # read first: a write racing the open causes one more re-open
        self._client = fresh_persistent_client(self.path)
        self._seen = stamp
        self.generation += 1

    def refresh(self, *, force: bool = False) -> bool:
        """Re-open the client if another process wrote since it was opened (or ``force``);
        waits for this process's own write in progress. Returns whether it re-opened."""
        if not force and self._client is not None and self._stamp() == self._seen:
            return False
        with self._mutex:
            if force or self._client is None or self._stamp() != self._seen:
                self._open()
                return True
        return False

    @contextmanager
    def writing(self, timeout: float) -> Iterator[None]:
        """Hold the folder's write lock (re-entrant); the client is current inside.

        Raises:
            StoreLockedError: Another process (or thread) held the lock for ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        if not self._mutex.acquire(timeout=timeout):
            raise self._locked(timeout, "another thread of this process")
        try:
            if self._depth == 0:
                self._acquire_file_lock(deadline, timeout)
            self._depth += 1
            try:
                if self._depth == 1 and (self._client is None or self._stamp() != self._seen):
                    self._open()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    try:  # also after a failed write: some of its rows may be on disk
                        self._seen = uuid.uuid4().hex
                        (self.path / STAMP_FILE).write_text(self._seen, encoding="ascii")
                    finally:
                        self._flock.release()
        finally:
            self._mutex.release()

    def _acquire_file_lock(self, deadline: float, timeout: float) -> None:
        # The queue lock is held only while waiting: the writer that just released the write
        # lock has to queue behind a process that was already waiting for it.
        try:
            self._queue.acquire(timeout=max(0.0, deadline - time.monotonic()), poll_interval=0.005)
            try:
                self._flock.acquire(
                    timeout=max(0.0, deadline - time.monotonic()), poll_interval=0.005
                )
            finally:
                self._queue.release()
        except Timeout:
            raise self._locked(timeout, "another process") from None

    def _locked(self, timeout: float, who: str) -> StoreLockedError:
        msg = (
            f"the Fermi store at {self.path} is being written by {who}: gave up after "
            f"{timeout:g} s. An embedded store has one writer at a time; wait and retry, raise "
            f"lock_timeout (or ${ENV_LOCK_TIMEOUT}), or run a Chroma server (`chroma run --path "
            "DIR`) and open it with FermiStore(host=..., port=...) for many writer processes"
        )
        return StoreLockedError(msg)


_FOLDERS: dict[str, EmbeddedFolder] = {}
_FOLDERS_LOCK = threading.Lock()


def embedded_folder(path: Path) -> EmbeddedFolder:
    """The process-wide `EmbeddedFolder` of ``path`` (one per resolved folder)."""
    key = str(path.expanduser().resolve())
    with _FOLDERS_LOCK:
        folder = _FOLDERS.get(key)
        if folder is None:
            folder = _FOLDERS[key] = EmbeddedFolder(Path(key))
        return folder
