"""Fake chat models for the agent tests: one records what it receives, one calls a tool once."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr


class RecordingChatModel(BaseChatModel):
    """Answers ``reply`` and keeps every message list it was called with (the answer does not
    matter in these tests; what the model *receives* does)."""

    reply: str = "ok"
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    @property
    def calls(self) -> list[list[BaseMessage]]:
        return list(self._calls)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._calls.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.reply))])

    def bind_tools(self, tools: Any, **kwargs: Any) -> RecordingChatModel:
        return self


class OneToolCallModel(RecordingChatModel):
    """First call in a conversation: calls ``tool`` with ``args``; afterwards answers ``reply``.

    A conversation is "after the tool" once a tool message is among the messages received.
    """

    tool: str
    args: dict[str, Any]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._calls.append(list(messages))
        if any(m.type == "tool" for m in messages):
            message = AIMessage(self.reply)
        else:
            call = {"name": self.tool, "args": dict(self.args), "id": f"call-{len(self._calls)}"}
            message = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])
