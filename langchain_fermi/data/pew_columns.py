"""Which Pew columns hold the demographics, which labels mean "no answer", and what a load found.

Pew renames its profile columns from wave to wave (``F_IDEO`` / ``F_IDEO_FINAL`` /
``F_IDEO_RECRUITMENT``, ``F_INC_SDT1`` / ``F_INC_TIER2``, ...) and numbers its non-answers
differently (99 "Refused", 9 "DK/Refused/No lean", 98 "Don't know"), so the loader looks columns
up by a list of candidates and non-answers up by label. What it could not find is recorded in a
`PewLoadReport`, returned with the users, not only logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from langchain_fermi.types import UserProfile

__all__ = [
    "PEW_DEMOGRAPHICS",
    "PewDemographic",
    "PewLoadReport",
    "PewUsers",
    "is_nonresponse",
    "resolve_demographics",
]

_SUFFIXES = ("", "_FINAL", "_RECRUITMENT")


def _variants(*bases: str) -> tuple[str, ...]:
    """Each base column, then its ``_FINAL`` and ``_RECRUITMENT`` versions, in that order."""
    return tuple(f"{b}{s}" for b in bases for s in _SUFFIXES)


class PewDemographic(NamedTuple):
    """One profile attribute: its name in `UserProfile.attributes` and the columns to try."""

    name: str
    columns: tuple[str, ...]
    """Candidate Pew columns, first found wins (case-insensitive)."""


PEW_DEMOGRAPHICS: dict[str, PewDemographic] = {
    "CREGION": PewDemographic("Region", _variants("F_CREGION")),
    "AGE": PewDemographic("Age", _variants("F_AGECAT")),
    "SEX": PewDemographic("Gender", _variants("F_GENDER", "F_SEX")),
    "EDUCATION": PewDemographic("Education", _variants("F_EDUCCAT2", "F_EDUCCAT")),
    "CITIZEN": PewDemographic("US citizen", _variants("F_CITIZEN")),
    "MARITAL": PewDemographic("Marital status", _variants("F_MARITAL")),
    "RELIG": PewDemographic("Religion", _variants("F_RELIG")),
    "RELIGATTEND": PewDemographic("Frequency of religious attendance", _variants("F_ATTEND")),
    "POLPARTY": PewDemographic(
        "Political party", ("F_PARTY_FINAL", "F_PARTY", "F_PARTY_RECRUITMENT")
    ),
    "INCOME": PewDemographic(
        "Income", _variants("F_INC_SDT1", "F_INCOME", "F_INCOME_RECODE", "F_INC_TIER2")
    ),
    "POLIDEOLOGY": PewDemographic("Political ideology", _variants("F_IDEO")),
    "RACE": PewDemographic("Race", _variants("F_RACETHNMOD", "F_RACETHN", "F_RACECMB")),
}
"""OpinionQA attribute key -> attribute name and candidate Pew columns (W92's column first)."""


# --- non-answers, by label -----------------------------------------------------------------------

_NONRESPONSE_PARTS = frozenset(
    {
        "refused",
        "ref",
        "dk",
        "don't know",
        "dont know",
        "do not know",
        "no answer",
        "no response",
        "skipped",
        "refuse to say",
        "refuse to answer",
        "prefer not to say",
        "prefer not to answer",
    }
)
_ALSO_IN_COMBINATIONS = frozenset({"no lean", "not asked"})  # "DK/Refused/No lean"
_SPLIT = re.compile(r"\s*(?:/|,|;|\bor\b)\s*")
_VOL = re.compile(r"\(?\bvol\b\.?\)?")


def is_nonresponse(label: str) -> bool:
    """Whether a value label means "no answer": Refused, Don't know, DK/Ref and combinations.

    Pew's codes for these vary by wave and column (99, 98, 9, -1), so the label decides, never
    the number. ``"Not sure"`` is a real option (it was offered) and is kept; so is
    ``"No lean"`` on its own. ``"Refused either F_IDEO or ..."`` (a derived column's note) counts.
    """
    text = _VOL.sub(" ", label.lower().replace("\u2019", "'").replace("\u2018", "'")).strip()
    text = text.strip(" .()[]-")
    if text.startswith("refused"):
        return True
    parts = [p.strip(" .()[]-") for p in _SPLIT.split(text) if p.strip(" .()[]-")]
    return (
        bool(parts)
        and all(p in _NONRESPONSE_PARTS or p in _ALSO_IN_COMBINATIONS for p in parts)
        and any(p in _NONRESPONSE_PARTS for p in parts)
    )


# --- which columns -------------------------------------------------------------------------------


def resolve_demographics(
    demographics: Mapping[str, str | Sequence[str] | None] | None,
    metadata_keys: Iterable[str] | None,
) -> dict[str, tuple[str, ...]]:
    """Attribute name -> candidate columns: the defaults, narrowed and overridden.

    ``metadata_keys`` (OpinionQA's ``metadata.csv``) keeps only the default attributes it lists;
    ``demographics`` then adds or replaces attributes (keyed by attribute name or OpinionQA key;
    a column or a list of columns to try), and ``None`` leaves an attribute out.
    """
    keys = list(PEW_DEMOGRAPHICS)
    if metadata_keys is not None:
        listed = set(metadata_keys)
        keys = [k for k in keys if k in listed]
    table = {PEW_DEMOGRAPHICS[k].name: PEW_DEMOGRAPHICS[k].columns for k in keys}
    if demographics is not None and not isinstance(demographics, Mapping):
        msg = f"demographics must map attribute names to columns, got {type(demographics).__name__}"
        raise ValueError(msg)
    for key, value in (demographics or {}).items():
        name = PEW_DEMOGRAPHICS[key].name if key in PEW_DEMOGRAPHICS else key
        if not isinstance(name, str) or not name.strip():
            msg = f"demographics: attribute name {key!r} must be non-empty text"
            raise ValueError(msg)
        if value is None:
            table.pop(name, None)
            continue
        columns = (value,) if isinstance(value, str) else value
        if (
            not isinstance(columns, Sequence)
            or not columns
            or not all(isinstance(c, str) and c.strip() for c in columns)
        ):
            msg = f"demographics[{key!r}]: expected a column name or a list of them, got {value!r}"
            raise ValueError(msg)
        table[name] = tuple(columns)
    return table


def match_columns(
    table: Mapping[str, tuple[str, ...]],
    columns: Iterable[str],
    labelled: Mapping[str, Mapping[float, str]],
) -> tuple[dict[str, str], dict[str, str]]:
    """(attribute -> column found, attribute -> why none was) for a file's columns.

    Names match case-insensitively; a column without value labels cannot be decoded into text
    and does not count.
    """
    by_upper = {c.upper(): c for c in columns}
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name, candidates in table.items():
        present = [by_upper[c.upper()] for c in candidates if c.upper() in by_upper]
        usable = [c for c in present if labelled.get(c)]
        if usable:
            found[name] = usable[0]
        elif present:
            missing[name] = f"{', '.join(present)} has no value labels"
        else:
            missing[name] = f"none of {', '.join(candidates)} is in the file"
    return found, missing


# --- what a load found ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PewLoadReport:
    """What `load_pew_atp` read, and what it could not find (the CLI prints `summary`)."""

    sav_path: Path
    info_csv: Path
    metadata_csv: Path | None
    wave: str
    attribute_columns: dict[str, str] = field(default_factory=dict)
    """Attribute name -> the Pew column it was read from."""
    missing_attributes: dict[str, str] = field(default_factory=dict)
    """Attribute name -> why no column was used (every user lacks that attribute)."""
    nonresponse: dict[str, dict[float, str]] = field(default_factory=dict)
    """Column or question key -> the codes dropped as non-answers, with their labels."""
    skipped_questions: list[str] = field(default_factory=list)
    """info.csv keys that are not columns of the .sav file."""
    absent_user_ids: list[str] = field(default_factory=list)
    """Requested ``user_ids`` that are not respondents of the wave."""
    n_users: int = 0
    n_opinions: int = 0

    def summary(self) -> str:
        """A few lines for people: counts, then anything that was left out."""
        lines = [
            f"{self.sav_path.name} ({self.wave}): {self.n_users} users, {self.n_opinions} "
            f"opinions, {len(self.attribute_columns)} attributes"
        ]
        for name, why in self.missing_attributes.items():
            lines.append(f"attribute {name!r} left out: {why}")
        if self.skipped_questions:
            lines.append(
                f"{len(self.skipped_questions)} info.csv questions not in the file, skipped: "
                f"{', '.join(self.skipped_questions[:5])}"
            )
        if self.absent_user_ids:
            lines.append(
                f"{len(self.absent_user_ids)} requested users are not respondents: "
                f"{', '.join(self.absent_user_ids[:5])}"
            )
        return "\n".join(lines)


class PewUsers(list[UserProfile]):
    """The users of a wave (a plain list of `UserProfile`) with the `PewLoadReport` of the load.

    Example:
        >>> users = load_pew_atp("ATP W99.sav", "info.csv")
        >>> users.report.missing_attributes
        {'Income': 'none of F_INC_SDT1, ... is in the file'}
    """

    report: PewLoadReport

    def __init__(self, users: Iterable[UserProfile], report: PewLoadReport) -> None:
        super().__init__(users)
        self.report = report
