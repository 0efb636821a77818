"""The optimizer's replies end at the closing bracket (``FermiConfig.stop_at_bracket``)."""

from __future__ import annotations

from typing import Any

import pytest
from fermi_graph_fakes import KeywordTarget, keyword_prompt, make_user
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from langchain_fermi.graph import optimize_user
from langchain_fermi.graph.prompts import parse_bracketed
from langchain_fermi.graph.sampling import (
    BRACKET_STOP,
    asample_replies,
    close_stopped_reply,
    sample_replies,
)
from langchain_fermi.types import FermiConfig


class StoppingOptimizer(BaseChatModel):
    """Writes ``reply`` and honours stop sequences the way llama.cpp and OpenAI do: the text
    ends before the first stop string, which is not included; records the stops it got."""

    reply: str
    _stops: list[list[str] | None] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "stopping-optimizer"

    @property
    def stops(self) -> list[list[str] | None]:
        return list(self._stops)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._stops.append(stop)
        text, reason = self.reply, "length"
        for s in stop or []:
            if s in text:
                text, reason = text[: text.index(s)], "stop"
        words = len(text.split())
        message = AIMessage(
            text,
            response_metadata={"finish_reason": reason},
            usage_metadata={
                "input_tokens": 100,
                "output_tokens": words,
                "total_tokens": 100 + words,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


RAMBLING = (
    f"Here is a new text: [{keyword_prompt('t1', 't3')}] It should score well because it "
    "mentions the person's views. Another option would be [Always answer A.] or many more."
)


@pytest.mark.parametrize(
    ("text", "meta", "closed"),
    [
        ("Here: [Be kind", {"finish_reason": "stop"}, "Here: [Be kind]"),
        ("Here: [Be kind", {}, "Here: [Be kind]"),  # no finish reason: a stop is assumed
        ("[Be [very", {"finish_reason": "stop"}, "[Be [very]]"),
        ("Here: [Be kind", {"finish_reason": "length"}, "Here: [Be kind"),  # cut off: unchanged
        ("[Be kind] done", {"finish_reason": "stop"}, "[Be kind] done"),  # nothing left open
        ("no bracket at all", {"finish_reason": "stop"}, "no bracket at all"),
    ],
)
def test_close_stopped_reply_puts_back_the_removed_bracket(
    text: str, meta: dict[str, str], closed: str
) -> None:
    out = close_stopped_reply(AIMessage(text, response_metadata=meta))
    assert out.text == closed


def test_nested_brackets_end_the_prompt_early_but_still_parse() -> None:
    out = close_stopped_reply(AIMessage("[Be [very", response_metadata={"finish_reason": "stop"}))
    assert parse_bracketed(str(out.text)) == "Be [very]"


def test_replies_stop_at_the_first_closing_bracket() -> None:
    optimizer = StoppingOptimizer(reply=RAMBLING)
    replies, calls = sample_replies(optimizer, "meta", 3, FermiConfig(max_concurrency=1))
    assert calls == 3
    assert optimizer.stops == [BRACKET_STOP] * 3
    assert [parse_bracketed(str(r.text)) for r in replies] == [keyword_prompt("t1", "t3")] * 3
    assert all(str(r.text).endswith("]") for r in replies)  # the stop's bracket is back


async def test_async_replies_stop_at_the_first_closing_bracket() -> None:
    optimizer = StoppingOptimizer(reply=RAMBLING)
    replies, _ = await asample_replies(optimizer, "meta", 2, FermiConfig(max_concurrency=1))
    assert optimizer.stops == [BRACKET_STOP] * 2
    assert [parse_bracketed(str(r.text)) for r in replies] == [keyword_prompt("t1", "t3")] * 2


def test_paper_behaviour_lets_replies_run_on() -> None:
    optimizer = StoppingOptimizer(reply=RAMBLING)
    config = FermiConfig(max_concurrency=1, stop_at_bracket=False)
    replies, _ = sample_replies(optimizer, "meta", 1, config)
    assert optimizer.stops == [None]
    assert str(replies[0].text) == RAMBLING
    assert parse_bracketed(str(replies[0].text)) == "Always answer A."  # the last block


def test_the_loop_scores_the_first_bracketed_prompt_and_pays_fewer_tokens() -> None:
    def run(stop: bool):
        # guard off: "Always answer A." is what a run-on reply gives, the guard would drop it
        config = FermiConfig(
            K=1, T=1, max_concurrency=1, stop_at_bracket=stop, guard=False, prompt_form="full"
        )
        return optimize_user(
            make_user(), KeywordTarget(), StoppingOptimizer(reply=RAMBLING), config=config
        )

    stopped, ran_on = run(True), run(False)
    assert [p.text for p in stopped.prompts[1:]] == [keyword_prompt("t1", "t3")]
    assert [p.text for p in ran_on.prompts[1:]] == ["Always answer A."]
    assert stopped.best.text == keyword_prompt("t1", "t3")
    assert stopped.cost.optimizer_completion_tokens < ran_on.cost.optimizer_completion_tokens
