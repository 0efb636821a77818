"""`FermiPersonalizer`: the LCEL step that turns a user's question into personalized messages.

``FermiPersonalizer(store) | chat_model`` answers as the user would: the personalizer picks one of
the user's learned prompts by Retrieval-of-Prompt (no LLM call; embedding the query is the main
cost) and returns ``[SystemMessage(prompt), HumanMessage(question)]`` as a `ChatPromptValue`, the
same shape the prompts were scored with.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config, run_in_executor
from pydantic import ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from langchain_fermi.errors import NoPromptsError, UnknownUserError
from langchain_fermi.questions import format_question
from langchain_fermi.retrieval import PromptSelection, Strategy, build_profile_prompt, select_prompt
from langchain_fermi.types import (
    DEFAULT_NUM_NEIGHBORS,
    UserProfile,
    scored_opinion_ids,
    validate_choices,
    validate_user_id,
)

__all__ = ["Fallback", "FermiPersonalizer", "PersonalizerInput"]

Fallback = Literal["profile", "none"]
"""What to do for a user without learned prompts: ``"profile"`` (the profile prompt) or
``"none"`` (no system prompt; also covers unknown users). ``None`` raises instead."""


class PersonalizerInput(TypedDict):
    """Input of `FermiPersonalizer` (a bare question string works when the user id is in config)."""

    question: str
    choices: NotRequired[list[str] | None]
    user_id: NotRequired[str]


class FermiPersonalizer(RunnableSerializable[PersonalizerInput | str, ChatPromptValue]):
    """Personalize a question for one user with their Fermi prompts (Retrieval-of-Prompt).

    The user id comes from the input (``"user_id"``) or from
    ``config["configurable"]["user_id"]``.

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
    fallback: Fallback | None = None
    scored_only: bool = Field(
        True, description="Retrieve only among opinions the prompts were scored on."
    )

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, store: Any = None, /, **kwargs: Any) -> None:
        if store is not None:
            kwargs["store"] = store
        super().__init__(**kwargs)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False

    # -- selection ------------------------------------------------------------------------------
    def select_prompt(self, user_id: str, question: str) -> PromptSelection:
        """Choose the prompt for ``question`` and explain why (no LLM call).

        Raises:
            UnknownUserError: The store has no such user (unless ``fallback="none"``).
            NoPromptsError: The user has no learned prompts and ``fallback`` is None.
        """
        uid = validate_user_id(user_id)
        try:
            snap = self.store.snapshot(uid)
        except UnknownUserError:
            if self.fallback == "none":
                return _no_prompt(uid, f"unknown user {uid!r}: fallback 'none', no system prompt")
            raise
        user = UserProfile(user_id=uid, attributes=snap.record.attributes)
        model = snap.prompts[0].model if snap.prompts else "unknown"
        if self.strategy == "profile" or (not snap.prompts and self.fallback == "profile"):
            sel = select_prompt(
                snap.prompts,
                [],
                strategy="profile",
                profile_prompt=build_profile_prompt(user, model=model),
                user_id=uid,
            )
            if self.strategy != "profile":
                sel.explanation = f"user {uid!r} has no optimized prompts; fallback 'profile': " + (
                    sel.explanation
                )
            return sel
        if not snap.prompts:
            if self.fallback == "none":
                return _no_prompt(uid, f"user {uid!r} has no optimized prompts; fallback 'none'")
            msg = (
                f"user {uid!r} has no optimized prompts: run `fermi optimize` / optimize_user and "
                "save the result, or create the personalizer with fallback='profile' or 'none'"
            )
            raise NoPromptsError(msg)
        neighbours: list[Any] = []
        if self.strategy == "retrieval":
            among = scored_opinion_ids(snap.prompts) if self.scored_only else None
            query = self.store.embed_query(question)
            neighbours = snap.nearest(query, self.num_neighbors, among=among or None)
        return select_prompt(snap.prompts, neighbours, strategy=self.strategy, user_id=uid)

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

    def _personalize(
        self, input: PersonalizerInput | str, config: RunnableConfig
    ) -> ChatPromptValue:
        user_id, question, choices = self._parse_input(input, config)
        selection = self.select_prompt(user_id, question)
        return ChatPromptValue(messages=self.messages_for(selection, question, choices))

    async def _apersonalize(
        self, input: PersonalizerInput | str, config: RunnableConfig
    ) -> ChatPromptValue:
        # Selection is CPU-bound (the query embedding), so run it off the event loop.
        return await run_in_executor(config, self._personalize, input, config)

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


def _no_prompt(user_id: str, explanation: str) -> PromptSelection:
    return PromptSelection(prompt=None, strategy="none", explanation=explanation, user_id=user_id)
