"""Helpers shared by the loaders: optional imports, text files, readable validation errors."""

from __future__ import annotations

import codecs
import importlib
from pathlib import Path
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


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def read_text(path: Path) -> str:
    """A text file's content, UTF-8 with or without a byte-order mark (Excel writes one).

    UTF-16 files with their BOM (Excel's "Unicode text") are read too. Any other encoding is a
    ``ValueError`` naming the file, line, column and byte offset of the first bad byte, so the
    user can find it, instead of a bare ``UnicodeDecodeError``.
    """
    data = path.read_bytes()
    start, encoding = 0, "utf-8"
    for bom, enc in _BOMS:
        if data.startswith(bom):
            start, encoding = len(bom), enc
            break
    try:
        return data[start:].decode(encoding)
    except UnicodeDecodeError as e:
        offset = start + e.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        msg = (
            f"{path}:{line}:{column}: not {encoding.upper()} text (byte 0x{data[offset]:02x} at "
            f"offset {offset}: {e.reason}); save the file as UTF-8"
        )
        raise ValueError(msg) from None
