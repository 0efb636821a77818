"""Helpers shared by the loaders: optional imports and readable validation errors."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from langchain_fermi.errors import validation_message

from langchain_fermi.types import UserProfile

DATA_EXTRA_HINT = "pip install 'langchain-fermi[data]'"


def require(module: str) -> ModuleType:
    """Import an optional dependency of the ``data`` extra, or say how to install it.

    pandas and pyreadstat are only needed by the survey loaders, so they are imported lazily:
    ``import langchain_fermi.data`` must work without them.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        msg = f"{module} is needed to read survey files: {DATA_EXTRA_HINT}"
        raise ImportError(msg) from e


def reasons(error: ValidationError) -> str:
    """Join a pydantic error's messages, without pydantic's boilerplate, keeping field paths."""
    return validation_message(error)


def validate_user(data: Any, where: str) -> UserProfile:
    """Validate one user's dict, re-raising errors as ``ValueError`` prefixed with ``where``.

    ``where`` says where the user came from (file and line or index), so the message names the
    file, the user and (through `UserProfile`'s own messages) the opinion.
    """
    try:
        return UserProfile.model_validate(data)
    except ValidationError as e:
        msg = f"{where}: {reasons(e)}"
        raise ValueError(msg) from None
