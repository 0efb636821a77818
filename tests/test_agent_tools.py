"""Opinion tools in real `create_agent` runs: the user id comes from the run context, the
opinion lands in that user's memory only, bad arguments go back to the model as tool errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_fakes import OneToolCallModel
from fermi_store_fakes import KeywordEmbeddings, make_user
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.store.memory import InMemoryStore

from langchain_fermi.agents import (
    FermiAgentContext,
    FermiMemoryStore,
    FermiMiddleware,
    get_user_profile,
    live_opinion_id,
    make_opinion_tools,
    record_opinion,
    record_opinion_for,
)
from langchain_fermi.store import FermiStore

CATS = {"question": "Do you like cats?", "choices": ["Yes", "No", "Unsure"], "answer": "No"}


@pytest.fixture
def fermi(tmp_path: Path) -> FermiStore:
    store = FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())
    store.save_user(make_user("alice"))
    store.save_user(make_user("bob"))
    return store


def agent_for(model, memory, tools=None, **kw):
    return create_agent(
        model,
        tools=tools if tools is not None else [record_opinion, get_user_profile],
        middleware=[FermiMiddleware(fallback="none")],
        context_schema=FermiAgentContext,
        store=memory,
        **kw,
    )


def tool_messages(out) -> list[ToolMessage]:
    return [m for m in out["messages"] if isinstance(m, ToolMessage)]


def test_recorded_opinion_lands_in_that_users_memory_only(fermi: FermiStore):
    memory = FermiMemoryStore(fermi, fallback=InMemoryStore())
    model = OneToolCallModel(tool="record_opinion", args=CATS, reply="noted")
    out = agent_for(model, memory).invoke(
        {"messages": [HumanMessage("I don't like cats.")]}, context={"user_id": "bob"}
    )
    assert out["messages"][-1].content == "noted"
    oid = live_opinion_id(CATS["question"], CATS["choices"])
    assert tool_messages(out)[0].content.startswith(f"Recorded opinion {oid}")
    bob = fermi.get_user("bob")
    assert bob.opinion(oid).answer == "No" and len(bob.opinions) == 9
    assert memory.get(("fermi", "bob", "opinions"), oid).value["question"] == CATS["question"]
    assert memory.get(("fermi", "alice", "opinions"), oid) is None
    assert oid not in {o.id for o in fermi.get_user("alice").opinions}
    assert fermi.nearest_opinions("bob", "cats", k=1)[0][0].id == oid  # embedded, retrievable


def test_a_model_cannot_pick_the_user(fermi: FermiStore):
    memory = FermiMemoryStore(fermi)
    schema = record_opinion.tool_call_schema.model_json_schema()["properties"]
    assert set(schema) == {"question", "choices", "answer", "topic"}  # no user id, no runtime
    model = OneToolCallModel(tool="record_opinion", args={**CATS, "user_id": "alice"})
    agent_for(model, memory).invoke(
        {"messages": [HumanMessage("cats?")]}, context={"user_id": "bob"}
    )
    oid = live_opinion_id(CATS["question"], CATS["choices"])
    assert oid not in {o.id for o in fermi.get_user("alice").opinions}


def test_a_bad_opinion_goes_back_to_the_model_and_writes_nothing(fermi: FermiStore):
    model = OneToolCallModel(tool="record_opinion", args={**CATS, "answer": "Dogs"})
    out = agent_for(model, FermiMemoryStore(fermi)).invoke(
        {"messages": [HumanMessage("cats?")]}, context={"user_id": "bob"}
    )
    err = tool_messages(out)[0]
    assert "user 'bob'" in err.content and "'Dogs' is not one of the choices" in err.content
    assert len(fermi.get_user("bob").opinions) == 8


def test_answer_letters_and_case_are_accepted_and_restating_updates(fermi: FermiStore):
    a = record_opinion_for(fermi, "bob", CATS["question"], CATS["choices"], "b")
    b = record_opinion_for(fermi, "bob", CATS["question"], CATS["choices"], " unsure ")
    assert a.id == b.id and (a.answer, b.answer) == ("No", "Unsure")
    assert fermi.get_user("bob").opinion(a.id).answer == "Unsure"
    with pytest.raises(ValueError, match="unsafe user id"):
        record_opinion_for(fermi, "../etc", "Q?", ["Yes", "No"], "Yes")


def test_profile_tool_and_explicitly_bound_tools(fermi: FermiStore):
    tools = make_opinion_tools(fermi)  # no Fermi store on the agent: bound explicitly
    model = OneToolCallModel(tool="get_user_profile", args={})
    out = create_agent(model, tools=tools, context_schema=FermiAgentContext).invoke(
        {"messages": [HumanMessage("who am I?")]}, context={"user_id": "alice"}
    )
    profile = json.loads(tool_messages(out)[0].content)
    assert profile["user_id"] == "alice" and profile["attributes"] == {
        "Age": "30-49",
        "Region": "West",
    }
    assert profile["opinions"] == 8 and profile["learned_prompts"] == 0
    with pytest.raises(TypeError, match="FermiStore or a FermiMemoryStore"):
        make_opinion_tools(InMemoryStore())  # type: ignore[arg-type]


def test_without_a_fermi_store_the_tool_fails_clearly(fermi: FermiStore):
    model = OneToolCallModel(tool="record_opinion", args=CATS)
    agent = create_agent(model, tools=[record_opinion], store=InMemoryStore())
    with pytest.raises(ValueError, match="no Fermi store"):
        agent.invoke({"messages": [HumanMessage("cats?")]}, context={"user_id": "bob"})


def test_the_middleware_can_bring_the_tools(fermi: FermiStore):
    model = OneToolCallModel(tool="record_opinion", args=CATS, reply="noted")
    agent = create_agent(
        model,
        middleware=[FermiMiddleware(fermi, fallback="none", with_tools=True)],
        context_schema=FermiAgentContext,
    )
    out = agent.invoke({"messages": [HumanMessage("No cats.")]}, context={"user_id": "alice"})
    assert out["messages"][-1].content == "noted"
    oid = live_opinion_id(CATS["question"], CATS["choices"])
    assert fermi.get_user("alice").opinion(oid).answer == "No"
    assert oid not in {o.id for o in fermi.get_user("bob").opinions}
