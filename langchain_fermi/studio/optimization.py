"""``fermi`` and ``fermi_opro``: Fermi's optimization loop for LangGraph Studio / ``langgraph dev``.

Serve them from the repository root, or from anywhere with the config ``fermi studio`` writes::

    langgraph dev --config graphs/langgraph.json --no-browser --port 8123

* **Input**: ``{"user": <a UserProfile>, "warm_start": ["prompt", ...]}`` (typed: Studio shows
  the profile's fields).
* **Configuration** (per assistant or per run, the graph's context schema `FermiStudioContext`):
  ``K``, ``L``, ``T``, ``variant``, the budgets (``max_target_calls``, ``max_optimizer_calls``,
  ``max_tokens``), ``patience``, ``bracket_fallback``, ``restarts`` and ``save``. Defaults are
  small so a run
  finishes in a few minutes on a laptop CPU; ``FERMI_K``, ``FERMI_L``, ``FERMI_T``,
  ``FERMI_MAX_TARGET_CALLS`` and ``FERMI_BRACKET_FALLBACK`` change them at server start.
* **Output**: the run's memory, curve, cost and stop reason; with ``save`` (default) the learned
  prompts are saved to the server's store (the Fermi store behind `studio.agent.make_store`), so
  ``fermi_agent`` in the same server personalizes that user with them at once
  (``generation`` is the saved generation number).
* **Models**: ``FERMI_TARGET_LLM`` / ``FERMI_OPTIMIZER_LLM`` (`get_chat_model` names; default the
  offline SmolLM2); ``FERMI_SCORE_CACHE``: a SQLite score cache (default in memory).

The server brings its own checkpointer: the loop runs as a subgraph of this graph and is
checkpointed with it. With ``restarts`` > 1 the ``optimize`` node runs once per restart, in
parallel branches (the Send API), and ``pick`` keeps the search that fits the user best.
"""

import asyncio
import operator
import os
from typing import Annotated, Any, Literal

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from langchain_fermi.graph import build_fermi_graph, result_from_state
from langchain_fermi.graph.restarts import merge_searches, restart_optimizers
from langchain_fermi.models import get_chat_model
from langchain_fermi.scoring import AnswerScorer, ScoreCache
from langchain_fermi.types import FermiConfig, UserProfile

Variant = Literal["fermi", "opro"]


def _int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        msg = f"{name} must be an integer, got {raw!r}"
        raise ValueError(msg) from None


def _count(name: str, default: int) -> int:
    """``_int`` for settings that always have a value."""
    value = _int(name, default)
    return default if value is None else value


def _fallback() -> Literal["drop", "reply"]:
    raw = os.environ.get("FERMI_BRACKET_FALLBACK") or "reply"
    if raw not in ("drop", "reply"):
        msg = f"FERMI_BRACKET_FALLBACK must be 'drop' or 'reply', got {raw!r}"
        raise ValueError(msg)
    return raw  # type: ignore[return-value]


class FermiStudioContext(BaseModel):
    """Fermi's settings for one assistant or run (Studio: "Manage Assistants" / run context).

    Example:
        >>> {"K": 2, "L": 3, "T": 2, "max_target_calls": 200}
    """

    model_config = ConfigDict(extra="forbid")

    K: int = Field(_count("FERMI_K", 2), ge=1, description="new prompts per iteration")
    L: int = Field(_count("FERMI_L", 3), ge=1, description="prompts kept in memory")
    T: int = Field(_count("FERMI_T", 2), ge=0, description="iterations")
    variant: Variant | None = Field(
        None, description="fermi or opro (the OPRO ablation); default: the graph's own"
    )
    max_target_calls: int | None = Field(
        _int("FERMI_MAX_TARGET_CALLS", None), ge=1, description="budget: target-model calls"
    )
    max_optimizer_calls: int | None = Field(None, ge=1, description="budget: optimizer calls")
    max_tokens: int | None = Field(None, ge=1, description="budget: tokens, both models")
    patience: int | None = Field(None, ge=1, description="stop after N stalled iterations")
    bracket_fallback: Literal["drop", "reply"] = Field(
        _fallback(),
        description="an optimizer reply without [...]: drop it, or use the whole reply "
        "(SmolLM2 rarely writes the brackets)",
    )
    prompt_form: Literal["addendum", "full"] = Field(
        "addendum",
        description="addendum: the optimizer writes a paragraph added to the profile prompt; "
        "full: a whole new prompt (the paper's form)",
    )
    meta_prompt_style: Literal["figure8", "contrast"] = Field(
        "figure8",
        description="Fermi's optimizer prompt: figure8 (the paper's layout) or contrast (the best "
        "description's mis-aligned answers first; addendum form only)",
    )
    tie_break: Literal["order", "likelihood"] = Field(
        "order",
        description="which of two equal scores ranks first in memory: order (the earlier scored) "
        "or likelihood (the higher mean probability of the user's options)",
    )
    restarts: int = Field(
        1,
        ge=1,
        description="independent searches (parallel branches); the one whose best prompt "
        "scores highest on the user's opinions is kept",
    )
    save: bool = Field(True, description="save the learned prompts to the server's store")


class StudioInput(TypedDict):
    """A user to personalize, and optional prompts from an earlier optimization."""

    user: UserProfile
    warm_start: NotRequired[list[str]]


class StudioOutput(TypedDict, total=False):
    """The finished run (the loop's output) and where its prompts were saved."""

    user_id: str
    memory: list[dict[str, Any]]
    curve: list[float]
    cost: dict[str, Any]
    stop_reason: str
    dropped: dict[str, int]
    served: list[dict[str, Any]] | None
    generation: int | None
    config: dict[str, Any]


class StudioState(StudioInput, StudioOutput, total=False):
    """Input, output, every search's final state (``searches``) and the kept one's (``run``)."""

    run: dict[str, Any]
    searches: Annotated[list[dict[str, Any]], operator.add]


class SearchInput(StudioInput):
    """What one ``optimize`` branch gets: the input and its restart number."""

    restart: int


def studio_config(
    variant: Variant = "fermi", context: FermiStudioContext | dict[str, Any] | None = None
) -> FermiConfig:
    """The run's `FermiConfig`: the context's settings over the small Studio defaults."""
    if context is None:
        ctx = FermiStudioContext.model_validate(
            {"K": _int("FERMI_K", 2), "L": _int("FERMI_L", 3), "T": _int("FERMI_T", 2)}
            | {"max_target_calls": _int("FERMI_MAX_TARGET_CALLS", None)}
            | {"bracket_fallback": _fallback()}
        )
    elif isinstance(context, FermiStudioContext):
        ctx = context
    else:
        ctx = FermiStudioContext.model_validate(dict(context))
    return FermiConfig(
        K=ctx.K,
        L=ctx.L,
        T=ctx.T,
        variant=ctx.variant or variant,
        max_target_calls=ctx.max_target_calls,
        max_optimizer_calls=ctx.max_optimizer_calls,
        max_tokens=ctx.max_tokens,
        patience=ctx.patience,
        bracket_fallback=ctx.bracket_fallback,
        prompt_form=ctx.prompt_form,
        meta_prompt_style=ctx.meta_prompt_style,
        tie_break=ctx.tie_break,
        restarts=ctx.restarts,
    )


_cache_path = os.environ.get("FERMI_SCORE_CACHE") or None
_cache = ScoreCache(_cache_path) if _cache_path else ScoreCache()
_defaults = FermiConfig()
# Every graph and setting shares one target, one optimizer and one score cache (models load
# lazily, on the first run).
_target = get_chat_model(None, role="target", temperature=_defaults.target_temperature)
_optimizer = get_chat_model(None, role="optimizer", temperature=_defaults.optimizer_temperature)
_scorer = AnswerScorer(
    _target,
    cache=_cache,
    max_concurrency=_defaults.max_concurrency,
    max_retries=_defaults.max_retries,
    retry_backoff=_defaults.retry_backoff,
)
_LOOPS: dict[str, Any] = {}


def _loop(config: FermiConfig, restart: int = 0) -> Any:
    """The compiled loop of one search (one per distinct setting and restart, built on first
    use); restart i > 0 of a local optimizer samples from its own seed."""
    search = config.model_copy(update={"restarts": 1})
    key = f"{search.model_dump_json()}|{restart}"
    if key not in _LOOPS:
        optimizer = restart_optimizers(_optimizer, restart + 1, config.seed)[restart]
        _LOOPS[key] = build_fermi_graph(None, optimizer, config=search, scorer=_scorer)
    return _LOOPS[key]


def _fermi_store(runtime_store: Any) -> Any:
    """The Fermi store behind the server's store (`make_store`), else the default one."""
    from langchain_fermi.agents.context import resolve_fermi_store
    from langchain_fermi.store import FermiStore

    for candidate in (runtime_store, getattr(runtime_store, "store", None)):
        try:
            return resolve_fermi_store(None, candidate)
        except ValueError:
            continue
    return FermiStore()  # the path `make_store` opens too (FERMI_STORE_PATH)


def _context(context: Any) -> FermiStudioContext:
    """The run's context as `FermiStudioContext` (the server may pass a plain dict)."""
    if isinstance(context, FermiStudioContext):
        return context
    return FermiStudioContext.model_validate(dict(context or {}))


def _user(state: StudioInput) -> UserProfile:
    raw = state.get("user")
    if raw is None:
        msg = "the input needs a 'user' (a UserProfile)"
        raise ValueError(msg)
    return raw if isinstance(raw, UserProfile) else UserProfile.model_validate(raw)


def make_studio_graph(
    variant: Variant, name: str
) -> CompiledStateGraph[StudioState, FermiStudioContext, StudioInput, StudioOutput]:
    """The Studio graph for ``variant``: ``optimize`` (Fermi's loop as a subgraph) -> ``save``."""

    def fan_out(state: StudioState, runtime: Runtime[FermiStudioContext]) -> list[Send]:
        """One ``optimize`` branch per restart."""
        fermi = studio_config(variant, _context(runtime.context))
        inputs = {"user": _user(state), "warm_start": list(state.get("warm_start") or [])}
        return [Send("optimize", {**inputs, "restart": i}) for i in range(fermi.restarts)]

    async def optimize(state: SearchInput, runtime: Runtime[FermiStudioContext]) -> dict[str, Any]:
        """Run one search with this assistant's / run's settings (a subgraph of this run)."""
        fermi = studio_config(variant, _context(runtime.context))
        restart = state.get("restart", 0)
        loop = _loop(fermi, restart)
        inputs: dict[str, Any] = {
            "user": _user(state).model_dump(mode="json"),
            "warm_start": list(state.get("warm_start") or []),
        }
        limit = {"recursion_limit": loop.config["recursion_limit"]}
        values = await loop.ainvoke(inputs, {**get_config(), **limit})
        return {"searches": [{"restart": restart, "run": values}]}

    def pick(state: StudioState, runtime: Runtime[FermiStudioContext]) -> dict[str, Any]:
        """Keep the search that fits the user best (the only one without restarts)."""
        fermi = studio_config(variant, _context(runtime.context))
        runs = [s["run"] for s in sorted(state.get("searches") or [], key=lambda s: s["restart"])]
        search = fermi.model_copy(update={"restarts": 1})
        results = [result_from_state(values, search) for values in runs]
        kept = results[0] if len(results) == 1 else merge_searches(results, fermi)
        values = runs[kept.restart]
        out = {k: values.get(k) for k in StudioOutput.__annotations__ if k in values}
        out["cost"] = kept.cost.model_dump(mode="json")  # every search's, summed
        out["dropped"] = dict(kept.dropped)
        config_out = fermi.model_dump(mode="json", by_alias=True)
        return {**out, "run": values, "user_id": _user(state).user_id, "config": config_out}

    async def save(state: StudioState, runtime: Runtime[FermiStudioContext]) -> dict[str, Any]:
        """Save the learned prompts (and the user) where ``fermi_agent`` reads them."""
        context = _context(runtime.context)
        if not context.save:
            return {"generation": None}
        fermi = studio_config(variant, context)
        result = result_from_state(state.get("run") or {}, fermi)
        store = _fermi_store(runtime.store)
        generation = await asyncio.to_thread(store.save_result, result, _user(state))
        return {"generation": generation}

    builder = StateGraph(
        StudioState,
        context_schema=FermiStudioContext,
        input_schema=StudioInput,
        output_schema=StudioOutput,
    )
    builder.add_node("optimize", optimize)
    builder.add_node("pick", pick)
    builder.add_node("save", save)
    builder.add_conditional_edges(START, fan_out, ["optimize"])
    builder.add_edge("optimize", "pick")
    builder.add_edge("pick", "save")
    builder.add_edge("save", END)
    return builder.compile(name=name)


graph = make_studio_graph("fermi", "fermi")
opro_graph = make_studio_graph("opro", "fermi_opro")
