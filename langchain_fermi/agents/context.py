"""Where agents find the user and the Fermi store: the run context and the run's store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from typing_extensions import TypedDict

from langchain_fermi.agents.memory import FermiMemoryStore
from langchain_fermi.store import FermiStore

__all__ = ["FermiAgentContext", "resolve_fermi_store", "user_id_from_context"]


class FermiAgentContext(TypedDict):
    """Run context for agents with Fermi memory: ``context={"user_id": "alice"}``."""

    user_id: str


def user_id_from_context(context: Any, key: str = "user_id") -> str:
    """The user id from a run context: a mapping, or any object with that attribute.

    Raises:
        ValueError: No context, or no user id in it.
    """
    value = context.get(key) if isinstance(context, Mapping) else getattr(context, key, None)
    if not value:
        msg = (
            f"no {key!r} in the run context ({type(context).__name__}): create the agent with "
            f"context_schema=FermiAgentContext and invoke it with context={{{key!r}: ...}}"
        )
        raise ValueError(msg)
    return str(value)


def resolve_fermi_store(store: Any, runtime_store: Any = None) -> FermiStore:
    """The `FermiStore` to read: the given one, else the run's store if it is Fermi memory.

    Raises:
        ValueError: Neither is (or wraps) a `FermiStore`.
    """
    for candidate in (store, runtime_store):
        if isinstance(candidate, FermiStore):
            return candidate
        if isinstance(candidate, FermiMemoryStore):
            return candidate.fermi
    msg = (
        "no Fermi store: pass store=FermiStore(...) (or a FermiMemoryStore) to the middleware or "
        f"tool, or run the agent with store=FermiMemoryStore(...) (the run's store is "
        f"{type(runtime_store).__name__})"
    )
    raise ValueError(msg)
