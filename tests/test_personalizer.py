"""FermiPersonalizer: selection, fallbacks, every Runnable entry point, LCEL composition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fermi_store_fakes import KeywordEmbeddings, economy_and_gun_prompts, make_result, make_user
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.runnables import RunnableLambda

from langchain_fermi.errors import NoPromptsError, UnknownUserError
from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.questions import format_question, profile_prompt
from langchain_fermi.store import FermiStore

GUN_Q = "Would you buy a gun for self defense?"
TAX_Q = "Should income taxes be cut?"
GUN_PROMPT, ECON_PROMPT = "You are a gun owner.", "You care about the economy."


@pytest.fixture
def store(tmp_path: Path) -> FermiStore:
    s = FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())
    s.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    s.save_user(make_user("bob"))  # known, never optimized
    return s


def _system(value: ChatPromptValue) -> str | None:
    first = value.messages[0]
    return first.content if isinstance(first, SystemMessage) else None


def test_invoke_returns_system_and_question(store: FermiStore):
    out = FermiPersonalizer(store).invoke(
        {"question": GUN_Q, "choices": ["Yes", "No"], "user_id": "alice"}
    )
    assert isinstance(out, ChatPromptValue)
    assert out.messages == [
        SystemMessage(GUN_PROMPT),
        HumanMessage(format_question(GUN_Q, ["Yes", "No"])),
    ]
    assert _system(FermiPersonalizer(store).invoke({"question": TAX_Q, "user_id": "alice"})) == (
        ECON_PROMPT
    )


def test_select_prompt_explains(store: FermiStore):
    sel = FermiPersonalizer(store).select_prompt("alice", GUN_Q)
    assert sel.prompt.text == GUN_PROMPT and sel.strategy == "retrieval"
    assert {n.opinion_id for n in sel.neighbours} == {"o1", "o2", "o3"}
    assert all(n.question and n.similarity is not None for n in sel.neighbours)
    assert [a.accuracy for a in sel.accuracies] == [0.0, 1.0]
    assert "3/3" in sel.explanation


def test_strategies(store: FermiStore):
    best = FermiPersonalizer(store, strategy="best").invoke({"question": GUN_Q, "user_id": "alice"})
    assert _system(best) == ECON_PROMPT
    prof = FermiPersonalizer(store, strategy="profile").invoke(
        {"question": GUN_Q, "user_id": "alice"}
    )
    assert _system(prof) == profile_prompt(make_user("alice"))
    sel = FermiPersonalizer(store, num_neighbors=8).select_prompt("alice", GUN_Q)
    assert len(sel.neighbours) == 8 and sel.prompt.text == ECON_PROMPT  # 5/8 vs 4/8


def test_user_id_from_config_and_string_input(store: FermiStore):
    p = FermiPersonalizer(store)
    cfg = {"configurable": {"user_id": "alice"}}
    assert p.invoke(GUN_Q, config=cfg).messages == [SystemMessage(GUN_PROMPT), HumanMessage(GUN_Q)]
    assert _system(p.invoke({"question": GUN_Q}, config=cfg)) == GUN_PROMPT
    with pytest.raises(ValueError, match="no user id"):
        p.invoke(GUN_Q)
    with pytest.raises(ValueError, match="needs a 'question'"):
        p.invoke({"user_id": "alice"})
    with pytest.raises(ValueError, match="non-empty"):
        p.invoke({"question": " ", "user_id": "alice"})


def test_unknown_user_and_fallbacks(store: FermiStore):
    q = {"question": GUN_Q, "choices": ["Yes", "No"], "user_id": "carol"}
    with pytest.raises(UnknownUserError, match="unknown user 'carol'"):
        FermiPersonalizer(store).invoke(q)
    with pytest.raises(UnknownUserError):
        FermiPersonalizer(store, fallback="profile").invoke(q)
    out = FermiPersonalizer(store, fallback="none").invoke(q)
    assert out.messages == [HumanMessage(format_question(GUN_Q, ["Yes", "No"]))]

    q["user_id"] = "bob"
    with pytest.raises(NoPromptsError, match=r"'bob' has no optimized prompts.*fallback"):
        FermiPersonalizer(store).invoke(q)
    prof = FermiPersonalizer(store, fallback="profile")
    assert _system(prof.invoke(q)) == profile_prompt(make_user("bob"))
    assert "fallback 'profile'" in prof.select_prompt("bob", GUN_Q).explanation
    assert len(FermiPersonalizer(store, fallback="none").invoke(q).messages) == 1


def test_batch_stream_and_async(store: FermiStore):
    p = FermiPersonalizer(store)
    inputs = [{"question": GUN_Q, "user_id": "alice"}, {"question": TAX_Q, "user_id": "alice"}]
    assert [_system(v) for v in p.batch(inputs)] == [GUN_PROMPT, ECON_PROMPT]
    chunks = list(p.stream(inputs[0]))
    assert len(chunks) == 1 and _system(chunks[0]) == GUN_PROMPT
    errs = p.batch([inputs[0], {"question": GUN_Q, "user_id": "nobody"}], return_exceptions=True)
    assert _system(errs[0]) == GUN_PROMPT and isinstance(errs[1], UnknownUserError)


async def test_async_entry_points(store: FermiStore):
    p = FermiPersonalizer(store)
    inputs = [{"question": GUN_Q, "user_id": "alice"}, {"question": TAX_Q, "user_id": "alice"}]
    assert _system(await p.ainvoke(inputs[0])) == GUN_PROMPT
    assert [_system(v) for v in await p.abatch(inputs)] == [GUN_PROMPT, ECON_PROMPT]
    chunks = [c async for c in p.astream(inputs[1])]
    assert len(chunks) == 1 and _system(chunks[0]) == ECON_PROMPT
    with pytest.raises(UnknownUserError):
        await p.ainvoke({"question": GUN_Q, "user_id": "nobody"})


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.chains: list[str] = []
        self.chat_inputs: list[list[Any]] = []

    def on_chain_start(self, serialized: Any, inputs: Any, **kw: Any) -> None:
        self.chains.append(kw.get("name") or (serialized or {}).get("name", "?"))

    def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
        self.chat_inputs.append(messages[0])


def test_lcel_composition_passes_config_on(store: FermiStore):
    model = FakeMessagesListChatModel(responses=[AIMessage("A")])
    chain = FermiPersonalizer(store) | model | StrOutputParser() | RunnableLambda(str.lower)
    rec = _Recorder()
    out = chain.invoke(GUN_Q, config={"configurable": {"user_id": "alice"}, "callbacks": [rec]})
    assert out == "a"
    assert "FermiPersonalizer" in rec.chains  # traced as its own run
    assert rec.chat_inputs == [[SystemMessage(GUN_PROMPT), HumanMessage(GUN_Q)]]


def test_selection_embeds_the_query_once_and_caches_it(store: FermiStore):
    emb: KeywordEmbeddings = store.embeddings  # type: ignore[assignment]
    before = emb.query_calls
    p = FermiPersonalizer(store)
    p.invoke({"question": "A brand new gun question?", "user_id": "alice"})
    assert emb.query_calls == before + 1
    p.invoke({"question": "A brand new gun question?", "user_id": "alice"})
    assert emb.query_calls == before + 1
    FermiPersonalizer(store, strategy="best").invoke({"question": "Another?", "user_id": "alice"})
    assert emb.query_calls == before + 1  # 'best' needs no neighbours


@pytest.mark.local_model
def test_lcel_chain_with_the_real_local_model_and_embeddings(tmp_path: Path):
    pytest.importorskip("llama_cpp")
    from langchain_fermi.models import get_chat_model
    from langchain_fermi.models.embeddings import MiniLMEmbeddings
    from langchain_fermi.questions import parse_answer

    store = FermiStore(tmp_path / "chroma", embeddings=MiniLMEmbeddings())
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    sel = FermiPersonalizer(store).select_prompt("alice", GUN_Q)
    assert sel.prompt.text == GUN_PROMPT  # real MiniLM neighbours are the gun opinions
    assert {n.opinion_id for n in sel.neighbours} == {"o1", "o2", "o3"}
    model = get_chat_model("smollm2", max_tokens=8)
    rec = _Recorder()
    chain = FermiPersonalizer(store) | model | StrOutputParser()
    choices = ["Yes", "No"]
    reply = chain.invoke(
        {"question": GUN_Q, "choices": choices, "user_id": "alice"}, config={"callbacks": [rec]}
    )
    assert isinstance(reply, str) and reply.strip()
    assert rec.chat_inputs[0][0] == SystemMessage(GUN_PROMPT)
    assert parse_answer(reply, choices).index in (0, 1, None)


def test_the_selector_is_the_shared_selection_path(store: FermiStore):
    from langchain_fermi.personalizer import PromptSelector

    p = FermiPersonalizer(store, num_neighbors=8, fallback="profile")
    assert p.selector == PromptSelector("retrieval", 8, "profile", True)
    assert p.selector.select(store, "alice", GUN_Q) == p.select_prompt("alice", GUN_Q)
    assert FermiPersonalizer(store, fallback=None).fallback == "raise"  # 0.1's spelling
    for bad, match in (
        ({"strategy": "oracle"}, "strategy"),
        ({"fallback": "maybe"}, "fallback"),
        ({"num_neighbors": 0}, "num_neighbors"),
    ):
        with pytest.raises(ValueError, match=match):
            PromptSelector(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_neighbors"):
        PromptSelector(num_neighbors=2.5)  # type: ignore[arg-type]


class _Runs(BaseCallbackHandler):
    """Every chain run: name, metadata, parent, outputs or error."""

    def __init__(self) -> None:
        self.runs: dict[Any, dict[str, Any]] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, **kw: Any) -> None:
        self.runs[run_id] = {
            "name": kw.get("name"),
            "metadata": kw.get("metadata") or {},
            "parent": kw.get("parent_run_id"),
            "inputs": inputs,
        }

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kw: Any) -> None:
        self.runs[run_id]["outputs"] = outputs

    def on_chain_error(self, error: BaseException, *, run_id: Any, **kw: Any) -> None:
        self.runs[run_id]["error"] = error

    def named(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.runs.values() if r["name"] == name]


def _check_selection_run(runs: _Runs) -> None:
    (parent,) = runs.named("FermiPersonalizer")
    (child,) = runs.named("fermi_select_prompt")
    assert child["parent"] in {k for k, v in runs.runs.items() if v is parent}
    assert child["metadata"]["fermi_user_id"] == "alice"
    assert child["metadata"]["fermi_strategy"] == "retrieval"
    assert child["metadata"]["fermi_num_neighbors"] == 3
    assert child["metadata"]["fermi_fallback"] == "raise"
    assert child["metadata"]["trace_tag"] == "kept"  # the caller's metadata is inherited
    out = child["outputs"]
    assert out["prompt"] == GUN_PROMPT and out["prompt_index"] == 1
    assert out["prompt_score"] == pytest.approx(economy_and_gun_prompts()[1].score)
    assert out["strategy"] == "retrieval" and out["fallback"] is None
    assert set(out["neighbours"]) == {"o1", "o2", "o3"}  # ids only, no opinion text
    assert "3/3" in out["explanation"] and out["user_id"] == "alice"


def test_the_choice_and_its_reason_are_on_the_trace(store: FermiStore):
    model = FakeMessagesListChatModel(responses=[AIMessage("A")])
    chain = FermiPersonalizer(store) | model
    runs = _Runs()
    config = {
        "configurable": {"user_id": "alice"},
        "callbacks": [runs],
        "metadata": {"trace_tag": "kept"},
    }
    chain.invoke(GUN_Q, config=config)
    _check_selection_run(runs)


async def test_the_choice_is_on_the_trace_of_async_runs_and_errors_too(store: FermiStore):
    runs = _Runs()
    config = {"callbacks": [runs], "metadata": {"trace_tag": "kept"}}
    await FermiPersonalizer(store).ainvoke({"question": GUN_Q, "user_id": "alice"}, config)
    _check_selection_run(runs)
    failed = _Runs()
    with pytest.raises(UnknownUserError):
        FermiPersonalizer(store).invoke(
            {"question": GUN_Q, "user_id": "nobody"}, {"callbacks": [failed]}
        )
    (child,) = failed.named("fermi_select_prompt")
    assert isinstance(child["error"], UnknownUserError) and "outputs" not in child


def test_user_id_is_a_declared_configurable_field(store: FermiStore):
    p = FermiPersonalizer(store)
    (spec,) = p.config_specs
    assert spec.id == "user_id" and spec.annotation is str
    chain = p | FakeMessagesListChatModel(responses=[AIMessage("A")]) | StrOutputParser()
    assert "user_id" in {s.id for s in chain.config_specs}
    bound = p.with_config(configurable={"user_id": "alice"})
    assert _system(bound.invoke(GUN_Q)) == GUN_PROMPT
