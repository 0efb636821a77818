"""Fermi's optimization loop as a LangGraph `StateGraph`."""

from langchain_fermi.graph.builder import (
    build_fermi_graph,
    default_cache_path,
    optimize_user,
    result_from_state,
)
from langchain_fermi.graph.nodes import FermiContext, should_continue
from langchain_fermi.graph.prompts import (
    FERMI_META_PROMPT,
    OPRO_META_PROMPT,
    build_meta_prompt,
    parse_bracketed,
)
from langchain_fermi.graph.state import FermiInput, FermiOutput, FermiState

__all__ = [
    "FERMI_META_PROMPT",
    "OPRO_META_PROMPT",
    "FermiContext",
    "FermiInput",
    "FermiOutput",
    "FermiState",
    "build_fermi_graph",
    "build_meta_prompt",
    "default_cache_path",
    "optimize_user",
    "parse_bracketed",
    "result_from_state",
    "should_continue",
]
