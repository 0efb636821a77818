"""Fermi memory for agents: a LangGraph `BaseStore`, a middleware, tools and re-optimization.

Example:
    >>> memory = FermiMemoryStore(FermiStore(".fermi/chroma"), fallback=InMemoryStore())
    >>> agent = create_agent(model, tools=[record_opinion], middleware=[FermiMiddleware()],
    ...                      context_schema=FermiAgentContext, store=memory)
    >>> agent.invoke({"messages": [("user", "...")]}, context={"user_id": "alice"})
    >>> reoptimize("alice", memory, background=True)

`reoptimize` runs the optimization graph, so it loads on first use: serving (the middleware)
never imports optimization code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from langchain_fermi.agents._memory_ops import CrossUserSearchError, ReadOnlyNamespaceError
from langchain_fermi.agents.memory import FermiMemoryStore
from langchain_fermi.agents.middleware import (
    FermiAgentContext,
    FermiMiddleware,
    apersonalize_messages,
    personalize_messages,
)
from langchain_fermi.agents.tools import (
    get_user_profile,
    live_opinion_id,
    make_opinion_tools,
    record_opinion,
    record_opinion_for,
)

if TYPE_CHECKING:  # type checkers see the real function; at run time it loads on first use
    from langchain_fermi.agents.reoptimization import reoptimize

__all__ = [
    "CrossUserSearchError",
    "FermiAgentContext",
    "FermiMemoryStore",
    "FermiMiddleware",
    "ReadOnlyNamespaceError",
    "apersonalize_messages",
    "get_user_profile",
    "live_opinion_id",
    "make_opinion_tools",
    "personalize_messages",
    "record_opinion",
    "record_opinion_for",
    "reoptimize",
]


def __getattr__(name: str) -> Any:
    if name == "reoptimize":
        return importlib.import_module("langchain_fermi.agents.reoptimization").reoptimize
    msg = f"module 'langchain_fermi.agents' has no attribute {name!r}"
    raise AttributeError(msg)
