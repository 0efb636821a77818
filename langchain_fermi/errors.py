"""Exceptions, each derived from the built-in a caller would naturally catch."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "BudgetExceededError",
    "DamagedUserError",
    "FermiError",
    "LLMCallError",
    "ModelNotInstalledError",
    "NoPromptsError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "UnknownUserError",
    "validation_message",
]


class FermiError(Exception):
    """Base class for langchain-fermi errors."""


class UnknownUserError(FermiError, KeyError):
    """The store has no such user."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown user"


class StoreLockedError(FermiError, TimeoutError):
    """Another process kept writing an embedded store past the lock timeout (one writer at a
    time per store folder; many writer processes need a Chroma server)."""


class StoreReadOnlyError(FermiError, PermissionError):
    """A write to a store opened read-only (or whose folder this process cannot write)."""


class DamagedUserError(FermiError, RuntimeError):
    """A user's stored rows cannot be read back; other users are unaffected."""


class NoPromptsError(FermiError, LookupError):
    """The user exists but has no optimized prompts yet."""


class ModelNotInstalledError(FermiError, ImportError):
    """A local model was asked for but its package is missing; the message says what to install."""


class LLMCallError(FermiError, RuntimeError):
    """An LLM call still failed after its retries."""


class BudgetExceededError(FermiError, RuntimeError):
    """A call/token budget was exhausted."""


def validation_message(error: ValidationError, *, strip_prefix: str = "") -> str:
    """One readable line from a pydantic error: its messages without pydantic's boilerplate.

    Our own validators' messages already name the user and the opinion; a field path is only
    added to pydantic's generic ones ("answer: Field required"). ``strip_prefix`` drops a prefix
    the caller names itself.
    """
    parts: list[str] = []
    for err in error.errors():
        text = str(err["msg"]).removeprefix("Value error, ")
        if strip_prefix:
            text = text.removeprefix(strip_prefix)
        loc = ".".join(str(p) for p in err.get("loc", ()))
        if loc and err.get("type") != "value_error":
            text = f"{loc}: {text}"
        parts.append(text)
    return "; ".join(parts)
