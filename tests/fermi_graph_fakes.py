"""Scripted, deterministic chat models and users for the Fermi graph tests.

`KeywordTarget` answers from keywords in its system prompt: for a question about topic ``tN``
it picks letter ``L`` when the prompt contains ``tN=L``, else ``A``. So a prompt's score is a
known function of its text, and every call is counted. `ScriptedOptimizer` returns scripted
bracketed prompts in order and records the meta-prompts it received.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from langchain_fermi.types import Opinion, UserProfile

TOPIC_RE = re.compile(r"\[(t\d+)\]")
CHOICES = ["Yes", "No", "Unsure"]


class KeywordTarget(BaseChatModel):
    """Answers ``L`` for topic ``tN`` when the system prompt says ``tN=L``; else ``A``.

    A system prompt containing ``fail_marker`` raises while ``failing`` is set. Only successful
    calls are counted, per system prompt too.
    """

    model_name: str = "keyword-target"
    fail_marker: str = "BOOM"
    failing: bool = False
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "keyword-target"

    @property
    def calls(self) -> int:
        return len(self._calls)

    @property
    def call_log(self) -> list[tuple[str, str]]:
        """(system prompt, question) of every successful call."""
        return list(self._calls)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
        question = str(messages[-1].content)
        if self.failing and self.fail_marker in system:
            msg = "target is down"
            raise ConnectionError(msg)
        topic = TOPIC_RE.search(question)
        letter = "A"
        if topic:
            m = re.search(rf"\b{topic.group(1)}=([A-Z])\b", system)
            letter = m.group(1) if m else "A"
        with self._lock:
            self._calls.append((system, question))
        message = AIMessage(
            letter, usage_metadata={"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


class ScriptedOptimizer(BaseChatModel):
    """Returns ``replies`` in order (cycling the last one) and records every meta-prompt.

    Raises while ``fail_from`` is set and that many replies were already given (a failed call
    does not consume a reply, so a resumed run gets the same replies as an uninterrupted one).
    ``interrupt`` raises ``KeyboardInterrupt`` instead.
    """

    replies: list[str]
    fail_from: int | None = None
    interrupt: bool = False
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _prompts: list[str] = PrivateAttr(default_factory=list)
    _attempts: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted-optimizer"

    @property
    def prompts(self) -> list[str]:
        """The meta-prompts of the successful calls, in order."""
        return list(self._prompts)

    @property
    def attempts(self) -> int:
        return self._attempts

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._attempts += 1
            n = len(self._prompts)
            if self.fail_from is not None and n >= self.fail_from:
                if self.interrupt:
                    raise KeyboardInterrupt
                msg = "optimizer is down"
                raise TimeoutError(msg)
            self._prompts.append(str(messages[-1].content))
            reply = self.replies[min(n, len(self.replies) - 1)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(reply))])


# Topic -> the user's answer letter. The initial prompt (no keywords) answers A everywhere.
USER_LETTERS = {"t0": "A", "t1": "B", "t2": "C", "t3": "B", "t4": "A",
                "t5": "C", "t6": "B", "t7": "A", "t8": "C", "t9": "B"}  # fmt: skip


def make_user(user_id: str = "u1", n: int = 10) -> UserProfile:
    """A user with ``n`` opinions on topics t0..t{n-1} and a 2-field profile."""
    opinions = []
    for i in range(n):
        topic = f"t{i}"
        letter = USER_LETTERS.get(topic, "A")
        opinions.append(
            Opinion(
                id=f"q{i}",
                question=f"[{topic}] What do you think about issue number {i}?",
                choices=CHOICES,
                answer=CHOICES["ABC".index(letter)],
            )
        )
    return UserProfile(
        user_id=user_id,
        attributes={"REGION": "Northeast", "POLIDEOLOGY": "Very liberal"},
        opinions=opinions,
    )


def keyword_prompt(*topics: str, extra: str = "") -> str:
    """A prompt text that makes `KeywordTarget` answer the user's letter on ``topics``."""
    keys = " ".join(f"{t}={USER_LETTERS[t]}" for t in topics)
    return f"Answer as this person. {keys} {extra}".strip()
