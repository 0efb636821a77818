"""Tool calling for the local llama.cpp models: the pure parts (no model loaded)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_fermi.models import LocalLlamaChatModel, to_chat_messages
from langchain_fermi.models.llama_tools import (
    forced_tool_schema,
    normalize_tool_choice,
    parse_tool_calls,
    tool_instructions,
)


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return "sunny"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = [convert_to_openai_tool(t) for t in (get_weather, add)]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        (False, None),
        ("auto", None),
        ("none", "none"),
        ("any", "any"),
        ("required", "any"),
        ("add", "add"),
        ({"type": "function", "function": {"name": "get_weather"}}, "get_weather"),
    ],
)
def test_tool_choice_forms(choice: Any, expected: str | None) -> None:
    assert normalize_tool_choice(choice, TOOLS) == expected
    assert normalize_tool_choice(expected, TOOLS) == expected  # idempotent


def test_bad_tool_choices_name_the_tools() -> None:
    with pytest.raises(ValueError, match=r"names no bound tool.*\['get_weather', 'add'\]"):
        normalize_tool_choice("multiply", TOOLS)
    with pytest.raises(ValueError, match="exactly one bound tool, got 2"):
        normalize_tool_choice(True, TOOLS)
    assert normalize_tool_choice(True, TOOLS[:1]) == "get_weather"
    with pytest.raises(ValueError, match="must name a function"):
        normalize_tool_choice({"type": "function"}, TOOLS)


def test_forced_schema_allows_only_calls_of_the_chosen_tools() -> None:
    one = forced_tool_schema(TOOLS, "add")
    assert one["properties"]["name"] == {"const": "add"}
    assert one["properties"]["arguments"]["required"] == ["a", "b"]
    both = forced_tool_schema(TOOLS, "any")
    assert [v["properties"]["name"]["const"] for v in both["anyOf"]] == ["get_weather", "add"]


def test_forced_schema_bounds_free_strings_only() -> None:
    schema = forced_tool_schema(TOOLS, "any", max_string_chars=50)
    location = schema["anyOf"][0]["properties"]["arguments"]["properties"]["location"]
    assert location["maxLength"] == 50
    assert "maxLength" not in schema["anyOf"][1]["properties"]["arguments"]["properties"]["a"]
    assert (
        "maxLength"
        not in forced_tool_schema(TOOLS, "get_weather")["properties"]["arguments"]["properties"][
            "location"
        ]
    )
    enum = {"type": "object", "properties": {"u": {"type": "string", "enum": ["C", "F"]}}}
    spec = [{"type": "function", "function": {"name": "f", "parameters": enum}}]
    assert (
        "maxLength"
        not in forced_tool_schema(spec, "f", max_string_chars=5)["properties"]["arguments"][
            "properties"
        ]["u"]
    )


def test_parse_tool_calls() -> None:
    calls = parse_tool_calls(
        'Sure.\n<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": "{\\"location\\": \\"Paris\\"}"}',
        TOOLS,
    )
    assert [(c["name"], c["args"]) for c in calls] == [
        ("add", {"a": 1, "b": 2}),
        ("get_weather", {"location": "Paris"}),
    ]
    assert calls[0]["id"] != calls[1]["id"]
    assert parse_tool_calls('{"name": "add", "arguments": {"a": 1, "b": 2}}', TOOLS)
    assert parse_tool_calls('{"name": "rm", "arguments": {}}', TOOLS) == []  # not bound
    assert parse_tool_calls("<tool_call>{broken</tool_call>", TOOLS) == []
    assert parse_tool_calls("It is sunny in Paris.", TOOLS) == []


def test_tool_history_is_rendered_for_any_chat_template() -> None:
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1", "type": "tool_call"}
    chat = to_chat_messages(
        [
            SystemMessage("sys"),
            HumanMessage("1+2?"),
            AIMessage("", tool_calls=[call]),
            ToolMessage("3", tool_call_id="c1"),
        ]
    )
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user"]
    payload = chat[2]["content"].removeprefix("<tool_call>").removesuffix("</tool_call>")
    assert json.loads(payload) == {"name": "add", "arguments": {"a": 1, "b": 2}}
    assert chat[3]["content"] == "<tool_response>\n3\n</tool_response>"
    assert "<tools>" in tool_instructions(TOOLS) and '"name": "add"' in tool_instructions(TOOLS)


def test_request_puts_the_tools_in_the_system_turn_and_forces_by_grammar() -> None:
    model = LocalLlamaChatModel(model_path="unused.gguf", max_tokens=8)  # never loaded here
    bound = model.bind_tools([get_weather, add], tool_choice="required")
    kwargs = bound.kwargs  # type: ignore[attr-defined]
    assert kwargs["tool_choice"] == "any"
    chat, params, tools, choice = model._request([HumanMessage("hi")], None, kwargs)
    assert chat[0]["role"] == "system" and "<tools>" in chat[0]["content"]
    assert params["response_format"]["type"] == "json_object"
    assert params["max_tokens"] >= 512  # a forced call is never cut at max_tokens=8
    assert choice == "any" and len(tools) == 2
    chat, params, tools, _ = model._request(
        [SystemMessage("sys"), HumanMessage("hi")], None, {"tools": kwargs["tools"]}
    )
    assert chat[0]["content"].startswith("sys\n\n") and "response_format" not in params
    chat, params, tools, _ = model._request(
        [HumanMessage("hi")], None, {"tools": kwargs["tools"], "tool_choice": "none"}
    )
    assert tools == [] and chat == [{"role": "user", "content": "hi"}]
    with pytest.raises(ValueError, match="names no bound tool"):
        model.bind_tools([add], tool_choice="get_weather")
