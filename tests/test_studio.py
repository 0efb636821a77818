"""LangGraph Studio: the config (checkout and ``fermi studio``), the typed and configurable
``fermi`` / ``fermi_opro`` graphs that save to the server's store, and ``langgraph dev`` driven
over its HTTP API (an assistant with its own K, L, T learns a user's prompts, then
``fermi_agent`` in the same server answers that user with them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_fakes import RecordingChatModel
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user
from langchain.agents import create_agent
from langchain_core.messages import SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from servers import langgraph_dev

from langchain_fermi.agents import FermiAgentContext, FermiMemoryStore, FermiMiddleware
from langchain_fermi.cli import main
from langchain_fermi.data import load_users
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.store import FermiStore
from langchain_fermi.studio import GRAPHS, langgraph_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "graphs" / "langgraph.json"
REPLIES = [f"[{keyword_prompt('t1', 't3')} Answer as this person would.]"]


# ------------------------------------------------------------------ the config


def test_checkout_config_is_the_generated_one_and_valid() -> None:
    assert json.loads(CONFIG.read_text()) == langgraph_config(["."])
    cli_config = pytest.importorskip("langgraph_cli.config")
    validated = cli_config.validate_config_file(CONFIG)
    assert set(validated["graphs"]) == {"fermi", "fermi_opro", "fermi_agent"}
    descriptions = [spec["description"] for spec in GRAPHS.values()]
    assert len(set(descriptions)) == 3 and all(len(d) > 40 for d in descriptions)
    assert validated["dependencies"] == ["."]  # `langgraph build` installs the checkout


def test_fermi_studio_prints_and_writes_an_install_config(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["studio"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == langgraph_config()
    assert printed["dependencies"] == ["langchain-fermi[local]"]
    assert all(":" in g["path"] and "/" not in g["path"] for g in printed["graphs"].values())

    out = tmp_path / "deploy" / "langgraph.json"
    argv = ["studio", "-o", str(out), "--dependency", "langchain-fermi"]
    assert main([*argv, "--env", "FERMI_TARGET_LLM=openai:gpt-4o-mini"]) == 0
    assert f"langgraph dev --config {out}" in capsys.readouterr().err
    written = json.loads(out.read_text())
    assert written["dependencies"] == ["langchain-fermi"]
    assert written["env"] == {"FERMI_TARGET_LLM": "openai:gpt-4o-mini"}
    cli_config = pytest.importorskip("langgraph_cli.config")
    cli_config.validate_config_file(out)

    assert main(["studio", "--env", "no-equals-sign"]) == 2
    assert "argument --env: expected KEY=VALUE" in capsys.readouterr().err


# ------------------------------------------------------------------ the graphs, in process


@pytest.fixture
def studio(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Studio module with scripted models (the loops are rebuilt for them)."""
    import langchain_fermi.studio.optimization as studio

    monkeypatch.setattr(studio, "_optimizer", ScriptedOptimizer(replies=REPLIES))
    monkeypatch.setattr(studio, "_scorer", AnswerScorer(KeywordTarget()))
    monkeypatch.setattr(studio, "_LOOPS", {})
    return studio


def test_names_and_typed_schemas(studio: Any) -> None:
    assert (studio.graph.name, studio.opro_graph.name) == ("fermi", "fermi_opro")
    schema = studio.graph.get_input_jsonschema()
    assert set(schema["properties"]) == {"user", "warm_start"}  # no internal field
    assert schema["required"] == ["user"]
    profile = schema["$defs"]["UserProfile"]
    assert {"user_id", "attributes", "opinions"} <= set(profile["properties"])
    context = studio.graph.get_context_jsonschema()["properties"]
    assert {"K", "L", "T", "variant", "max_target_calls", "max_optimizer_calls"} <= set(context)
    assert {"max_tokens", "patience", "bracket_fallback", "save"} <= set(context)
    output = studio.graph.get_output_jsonschema()["properties"]
    assert {"memory", "curve", "cost", "stop_reason", "generation"} <= set(output)


def test_studio_config_reads_the_environment(studio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERMI_K", "3")
    monkeypatch.setenv("FERMI_T", "1")
    monkeypatch.setenv("FERMI_MAX_TARGET_CALLS", "50")
    config = studio.studio_config("opro")
    assert (config.num_candidates, config.iterations, config.memory_size) == (3, 1, 3)
    assert (config.max_target_calls, config.variant) == (50, "opro")
    assert config.bracket_fallback == "reply"  # SmolLM2 rarely writes brackets
    run = studio.studio_config("fermi", {"K": 1, "T": 4, "variant": "opro", "patience": 2})
    assert (run.num_candidates, run.iterations, run.variant, run.patience) == (1, 4, "opro", 2)
    monkeypatch.setenv("FERMI_K", "two")
    with pytest.raises(ValueError, match="FERMI_K must be an integer, got 'two'"):
        studio.studio_config()


def _serve(graph: Any, store: Any) -> Any:
    return graph.copy(update={"checkpointer": InMemorySaver(), "store": store})


def test_fermi_uses_the_runs_settings_and_saves_for_the_agent(studio: Any, tmp_path: Path) -> None:
    """What the server does, in process: the run's context sets K, L, T; the result lands in
    the store the agent reads, and the agent's model gets the saved prompt."""
    memory = FermiMemoryStore(FermiStore(tmp_path / "chroma"), fallback=InMemoryStore())
    user = make_user("carol", n=20)
    graph = _serve(studio.graph, memory)
    context = {"K": 1, "L": 2, "T": 2, "max_optimizer_calls": 5}
    out = asyncio.run(
        graph.ainvoke(
            {"user": user.model_dump(mode="json")},
            {"configurable": {"thread_id": "t1"}},
            context=context,
        )
    )
    assert (out["config"]["K"], out["config"]["L"], out["config"]["T"]) == (1, 2, 2)
    assert out["config"]["variant"] == "fermi" and out["config"]["max_optimizer_calls"] == 5
    assert len(out["curve"]) == 3 and out["cost"]["optimizer_calls"] == 2  # K x T
    assert 1 <= len(out["memory"]) <= 2 and out["stop_reason"] == "iterations"
    assert out["generation"] == 1 and out["user_id"] == "carol"
    saved = [p.text for p in memory.fermi.get_prompts("carol")]
    assert saved and saved[0] in {m["text"] for m in out["memory"]} | {
        p["text"] for p in out.get("served") or []
    }

    model = RecordingChatModel()
    agent = create_agent(
        model,
        middleware=[FermiMiddleware()],
        context_schema=FermiAgentContext,
        store=memory,
    )
    agent.invoke({"messages": [("user", user.opinions[0].question)]}, context={"user_id": "carol"})
    system = model.calls[0][0]
    assert isinstance(system, SystemMessage) and str(system.content) in saved


def test_restarts_run_as_parallel_branches_and_the_best_is_kept(
    studio: Any, tmp_path: Path
) -> None:
    memory = FermiMemoryStore(FermiStore(tmp_path / "chroma"), fallback=InMemoryStore())
    graph = _serve(studio.graph, memory)
    assert {"optimize", "pick", "save"} <= set(graph.get_graph().nodes)
    out = asyncio.run(
        graph.ainvoke(
            {"user": make_user("erin", n=20).model_dump(mode="json")},
            {"configurable": {"thread_id": "t4"}},
            context={"K": 1, "L": 2, "T": 1, "restarts": 2},
        )
    )
    assert out["config"]["restarts"] == 2
    assert out["cost"]["optimizer_calls"] == 2  # K x T per search, summed over both
    state = graph.get_state({"configurable": {"thread_id": "t4"}}).values
    runs = sorted(state["searches"], key=lambda s: s["restart"])
    assert [s["restart"] for s in runs] == [0, 1]
    best = [max(float(p["score"]) for p in s["run"]["memory"]) for s in runs]
    assert max(float(p["score"]) for p in out["memory"]) == max(best)
    assert out["generation"] == 1 and memory.fermi.get_prompts("erin")


def test_opro_graph_and_no_save(studio: Any, tmp_path: Path) -> None:
    memory = FermiMemoryStore(FermiStore(tmp_path / "chroma"), fallback=InMemoryStore())
    graph = _serve(studio.opro_graph, memory)
    out = asyncio.run(
        graph.ainvoke(
            {"user": make_user("dave").model_dump(mode="json")},
            {"configurable": {"thread_id": "t2"}},
            context={"K": 1, "T": 1, "save": False},
        )
    )
    assert out["config"]["variant"] == "opro" and out["generation"] is None
    assert memory.fermi.list_users() == []
    with pytest.raises(ValueError, match="K"):
        asyncio.run(
            graph.ainvoke(
                {"user": make_user("dave").model_dump(mode="json")},
                {"configurable": {"thread_id": "t3"}},
                context={"K": 0},
            )
        )


# ------------------------------------------------------------------ langgraph dev over HTTP


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``langgraph dev`` on a free port; its defaults (K=3, L=1, T=0) differ from what the test's
    assistant sets, so the output shows whose settings ran."""
    env = {
        "FERMI_K": "3",
        "FERMI_L": "1",
        "FERMI_T": "0",
        "FERMI_SCORE_CACHE": str(tmp_path / "scores.sqlite"),
        "FERMI_STORE_PATH": str(tmp_path / "chroma"),
    }
    with langgraph_dev(tmp_path, env) as url:
        yield url


def _agent_system_prompt(client: Any, user_id: str, question: str) -> str:
    """Run ``fermi_agent`` for ``user_id``; the system prompt its model received (from the
    run's ``events`` stream)."""
    thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
    body = {
        "assistant_id": "fermi_agent",
        "input": {"messages": [{"role": "user", "content": question}]},
        "context": {"user_id": user_id},
        "stream_mode": ["events"],
    }
    with client.stream("POST", f"/threads/{thread}/runs/stream", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if isinstance(event, dict) and event.get("event") == "on_chat_model_start":
                messages = event["data"]["input"]["messages"][0]
                first = messages[0]
                return first["content"] if first.get("type") == "system" else ""
    pytest.fail("no chat model call in the fermi_agent run")


@pytest.mark.server
@pytest.mark.local_model
def test_langgraph_dev_assistant_settings_then_the_agent_uses_the_saved_prompt(
    server: str,
) -> None:
    import httpx

    user = load_users(ROOT / "examples" / "data" / "users.json")[1]
    user = user.model_copy(update={"opinions": user.opinions[:6]})
    question = user.opinions[0].question
    with httpx.Client(base_url=server, timeout=900) as client:
        graphs = client.post("/assistants/search", json={"limit": 20}).raise_for_status().json()
        assert {a["graph_id"] for a in graphs} >= {"fermi", "fermi_opro", "fermi_agent"}

        before = _agent_system_prompt(client, user.user_id, question)  # an unknown user
        assistant = (
            client.post(
                "/assistants",
                json={"graph_id": "fermi", "name": "tiny", "context": {"K": 1, "L": 2, "T": 1}},
            )
            .raise_for_status()
            .json()
        )
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        output = (
            client.post(
                f"/threads/{thread}/runs/wait",
                json={
                    "assistant_id": assistant["assistant_id"],
                    "input": {"user": user.model_dump(mode="json")},
                },
            )
            .raise_for_status()
            .json()
        )
        prompts = (
            client.post(
                "/store/items/search", json={"namespace_prefix": ["fermi", user.user_id, "prompts"]}
            )
            .raise_for_status()
            .json()["items"]
        )
        after = _agent_system_prompt(client, user.user_id, question)

    assert output["config"]["K"] == 1 and output["config"]["T"] == 1  # not the server's 3 / 0
    assert output["config"]["L"] == 2 and len(output["memory"]) <= 2
    assert len(output["curve"]) == 2 and output["cost"]["optimizer_calls"] == 1
    assert output["stop_reason"] == "iterations" and output["generation"] == 1
    saved = [item["value"]["text"] for item in prompts]
    assert saved, "the fermi run saved nothing in the server's store"
    assert not any(text in before for text in saved)  # before: no Fermi prompt for this user
    assert any(after.startswith(text) for text in saved), after
