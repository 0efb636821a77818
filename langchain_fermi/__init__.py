"""langchain-fermi: Fermi personalization (Kim & Yang, NAACL 2025) for LangChain and LangGraph.

Heavy modules (llama.cpp, chromadb, onnxruntime) load lazily on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from langchain_fermi.errors import (
    BudgetExceededError,
    DamagedUserError,
    FermiError,
    LLMCallError,
    ModelNotInstalledError,
    NoPromptsError,
    StoreLockedError,
    StoreReadOnlyError,
    UnknownUserError,
)
from langchain_fermi.types import (
    Cost,
    FermiConfig,
    FermiResult,
    MisalignedCase,
    Opinion,
    ScoredPrompt,
    UserProfile,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # type checkers see the real classes; at run time they load on first use
    from langchain_fermi.agents import FermiMemoryStore, FermiMiddleware, reoptimize
    from langchain_fermi.graph import build_fermi_graph, optimize_user
    from langchain_fermi.graph.estimate import CostEstimate, estimate_cost
    from langchain_fermi.models import LocalLlamaChatModel, get_chat_model
    from langchain_fermi.models.embeddings import MiniLMEmbeddings
    from langchain_fermi.personalizer import FermiPersonalizer
    from langchain_fermi.retrieval import PromptSelection, select_prompt
    from langchain_fermi.scoring import AnswerScorer, ScoreCache, ScoredAnswer
    from langchain_fermi.store import FermiStore
    from langchain_fermi.store.embedding_function import PackagedMiniLM
    from langchain_fermi.tokens import count_tokens

_LAZY = {
    "get_chat_model": "langchain_fermi.models",
    "LocalLlamaChatModel": "langchain_fermi.models",
    "AnswerScorer": "langchain_fermi.scoring",
    "ScoreCache": "langchain_fermi.scoring",
    "ScoredAnswer": "langchain_fermi.scoring",
    "PackagedMiniLM": "langchain_fermi.store.embedding_function",
    "MiniLMEmbeddings": "langchain_fermi.models.embeddings",
    "count_tokens": "langchain_fermi.tokens",
    "build_fermi_graph": "langchain_fermi.graph",
    "optimize_user": "langchain_fermi.graph",
    "estimate_cost": "langchain_fermi.graph.estimate",
    "CostEstimate": "langchain_fermi.graph.estimate",
    "FermiStore": "langchain_fermi.store",
    "select_prompt": "langchain_fermi.retrieval",
    "PromptSelection": "langchain_fermi.retrieval",
    "FermiPersonalizer": "langchain_fermi.personalizer",
    "FermiMemoryStore": "langchain_fermi.agents",
    "FermiMiddleware": "langchain_fermi.agents",
    "reoptimize": "langchain_fermi.agents",
}

__all__ = [
    "AnswerScorer",
    "BudgetExceededError",
    "Cost",
    "CostEstimate",
    "DamagedUserError",
    "FermiConfig",
    "FermiError",
    "FermiMemoryStore",
    "FermiMiddleware",
    "FermiPersonalizer",
    "FermiResult",
    "FermiStore",
    "LLMCallError",
    "LocalLlamaChatModel",
    "MiniLMEmbeddings",
    "MisalignedCase",
    "ModelNotInstalledError",
    "NoPromptsError",
    "Opinion",
    "PackagedMiniLM",
    "PromptSelection",
    "ScoreCache",
    "ScoredAnswer",
    "ScoredPrompt",
    "StoreLockedError",
    "StoreReadOnlyError",
    "UnknownUserError",
    "UserProfile",
    "__version__",
    "build_fermi_graph",
    "count_tokens",
    "estimate_cost",
    "get_chat_model",
    "optimize_user",
    "reoptimize",
    "select_prompt",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'langchain_fermi' has no attribute {name!r}"
    raise AttributeError(msg)
