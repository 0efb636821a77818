"""End to end on the embedded SmolLM2 and MiniLM: an agent answers with the user's Fermi prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fermi_store_fakes import economy_and_gun_prompts, make_result, make_user
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from langchain_fermi.agents import FermiAgentContext, FermiMemoryStore, FermiMiddleware
from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.store import FermiStore


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.chat_inputs: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.chat_inputs.extend(messages)


@pytest.mark.local_model
def test_agent_answers_with_the_selected_prompt_on_smollm2(tmp_path: Path):
    pytest.importorskip("llama_cpp")
    from langchain_fermi.models import get_chat_model
    from langchain_fermi.models.embeddings import MiniLMEmbeddings

    fermi = FermiStore(tmp_path / "chroma", embeddings=MiniLMEmbeddings())
    fermi.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    question = "Would you buy a gun for self defense? Answer Yes or No."
    want = FermiPersonalizer(fermi).select_prompt("alice", question).prompt.text
    assert want == "You are a gun owner."  # MiniLM neighbours: the gun opinions
    agent = create_agent(
        get_chat_model("smollm2", max_tokens=24),
        middleware=[FermiMiddleware()],
        context_schema=FermiAgentContext,
        store=FermiMemoryStore(fermi),
    )
    rec = _Recorder()
    out = agent.invoke(
        {"messages": [HumanMessage(question)]},
        context={"user_id": "alice"},
        config={"callbacks": [rec]},
    )
    assert rec.chat_inputs[0][0] == SystemMessage(want)
    assert out["messages"][-1].type == "ai" and out["messages"][-1].text.strip()
