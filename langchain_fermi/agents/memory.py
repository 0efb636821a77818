"""`FermiMemoryStore`: a user's Fermi memory as a LangGraph `BaseStore`.

Agents (``create_agent(..., store=...)``), hand-built graphs and ``langgraph dev`` read and write
long-term memory through `BaseStore`; this adapter exposes a `FermiStore` that way:

| namespace | key | value | writes |
|---|---|---|---|
| ``("fermi", user_id, "opinions")`` | opinion id | ``{question, choices, answer, topic}`` | put (validated as an `Opinion`), delete |
| ``("fermi", user_id, "prompts")`` | rank ``"0"``, ``"1"``, ... (best first) | the `ScoredPrompt` fields + ``rank``, ``generation`` | read-only: `reoptimize` / `FermiStore.save_result` write a whole scored set atomically |
| ``("fermi", user_id, "profile")`` | ``"profile"`` | the profile attributes | put (replaces them), delete (clears them) |

Any other namespace, ``("fermi", user_id, "notes")`` included, goes to the optional ``fallback``
store (e.g. `InMemoryStore`), so this can be an agent's only store; without one, writes there
raise `InvalidNamespaceError` and reads find nothing. A search must name a user (``()`` and
``("fermi",)`` raise `CrossUserSearchError`) so one user's memories never leak into another's;
`list_namespaces` does list every user. Semantic search scores are cosine similarities from the
store's offline embeddings (opinions use their stored vectors). Within one batch, reads see the
state before the batch and puts to the same key are deduplicated (last wins), as in
`InMemoryStore`; every op is validated before anything is written. Fermi items ignore ``index``
and TTLs, carry the user's last write time as both timestamps, and cannot address user ids with
a ``.`` (LangGraph forbids periods in namespace labels).
"""  # noqa: E501

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import numpy as np
from langchain_core.runnables.config import run_in_executor
from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    validate_op_namespace,
)

from langchain_fermi.agents._memory_ops import (
    KINDS,
    PROFILE_KEY,
    Address,
    CrossUserSearchError,
    ReadOnlyNamespaceError,
    fermi_namespace_owner,
    make_item,
    matches_filter,
    no_fallback_error,
    opinion_value,
    page,
    parse_opinion_put,
    parse_profile_put,
    profile_value,
    prompt_value,
    rank,
    route_namespace,
    route_prefix,
    search_item,
    select_namespaces,
)
from langchain_fermi.errors import UnknownUserError
from langchain_fermi.models.embeddings import normalise_rows
from langchain_fermi.store import FermiStore, UserRecord, UserSnapshot
from langchain_fermi.types import Opinion, UserProfile

__all__ = ["CrossUserSearchError", "FermiMemoryStore", "ReadOnlyNamespaceError"]


@dataclass
class _Plan:
    """A validated batch: what Fermi reads, what it writes, and what the fallback runs."""

    ops: list[Op]
    reads: dict[int, Address] = field(default_factory=dict)  # op index -> Fermi address
    writes: dict[tuple[str, str, str], Any] = field(default_factory=dict)  # deduplicated
    fallback_ops: list[Op] = field(default_factory=list)
    fallback_at: dict[int, int] = field(default_factory=dict)  # op index -> fallback_ops index


@dataclass
class _UserView:  # one user's record, read once per batch; the snapshot only when needed
    record: UserRecord
    fermi: FermiStore

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.record.updated_at, tz=timezone.utc)

    @cached_property
    def snapshot(self) -> UserSnapshot:
        return self.fermi.snapshot(self.record.user_id)


class FermiMemoryStore(BaseStore):
    """Fermi memory (opinions, learned prompts, profile) behind LangGraph's `BaseStore` API.

    Args:
        store: The `FermiStore` (or the path of its embedded database; default: the default
            store path).
        fallback: Where every other namespace lives (recommended: ``InMemoryStore()`` or a
            persistent `BaseStore`), so agents can keep their own memories next to Fermi's.
        root: The first namespace label of Fermi memory.

    Example:
        >>> memory = FermiMemoryStore(FermiStore(".fermi/chroma"), fallback=InMemoryStore())
        >>> memory.put(("fermi", "alice", "opinions"), "q1",
        ...            {"question": "Own a car?", "choices": ["Yes", "No"], "answer": "No"})
        >>> agent = create_agent(model, middleware=[FermiMiddleware()], store=memory)
    """

    supports_ttl = False

    def __init__(
        self,
        store: FermiStore | str | os.PathLike[str] | None = None,
        *,
        fallback: BaseStore | None = None,
        root: str = "fermi",
    ) -> None:
        if fallback is not None and not isinstance(fallback, BaseStore):
            msg = f"fallback must be a langgraph BaseStore, got {type(fallback).__name__}"
            raise TypeError(msg)
        if not root or "." in root:
            msg = f"root must be a non-empty namespace label without '.', got {root!r}"
            raise ValueError(msg)
        self.fermi = store if isinstance(store, FermiStore) else FermiStore(store)
        self.fallback = fallback
        self.root = root
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vectors_lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.fermi.path or "client"
        return f"FermiMemoryStore({where!s}, root={self.root!r}, fallback={self.fallback!r})"

    # -- batch ------------------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops``; Fermi I/O and the fallback's ``batch``."""
        plan = self._plan(ops)
        fermi_out = self._run_fermi(plan) if plan.reads or plan.writes else {}
        fallback = self.fallback if self._uses_fallback(plan) else None
        fb_out = fallback.batch(plan.fallback_ops) if fallback is not None else []
        return self._finish(plan, fermi_out, fb_out)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async `batch`: Fermi I/O runs in an executor, the fallback's ``abatch`` is awaited."""
        plan = self._plan(ops)
        fermi_out: dict[int, Any] = {}
        if plan.reads or plan.writes:
            fermi_out = await run_in_executor(None, self._run_fermi, plan)
        fallback = self.fallback if self._uses_fallback(plan) else None
        fb_out = await fallback.abatch(plan.fallback_ops) if fallback is not None else []
        return self._finish(plan, fermi_out, fb_out)

    def _uses_fallback(self, plan: _Plan) -> bool:
        return self.fallback is not None and bool(plan.fallback_ops)

    # -- planning (pure) ----------------------------------------------------------------------
    def _to_fallback(self, plan: _Plan, i: int, op: Op) -> None:
        if self.fallback is not None:
            plan.fallback_at[i] = len(plan.fallback_ops)
            plan.fallback_ops.append(op)

    def _plan(self, ops: Iterable[Op]) -> _Plan:
        plan = _Plan(list(ops))
        for i, op in enumerate(plan.ops):
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                addr = route_namespace(op.namespace, self.root)
                if addr.fallback:
                    self._to_fallback(plan, i, op)
                else:
                    plan.reads[i] = addr
            elif isinstance(op, PutOp):
                self._plan_put(plan, i, op)
            elif isinstance(op, SearchOp):
                page([], op.offset, op.limit)  # rejects negative numbers up front
                found, with_fallback = route_prefix(op.namespace_prefix, self.root)
                if found is not None:
                    plan.reads[i] = found
                if with_fallback:
                    fb_op = op._replace(limit=op.offset + op.limit, offset=0) if found else op
                    self._to_fallback(plan, i, fb_op)
            elif isinstance(op, ListNamespacesOp):
                page([], op.offset, op.limit)
                plan.reads[i] = Address()
                self._to_fallback(plan, i, op._replace(limit=op.offset + op.limit, offset=0))
            else:
                msg = f"unknown operation type {type(op).__name__}: {op!r}"
                raise ValueError(msg)
        return plan

    def _plan_put(self, plan: _Plan, i: int, op: PutOp) -> None:
        addr = route_namespace(op.namespace, self.root)
        if addr.fallback:
            if self.fallback is None:
                raise no_fallback_error(op.namespace, self.root)
            self._to_fallback(plan, i, op)
            return
        uid, kind = str(addr.user_id), str(addr.kind)
        if kind == "prompts":
            msg = (
                f"namespace {op.namespace!r} is read-only: a user's prompts are a scored set that "
                "only Fermi writes, atomically; record opinions and call reoptimize() (or "
                "FermiStore.save_result) instead"
            )
            raise ReadOnlyNamespaceError(msg)
        if op.value is None:
            if kind == "profile" and op.key != PROFILE_KEY:
                return  # nothing can live there: deleting it is a no-op
            plan.writes[(uid, kind, op.key)] = None
        elif kind == "opinions":
            plan.writes[(uid, kind, op.key)] = parse_opinion_put(uid, op.key, op.value)
        else:
            plan.writes[(uid, kind, op.key)] = parse_profile_put(uid, op.key, op.value)

    # -- Fermi I/O ----------------------------------------------------------------------------
    def _run_fermi(self, plan: _Plan) -> dict[int, Any]:
        views: dict[str, _UserView | None] = {}
        out: dict[int, Any] = {}
        for i, addr in plan.reads.items():
            op = plan.ops[i]
            if isinstance(op, GetOp):
                out[i] = self._get(self._view(views, str(addr.user_id)), addr, op.key)
            elif isinstance(op, SearchOp):
                view = self._view(views, str(addr.user_id))
                out[i] = self._search(view, addr, op) if view is not None else []
            else:
                assert isinstance(op, ListNamespacesOp)
                out[i] = self._namespaces(op)
        self._write(plan.writes)
        return out

    def _view(self, views: dict[str, _UserView | None], uid: str) -> _UserView | None:
        if uid not in views:
            rec = self.fermi.get_record(uid)
            views[uid] = _UserView(rec, self.fermi) if rec is not None else None
        return views[uid]

    def _ns(self, uid: str, kind: str) -> tuple[str, ...]:
        return (self.root, uid, kind)

    def _items(self, view: _UserView, kind: str) -> list[tuple[Item, Any]]:
        """(item, vector-or-text-to-embed) of every item of one user's Fermi namespace."""
        uid, ns = view.record.user_id, self._ns(view.record.user_id, kind)
        if kind == "profile":
            attrs = view.record.attributes
            if not attrs:
                return []
            text = UserProfile(user_id=uid, attributes=attrs).profile_text()
            return [(make_item(ns, PROFILE_KEY, profile_value(attrs), view.when), text)]
        try:
            snap = view.snapshot
        except UnknownUserError:  # deleted since the record was read
            return []
        if kind == "opinions":
            return [
                (make_item(ns, o.id, opinion_value(o), view.when), (snap, k))
                for k, o in enumerate(snap.opinions)
            ]
        gen = snap.record.generation
        return [
            (make_item(ns, str(r), prompt_value(p, r, gen), view.when), p.text)
            for r, p in enumerate(snap.prompts)
        ]

    def _get(self, view: _UserView | None, addr: Address, key: str) -> Item | None:
        if view is None:
            return None
        return next((it for it, _ in self._items(view, str(addr.kind)) if it.key == key), None)

    def _search(self, view: _UserView, addr: Address, op: SearchOp) -> list[SearchItem]:
        kinds = [addr.kind] if addr.kind else sorted(KINDS)
        found = [(it, v) for k in kinds for it, v in self._items(view, str(k))]
        found = [(it, v) for it, v in found if matches_filter(it.value, op.filter)]
        if not op.query:
            return [search_item(it) for it, _ in found]
        scores = self._scores(op.query, [v for _, v in found])
        return rank(
            [search_item(it, s) for (it, _), s in zip(found, scores, strict=True)], scored=True
        )

    def _scores(self, query: str, targets: list[Any]) -> list[float]:
        """Cosine of the query with a stored opinion (``(snapshot, row)``: the snapshot's own
        similarities) or with an embedded text (cached)."""
        if not targets:
            return []
        q = self.fermi.embed_query(query)
        texts = list(dict.fromkeys(t for t in targets if isinstance(t, str)))
        vecs = self._embed(texts)
        m = normalise_rows([vecs[t] for t in texts], dim=q.shape[-1])
        text_sims = dict(zip(texts, m @ normalise_rows(q)[0], strict=True))
        sims: dict[int, np.ndarray] = {}  # per snapshot, computed once
        out = []
        for t in targets:
            if isinstance(t, str):
                out.append(float(text_sims[t]))
                continue
            snap, k = t
            if id(snap) not in sims:
                sims[id(snap)] = snap.similarities(q)
            out.append(float(sims[id(snap)][k]))
        return out

    def _embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        with self._vectors_lock:
            have = {t: self._vectors[t] for t in texts if t in self._vectors}
        missing = sorted(set(texts) - set(have))
        if missing:
            new = self.fermi.embeddings.embed_documents(missing)
            with self._vectors_lock:
                for t, v in zip(missing, new, strict=True):
                    have[t] = self._vectors[t] = np.asarray(v, dtype=np.float32)
                while len(self._vectors) > 1024:
                    self._vectors.popitem(last=False)
        return have

    def _views_for_listing(self, op: ListNamespacesOp) -> list[_UserView]:
        owner = fermi_namespace_owner(op.match_conditions, self.root)
        if owner is not None:
            view = self._view({}, owner)
            return [view] if view is not None else []
        return [_UserView(rec, self.fermi) for rec in self.fermi.iter_records()]

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        present = []
        for view in self._views_for_listing(op):
            rec = view.record
            has = {"opinions": rec.opinion_ids, "prompts": rec.n_prompts, "profile": rec.attributes}
            present += [self._ns(rec.user_id, kind) for kind in KINDS if has[kind]]
        return select_namespaces(present, op.match_conditions, op.max_depth)

    def _write(self, writes: dict[tuple[str, str, str], Any]) -> None:
        by_user: dict[tuple[str, str], dict[str, Any]] = {}
        for (uid, kind, key), value in writes.items():
            by_user.setdefault((uid, kind), {})[key] = value
        for (uid, kind), items in by_user.items():
            if kind == "opinions":
                puts = [v for v in items.values() if isinstance(v, Opinion)]
                if puts:
                    self.fermi.add_opinions(uid, puts)
                gone = [k for k, v in items.items() if v is None]
                if gone:
                    self.fermi.delete_opinions(uid, gone)
            else:
                attrs = items[PROFILE_KEY]
                if attrs is not None or self.fermi.has_user(uid):
                    self.fermi.save_user(UserProfile(user_id=uid, attributes=attrs or {}))

    # -- merge (pure) -------------------------------------------------------------------------
    def _finish(self, plan: _Plan, fermi_out: dict[int, Any], fb_out: list[Result]) -> list[Result]:
        results: list[Result] = []
        for i, op in enumerate(plan.ops):
            mine: Any = fermi_out.get(i)
            theirs: Any = fb_out[plan.fallback_at[i]] if i in plan.fallback_at else None
            if isinstance(op, GetOp):
                results.append(mine if i in plan.reads else theirs)
            elif isinstance(op, PutOp):
                results.append(None)
            elif isinstance(op, SearchOp):
                if i not in plan.reads:
                    results.append(theirs if theirs is not None else [])
                    continue
                both = list(mine or []) + list(theirs or [])
                ranked = rank(both, scored=bool(op.query)) if theirs else both
                results.append(page(ranked, op.offset, op.limit))
            else:
                assert isinstance(op, ListNamespacesOp)
                merged = sorted(set(mine or []) | set(theirs or []))
                results.append(page(merged, op.offset, op.limit))
        return results
