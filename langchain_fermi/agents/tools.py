"""Tools that let an agent learn from what its user says: record opinions, read the profile.

The user id always comes from the run context through `ToolRuntime`, never from the model's
arguments, so a model cannot write into (or read) another user's memory.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langchain.tools import ToolRuntime
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from langchain_fermi.agents._memory_ops import parse_opinion_put
from langchain_fermi.agents.context import resolve_fermi_store, user_id_from_context
from langchain_fermi.agents.memory import FermiMemoryStore
from langchain_fermi.errors import UnknownUserError
from langchain_fermi.store import FermiStore
from langchain_fermi.types import OPTION_LETTERS, Opinion, validate_user_id

__all__ = [
    "RECORD_OPINION_DESCRIPTION",
    "get_user_profile",
    "live_opinion_id",
    "make_opinion_tools",
    "record_opinion",
    "record_opinion_for",
]

RECORD_OPINION_DESCRIPTION = (
    "Save an opinion the user has just stated, as a multiple-choice survey item: the question, "
    "its options, and the option the user chose (exactly one of the options). Use it whenever "
    "the user tells you what they think, so later answers match their views."
)
PROFILE_DESCRIPTION = (
    "Read what is known about the current user: profile attributes, how many opinions are "
    "recorded, the most recent ones, and whether personalized prompts have been learned."
)


def live_opinion_id(question: str, choices: list[str]) -> str:
    """``live-<hash>`` of the question and options: restating the same item updates it."""
    raw = json.dumps([question.strip(), [c.strip() for c in choices]], ensure_ascii=False)
    return "live-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]


def _match_answer(answer: str, choices: list[str]) -> str:
    """The chosen option: exact, then case/space-insensitive, then an option letter (``B``)."""
    if answer in choices:
        return answer
    folded = {" ".join(c.split()).casefold(): c for c in choices}
    key = " ".join(answer.split()).casefold()
    if key in folded:
        return folded[key]
    letter = answer.strip().rstrip(".)").upper()
    if len(letter) == 1 and letter in OPTION_LETTERS[: len(choices)]:
        return choices[OPTION_LETTERS.index(letter)]
    return answer  # left for validation to reject with the options listed


def record_opinion_for(
    store: FermiStore | FermiMemoryStore,
    user_id: str,
    question: str,
    choices: list[str],
    answer: str,
    *,
    topic: str | None = None,
) -> Opinion:
    """Validate and store one opinion of ``user_id`` (creating the user if needed).

    Raises:
        ValueError: An unsafe user id or an invalid opinion (the message names both).
    """
    fermi = resolve_fermi_store(store)
    uid = validate_user_id(user_id)
    choices = [str(c) for c in choices]
    oid = live_opinion_id(question, choices)
    value = {
        "question": question,
        "choices": choices,
        "answer": _match_answer(str(answer), choices),
        "topic": topic,
    }
    opinion = parse_opinion_put(uid, oid, value)
    fermi.add_opinions(uid, [opinion])
    return opinion


def _profile_summary(fermi: FermiStore, user_id: str) -> dict[str, Any]:
    try:
        snap = fermi.snapshot(user_id)
    except UnknownUserError:
        return {"user_id": user_id, "known": False}
    recent = [{"question": o.question, "answer": o.answer} for o in snap.opinions[-5:]]
    return {
        "user_id": user_id,
        "known": True,
        "attributes": dict(snap.record.attributes),
        "opinions": len(snap.opinions),
        "recent_opinions": recent,
        "learned_prompts": len(snap.prompts),
    }


def make_opinion_tools(
    store: FermiStore | FermiMemoryStore | None = None, *, user_id_key: str = "user_id"
) -> list[BaseTool]:
    """``[record_opinion, get_user_profile]`` bound to ``store`` (default: the agent's store).

    Args:
        store: The Fermi memory to write; ``None`` uses the run's store, which must then be a
            `FermiMemoryStore`.
        user_id_key: The run-context field holding the user id.
    """
    if store is not None and not isinstance(store, FermiStore | FermiMemoryStore):
        msg = f"store must be a FermiStore or a FermiMemoryStore, got {type(store).__name__}"
        raise TypeError(msg)

    def _where(runtime: ToolRuntime[Any, Any]) -> tuple[FermiStore, str]:
        uid = user_id_from_context(runtime.context, user_id_key)
        return resolve_fermi_store(store, runtime.store), uid

    def record_opinion(
        question: str,
        choices: list[str],
        answer: str,
        runtime: ToolRuntime[Any, Any],
        topic: str | None = None,
    ) -> str:
        """Save an opinion the user stated."""
        fermi, uid = _where(runtime)
        try:
            opinion = record_opinion_for(fermi, uid, question, choices, answer, topic=topic)
        except ValueError as e:  # the model's arguments: tell it, so it can retry
            raise ToolException(str(e)) from None
        return f"Recorded opinion {opinion.id}: {opinion.question!r} -> {opinion.answer!r}."

    def get_user_profile(runtime: ToolRuntime[Any, Any]) -> str:
        """Read the current user's profile."""
        fermi, uid = _where(runtime)
        return json.dumps(_profile_summary(fermi, uid), ensure_ascii=False)

    return [
        StructuredTool.from_function(
            record_opinion,
            name="record_opinion",
            description=RECORD_OPINION_DESCRIPTION,
            handle_tool_error=True,
        ),
        StructuredTool.from_function(
            get_user_profile, name="get_user_profile", description=PROFILE_DESCRIPTION
        ),
    ]


record_opinion, get_user_profile = make_opinion_tools()
"""Ready tools that use the agent's store (a `FermiMemoryStore`)."""
