"""PostgreSQL for many workers: the score cache, a write-ahead of each reply, and checkpoints.

On one machine a SQLite file is enough; workers on several machines need one shared database:

* `PostgresScoreCache`: a `ScoreCache` (same interface: ``make_key``/``get``/``put``/
  ``put_many``/``len``/``clear``/``close``) whose entries live in a Postgres table, so a task
  retried on another worker finds every (model, prompt, question) that was already scored.
* `PostgresResponseCache`: a langchain-core `BaseCache` for the target model. The scorer writes
  a candidate's answers to the score cache once all of them are in; the target's replies are
  written here one by one as they arrive, so a worker killed in the middle of a candidate loses
  only the calls still in flight.
* `postgres_checkpointer` / `apostgres_checkpointer`: LangGraph's `PostgresSaver` /
  `AsyncPostgresSaver` on a connection pool, tables created once (``setup()``).

Needs the ``scale`` extra: ``pip install 'langchain-fermi[scale]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache

from langchain_fermi.errors import ModelNotInstalledError
from langchain_fermi.scoring.cache import ScoreCache, ScoredAnswer

__all__ = [
    "PostgresResponseCache",
    "PostgresScoreCache",
    "apostgres_checkpointer",
    "postgres_checkpointer",
    "setup_lock",
]

_SETUP_LOCK = 0x7E5A_F3E1  # pg_advisory_lock key: one process creates tables at a time
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_POOL_KWARGS = {"autocommit": True, "prepare_threshold": 0}


def _require_psycopg() -> Any:
    try:
        import psycopg_pool
    except ImportError as e:
        msg = "PostgreSQL support needs the scale extra: pip install 'langchain-fermi[scale]'"
        raise ModelNotInstalledError(msg) from e
    return psycopg_pool


@contextlib.contextmanager
def setup_lock(url: str) -> Iterator[None]:
    """Hold a Postgres advisory lock while creating tables: two workers starting at once would
    otherwise race in ``CREATE TABLE IF NOT EXISTS`` (a unique violation on ``pg_type``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))


def _table(name: str) -> str:
    if not _TABLE.match(name):
        msg = f"table name must match {_TABLE.pattern}, got {name!r}"
        raise ValueError(msg)
    return name


def _pool(url: str, max_size: int) -> Any:
    pools = _require_psycopg()
    return pools.ConnectionPool(
        url, min_size=1, max_size=max_size, kwargs=dict(_POOL_KWARGS), open=True
    )


class PostgresScoreCache(ScoreCache):
    """`ScoreCache` in PostgreSQL: one table shared by every process and machine.

    Entries read once are also kept in memory (as `ScoreCache` does), so a memory prompt
    re-scored every iteration costs one query per process. Pickles as its URL and table, so it
    can be handed to a Ray task.

    Args:
        url: a libpq URL (``postgresql://user@host:port/db``).
        table: the table's name (created if missing).
        pool_size: connections kept open.

    Example:
        >>> cache = PostgresScoreCache("postgresql://postgres@127.0.0.1:5432/postgres")
        >>> scorer = AnswerScorer(model, cache=cache)
    """

    def __init__(self, url: str, *, table: str = "fermi_scores", pool_size: int = 4) -> None:
        super().__init__(None)
        self.url, self.table, self.pool_size = url, _table(table), pool_size
        self._pool = _pool(url, pool_size)
        with setup_lock(url), self._pool.connection() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_score_cache, (self.url, self.table, self.pool_size))

    def get(self, key: str) -> ScoredAnswer | None:
        """The stored answer for ``key`` (with ``cached=True``), or None."""
        with self._lock:
            hit = self._mem.get(key)
        if hit is None:
            with self._pool.connection() as conn:
                row = conn.execute(
                    f"SELECT value FROM {self.table} WHERE key = %s", (key,)
                ).fetchone()
            if row is None:
                return None
            hit = ScoredAnswer.model_validate_json(row[0])
            with self._lock:
                self._mem[key] = hit
        return hit.model_copy(update={"cached": True})

    def put_many(self, answers: dict[str, ScoredAnswer]) -> None:
        """Store several answers in one transaction (an existing key is overwritten)."""
        clean = {k: a.model_copy(update={"cached": False}) for k, a in answers.items()}
        if not clean:
            return
        rows = [(k, a.model_dump_json()) for k, a in clean.items()]
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.table} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                rows,
            )
        with self._lock:
            self._mem.update(clean)

    def __len__(self) -> int:
        with self._pool.connection() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def clear(self) -> None:
        """Forget every entry (in this process and in the table)."""
        with self._pool.connection() as conn:
            conn.execute(f"DELETE FROM {self.table}")
        with self._lock:
            self._mem.clear()

    def close(self) -> None:
        """Close the connection pool (entries read so far stay usable in memory)."""
        self._pool.close()


def _rebuild_score_cache(url: str, table: str, pool_size: int) -> PostgresScoreCache:
    return PostgresScoreCache(url, table=table, pool_size=pool_size)


def _reply_classes() -> list[type]:
    from langchain_core.messages import AIMessage, AIMessageChunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation

    return [ChatGeneration, ChatGenerationChunk, Generation, AIMessage, AIMessageChunk]


_REPLY_CLASSES = _reply_classes()
"""What a stored reply may revive into (our own table, but still: nothing else)."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PostgresResponseCache(BaseCache):
    """A langchain-core `BaseCache` in PostgreSQL: each reply is written as soon as it arrives.

    Meant for the target model only (temperature 0: one request, one right answer). Set it as
    the model's ``cache``; never on the optimizer, whose K identical requests must differ.

    Example:
        >>> target = ChatOpenAI(model="gpt-4o-mini", cache=PostgresResponseCache(url))
    """

    def __init__(self, url: str, *, table: str = "fermi_replies", pool_size: int = 4) -> None:
        self.url, self.table, self.pool_size = url, _table(table), pool_size
        self._pool = _pool(url, pool_size)
        with setup_lock(url), self._pool.connection() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(prompt TEXT, llm TEXT, value TEXT NOT NULL, PRIMARY KEY (prompt, llm))"
            )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_response_cache, (self.url, self.table, self.pool_size))

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The stored generations for (prompt, model + call options), or None."""
        from langchain_core.load import loads

        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT value FROM {self.table} WHERE prompt = %s AND llm = %s",
                (_digest(prompt), _digest(llm_string)),
            ).fetchone()
        return None if row is None else loads(row[0], allowed_objects=_REPLY_CLASSES)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the generations of one call."""
        from langchain_core.load import dumps

        with self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO {self.table} (prompt, llm, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (prompt, llm) DO UPDATE SET value = EXCLUDED.value",
                (_digest(prompt), _digest(llm_string), dumps(list(return_val))),
            )

    def clear(self, **kwargs: Any) -> None:
        """Forget every stored reply."""
        with self._pool.connection() as conn:
            conn.execute(f"DELETE FROM {self.table}")

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()


def _rebuild_response_cache(url: str, table: str, pool_size: int) -> PostgresResponseCache:
    return PostgresResponseCache(url, table=table, pool_size=pool_size)


# ------------------------------------------------------------------------------ checkpoints


@contextlib.contextmanager
def postgres_checkpointer(url: str, *, pool_size: int = 4) -> Iterator[Any]:
    """A LangGraph `PostgresSaver` on a pool of ``pool_size`` connections (tables set up)."""
    _require_psycopg()
    from langgraph.checkpoint.postgres import PostgresSaver

    with _pool(url, pool_size) as pool:
        saver = PostgresSaver(pool)
        with setup_lock(url):
            saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def apostgres_checkpointer(url: str, *, pool_size: int = 8) -> AsyncIterator[Any]:
    """A LangGraph `AsyncPostgresSaver` on an async pool (tables set up); for `aoptimize_user`."""
    pools = _require_psycopg()
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with pools.AsyncConnectionPool(
        url, min_size=1, max_size=pool_size, kwargs=dict(_POOL_KWARGS), open=False
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        lock = setup_lock(url)
        await asyncio.to_thread(lock.__enter__)
        try:
            await saver.setup()
        finally:
            await asyncio.to_thread(lock.__exit__, None, None, None)
        yield saver
