"""Fermi's optimization loop as a LangGraph `StateGraph`.

`builder` compiles the graph (state, nodes, edges); `run` runs it for one user (`optimize_user`:
checkpoints, resume, progress); `result` turns its state into a `FermiResult`.
"""

from langchain_fermi.graph.builder import build_fermi_graph
from langchain_fermi.graph.nodes import FermiContext, should_continue
from langchain_fermi.graph.prompts import (
    FERMI_META_PROMPT,
    OPRO_META_PROMPT,
    build_meta_prompt,
    parse_bracketed,
)
from langchain_fermi.graph.result import result_from_state
from langchain_fermi.graph.run import aoptimize_user, default_cache_path, optimize_user
from langchain_fermi.graph.state import FermiInput, FermiOutput, FermiState, Node

__all__ = [
    "FERMI_META_PROMPT",
    "OPRO_META_PROMPT",
    "FermiContext",
    "FermiInput",
    "FermiOutput",
    "FermiState",
    "Node",
    "aoptimize_user",
    "build_fermi_graph",
    "build_meta_prompt",
    "default_cache_path",
    "optimize_user",
    "parse_bracketed",
    "result_from_state",
    "should_continue",
]
