"""FermiMemoryStore beyond the generic contract: Fermi's namespaces, validation, the fallback,
user isolation, persistence, and use as the store of a compiled LangGraph graph."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fermi_store_fakes import KeywordEmbeddings, economy_and_gun_prompts, make_result, make_user
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import InvalidNamespaceError, PutOp
from langgraph.store.memory import InMemoryStore

from langchain_fermi.agents import CrossUserSearchError, FermiMemoryStore, ReadOnlyNamespaceError
from langchain_fermi.store import FermiStore
from langchain_fermi.types import Opinion

OPS = ("fermi", "alice", "opinions")
CAT = {"question": "Do you like cats?", "choices": ["Yes", "No"], "answer": "No"}


@pytest.fixture
def fermi(tmp_path: Path) -> FermiStore:
    store = FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    store.save_user(make_user("bob", answer="No"))
    return store


@pytest.fixture
def memory(fermi: FermiStore) -> FermiMemoryStore:
    return FermiMemoryStore(fermi, fallback=InMemoryStore())


def test_reads_reflect_the_fermi_store(memory: FermiMemoryStore, fermi: FermiStore):
    o1 = memory.get(OPS, "o1")
    assert o1.value == {
        "question": "Should gun ownership laws be stricter?",
        "choices": ["Yes", "No"],
        "answer": "Yes",
        "topic": None,
    }
    prompts = memory.search(("fermi", "alice", "prompts"))
    assert [p.key for p in prompts] == ["0", "1"]
    assert [p.value["text"] for p in prompts] == [p.text for p in fermi.get_prompts("alice")]
    assert prompts[0].value["correctness"] == fermi.get_prompts("alice")[0].correctness
    assert memory.get(("fermi", "alice", "profile"), "profile").value == {
        "Age": "30-49",
        "Region": "West",
    }


def test_opinion_puts_are_validated_and_land_in_the_fermi_store(memory, fermi):
    memory.put(("fermi", "carol", "opinions"), "cats", CAT)
    assert fermi.get_user("carol").opinions == [Opinion(id="cats", **CAT)]
    with pytest.raises(ValueError, match=r"user 'carol', opinion 'dogs': answer 'Maybe'"):
        memory.put(("fermi", "carol", "opinions"), "dogs", {**CAT, "answer": "Maybe"})
    with pytest.raises(ValueError, match=r"user 'carol', opinion 'x': unknown fields \['colour'\]"):
        memory.put(("fermi", "carol", "opinions"), "x", {**CAT, "colour": "red"})
    with pytest.raises(ValueError, match="differs from the key"):
        memory.put(("fermi", "carol", "opinions"), "x", {**CAT, "id": "y"})


def test_a_bad_put_writes_nothing_of_its_batch(memory, fermi):
    with pytest.raises(ValueError, match="opinion 'bad'"):
        memory.batch(
            [
                PutOp(("fermi", "carol", "opinions"), "good", CAT),
                PutOp(("fermi", "carol", "opinions"), "bad", {**CAT, "choices": ["Only"]}),
            ]
        )
    assert not fermi.has_user("carol")


def test_prompts_are_read_only(memory, fermi):
    before = fermi.get_prompts("alice")
    with pytest.raises(ReadOnlyNamespaceError, match="reoptimize"):
        memory.put(("fermi", "alice", "prompts"), "0", {"text": "hacked"})
    with pytest.raises(ReadOnlyNamespaceError):
        memory.delete(("fermi", "alice", "prompts"), "0")
    assert fermi.get_prompts("alice") == before
    assert isinstance(ReadOnlyNamespaceError("x"), InvalidNamespaceError)


def test_profile_put_and_delete(memory, fermi):
    ns = ("fermi", "alice", "profile")
    memory.put(ns, "profile", {"Age": "50-64", "Pets": 2})
    assert fermi.get_user("alice").attributes == {"Age": "50-64", "Pets": "2"}
    assert len(fermi.get_user("alice").opinions) == 8  # opinions kept
    with pytest.raises(ValueError, match="one key, 'profile'"):
        memory.put(ns, "other", {"Age": "1"})
    with pytest.raises(ValueError, match=r"attributes \['Nested'\]"):
        memory.put(ns, "profile", {"Nested": {"a": 1}})
    memory.delete(ns, "profile")
    assert memory.get(ns, "profile") is None and fermi.get_user("alice").attributes == {}
    memory.delete(("fermi", "nobody", "profile"), "profile")
    assert not fermi.has_user("nobody")  # deleting never creates a user


def test_deleting_an_opinion_keeps_the_rest_and_the_prompts(memory, fermi):
    memory.delete(OPS, "o1")
    assert [o.id for o in fermi.get_user("alice").opinions] == [f"o{i}" for i in range(2, 9)]
    assert len(fermi.get_prompts("alice")) == 2
    assert fermi.nearest_opinions("alice", "gun laws", k=1)[0][0].id != "o1"


def test_search_never_mixes_users(memory):
    for prefix in [(), ("fermi",)]:
        with pytest.raises(CrossUserSearchError, match="names no user"):
            memory.search(prefix)
    alice = memory.search(("fermi", "alice"), limit=100)
    assert {i.namespace[1] for i in alice} == {"alice"}
    assert {i.namespace[2] for i in alice} == {"opinions", "prompts", "profile"}
    bob = memory.search(("fermi", "bob"), query="gun laws", limit=100)
    assert {i.namespace for i in bob} == {("fermi", "bob", "opinions"), ("fermi", "bob", "profile")}
    assert all(i.value["answer"] == "No" for i in bob if i.namespace[2] == "opinions")


def test_semantic_search_covers_prompts_and_filters_on_score(memory):
    hits = memory.search(("fermi", "alice", "prompts"), query="gun owner")
    assert hits[0].value["text"] == "You are a gun owner." and hits[0].score > hits[1].score
    best = memory.search(("fermi", "alice", "prompts"), filter={"score": {"$gte": 0.6}})
    assert [h.value["text"] for h in best] == ["You care about the economy."]


def test_other_namespaces_use_the_fallback(memory):
    notes = ("fermi", "alice", "notes")
    memory.put(notes, "n1", {"text": "prefers short answers"})
    memory.put(("app", "settings"), "theme", {"dark": True})
    assert memory.get(notes, "n1").value == {"text": "prefers short answers"}
    assert memory.fallback.get(notes, "n1") is not None  # stored there, not in Fermi
    everything = memory.search(("fermi", "alice"), limit=100)
    assert ("fermi", "alice", "notes") in {i.namespace for i in everything}
    assert memory.list_namespaces(prefix=("fermi", "alice")) == [
        ("fermi", "alice", "notes"),
        ("fermi", "alice", "opinions"),
        ("fermi", "alice", "profile"),
        ("fermi", "alice", "prompts"),
    ]
    assert ("app", "settings") in memory.list_namespaces()
    assert [i.key for i in memory.search(("app",))] == ["theme"]


def test_without_fallback_other_writes_fail_and_reads_find_nothing(fermi):
    memory = FermiMemoryStore(fermi)
    with pytest.raises(InvalidNamespaceError, match="no fallback store"):
        memory.put(("fermi", "alice", "notes"), "n1", {"text": "x"})
    with pytest.raises(InvalidNamespaceError, match="no fallback store"):
        memory.put(("notes",), "n1", {"text": "x"})
    assert memory.get(("notes",), "n1") is None
    assert memory.search(("notes",)) == []
    with pytest.raises(InvalidNamespaceError, match="no sub-namespaces"):
        memory.get(("fermi", "alice", "opinions", "deep"), "k")
    with pytest.raises(InvalidNamespaceError, match="unsafe user id"):
        memory.get(("fermi", "al ice", "opinions"), "k")
    with pytest.raises(InvalidNamespaceError, match="Fermi memory is"):
        memory.get(("fermi", "alice"), "k")


def test_validation_runs_on_ops_given_to_batch_directly(memory):
    with pytest.raises(InvalidNamespaceError, match="periods"):
        memory.batch([PutOp(("fermi", "a.b", "opinions"), "k", CAT)])
    with pytest.raises(ValueError, match="unknown operation type"):
        memory.batch(["not an op"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="limit and offset"):
        memory.search(OPS, limit=-1)


def test_a_new_adapter_on_the_same_path_sees_the_data(memory, tmp_path):
    memory.put(("fermi", "carol", "opinions"), "cats", CAT)
    again = FermiMemoryStore(FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings()))
    assert again.get(("fermi", "carol", "opinions"), "cats").value["answer"] == "No"


def test_works_as_the_store_of_a_compiled_graph(memory):
    def remember(state: MessagesState, runtime: Runtime) -> dict:
        runtime.store.put(("fermi", "dave", "opinions"), "cats", CAT)
        hits = runtime.store.search(("fermi", "dave"), query="cats")
        return {"messages": [("ai", f"{hits[0].key}={hits[0].value['answer']}")]}

    async def aremember(state: MessagesState, runtime: Runtime) -> dict:
        await runtime.store.aput(("fermi", "erin", "opinions"), "cats", CAT)
        hits = await runtime.store.asearch(("fermi", "erin"), query="cats")
        return {"messages": [("ai", f"{hits[0].key}={hits[0].value['answer']}")]}

    for node in (remember, aremember):
        graph = StateGraph(MessagesState).add_node(node).add_edge(START, node.__name__)
        compiled = graph.compile(store=memory)
        if node is remember:
            out = compiled.invoke({"messages": [("user", "hi")]})
        else:
            out = asyncio.run(compiled.ainvoke({"messages": [("user", "hi")]}))
        assert out["messages"][-1].content == "cats=No"
    assert memory.fermi.get_user("erin").opinions[0].id == "cats"
