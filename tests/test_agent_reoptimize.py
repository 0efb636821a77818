"""reoptimize: warm start from stored memory, atomic replacement, failures keep the old prompts,
readers see the old prompts until a background re-optimization saves the new ones."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fermi_graph_fakes import CHOICES, KeywordTarget, ScriptedOptimizer, keyword_prompt
from fermi_graph_fakes import make_user as graph_user
from fermi_store_fakes import KeywordEmbeddings
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

from langchain_fermi.agents import FermiMemoryStore, record_opinion_for, reoptimize
from langchain_fermi.errors import LLMCallError, UnknownUserError
from langchain_fermi.graph import optimize_user
from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.store import FermiStore, result_prompts
from langchain_fermi.types import FermiConfig

B = "[{}]".format
CONFIG = FermiConfig(
    K=1, L=3, T=1, max_concurrency=1, max_retries=0, retry_backoff=0.0, prompt_form="full"
)
OLD = keyword_prompt("t1")
NEW = keyword_prompt("t1", "t3", "t6")


class GatedTarget(KeywordTarget):
    """A `KeywordTarget` whose calls wait until ``gate`` is set; ``entered`` says one is waiting."""

    _gate: threading.Event = PrivateAttr(default_factory=threading.Event)
    _entered: threading.Event = PrivateAttr(default_factory=threading.Event)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self._entered.set()
        assert self._gate.wait(30), "test gate never opened"
        return super()._generate(messages, *args, **kwargs)


@pytest.fixture
def fermi(tmp_path: Path) -> FermiStore:
    store = FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())
    user = graph_user("u1")
    old = optimize_user(
        user, KeywordTarget(), ScriptedOptimizer(replies=[B(OLD)]), config=CONFIG, progress=False
    )
    store.save_result(old, user=user)
    return store


def texts(fermi: FermiStore) -> list[str]:
    return [p.text for p in fermi.get_prompts("u1")]


def test_success_warm_starts_uses_new_opinions_and_replaces_the_prompts(fermi: FermiStore):
    before = fermi.get_prompts("u1")
    assert OLD in texts(fermi)
    question = "[t7] A brand new question about issue seven?"
    record_opinion_for(fermi, "u1", question, CHOICES, "Yes")
    target, optimizer = KeywordTarget(), ScriptedOptimizer(replies=[B(NEW)])
    result = reoptimize("u1", FermiMemoryStore(fermi), target, optimizer, config=CONFIG)
    first = [p.text for p in result.prompts if p.iteration == 0]
    assert OLD in first  # warm start: the previous prompts are scored in iteration 0
    assert result.memory[0].text == NEW
    assert fermi.get_prompts("u1") == result_prompts(result) != before
    seen = [q for _, q in target.call_log] + optimizer.prompts
    assert any(question in s for s in seen)  # the recorded opinion took part
    assert fermi.get_summary("u1")["stop_reason"] == result.stop_reason


def test_a_failing_optimizer_leaves_the_old_prompts(fermi: FermiStore):
    before, generation = fermi.get_prompts("u1"), fermi.snapshot("u1").record.generation
    broken = ScriptedOptimizer(replies=[B(NEW)], fail_from=0)
    with pytest.raises(LLMCallError):
        reoptimize("u1", fermi, KeywordTarget(), broken, config=CONFIG)
    assert broken.attempts >= 1
    assert fermi.get_prompts("u1") == before
    assert fermi.snapshot("u1").record.generation == generation
    future = reoptimize("u1", fermi, KeywordTarget(), broken, config=CONFIG, background=True)
    assert isinstance(future.exception(timeout=60), LLMCallError)
    assert fermi.get_prompts("u1") == before


def test_readers_get_the_old_prompts_until_the_background_save(fermi: FermiStore):
    before = fermi.get_prompts("u1")
    memory = FermiMemoryStore(fermi)
    personalizer = FermiPersonalizer(fermi)
    target = GatedTarget()
    future = reoptimize(
        "u1", memory, target, ScriptedOptimizer(replies=[B(NEW)]), config=CONFIG, background=True
    )
    try:
        assert target._entered.wait(30)  # the re-optimization is mid-way
        assert not future.done()
        assert fermi.get_prompts("u1") == before
        assert [i.value["text"] for i in memory.search(("fermi", "u1", "prompts"))] == [
            p.text for p in before
        ]
        picked = personalizer.select_prompt("u1", "[t3] issue number 3?").prompt
        assert picked in before
    finally:
        target._gate.set()
    result = future.result(timeout=60)
    assert fermi.get_prompts("u1") == result_prompts(result) != before
    assert memory.search(("fermi", "u1", "prompts"))[0].value["text"] == NEW


def test_bad_requests_fail_at_once(fermi: FermiStore):
    with pytest.raises(UnknownUserError, match="'nobody'"):
        reoptimize("nobody", fermi, background=True)
    record_opinion_for(fermi, "solo", "Only one?", ["Yes", "No"], "Yes")
    with pytest.raises(ValueError, match="needs at least 2"):
        reoptimize("solo", fermi, KeywordTarget(), ScriptedOptimizer(replies=[B(NEW)]))
    with pytest.raises(ValueError, match="no Fermi store"):
        reoptimize("u1", object())  # type: ignore[arg-type]
