"""The OpenAI-logprob scoring path against a real local ``llama_cpp.server`` (SmolLM2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI
from servers import llama_cpp_server

from langchain_fermi.models import get_chat_model
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.types import Opinion

pytestmark = [pytest.mark.server, pytest.mark.local_model]

pytest.importorskip("uvicorn", reason="llama-cpp-python[server] is not installed")

OPINIONS = [
    Opinion(
        id="climate",
        question="How much, if at all, do you worry about climate change?",
        choices=["A great deal", "Some", "Not too much", "Not at all"],
        answer="Some",
    ),
    Opinion(id="gun", question="Do you personally own a gun?", choices=["Yes", "No"], answer="No"),
]
PROMPT = "You are a 70-year-old retired farmer from rural Texas, a conservative Republican."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_cpp_server(tmp_path_factory.mktemp("server")) as base:
        yield base


def test_logprob_path_through_chat_openai(server: str) -> None:
    model = ChatOpenAI(model="smollm2", base_url=server, api_key="sk-local", temperature=0)
    scorer = AnswerScorer(model, max_retries=0)
    assert scorer.method == "logprobs"
    answers = scorer.score([(PROMPT, op) for op in OPINIONS])
    local = AnswerScorer(get_chat_model("smollm2")).score([(PROMPT, op) for op in OPINIONS])
    for ans, ref, op in zip(answers, local, OPINIONS, strict=True):
        assert ans.method == "logprobs" and ans.index is not None
        assert ans.probs is not None and len(ans.probs) == len(op.choices)
        assert sum(ans.probs) == pytest.approx(1.0)
        assert ans.completion_tokens <= 1  # extra_body max_tokens=1 reached the server
        assert ans.prompt_tokens == ref.prompt_tokens  # the same chat template on both sides
        assert ans.index == ref.index  # server logprobs and our in-process logits agree
        assert ans.probs == pytest.approx(ref.probs, abs=0.02)


def test_parse_path_through_chat_openai(server: str) -> None:
    model = ChatOpenAI(model="smollm2", base_url=server, api_key="sk-local", temperature=0)
    answers = AnswerScorer(model, method="parse", max_retries=0).score([(PROMPT, OPINIONS[0])])
    assert answers[0].method == "parse" and answers[0].index in range(4), answers[0]


def test_get_chat_model_openai_against_the_server(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERMI_OPENAI_BASE_URL", server)
    monkeypatch.delenv("FERMI_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = get_chat_model("openai:smollm2", max_tokens=5)  # also sent as extra_body max_tokens
    reply = model.invoke("Say hello.")
    assert reply.content.strip()
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] <= 5
