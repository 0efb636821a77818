"""LangGraph Studio: ``langgraph dev`` serves graphs/langgraph.json offline and runs the graph."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import langgraph_dev

from langchain_fermi.data import load_users

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "graphs" / "langgraph.json"


def test_langgraph_json_points_at_the_graphs() -> None:
    config = json.loads(CONFIG.read_text())
    assert config["graphs"]["fermi"] == "./graphs/fermi_graph.py:graph"
    langgraph_cli_config = pytest.importorskip("langgraph_cli.config")
    validated = langgraph_cli_config.validate_config_file(CONFIG)
    for spec in validated["graphs"].values():
        assert (ROOT / spec.split(":")[0]).is_file()  # paths are relative to the repo root


def test_studio_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    monkeypatch.setenv("FERMI_K", "3")
    monkeypatch.setenv("FERMI_T", "1")
    monkeypatch.setenv("FERMI_MAX_TARGET_CALLS", "50")
    ns = runpy.run_path(str(ROOT / "graphs" / "fermi_graph.py"))
    config = ns["studio_config"]("opro")
    assert (config.num_candidates, config.iterations, config.memory_size) == (3, 1, 3)
    assert (config.max_target_calls, config.variant) == (50, "opro")
    assert config.bracket_fallback == "reply"  # SmolLM2 rarely writes brackets
    assert set(ns["graph"].get_input_jsonschema()["properties"]) >= {"user", "warm_start"}
    monkeypatch.setenv("FERMI_K", "two")
    with pytest.raises(ValueError, match="FERMI_K must be an integer, got 'two'"):
        ns["studio_config"]()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``langgraph dev`` on a free port with a tiny config; the process group is killed after."""
    env = {
        "FERMI_K": "1",
        "FERMI_L": "2",
        "FERMI_T": "1",
        "FERMI_SCORE_CACHE": str(tmp_path / "scores.sqlite"),
        "FERMI_STORE_PATH": str(tmp_path / "chroma"),
    }
    with langgraph_dev(tmp_path, env) as url:
        yield url


@pytest.mark.server
@pytest.mark.local_model
def test_langgraph_dev_runs_the_fermi_graph(server: str) -> None:
    import httpx

    user = load_users(ROOT / "examples" / "data" / "users.json")[1]
    user = user.model_copy(update={"opinions": user.opinions[:4]})
    with httpx.Client(base_url=server, timeout=600) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        run = client.post(
            f"/threads/{thread}/runs/wait",
            json={"assistant_id": "fermi", "input": {"user": user.model_dump(mode="json")}},
        ).raise_for_status()
        output = run.json()
        state = client.get(f"/threads/{thread}/state").raise_for_status().json()
    assert output.get("stop_reason") == "iterations", output
    assert len(output["curve"]) == 2  # iteration 0 + T=1
    memory = output["memory"]
    assert 1 <= len(memory) <= 2
    assert memory[0]["text"].startswith("Here is some information about a person") or any(
        m["iteration"] == 1 for m in memory
    )
    assert [m["score"] for m in memory] == sorted((m["score"] for m in memory), reverse=True)
    assert output["cost"]["target_calls"] >= 3  # the initial prompt on 3 scoring opinions
    assert state["values"]["memory"] == memory
    assert state["next"] == []
