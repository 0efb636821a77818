"""LangChain messages as the OpenAI-style dicts a llama.cpp chat template reads
(`LocalLlamaChatModel`): roles, text content blocks, tool calls and tool results."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_fermi.models.llama_tools import format_tool_call

__all__ = ["to_chat_messages"]


def _message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or part.get("type") == "text"
    )


def _role(message: BaseMessage) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, HumanMessage | ToolMessage):
        return "user"
    return {"system": "system", "ai": "assistant", "assistant": "assistant"}.get(
        message.type, "user"
    )


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as OpenAI-style ``{"role", "content"}`` dicts for a chat template.

    Tool calls in the history are written back as ``<tool_call>`` JSON after the assistant's
    text and tool results become ``<tool_response>`` user turns, so any template shows them.
    """
    out = []
    for m in messages:
        text = _message_text(m)
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = [format_tool_call(c["name"], c["args"]) for c in m.tool_calls]
            text = "\n".join([text, *calls] if text else calls)
        elif isinstance(m, ToolMessage):
            text = f"<tool_response>\n{text}\n</tool_response>"
        out.append({"role": _role(m), "content": text})
    return out
