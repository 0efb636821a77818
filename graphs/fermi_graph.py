"""Fermi's optimization loop for LangGraph Studio / ``langgraph dev``.

Run from the repository root::

    langgraph dev --config graphs/langgraph.json --no-browser --port 8123

Input: ``{"user": <a UserProfile as JSON>}`` (optionally ``"warm_start": ["prompt", ...]``).
The models default to the embedded offline SmolLM2 for both roles, with a small config so a run
finishes in a few minutes on a laptop CPU. Environment overrides:

* ``FERMI_TARGET_LLM`` / ``FERMI_OPTIMIZER_LLM``: model names for `get_chat_model`
  (``smollm2``, ``qwen2.5-coder-0.5b``, ``openai:<model>``, a ``.gguf`` path);
* ``FERMI_K``, ``FERMI_L``, ``FERMI_T``: candidates per iteration, memory size, iterations
  (defaults 2, 3, 2);
* ``FERMI_MAX_TARGET_CALLS``: a target-call budget per run;
* ``FERMI_BRACKET_FALLBACK``: ``reply`` (default here: SmolLM2 rarely writes the requested
  ``[...]``, so its whole reply becomes the new prompt) or ``drop`` (the paper's behaviour);
* ``FERMI_SCORE_CACHE``: a SQLite score cache file (default: in memory).

The server brings its own checkpointer, so the graph is compiled without one.
"""

from __future__ import annotations

import os

from langchain_fermi.graph import build_fermi_graph
from langchain_fermi.models import get_chat_model
from langchain_fermi.scoring import AnswerScorer, ScoreCache
from langchain_fermi.types import FermiConfig


def _int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        msg = f"{name} must be an integer, got {raw!r}"
        raise ValueError(msg) from None


def studio_config(variant: str = "fermi") -> FermiConfig:
    """The small Studio config, with the environment's overrides."""
    return FermiConfig(
        K=_int("FERMI_K", 2),
        L=_int("FERMI_L", 3),
        T=_int("FERMI_T", 2),
        max_target_calls=_int("FERMI_MAX_TARGET_CALLS", None),
        bracket_fallback=os.environ.get("FERMI_BRACKET_FALLBACK") or "reply",
        variant=variant,
    )


_cache_path = os.environ.get("FERMI_SCORE_CACHE") or None
_cache = ScoreCache(_cache_path) if _cache_path else ScoreCache()
_config = studio_config()
# Both graphs share one target, one optimizer and one score cache (models load lazily).
_target = get_chat_model(None, role="target", temperature=_config.target_temperature)
_optimizer = get_chat_model(None, role="optimizer", temperature=_config.optimizer_temperature)
_scorer = AnswerScorer(
    _target,
    cache=_cache,
    max_concurrency=_config.max_concurrency,
    max_retries=_config.max_retries,
    retry_backoff=_config.retry_backoff,
)

graph = build_fermi_graph(None, _optimizer, config=_config, scorer=_scorer)
opro_graph = build_fermi_graph(None, _optimizer, config=studio_config("opro"), scorer=_scorer)
