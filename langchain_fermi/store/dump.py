"""A user as plain JSON (export / import between stores) and the prompt set a result saves.

Dumps carry no vectors: importing re-embeds the questions, which is deterministic for the same
embedding model and lets a dump move to a store that uses another one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from langchain_fermi.errors import validation_message
from langchain_fermi.types import FermiResult, ScoredPrompt, UserProfile

if TYPE_CHECKING:
    from langchain_fermi.store.snapshot import UserSnapshot

__all__ = ["DUMP_FORMAT", "dump_user", "load_dump", "result_prompts", "result_summary"]

DUMP_FORMAT = "langchain-fermi.user/1"


def dump_user(snap: UserSnapshot) -> dict[str, Any]:
    """A user as plain JSON data: profile, opinions, prompts (best first) and result summary."""
    return {
        "format": DUMP_FORMAT,
        "user": snap.profile().model_dump(mode="json"),
        "prompts": [p.model_dump(mode="json") for p in snap.prompts],
        "summary": snap.record.summary,
    }


def load_dump(data: Any) -> tuple[UserProfile, list[ScoredPrompt], dict[str, Any] | None]:
    """Validate a `dump_user` dump.

    Raises:
        ValueError: Not a dump of this format, or invalid content.
    """
    if not isinstance(data, dict) or data.get("format") != DUMP_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        msg = f"not a langchain-fermi user dump (format {got!r}, expected {DUMP_FORMAT!r})"
        raise ValueError(msg)
    if not isinstance(data.get("user"), dict):
        msg = f"user dump has no 'user' object (got {type(data.get('user')).__name__})"
        raise ValueError(msg)
    try:
        user = UserProfile.model_validate(data["user"])
    except ValidationError as e:
        msg = f"user dump: {validation_message(e)}"
        raise ValueError(msg) from None
    prompts = []
    for i, p in enumerate(data.get("prompts") or []):
        try:
            prompts.append(ScoredPrompt.model_validate(p))
        except ValidationError as e:
            msg = f"user dump of {user.user_id!r}, prompt #{i}: {validation_message(e)}"
            raise ValueError(msg) from None
    return user, prompts, data.get("summary")


def result_prompts(
    result: FermiResult, *, include_last_generation: bool = True
) -> list[ScoredPrompt]:
    """The prompt set a result serves, best first (`FermiResult.serving_prompts`): the memory
    plus, optionally, the last scored generation (FERMI.md *(choice)*), deduplicated by text,
    ties in memory order; with the guard, only those that did no worse than the profile prompt
    on the validation opinions (or the profile prompt alone)."""
    return result.serving_prompts(include_last_generation=include_last_generation)


def result_summary(result: FermiResult) -> dict[str, Any]:
    """What the user's record keeps of an optimization: model, variant, stop reason, curve,
    cost and config (the prompts are stored as rows of their own)."""
    keep = {"model", "variant", "stop_reason", "curve", "cost", "config"}
    return result.model_dump(mode="json", include=keep)
