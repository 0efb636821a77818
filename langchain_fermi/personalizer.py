"""`FermiPersonalizer`: the LCEL step that turns a user's question into personalized messages.

``FermiPersonalizer(store) | chat_model`` answers as the user would: the personalizer picks one of
the user's learned prompts by Retrieval-of-Prompt (no LLM call; embedding the query is the main
cost) and returns ``[SystemMessage(prompt), HumanMessage(question)]`` as a `ChatPromptValue`, the
same shape the prompts were scored with. `PromptSelector` is the selection itself, shared with
the agent middleware and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.callbacks import CallbackManagerForChainRun
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config, run_in_executor
from langchain_core.runnables.utils import ConfigurableFieldSpec
from pydantic import ConfigDict, Field, field_validator
from typing_extensions import NotRequired, TypedDict

from langchain_fermi.errors import UnknownUserError
from langchain_fermi.questions import format_question
from langchain_fermi.retrieval import (
    FALLBACKS,
    STRATEGIES,
    Fallback,
    PromptSelection,
    Strategy,
    UserView,
    select_for_question,
)
from langchain_fermi.types import DEFAULT_NUM_NEIGHBORS, validate_choices, validate_user_id

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.callbacks import AsyncCallbackManagerForChainRun

__all__ = [
    "USER_ID_SPEC",
    "Fallback",
    "FermiPersonalizer",
    "PersonalizerInput",
    "PromptSelector",
    "PromptSource",
]

SELECTION_RUN_NAME = "fermi_select_prompt"
"""Name of the child run that carries the chosen prompt and the reason on traces."""

USER_ID_SPEC = ConfigurableFieldSpec(
    id="user_id",
    annotation=str,
    name="User id",
    description="Whose Fermi prompts to use when the input has no 'user_id'.",
    default=None,
    is_shared=True,
)
"""``config["configurable"]["user_id"]``, declared so ``chain.config_specs`` lists it."""


class PromptSource(Protocol):
    """Where `PromptSelector` reads users and embeds questions (`FermiStore` is one)."""

    def snapshot(self, user_id: str) -> UserView: ...  # raises UnknownUserError

    def embed_query(self, text: str) -> np.ndarray: ...  # in the stored opinions' space


@dataclass(frozen=True)
class PromptSelector:
    """Selection settings, checked once, applied to any store: the one way prompts are chosen.

    `FermiPersonalizer`, `FermiMiddleware` and the benchmark each hold one and call `select`.

    Example:
        >>> selector = PromptSelector(num_neighbors=3, fallback="profile")
        >>> selector.select(store, "alice", "Do you own a gun?").prompt.text
    """

    strategy: Strategy = "retrieval"
    num_neighbors: int = DEFAULT_NUM_NEIGHBORS
    fallback: Fallback = "raise"
    scored_only: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            msg = f"strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}"
            raise ValueError(msg)
        if self.fallback not in FALLBACKS:
            msg = f"fallback must be one of {list(FALLBACKS)}, got {self.fallback!r}"
            raise ValueError(msg)
        if isinstance(self.num_neighbors, bool) or not isinstance(self.num_neighbors, int):
            msg = f"num_neighbors must be an integer, got {self.num_neighbors!r}"
            raise TypeError(msg)
        if self.num_neighbors < 1:
            msg = f"num_neighbors must be >= 1, got {self.num_neighbors}"
            raise ValueError(msg)

    def select(self, store: PromptSource, user_id: str, question: str) -> PromptSelection:
        """Choose ``user_id``'s prompt for ``question`` from ``store`` (no LLM call).

        The question is embedded only when retrieval needs it; an empty question gets the best
        prompt overall.

        Raises:
            UnknownUserError: No such user (unless ``fallback="none"``).
            NoPromptsError: The user has no learned prompts and ``fallback="raise"``.
        """
        uid = validate_user_id(user_id)
        try:
            user: UserView | None = store.snapshot(uid)
        except UnknownUserError:
            if self.fallback != "none":
                raise
            user = None
        text = question.strip()
        return select_for_question(
            user,
            (lambda: store.embed_query(text)) if text else None,
            user_id=uid,
            strategy=self.strategy,
            num_neighbors=self.num_neighbors,
            fallback=self.fallback,
            scored_only=self.scored_only,
        )

    def trace_metadata(self, user_id: str) -> dict[str, Any]:
        """The settings and the user, as run metadata (known before the choice is made)."""
        return {
            "fermi_user_id": user_id,
            "fermi_strategy": self.strategy,
            "fermi_num_neighbors": self.num_neighbors,
            "fermi_fallback": self.fallback,
        }


class PersonalizerInput(TypedDict):
    """Input of `FermiPersonalizer` (a bare question string works when the user id is in config)."""

    question: str
    choices: NotRequired[list[str] | None]
    user_id: NotRequired[str]


class FermiPersonalizer(RunnableSerializable[PersonalizerInput | str, ChatPromptValue]):
    """Personalize a question for one user with their Fermi prompts (Retrieval-of-Prompt).

    The user id comes from the input (``"user_id"``) or from
    ``config["configurable"]["user_id"]`` (declared in `config_specs`). Every call traces a
    child run named ``fermi_select_prompt``: its metadata holds the user and the settings, its
    outputs the chosen prompt (text, index, score), the strategy and the explanation.

    Example:
        >>> chain = FermiPersonalizer(store) | get_chat_model()
        >>> chain.invoke({"question": "Do you own a gun?", "choices": ["Yes", "No"],
        ...               "user_id": "alice"})
    """

    store: Any = Field(
        description="A `FermiStore` (or anything with its `snapshot`/`embed_query`)."
    )
    strategy: Strategy = "retrieval"
    num_neighbors: int = Field(DEFAULT_NUM_NEIGHBORS, ge=1, description="Ñ: opinions retrieved")
    fallback: Fallback = Field(
        "raise", description="For users without learned prompts; None is read as 'raise'."
    )
    scored_only: bool = Field(
        True, description="Retrieve only among opinions the prompts were scored on."
    )

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, store: Any = None, /, **kwargs: Any) -> None:
        if store is not None:
            kwargs["store"] = store
        super().__init__(**kwargs)

    @field_validator("fallback", mode="before")
    @classmethod
    def _none_raises(cls, v: object) -> object:
        return "raise" if v is None else v  # 0.1 spelled "raise" as None

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """``user_id``: the configurable field this runnable reads."""
        return [USER_ID_SPEC]

    @property
    def selector(self) -> PromptSelector:
        """The selection settings as a `PromptSelector` (what the middleware and bench use)."""
        return PromptSelector(self.strategy, self.num_neighbors, self.fallback, self.scored_only)

    # -- selection ------------------------------------------------------------------------------
    def select_prompt(self, user_id: str, question: str) -> PromptSelection:
        """Choose the prompt for ``question`` and explain why (no LLM call).

        Raises:
            UnknownUserError: The store has no such user (unless ``fallback="none"``).
            NoPromptsError: The user has no learned prompts and ``fallback`` is ``"raise"``.
        """
        return self.selector.select(self.store, user_id, question)

    def messages_for(
        self, selection: PromptSelection, question: str, choices: list[str] | None = None
    ) -> list[BaseMessage]:
        """``[SystemMessage(prompt), HumanMessage(question)]`` as the prompts were scored."""
        human = HumanMessage(format_question(question, choices) if choices else question)
        if selection.prompt is None:
            return [human]
        return [SystemMessage(selection.prompt.text), human]

    # -- runnable -------------------------------------------------------------------------------
    def _parse_input(
        self, input: PersonalizerInput | str, config: RunnableConfig | None
    ) -> tuple[str, str, list[str] | None]:
        configurable = (config or {}).get("configurable") or {}
        if isinstance(input, str):
            question, choices, user_id = input, None, None
        elif isinstance(input, dict):
            if "question" not in input:
                msg = f"FermiPersonalizer input needs a 'question' key, got keys {sorted(input)}"
                raise ValueError(msg)
            question, choices = input["question"], input.get("choices")
            user_id = input.get("user_id")
        else:
            msg = f"FermiPersonalizer input must be a dict or a question string, got {type(input)}"
            raise TypeError(msg)
        user_id = user_id or configurable.get("user_id")
        if not user_id:
            msg = (
                "no user id: put 'user_id' in the input or in "
                "config={'configurable': {'user_id': ...}}"
            )
            raise ValueError(msg)
        if not isinstance(question, str) or not question.strip():
            msg = f"question must be a non-empty string, got {question!r}"
            raise ValueError(msg)
        # A string would otherwise be split into one option per character.
        return str(user_id), question, validate_choices(choices) if choices else None

    def _traced_select(
        self, user_id: str, question: str, run_manager: CallbackManagerForChainRun
    ) -> PromptSelection:
        """`select_prompt` as a child run: the choice and its reason land on the trace."""
        selector = self.selector
        callbacks = run_manager.get_child()
        callbacks.add_metadata(selector.trace_metadata(user_id), inherit=False)
        child = callbacks.on_chain_start(
            None, {"user_id": user_id, "question": question}, name=SELECTION_RUN_NAME
        )
        try:
            selection = selector.select(self.store, user_id, question)
        except BaseException as e:
            child.on_chain_error(e)
            raise
        child.on_chain_end(selection.trace())
        return selection

    def _personalize(
        self,
        input: PersonalizerInput | str,
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> ChatPromptValue:
        user_id, question, choices = self._parse_input(input, config)
        selection = self._traced_select(user_id, question, run_manager)
        return ChatPromptValue(messages=self.messages_for(selection, question, choices))

    async def _apersonalize(
        self,
        input: PersonalizerInput | str,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> ChatPromptValue:
        # Selection is CPU-bound (the query embedding), so run it off the event loop.
        sync_manager = run_manager.get_sync()
        return await run_in_executor(config, self._personalize, input, sync_manager, config)

    def invoke(
        self, input: PersonalizerInput | str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> ChatPromptValue:
        """Personalize one question: returns the messages to send to the chat model."""
        return self._call_with_config(
            self._personalize, input, ensure_config(config), run_type="prompt"
        )

    async def ainvoke(
        self, input: PersonalizerInput | str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> ChatPromptValue:
        """Async `invoke`."""
        return await self._acall_with_config(
            self._apersonalize, input, ensure_config(config), run_type="prompt"
        )
