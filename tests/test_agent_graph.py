"""langchain_fermi.studio.agent: the Studio agent and the server store, in process and under
``langgraph dev`` (the store API and an agent run read and write Fermi memory)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_fakes import RecordingChatModel
from fermi_store_fakes import economy_and_gun_prompts, make_result, make_user
from servers import langgraph_dev

from langchain_fermi.agents import FermiMemoryStore
from langchain_fermi.models import get_chat_model
from langchain_fermi.store import FermiStore

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "graphs" / "langgraph.json"
CATS = {"question": "Do you like cats?", "choices": ["Yes", "No"], "answer": "No"}


def test_langgraph_json_serves_the_agent_and_the_store() -> None:
    config = json.loads(CONFIG.read_text())
    assert config["graphs"]["fermi_agent"]["path"] == "langchain_fermi.studio.agent:graph"
    assert config["store"] == {"path": "langchain_fermi.studio.agent.make_store"}
    cli_config = pytest.importorskip("langgraph_cli.config")
    assert cli_config.validate_config_file(CONFIG)["store"]["path"].endswith(".make_store")


def test_make_store_and_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERMI_STORE_PATH", str(tmp_path / "chroma"))
    monkeypatch.delenv("FERMI_AGENT_LLM", raising=False)
    import langchain_fermi.studio.agent as module

    agent = importlib.reload(module)  # reads FERMI_AGENT_LLM at import
    store = agent.make_store()
    assert isinstance(store, FermiMemoryStore) and store.fermi.path == tmp_path / "chroma"
    assert store.fallback is not None
    # the local llama.cpp models call tools (forced calls by grammar), so the agent gets them
    assert "model" in agent.graph.nodes and "tools" in agent.graph.nodes
    assert agent.supports_tools(get_chat_model("smollm2"))
    assert agent.supports_tools(RecordingChatModel())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``langgraph dev`` on a free port, its Fermi store in tmp_path with one optimized user."""
    fermi = FermiStore(tmp_path / "chroma")
    fermi.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    del fermi
    with langgraph_dev(tmp_path, {"FERMI_STORE_PATH": str(tmp_path / "chroma")}) as url:
        yield url


@pytest.mark.server
@pytest.mark.local_model
def test_langgraph_dev_uses_fermi_memory(server: str, tmp_path: Path) -> None:
    import httpx

    with httpx.Client(base_url=server, timeout=600) as client:
        client.put(
            "/store/items",
            json={"namespace": ["fermi", "alice", "opinions"], "key": "cats", "value": CATS},
        ).raise_for_status()
        hits = client.post(
            "/store/items/search",
            json={"namespace_prefix": ["fermi", "alice"], "query": "cats", "limit": 1},
        ).raise_for_status()
        mixed = client.post("/store/items/search", json={"namespace_prefix": []})
        spaces = client.post("/store/namespaces", json={}).raise_for_status().json()
        run = client.post(
            "/runs/wait",
            json={
                "assistant_id": "fermi_agent",
                "input": {"messages": [{"role": "user", "content": "Do you own a gun?"}]},
                "context": {"user_id": "alice"},
            },
        ).raise_for_status()
    assert hits.json()["items"][0]["key"] == "cats"
    assert mixed.status_code == 400 and "names no user" in mixed.text
    assert ["fermi", "alice", "prompts"] in spaces["namespaces"]
    messages = run.json()["messages"]
    assert messages[-1]["type"] == "ai" and messages[-1]["content"].strip()
    stored = FermiStore(tmp_path / "chroma").get_user("alice")
    assert stored.opinion("cats").answer == "No"  # written through the server's store API
