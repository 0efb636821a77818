"""``fermi_agent``: a chat agent that answers each user with their Fermi prompt, for Studio /
``langgraph dev``.

The Studio config (``graphs/langgraph.json`` in a checkout, ``fermi studio`` for an install)
serves it as ``fermi_agent`` and makes `make_store` the server's store, so the agent (and the
server's ``/store`` API) reads and writes Fermi memory, and what the ``fermi`` graph learns in the
same server is used at once:

    langgraph dev --config graphs/langgraph.json --no-browser --port 8123

Run it with the context ``{"user_id": "<a user in the Fermi store>"}``; users optimized with
``fermi optimize`` / ``optimize_user`` + ``FermiStore.save_result`` are there. Environment:

* ``FERMI_STORE_PATH``: the Fermi store folder (default: `default_store_path()`);
* ``FERMI_AGENT_LLM``: the agent's model for `get_chat_model` (default: ``FERMI_TARGET_LLM``,
  else the offline SmolLM2). The opinion tools are given to models that support tool calling
  (the local llama.cpp models do: they call a tool when it is forced, and may on their own).

Namespaces other than Fermi's (``("fermi", user, "opinions" | "prompts" | "profile")``) live in
an in-memory fallback store, lost when the server stops.
"""

import os

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langgraph.store.memory import InMemoryStore

from langchain_fermi.agents import (
    FermiAgentContext,
    FermiMemoryStore,
    FermiMiddleware,
    make_opinion_tools,
)
from langchain_fermi.models import get_chat_model
from langchain_fermi.store import FermiStore

SYSTEM_PROMPT = "Reply in a few sentences, in the first person, as this person would."


def supports_tools(model: BaseChatModel) -> bool:
    """Whether the model class implements ``bind_tools`` (the base class only raises)."""
    return type(model).bind_tools is not BaseChatModel.bind_tools


def make_store() -> FermiMemoryStore:
    """The server's store: Fermi memory at ``$FERMI_STORE_PATH``, other namespaces in memory."""
    return FermiMemoryStore(FermiStore(), fallback=InMemoryStore())


_model = get_chat_model(os.environ.get("FERMI_AGENT_LLM") or None, role="target", max_tokens=96)

graph = create_agent(
    _model,
    tools=make_opinion_tools() if supports_tools(_model) else [],
    system_prompt=SYSTEM_PROMPT,
    middleware=[FermiMiddleware()],
    context_schema=FermiAgentContext,
    name="fermi_agent",
)
