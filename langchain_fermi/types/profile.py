"""Users and their opinions: ids, choices and profiles, validated at the edge."""

from __future__ import annotations

import math
import numbers
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from langchain_fermi.errors import validation_message

__all__ = [
    "OPTION_LETTERS",
    "Opinion",
    "UserProfile",
    "Variant",
    "validate_choices",
    "validate_user_id",
]

OPTION_LETTERS = string.ascii_uppercase
"""Options are shown to models as A, B, C, ... (at most 26 options)."""

Variant = Literal["fermi", "opro", "profile"]
"""How a prompt was produced: Fermi's meta-prompt, the OPRO ablation, or the profile-only prompt."""

_USER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_user_id(user_id: Any) -> str:
    """Return ``user_id`` as a string, or raise ``ValueError`` if it is empty or unsafe.

    User ids end up in Chroma ids, LangGraph namespaces, thread ids and file names, so they are
    restricted to letters, digits and ``_ . @ -`` (1-128 characters, not starting with a symbol).
    Nothing is stripped or normalised: ``"alice\\n"`` would silently be another user than
    ``"alice"``, so it is an error that says so.
    """
    if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
        msg = "user id must be a non-empty string"
        raise ValueError(msg)
    if isinstance(user_id, bool) or not isinstance(user_id, (str, numbers.Integral)):
        msg = f"user id must be a string or an integer, got {type(user_id).__name__} {user_id!r}"
        raise ValueError(msg)
    uid = str(user_id)
    if uid != uid.strip():
        msg = (
            f"unsafe user id {uid!r}: leading or trailing whitespace "
            f"(it would be another user than {uid.strip()!r})"
        )
        raise ValueError(msg)
    if control := _CONTROL_RE.search(uid):
        msg = f"unsafe user id {uid!r}: control character {control[0]!r}"
        raise ValueError(msg)
    if not _USER_ID_RE.fullmatch(uid) or ".." in uid:
        msg = (
            f"unsafe user id {uid!r}: use 1-128 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
        raise ValueError(msg)
    return uid


def validate_choices(choices: Any, where: str = "choices") -> list[str]:
    """Return ``choices`` as a list of option texts, or raise ``ValueError`` naming ``where``.

    Models see options as letters A-Z, so 2 to 26 distinct, non-empty texts are needed; a
    ``None`` option would otherwise be shown as the text "None".
    """
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
        msg = f"{where}: choices must be a list of option texts, got {type(choices).__name__}"
        raise ValueError(msg)
    out = list(choices)
    for i, c in enumerate(out, start=1):
        if not isinstance(c, str):
            msg = f"{where}: choice {i} is {c!r}, not text"
            raise ValueError(msg)
    if len(out) < 2:
        msg = f"{where}: needs at least 2 choices, got {len(out)}"
        raise ValueError(msg)
    if len(out) > len(OPTION_LETTERS):
        msg = f"{where}: at most {len(OPTION_LETTERS)} choices, got {len(out)} (lettered A-Z)"
        raise ValueError(msg)
    if any(not c.strip() for c in out):
        msg = f"{where}: empty choice in {out!r}"
        raise ValueError(msg)
    dupes = sorted({c for c in out if out.count(c) > 1})
    if dupes:
        msg = f"{where}: duplicate choices {dupes!r}"
        raise ValueError(msg)
    return out


class Opinion(BaseModel):
    """One multiple-choice question and the option the user chose.

    Example:
        >>> Opinion(id="q1", question="Do you own a car?", choices=["Yes", "No"], answer="No")
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Unique within the user (e.g. the survey item key).")
    question: str
    choices: list[str] = Field(description="The options, in the order they are shown.")
    answer: str = Field(description="The option text the user chose; one of `choices`.")
    topic: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_is_text(cls, v: Any) -> str:
        if v is None or not str(v).strip():
            msg = "opinion id must be non-empty"
            raise ValueError(msg)
        return str(v)

    @field_validator("choices", mode="before")
    @classmethod
    def _valid_choices(cls, v: Any, info: Any) -> list[str]:
        # Before pydantic's own check, so a None option gets a message naming the opinion.
        return validate_choices(v, f"opinion {info.data.get('id', '?')!r}")

    @model_validator(mode="after")
    def _check(self) -> Opinion:
        where = f"opinion {self.id!r}"
        if not self.question.strip():
            msg = f"{where}: empty question"
            raise ValueError(msg)
        if self.answer not in self.choices:
            msg = f"{where}: answer {self.answer!r} is not one of the choices {self.choices!r}"
            raise ValueError(msg)
        return self

    @property
    def answer_index(self) -> int:
        """Position of the user's answer in `choices`."""
        return self.choices.index(self.answer)

    @property
    def answer_letter(self) -> str:
        """Letter of the user's answer as shown to models (``A`` for the first option)."""
        return OPTION_LETTERS[self.answer_index]


class UserProfile(BaseModel):
    """A user: an id, profile attributes (e.g. demographics) and past opinions.

    Example:
        >>> UserProfile(user_id="alice", attributes={"Age": "30-49"}, opinions=[...])
    """

    user_id: str
    attributes: dict[str, str] = Field(default_factory=dict)
    opinions: list[Opinion] = Field(default_factory=list)

    @field_validator("user_id", mode="before")
    @classmethod
    def _safe_id(cls, v: Any) -> str:
        return validate_user_id(v)

    @field_validator("attributes", mode="before")
    @classmethod
    def _attrs_as_text(cls, v: Any, info: Any) -> dict[str, str]:
        # Missing values (None, NaN) are left out: str() would store the text "None" / "nan".
        if v is None:
            return {}
        where = f"user {info.data.get('user_id', '?')!r}"
        if not isinstance(v, Mapping):
            msg = f"{where}: attributes must be a {{name: value}} mapping, got {type(v).__name__}"
            raise ValueError(msg)
        out: dict[str, str] = {}
        for k, val in v.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool) or not str(k).strip():
                msg = f"{where}: attribute name {k!r} must be non-empty text"
                raise ValueError(msg)
            if val is None or (isinstance(val, float) and math.isnan(val)):
                continue
            if not isinstance(val, (str, int, float)):
                msg = f"{where}: attribute {k!r} must be text, got {type(val).__name__} {val!r}"
                raise ValueError(msg)
            out[str(k)] = str(val)
        return out

    @field_validator("opinions", mode="before")
    @classmethod
    def _opinions(cls, v: Any, info: Any) -> list[Opinion]:
        uid = info.data.get("user_id", "?")
        out: list[Opinion] = []
        for i, item in enumerate(v or []):
            if isinstance(item, Opinion):
                out.append(item)
                continue
            oid = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
            try:
                out.append(Opinion.model_validate(item))
            except ValidationError as e:
                text = validation_message(e, strip_prefix=f"opinion {str(oid)!r}: ")
                msg = f"user {uid!r}, opinion {oid!r}: {text}"
                raise ValueError(msg) from None
        seen: set[str] = set()
        for o in out:
            if o.id in seen:
                msg = f"user {uid!r}: duplicate opinion id {o.id!r}"
                raise ValueError(msg)
            seen.add(o.id)
        return out

    def opinion(self, opinion_id: str) -> Opinion:
        """Return the opinion with this id (``KeyError`` if absent)."""
        for o in self.opinions:
            if o.id == opinion_id:
                return o
        msg = f"user {self.user_id!r} has no opinion {opinion_id!r}"
        raise KeyError(msg)

    def profile_text(self) -> str:
        """The profile as ``key: value`` lines, used by the initial prompt."""
        return "\n".join(f"{k}: {v}" for k, v in self.attributes.items())
