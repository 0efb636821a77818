"""A `BaseStore` contract, written from langgraph's `BaseStore` docs, run against
`FermiMemoryStore` and, to check the test itself, `InMemoryStore` (values and namespaces are
chosen so both stores accept them: opinions in ``("fermi", user, "opinions")``)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from fermi_store_fakes import KeywordEmbeddings
from langgraph.store.base import BaseStore, GetOp, InvalidNamespaceError, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from langchain_fermi.agents import FermiMemoryStore
from langchain_fermi.store import FermiStore

YN = ["Yes", "No"]
OPINIONS = {
    "g1": ("Should gun ownership laws be stricter?", "Yes", "guns"),
    "g2": ("Do you own a gun at home?", "No", "guns"),
    "t1": ("Should taxes on the rich go up?", "Yes", "economy"),
    "t2": ("Are income taxes too high?", "No", "economy"),
    "c1": ("Do you worry about climate change?", "Yes", "climate"),
}


def op_value(oid: str, answer: str | None = None) -> dict:
    question, ans, topic = OPINIONS[oid]
    return {"question": question, "choices": YN, "answer": answer or ans, "topic": topic}


def ns(user: str) -> tuple[str, str, str]:
    return ("fermi", user, "opinions")


@pytest.fixture(params=["fermi", "inmemory"])
def store(request, tmp_path: Path) -> BaseStore:
    emb = KeywordEmbeddings()
    if request.param == "fermi":
        return FermiMemoryStore(FermiStore(tmp_path / "chroma", embeddings=emb))
    return InMemoryStore(index={"dims": emb.dim, "embed": emb, "fields": ["question"]})


@pytest.fixture
def filled(store: BaseStore) -> BaseStore:
    for oid in OPINIONS:
        store.put(ns("alice"), oid, op_value(oid))
    store.put(ns("bob"), "g1", op_value("g1", "No"))
    return store


def test_put_then_get_returns_the_item(store: BaseStore):
    store.put(ns("alice"), "g1", op_value("g1"))
    item = store.get(ns("alice"), "g1")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (ns("alice"), "g1", op_value("g1"))
    assert isinstance(item.created_at, datetime) and isinstance(item.updated_at, datetime)


def test_get_missing_key_or_user_is_none(filled: BaseStore):
    assert filled.get(ns("alice"), "nope") is None
    assert filled.get(ns("carol"), "g1") is None


def test_put_overwrites_and_delete_removes(filled: BaseStore):
    filled.put(ns("alice"), "g1", op_value("g1", "No"))
    assert filled.get(ns("alice"), "g1").value["answer"] == "No"
    filled.delete(ns("alice"), "g1")
    assert filled.get(ns("alice"), "g1") is None
    filled.delete(ns("alice"), "g1")  # deleting twice is fine
    assert {i.key for i in filled.search(ns("alice"), limit=50)} == set(OPINIONS) - {"g1"}
    assert filled.get(ns("bob"), "g1").value["answer"] == "No"  # other users untouched


def test_search_pages_partition_the_namespace(filled: BaseStore):
    everything = filled.search(ns("alice"), limit=50)
    assert sorted(i.key for i in everything) == sorted(OPINIONS)
    pages = [filled.search(ns("alice"), limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert [i.key for p in pages for i in p] == [i.key for i in everything]
    assert filled.search(ns("alice"), limit=0) == []
    assert all(i.score is None for i in everything)  # no query: no score


def test_search_filters_on_value_fields(filled: BaseStore):
    yes = filled.search(ns("alice"), filter={"answer": "Yes"}, limit=50)
    assert sorted(i.key for i in yes) == ["c1", "g1", "t1"]
    both = filled.search(ns("alice"), filter={"answer": "No", "topic": "guns"}, limit=50)
    assert [i.key for i in both] == ["g2"]
    not_guns = filled.search(ns("alice"), filter={"topic": {"$ne": "guns"}}, limit=50)
    assert sorted(i.key for i in not_guns) == ["c1", "t1", "t2"]
    assert filled.search(ns("alice"), filter={"topic": "sports"}) == []


def test_semantic_search_ranks_by_cosine(filled: BaseStore):
    emb = KeywordEmbeddings()
    query = "gun laws and gun owners"
    hits = filled.search(ns("alice"), query=query, limit=3)
    assert [i.key for i in hits][:2] == ["g1", "g2"]
    scores = [i.score for i in hits]
    assert scores == sorted(scores, reverse=True)
    q = np.array(emb.embed_query(query))
    for hit in hits:
        d = np.array(emb.embed_documents([hit.value["question"]])[0])
        assert hit.score == pytest.approx(float(q @ d / np.linalg.norm(q) / np.linalg.norm(d)))
    second = filled.search(ns("alice"), query=query, limit=2, offset=1)
    assert [i.key for i in second] == [i.key for i in hits[1:3]]


def test_prefix_search_is_scoped_to_the_prefix(filled: BaseStore):
    alice = filled.search(("fermi", "alice"), limit=50)
    assert {i.namespace for i in alice} == {ns("alice")}
    assert filled.search(("fermi", "carol"), limit=50) == []
    assert [i.key for i in filled.search(ns("bob"), limit=50)] == ["g1"]


def test_list_namespaces_prefix_suffix_depth_and_pages(filled: BaseStore):
    assert filled.list_namespaces(prefix=("fermi",)) == [ns("alice"), ns("bob")]
    assert filled.list_namespaces(prefix=("fermi", "bob")) == [ns("bob")]
    assert filled.list_namespaces(suffix=("opinions",)) == [ns("alice"), ns("bob")]
    assert filled.list_namespaces(prefix=("fermi", "*", "opinions")) == [ns("alice"), ns("bob")]
    assert filled.list_namespaces(prefix=("fermi",), max_depth=2) == [
        ("fermi", "alice"),
        ("fermi", "bob"),
    ]
    assert filled.list_namespaces(prefix=("fermi",), limit=1, offset=1) == [ns("bob")]
    assert filled.list_namespaces(prefix=("nothing",)) == []


def test_batch_keeps_op_order(filled: BaseStore):
    out = filled.batch(
        [
            GetOp(ns("alice"), "g1"),
            SearchOp(ns("bob")),
            GetOp(ns("alice"), "missing"),
            PutOp(ns("bob"), "t1", op_value("t1")),
        ]
    )
    assert out[0].key == "g1" and [i.key for i in out[1]] == ["g1"]
    assert out[2] is None and out[3] is None
    assert filled.get(ns("bob"), "t1") is not None


def test_invalid_labels_are_rejected(store: BaseStore):
    for bad in (("fermi", "al.ice", "opinions"), ("fermi", "", "opinions")):
        with pytest.raises(InvalidNamespaceError):
            store.put(bad, "g1", op_value("g1"))
        with pytest.raises(InvalidNamespaceError):
            store.get(bad, "g1")
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph", "x"), "k", {"a": 1})


def test_async_twins_match_sync(store: BaseStore):
    async def scenario() -> tuple:
        await store.aput(ns("alice"), "g1", op_value("g1"))
        await store.aput(ns("alice"), "t1", op_value("t1"))
        got = await store.aget(ns("alice"), "g1")
        hits = await store.asearch(ns("alice"), query="gun laws", limit=1)
        spaces = await store.alist_namespaces(prefix=("fermi",))
        await store.adelete(ns("alice"), "g1")
        gone = await store.aget(ns("alice"), "g1")
        return got, hits, spaces, gone

    got, hits, spaces, gone = asyncio.run(scenario())
    assert got.value == op_value("g1") and [h.key for h in hits] == ["g1"]
    assert spaces == [ns("alice")] and gone is None
    assert [i.key for i in store.search(ns("alice"))] == ["t1"]
