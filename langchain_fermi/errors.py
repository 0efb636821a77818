"""Exceptions, each derived from the built-in a caller would naturally catch."""

from __future__ import annotations

__all__ = [
    "BudgetExceededError",
    "FermiError",
    "LLMCallError",
    "ModelNotInstalledError",
    "NoPromptsError",
    "UnknownUserError",
]


class FermiError(Exception):
    """Base class for langchain-fermi errors."""


class UnknownUserError(FermiError, KeyError):
    """The store has no such user."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown user"


class NoPromptsError(FermiError, LookupError):
    """The user exists but has no optimized prompts yet."""


class ModelNotInstalledError(FermiError, ImportError):
    """A local model was asked for but its package is missing; the message says what to install."""


class LLMCallError(FermiError, RuntimeError):
    """An LLM call still failed after its retries."""


class BudgetExceededError(FermiError, RuntimeError):
    """A call/token budget was exhausted."""
