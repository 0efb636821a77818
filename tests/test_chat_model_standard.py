"""langchain-tests' standard chat-model suites on the embedded llama.cpp model (SmolLM2-135M).

The unit suite runs without loading the model. The integration suite runs the real model
(``local_model``); the tests that do not apply are switched off through the suite's own
properties or skipped below, each with the reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_fermi.errors import ModelNotInstalledError
from langchain_fermi.models import LocalLlamaChatModel
from langchain_fermi.models.files import local_model_path


def _smollm2_path() -> str:
    try:
        return str(local_model_path("smollm2"))
    except ModelNotInstalledError as e:  # a plain install, without the [local] extra
        pytest.skip(str(e))


class TestLocalLlamaChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LocalLlamaChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model_path": _smollm2_path(), "model_name": "smollm2"}


@pytest.mark.local_model
class TestLocalLlamaChatModelIntegration(ChatModelIntegrationTests):
    """SmolLM2-135M through llama.cpp: invoke, batch, token streaming (sync and async), usage
    metadata (also while streaming), stop sequences, tool calls forced by a grammar, structured
    output through those calls."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LocalLlamaChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # max_tokens: the suite's prompts ask for short answers; a 135M model may ramble on.
        return {"model_path": _smollm2_path(), "model_name": "smollm2", "max_tokens": 48}

    @property
    def has_tool_choice(self) -> bool:
        # Tool calls are reliable only when forced (a JSON-schema grammar): the suite then
        # binds its tools with tool_choice="any" or a tool's name.
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False  # no ``method="json_mode"`` (structured output goes through tool calls)

    @pytest.mark.xfail(
        reason="the agent loop binds tools with tool_choice=None (auto): SmolLM2-135M does not "
        "decide to call a tool by itself; forced calls are covered by test_tool_calling",
        strict=False,
    )
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)
