"""What becomes a candidate prompt: the initial ones, and the optimizer's parsed replies.

Iteration 0 scores the profile prompt (and any warm-start prompts); later iterations parse the
optimizer's replies and drop, counting each by reason, what must not be scored: duplicates,
empty and unparseable replies and, with ``FermiConfig.guard``, degenerate prompts
(`langchain_fermi.graph.guard.degenerate_reason`).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from langchain_fermi.graph.guard import degenerate_reason
from langchain_fermi.graph.prompts import normalize_prompt, parse_bracketed
from langchain_fermi.graph.state import DROP_REASONS, FermiState, load_user
from langchain_fermi.questions import profile_prompt, profile_prompt_with

__all__ = ["collect_candidates", "initial_candidates"]


def initial_candidates(state: FermiState) -> list[str]:
    """Iteration 0: the profile prompt, then any warm-start prompts, without duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for text in [profile_prompt(load_user(state)), *state.get("warm_start", [])]:
        key = normalize_prompt(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text.strip())
    return out


def collect_candidates(
    state: FermiState,
    replies: Sequence[BaseMessage],
    *,
    fallback: str = "drop",
    guard_words: int | None = None,
    form: str = "full",
) -> tuple[list[str], dict[str, int]]:
    """Parse the replies; drop and count duplicates (of anything scored or earlier in this
    batch, whitespace-normalised), empty and unparseable ones, and with the guard
    (``guard_words``: the fewest words of an instruction) degenerate ones (`degenerate_reason`).

    A reply with no bracket is unparseable, unless ``fallback="reply"``: then the whole reply
    is the new prompt. ``form="addendum"``: a reply is a paragraph about the person, checked as
    such, and the candidate is the profile prompt with it added (`profile_prompt_with`).
    """
    user = load_user(state)
    opinions = user.opinions if guard_words is not None else []
    known = {normalize_prompt(p["text"]) for p in state.get("scored", [])}
    dropped = {**dict.fromkeys(DROP_REASONS, 0), **(state.get("dropped") or {})}
    out: list[str] = []
    for reply in replies:
        text = parse_bracketed(str(reply.text))
        if text is None and fallback == "reply":
            text = str(reply.text).strip()
        key = normalize_prompt(text or "")
        reason = "unparseable" if text is None else "empty" if not key else ""
        paragraph = text or ""
        if not reason and form == "addendum":
            text = profile_prompt_with(user, paragraph)
            key = normalize_prompt(text)
        if not reason and key in known:
            reason = "duplicate"
        if not reason and guard_words is not None:
            reason = degenerate_reason(paragraph, opinions, min_words=guard_words) or ""
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        known.add(key)
        out.append(text)  # type: ignore[arg-type]
    return out, dropped
