"""FermiMiddleware in real `create_agent` runs, and `personalize_messages` for hand-built graphs:
the system prompt the model receives is, per user, exactly the one Retrieval-of-Prompt picks."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from agent_fakes import RecordingChatModel
from fermi_store_fakes import (
    KeywordEmbeddings,
    economy_and_gun_prompts,
    make_result,
    make_user,
    prompt,
)
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.store.memory import InMemoryStore

from langchain_fermi.agents import (
    FermiAgentContext,
    FermiMemoryStore,
    FermiMiddleware,
    apersonalize_messages,
    personalize_messages,
)
from langchain_fermi.errors import NoPromptsError, UnknownUserError
from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.questions import profile_prompt
from langchain_fermi.store import FermiStore

GUN_Q = "Would you buy a gun for self defense?"
TAX_Q = "Should income taxes be cut?"
GUN, ECON = "You are a gun owner.", "You care about the economy."
BOB_PROMPTS = [
    prompt("Bob distrusts guns.", {"o1": 1, "o2": 1, "o3": 0, "o4": 0}),
    prompt("Bob wants lower taxes.", {"o1": 0, "o4": 1, "o5": 1, "o7": 1}),
]


@pytest.fixture
def fermi(tmp_path: Path) -> FermiStore:
    store = FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    store.save_result(make_result("bob", BOB_PROMPTS), user=make_user("bob", answer="No"))
    store.save_user(make_user("carol"))  # known, never optimized
    return store


def system_of(call: list) -> str | None:
    first = call[0]
    return first.content if isinstance(first, SystemMessage) else None


def expected(fermi: FermiStore, user: str, question: str) -> str:
    return FermiPersonalizer(fermi).select_prompt(user, question).prompt.text


def run(agent, question: str, user: str, **kw):
    return agent.invoke({"messages": [HumanMessage(question)]}, context={"user_id": user}, **kw)


def test_each_user_gets_exactly_the_retrieved_prompt(fermi: FermiStore):
    model = RecordingChatModel()
    agent = create_agent(
        model,
        middleware=[FermiMiddleware()],
        context_schema=FermiAgentContext,
        store=FermiMemoryStore(fermi, fallback=InMemoryStore()),
    )
    cases = [("alice", GUN_Q), ("alice", TAX_Q), ("bob", GUN_Q), ("bob", TAX_Q)]
    for user, question in cases:
        out = run(agent, question, user)
        assert out["messages"][-1].content == "ok"
    got = [system_of(c) for c in model.calls]
    assert got == [expected(fermi, u, q) for u, q in cases]
    assert got == [GUN, ECON, "Bob distrusts guns.", "Bob wants lower taxes."]
    assert [[(m.type, m.content) for m in c[1:]] for c in model.calls] == [
        [("human", q)] for _, q in cases
    ]


def test_prepend_keeps_the_agents_prompt_and_replace_drops_it(fermi: FermiStore):
    for placement, want in (("prepend", f"{GUN}\n\nBe brief."), ("replace", GUN)):
        model = RecordingChatModel()
        agent = create_agent(
            model,
            system_prompt="Be brief.",
            middleware=[FermiMiddleware(fermi, placement=placement)],
            context_schema=FermiAgentContext,
        )
        run(agent, GUN_Q, "alice")
        assert system_of(model.calls[0]) == want


def test_async_run_and_dataclass_context(fermi: FermiStore):
    @dataclass
    class Ctx:
        user_id: str

    model = RecordingChatModel()
    agent = create_agent(model, middleware=[FermiMiddleware(fermi)], context_schema=Ctx)
    asyncio.run(agent.ainvoke({"messages": [HumanMessage(TAX_Q)]}, context=Ctx("bob")))
    assert system_of(model.calls[0]) == expected(fermi, "bob", TAX_Q) == "Bob wants lower taxes."


def test_fallbacks_for_unoptimized_and_unknown_users(fermi: FermiStore):
    def system_for(user: str, **kw) -> str | None:
        model = RecordingChatModel()
        agent = create_agent(model, middleware=[FermiMiddleware(fermi, **kw)])
        run(agent, GUN_Q, user)
        return system_of(model.calls[0])

    assert system_for("carol") == profile_prompt(fermi.get_user("carol"))
    assert system_for("carol", fallback="none") is None
    assert system_for("zed") is None  # unknown: no profile to fall back on
    with pytest.raises(NoPromptsError, match="'carol'"):
        system_for("carol", fallback="raise")
    with pytest.raises(UnknownUserError, match="'zed'"):
        system_for("zed", fallback="raise")


def test_the_users_request_is_not_mutated_and_ids_come_from_context(fermi: FermiStore):
    model = RecordingChatModel()
    agent = create_agent(model, middleware=[FermiMiddleware(fermi)])
    out = run(agent, GUN_Q, "alice")
    assert not any(isinstance(m, SystemMessage) for m in out["messages"])  # not in the state
    with pytest.raises(ValueError, match="no 'user_id' in the run context"):
        agent.invoke({"messages": [HumanMessage(GUN_Q)]})


def test_options_are_checked_up_front(fermi: FermiStore):
    for bad in ({"strategy": "magic"}, {"fallback": "maybe"}, {"placement": "middle"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FermiMiddleware(fermi, **bad)
    with pytest.raises(ValueError, match="num_neighbors"):
        FermiMiddleware(fermi, num_neighbors=0)
    with pytest.raises(TypeError, match="FermiStore or a FermiMemoryStore"):
        FermiMiddleware(InMemoryStore())  # type: ignore[arg-type]
    model = RecordingChatModel()
    agent = create_agent(model, middleware=[FermiMiddleware()], store=InMemoryStore())
    with pytest.raises(ValueError, match="no Fermi store"):
        run(agent, GUN_Q, "alice")


def test_personalize_messages_for_hand_built_graphs(fermi: FermiStore):
    history = [
        SystemMessage("Be brief."),
        HumanMessage("hi"),
        AIMessage("hello"),
        HumanMessage(TAX_Q),
    ]
    out = personalize_messages(fermi, "alice", history)
    assert out[0] == SystemMessage(f"{ECON}\n\nBe brief.") and out[1:] == history[1:]
    assert history[0] == SystemMessage("Be brief.")  # input untouched
    bare = personalize_messages(FermiMemoryStore(fermi), "bob", [HumanMessage(GUN_Q)])
    assert bare == [SystemMessage("Bob distrusts guns."), HumanMessage(GUN_Q)]
    same = asyncio.run(apersonalize_messages(fermi, "bob", [HumanMessage(GUN_Q)]))
    assert same == bare
    assert personalize_messages(fermi, "zed", [HumanMessage(GUN_Q)]) == [HumanMessage(GUN_Q)]
    # no human message yet: the best prompt overall
    assert personalize_messages(fermi, "alice", [])[0].content == ECON


def test_one_selector_serves_every_model_call(fermi: FermiStore, monkeypatch):
    from langchain_fermi.personalizer import PromptSelector

    used: list[int] = []
    real = PromptSelector.select

    def spy(self, store, user_id, question):
        used.append(id(self))
        return real(self, store, user_id, question)

    monkeypatch.setattr(PromptSelector, "select", spy)
    middleware = FermiMiddleware(fermi, num_neighbors=2)
    agent = create_agent(RecordingChatModel(), middleware=[middleware])
    for user, question in (("alice", GUN_Q), ("bob", TAX_Q), ("alice", TAX_Q)):
        run(agent, question, user)
    assert used == [id(middleware.selector)] * 3
    assert middleware.selector == PromptSelector("retrieval", 2, "profile")


def test_users_without_prompts_are_logged_once_and_strict_raises(fermi: FermiStore, caplog):
    caplog.set_level(logging.WARNING, logger="langchain_fermi.agents.middleware")
    agent = create_agent(RecordingChatModel(), middleware=[FermiMiddleware(fermi)])
    for user in ("carol", "zed", "carol", "zed", "alice", "carol"):
        run(agent, GUN_Q, user)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(logged) == 2, logged
    assert "'carol' has no optimized prompts; fallback 'profile'" in logged[0]
    assert "unknown user 'zed'" in logged[1] and "no Fermi prompt" in logged[1]
    assert all("strict=True" in m for m in logged)

    strict = FermiMiddleware(fermi, strict=True)
    assert strict.selector.fallback == "raise"
    model = RecordingChatModel()
    agent = create_agent(model, middleware=[strict])
    with pytest.raises(NoPromptsError, match="'carol'"):
        run(agent, GUN_Q, "carol")
    with pytest.raises(UnknownUserError, match="'zed'"):
        run(agent, GUN_Q, "zed")
    run(agent, GUN_Q, "alice")
    assert [system_of(c) for c in model.calls] == [GUN]


def test_personalize_messages_logs_and_strict_raises(fermi: FermiStore, caplog):
    caplog.set_level(logging.WARNING, logger="langchain_fermi.agents.middleware")
    msgs = [HumanMessage(GUN_Q)]
    assert personalize_messages(fermi, "ghost-1", msgs, fallback="none") == msgs
    assert personalize_messages(fermi, "ghost-1", msgs) == msgs
    logged = [r.getMessage() for r in caplog.records if "ghost-1" in r.getMessage()]
    assert len(logged) == 1
    with pytest.raises(UnknownUserError):
        personalize_messages(fermi, "ghost-1", msgs, strict=True)
