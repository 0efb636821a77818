"""Tool calling for the in-process llama.cpp models: instructions, forced calls, reply parsing.

llama.cpp has no native tool calling for an arbitrary GGUF chat template, so
`LocalLlamaChatModel.bind_tools` works like this (the Hermes / Qwen2.5 convention):

* the tools are described in the system turn, with the reply format
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``;
* a *forced* call (``tool_choice="any"`` / ``"required"`` / a tool name / ``True``) is generated
  under a grammar built from the tools' JSON schemas, so the reply is always a valid call of a
  bound tool with arguments that match its schema, whatever the model's size;
* with ``tool_choice="auto"`` (or none) the model writes freely and a reply holding such a call is
  read as a tool call; ``"none"`` never calls a tool;
* a past call in the history is rendered back in the same format, its result as a
  ``<tool_response>`` user turn, so any chat template can show a tool loop.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import ToolCall
from langchain_core.messages.tool import tool_call

__all__ = [
    "FORCING_CHOICES",
    "forced_tool_schema",
    "format_tool_call",
    "normalize_tool_choice",
    "parse_tool_calls",
    "tool_instructions",
    "with_tool_instructions",
]

FORCING_CHOICES = ("any", "required")
"""``tool_choice`` values that force a call of one of the bound tools."""

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def _names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def normalize_tool_choice(
    tool_choice: str | bool | Mapping[str, Any] | None, tools: Sequence[Mapping[str, Any]]
) -> str | None:
    """``tool_choice`` as ``None`` (auto), ``"none"``, ``"any"`` or the name of one bound tool.

    Accepts LangChain's forms: ``"auto"``, ``"none"``, ``"any"``, ``"required"``, a tool name,
    ``True`` (the only bound tool), ``False`` / ``None`` (auto) and OpenAI's
    ``{"type": "function", "function": {"name": ...}}``.

    Raises:
        ValueError: a name or dict naming no bound tool, ``True`` with several tools, or an
            unknown value.
    """
    names = _names(tools)
    if tool_choice is None or tool_choice is False or tool_choice == "auto":
        return None
    if tool_choice is True:
        if len(names) != 1:
            msg = f"tool_choice=True needs exactly one bound tool, got {len(names)}: {names}"
            raise ValueError(msg)
        return names[0]
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        if not isinstance(name, str):
            msg = f"tool_choice dict must name a function, got {dict(tool_choice)!r}"
            raise ValueError(msg)
        tool_choice = name
    if tool_choice == "none":
        return "none"
    if tool_choice in FORCING_CHOICES:
        return "any"
    if isinstance(tool_choice, str) and tool_choice in names:
        return tool_choice
    msg = (
        f"tool_choice {tool_choice!r} names no bound tool; use 'auto', 'none', 'any', "
        f"'required' or one of {names}"
    )
    raise ValueError(msg)


def tool_instructions(tools: Sequence[Mapping[str, Any]]) -> str:
    """The system-turn text that lists the tools and the reply format for a call."""
    specs = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    return (
        "You can call these tools (JSON schemas):\n"
        f"<tools>\n{specs}\n</tools>\n"
        "To call a tool, reply with only:\n"
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>\n'
        "Otherwise reply normally."
    )


def _bounded(schema: Any, max_chars: int) -> Any:
    """``schema`` with a ``maxLength`` on every free string (none given, no enum/const/pattern).

    A small model decoding greedily can loop inside a JSON string until it runs out of tokens,
    and a call cut short is no call; the bound ends the string instead.
    """
    if isinstance(schema, list):
        return [_bounded(s, max_chars) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: _bounded(v, max_chars) for k, v in schema.items()}
    free = not any(k in out for k in ("maxLength", "enum", "const", "pattern", "format"))
    if out.get("type") == "string" and free:
        out["maxLength"] = max_chars
    return out


def with_tool_instructions(
    chat: list[dict[str, str]], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """The tools' description appended to the system turn (one is added when there is none)."""
    note = tool_instructions(tools)
    if chat and chat[0]["role"] == "system":
        return [{"role": "system", "content": f"{chat[0]['content']}\n\n{note}"}, *chat[1:]]
    return [{"role": "system", "content": note}, *chat]


def forced_tool_schema(
    tools: Sequence[Mapping[str, Any]], choice: str, *, max_string_chars: int | None = None
) -> dict[str, Any]:
    """JSON schema of one call of the chosen tool (``choice`` a name) or of any bound tool.

    ``max_string_chars`` bounds the free strings of the arguments (see `_bounded`).
    """
    chosen = [t for t in tools if choice == "any" or t["function"]["name"] == choice]
    variants = []
    for t in chosen:
        params = dict(t["function"].get("parameters") or {"type": "object", "properties": {}})
        if max_string_chars is not None:
            params = _bounded(params, max_string_chars)
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": t["function"]["name"]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _call_from_json(raw: str, names: Sequence[str]) -> ToolCall | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    args = data.get("arguments", data.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return tool_call(name=data["name"], args=args, id=f"call_{uuid.uuid4().hex[:24]}")


def parse_tool_calls(text: str, tools: Sequence[Mapping[str, Any]]) -> list[ToolCall]:
    """The calls of bound tools in a reply: ``<tool_call>`` blocks, or a reply that is one JSON
    call; anything else (unknown tool, broken JSON) is not a call and stays text."""
    names = _names(tools)
    blocks = _TOOL_CALL.findall(text)
    if not blocks and text.strip().startswith("{"):
        blocks = [text.strip()]
    return [c for c in (_call_from_json(b, names) for b in blocks) if c is not None]


def format_tool_call(name: str, args: Mapping[str, Any]) -> str:
    """A past call as the model would have written it (for the chat history)."""
    payload = json.dumps({"name": name, "arguments": dict(args)}, ensure_ascii=False)
    return f"<tool_call>{payload}</tool_call>"
