"""`FermiMiddleware`: answer every user with their own Fermi prompt, inside any agent.

Before each model call the middleware picks the user's learned prompt for the latest human
message by Retrieval-of-Prompt (the same `PromptSelector` as `FermiPersonalizer`: no LLM call)
and puts it in the system message. The user id comes from the run's context, never from the
model. A user without learned prompts, or unknown to the store (often a misspelt id), is logged
once per id at WARNING; ``strict=True`` raises instead. `personalize_messages` does the same for
hand-built LangGraph graphs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from langchain.agents.middleware.types import (
    AgentMiddleware,
    ModelRequest,
    ModelResponse,
    ResponseT,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables.config import run_in_executor
from langgraph.typing import StateLike
from typing_extensions import TypeVar

from langchain_fermi.agents.context import (
    FermiAgentContext,
    resolve_fermi_store,
    user_id_from_context,
)
from langchain_fermi.agents.memory import FermiMemoryStore
from langchain_fermi.agents.tools import make_opinion_tools
from langchain_fermi.errors import UnknownUserError
from langchain_fermi.personalizer import PromptSelector
from langchain_fermi.retrieval import Fallback, PromptSelection, Strategy
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

logger = logging.getLogger(__name__)

Placement = Literal["prepend", "replace"]
"""``prepend``: the Fermi prompt, a blank line, then the agent's own system prompt (if any);
``replace``: the Fermi prompt only."""

_PLACEMENTS = ("prepend", "replace")


class _WarnOnce:
    """Log a WARNING the first time a user id comes up, never again (bounded memory)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._seen: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def __call__(self, user_id: str, msg: str, *args: object) -> None:
        with self._lock:
            if user_id in self._seen:
                return
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen.add(user_id)
        logger.warning(msg, *args)


_WARN_ONCE = _WarnOnce()  # for personalize_messages; each middleware has its own


def _question(messages: Sequence[BaseMessage]) -> str:
    """Text of the latest human message (empty if there is none)."""
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return m.text.strip()
    return ""


def _selector(
    strategy: Strategy, num_neighbors: int, fallback: Fallback, placement: str, strict: bool
) -> PromptSelector:
    """The checked settings (``strict`` means ``fallback="raise"``)."""
    if placement not in _PLACEMENTS:
        msg = f"placement must be one of {list(_PLACEMENTS)}, got {placement!r}"
        raise ValueError(msg)
    return PromptSelector(strategy, num_neighbors, "raise" if strict else fallback)


def _select(
    selector: PromptSelector,
    store: FermiStore,
    user_id: str,
    messages: Sequence[BaseMessage],
    warn: _WarnOnce,
) -> PromptSelection | None:
    """The user's selection, or None for an unknown user; a fallback is logged once per user."""
    # Without a question there is nothing to retrieve neighbours for: the best prompt overall.
    try:
        selection = selector.select(store, user_id, _question(messages))
    except UnknownUserError as e:
        if selector.fallback == "raise":
            raise
        warn(user_id, "%s: no Fermi prompt for this user (strict=True raises)", e)
        return None
    if selection.fallback is not None:
        warn(user_id, "%s (strict=True raises)", selection.explanation)
    return selection


def _system_message(
    existing: SystemMessage | None, text: str, placement: Placement
) -> SystemMessage:
    if existing is None or placement == "replace":
        return SystemMessage(text)
    if isinstance(existing.content, str):
        return SystemMessage(f"{text}\n\n{existing.content}")
    blocks: list[Any] = [{"type": "text", "text": f"{text}\n\n"}, *existing.content_blocks]
    return SystemMessage(blocks)


def _apply(
    messages: Sequence[BaseMessage], selection: PromptSelection | None, placement: Placement
) -> list[BaseMessage]:
    out = list(messages)
    if selection is None or selection.prompt is None:
        return out
    if out and isinstance(out[0], SystemMessage):
        return [_system_message(out[0], selection.prompt.text, placement), *out[1:]]
    return [SystemMessage(selection.prompt.text), *out]


def personalize_messages(
    store: FermiStore | FermiMemoryStore,
    user_id: str,
    messages: Sequence[BaseMessage],
    *,
    strategy: Strategy = "retrieval",
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS,
    fallback: Fallback = "profile",
    placement: Placement = "prepend",
    strict: bool = False,
) -> list[BaseMessage]:
    """``messages`` with the user's Fermi prompt as (or before) the leading system message.

    For hand-built graphs: call it in the node before the model, e.g.
    ``model.invoke(personalize_messages(store, runtime.context["user_id"], state["messages"]))``.
    The input list is not modified. A user without prompts, or unknown, is logged once.

    Raises:
        NoPromptsError / UnknownUserError: Only with ``strict=True`` (or ``fallback="raise"``).
    """
    selector = _selector(strategy, num_neighbors, fallback, placement, strict)
    fermi = resolve_fermi_store(store)
    selection = _select(selector, fermi, user_id, messages, _WARN_ONCE)
    return _apply(messages, selection, placement)


async def apersonalize_messages(
    store: FermiStore | FermiMemoryStore,
    user_id: str,
    messages: Sequence[BaseMessage],
    **kwargs: Any,
) -> list[BaseMessage]:
    """Async `personalize_messages` (the selection, CPU-bound, runs in an executor)."""
    return await run_in_executor(None, personalize_messages, store, user_id, messages, **kwargs)


ContextT = TypeVar("ContextT", bound=StateLike | None, default=Any)
"""The agent's run context. Default ``Any`` (langgraph's is ``None``), so `create_agent` infers
it from ``context_schema`` when a plain ``FermiMiddleware()`` is passed."""


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
            A user without prompts, or unknown to the store, is logged (WARNING, once per id).
        strict: Raise `NoPromptsError` / `UnknownUserError` for such users instead (the same
            as ``fallback="raise"``): for apps where every user must be personalized.
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
        strict: bool = False,
    ) -> None:
        super().__init__()
        if store is not None and not isinstance(store, FermiStore | FermiMemoryStore):
            msg = f"store must be a FermiStore or a FermiMemoryStore, got {type(store).__name__}"
            raise TypeError(msg)
        # One selector for every model call (settings checked here, once).
        self.selector = _selector(strategy, num_neighbors, fallback, placement, strict)
        self.store = store
        self.strategy: Strategy = strategy
        self.num_neighbors = num_neighbors
        self.fallback: Fallback = self.selector.fallback
        self.strict = strict
        self.placement: Placement = placement
        self._warn = _WarnOnce()
        self.user_id_key = user_id_key
        self.tools = []
        if with_tools:
            self.tools = make_opinion_tools(store, user_id_key=user_id_key)

    def select(self, request: ModelRequest[ContextT]) -> PromptSelection | None:
        """The prompt this request gets (None: leave the system message alone)."""
        runtime = request.runtime
        user_id = user_id_from_context(getattr(runtime, "context", None), self.user_id_key)
        fermi = resolve_fermi_store(self.store, getattr(runtime, "store", None))
        return _select(self.selector, fermi, user_id, request.messages, self._warn)

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
