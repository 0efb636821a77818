"""`FermiMiddleware`: answer every user with their own Fermi prompt, inside any agent.

Before each model call the middleware picks the user's learned prompt for the latest human
message by Retrieval-of-Prompt (the same selection as `FermiPersonalizer`: no LLM call) and puts
it in the system message. The user id comes from the run's context, never from the model.
`personalize_messages` does the same for hand-built LangGraph graphs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from langchain.agents.middleware.types import (
    AgentMiddleware,
    ContextT,
    ModelRequest,
    ModelResponse,
    ResponseT,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables.config import run_in_executor

from langchain_fermi.agents.context import (
    FermiAgentContext,
    resolve_fermi_store,
    user_id_from_context,
)
from langchain_fermi.agents.memory import FermiMemoryStore
from langchain_fermi.agents.tools import make_opinion_tools
from langchain_fermi.errors import UnknownUserError
from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.retrieval import STRATEGIES, PromptSelection, Strategy
from langchain_fermi.store import FermiStore
from langchain_fermi.types import DEFAULT_NUM_NEIGHBORS

__all__ = [
    "Fallback",
    "FermiAgentContext",
    "FermiMiddleware",
    "Placement",
    "apersonalize_messages",
    "personalize_messages",
    "resolve_fermi_store",
    "user_id_from_context",
]

Fallback = Literal["profile", "none", "raise"]
"""For a user without learned prompts: the profile prompt, no Fermi prompt, or raise. An
unknown user gets no Fermi prompt under ``"profile"`` and ``"none"`` (there is no profile)."""

Placement = Literal["prepend", "replace"]
"""``prepend``: the Fermi prompt, a blank line, then the agent's own system prompt (if any);
``replace``: the Fermi prompt only."""

_FALLBACKS = ("profile", "none", "raise")
_PLACEMENTS = ("prepend", "replace")


def _question(messages: Sequence[BaseMessage]) -> str:
    """Text of the latest human message (empty if there is none)."""
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return m.text.strip()
    return ""


def _selector(store: FermiStore, strategy: Strategy, num_neighbors: int, fallback: Fallback):
    mapped = {"profile": "profile", "none": "none", "raise": None}[fallback]
    return FermiPersonalizer(store, strategy=strategy, num_neighbors=num_neighbors, fallback=mapped)


def _select(
    store: FermiStore,
    user_id: str,
    messages: Sequence[BaseMessage],
    *,
    strategy: Strategy,
    num_neighbors: int,
    fallback: Fallback,
) -> PromptSelection | None:
    question = _question(messages)
    # Without a question there is nothing to retrieve neighbours for: use the best prompt.
    use = strategy if question or strategy != "retrieval" else "best"
    try:
        return _selector(store, use, num_neighbors, fallback).select_prompt(user_id, question)
    except UnknownUserError:
        if fallback == "raise":
            raise
        return None  # unknown user: no profile to fall back on either


def _system_message(
    existing: SystemMessage | None, text: str, placement: Placement
) -> SystemMessage:
    if existing is None or placement == "replace":
        return SystemMessage(text)
    if isinstance(existing.content, str):
        return SystemMessage(f"{text}\n\n{existing.content}")
    return SystemMessage([{"type": "text", "text": f"{text}\n\n"}, *existing.content_blocks])


def _apply(
    messages: Sequence[BaseMessage], selection: PromptSelection | None, placement: Placement
) -> list[BaseMessage]:
    out = list(messages)
    if selection is None or selection.prompt is None:
        return out
    if out and isinstance(out[0], SystemMessage):
        return [_system_message(out[0], selection.prompt.text, placement), *out[1:]]
    return [SystemMessage(selection.prompt.text), *out]


def _check(strategy: str, num_neighbors: int, fallback: str, placement: str) -> None:
    if strategy not in STRATEGIES:
        msg = f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}"
        raise ValueError(msg)
    if num_neighbors < 1:
        msg = f"num_neighbors must be >= 1, got {num_neighbors}"
        raise ValueError(msg)
    if fallback not in _FALLBACKS:
        msg = f"fallback must be one of {list(_FALLBACKS)}, got {fallback!r}"
        raise ValueError(msg)
    if placement not in _PLACEMENTS:
        msg = f"placement must be one of {list(_PLACEMENTS)}, got {placement!r}"
        raise ValueError(msg)


def personalize_messages(
    store: FermiStore | FermiMemoryStore,
    user_id: str,
    messages: Sequence[BaseMessage],
    *,
    strategy: Strategy = "retrieval",
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
    fallback: Fallback = "profile",
    placement: Placement = "prepend",
) -> list[BaseMessage]:
    """``messages`` with the user's Fermi prompt as (or before) the leading system message.

    For hand-built graphs: call it in the node before the model, e.g.
    ``model.invoke(personalize_messages(store, runtime.context["user_id"], state["messages"]))``.
    The input list is not modified.

    Raises:
        NoPromptsError / UnknownUserError: Only with ``fallback="raise"``.
    """
    _check(strategy, num_neighbors, fallback, placement)
    fermi = resolve_fermi_store(store)
    selection = _select(
        fermi,
        user_id,
        messages,
        strategy=strategy,
        num_neighbors=num_neighbors,
        fallback=fallback,
    )
    return _apply(messages, selection, placement)


async def apersonalize_messages(
    store: FermiStore | FermiMemoryStore,
    user_id: str,
    messages: Sequence[BaseMessage],
    **kwargs: Any,
) -> list[BaseMessage]:
    """Async `personalize_messages` (the selection, CPU-bound, runs in an executor)."""
    return await run_in_executor(None, personalize_messages, store, user_id, messages, **kwargs)


class FermiMiddleware(AgentMiddleware[Any, ContextT, ResponseT]):
    """Give the model each user's Fermi prompt, chosen for the latest human message.

    The user id is read from the run context (``context_schema=FermiAgentContext``, or any
    context with a ``user_id`` key or attribute). The store is the one given here, else the
    agent's store when it is a `FermiMemoryStore`. The request is changed with
    ``request.override(system_message=...)``, never in place.

    Args:
        store: A `FermiStore` or `FermiMemoryStore`; default: the agent's store.
        strategy: ``"retrieval"`` (Fermi's Retrieval-of-Prompt), ``"best"`` or ``"profile"``.
        num_neighbors: Ñ, the past opinions retrieved per question.
        fallback: For users without learned prompts: ``"profile"``, ``"none"`` or ``"raise"``.
        placement: ``"prepend"`` the Fermi prompt to the agent's system prompt, or ``"replace"``
            it.
        user_id_key: The context field holding the user id.
        with_tools: Also give the agent the `record_opinion` and `get_user_profile` tools
            (bound to ``store``), so it learns from what the user says. Needs a model with
            tool calling.

    Example:
        >>> agent = create_agent(
        ...     model, middleware=[FermiMiddleware(with_tools=True)],
        ...     context_schema=FermiAgentContext, store=FermiMemoryStore(fermi_store),
        ... )
        >>> agent.invoke({"messages": [("user", "Should taxes go up?")]},
        ...              context={"user_id": "alice"})
    """

    def __init__(
        self,
        store: FermiStore | FermiMemoryStore | None = None,
        *,
        strategy: Strategy = "retrieval",
        num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
        fallback: Fallback = "profile",
        placement: Placement = "prepend",
        user_id_key: str = "user_id",
        with_tools: bool = False,
    ) -> None:
        super().__init__()
        if store is not None and not isinstance(store, FermiStore | FermiMemoryStore):
            msg = f"store must be a FermiStore or a FermiMemoryStore, got {type(store).__name__}"
            raise TypeError(msg)
        _check(strategy, num_neighbors, fallback, placement)
        self.store = store
        self.strategy: Strategy = strategy
        self.num_neighbors = num_neighbors
        self.fallback: Fallback = fallback
        self.placement: Placement = placement
        self.user_id_key = user_id_key
        self.tools = []
        if with_tools:
            self.tools = make_opinion_tools(store, user_id_key=user_id_key)

    def select(self, request: ModelRequest[ContextT]) -> PromptSelection | None:
        """The prompt this request gets (None: leave the system message alone)."""
        runtime = request.runtime
        user_id = user_id_from_context(getattr(runtime, "context", None), self.user_id_key)
        fermi = resolve_fermi_store(self.store, getattr(runtime, "store", None))
        return _select(
            fermi,
            user_id,
            request.messages,
            strategy=self.strategy,
            num_neighbors=self.num_neighbors,
            fallback=self.fallback,
        )

    def _override(
        self, request: ModelRequest[ContextT], selection: PromptSelection | None
    ) -> ModelRequest[ContextT]:
        if selection is None or selection.prompt is None:
            return request
        system = _system_message(request.system_message, selection.prompt.text, self.placement)
        return request.override(system_message=system)

    def wrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], ModelResponse[ResponseT]],
    ) -> ModelResponse[ResponseT] | AIMessage:
        """Call the model with the user's Fermi prompt in the system message."""
        return handler(self._override(request, self.select(request)))

    async def awrap_model_call(
        self,
        request: ModelRequest[ContextT],
        handler: Callable[[ModelRequest[ContextT]], Awaitable[ModelResponse[ResponseT]]],
    ) -> ModelResponse[ResponseT] | AIMessage:
        """Async `wrap_model_call`; the selection runs in an executor."""
        selection = await run_in_executor(None, self.select, request)
        return await handler(self._override(request, selection))
