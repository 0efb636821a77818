"""Pew American Trends Panel waves with OpinionQA's question metadata -> per-respondent users.

A wave is Pew's SPSS file (``ATP W92.sav``: one row per panelist, one column per survey item,
answers as numeric codes) plus OpinionQA's ``info.csv`` for that wave (``key``, ``question``,
``option_mapping`` code -> label). Any wave laid out like W92 loads: the questions come from
``info.csv``, the demographics from the ``F_*`` columns and the weight from ``WEIGHT_<wave>``.

Speed: W92's ~720k opinions are a few hundred shared `Opinion` objects (one per question and
answer, validated once; opinions are immutable), so loading is vectorised pandas work plus one
validated `UserProfile` per respondent: about 2 s for W92's 10,221 respondents.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from langchain_fermi.data._common import reasons, require
from langchain_fermi.types import Opinion, UserProfile

__all__ = ["PEW_DEMOGRAPHICS", "REFUSED_CODE", "detect_wave", "load_pew_atp"]

logger = logging.getLogger(__name__)

REFUSED_CODE = 99.0
"""Pew's code for "Refused", dropped from answers and attributes."""

PEW_DEMOGRAPHICS: dict[str, tuple[str, str]] = {
    "CREGION": ("Region", "F_CREGION"),
    "AGE": ("Age", "F_AGECAT"),
    "SEX": ("Gender", "F_GENDER"),
    "EDUCATION": ("Education", "F_EDUCCAT2"),
    "CITIZEN": ("US citizen", "F_CITIZEN"),
    "MARITAL": ("Marital status", "F_MARITAL"),
    "RELIG": ("Religion", "F_RELIG"),
    "RELIGATTEND": ("Frequency of religious attendance", "F_ATTEND"),
    "POLPARTY": ("Political party", "F_PARTY_FINAL"),
    "INCOME": ("Income", "F_INC_SDT1"),
    "POLIDEOLOGY": ("Political ideology", "F_IDEO"),
    "RACE": ("Race", "F_RACETHNMOD"),
}
"""OpinionQA attribute -> (attribute name in `UserProfile.attributes`, Pew column)."""

USER_ID_COLUMN = "QKEY"
_WAVE_RE = re.compile(r"W(\d+)", re.IGNORECASE)
_WEIGHT_RE = re.compile(r"^WEIGHT_(W\d+)$", re.IGNORECASE)


def _is_refused(code: float, label: str) -> bool:
    return code == REFUSED_CODE or label.strip().lower() == "refused"


def _normalize_wave(wave: str | int) -> str:
    text = str(wave).strip().upper()
    if not re.fullmatch(r"W?\d+", text):
        msg = f"wave must look like 'W92' or 92, got {wave!r}"
        raise ValueError(msg)
    return text if text.startswith("W") else f"W{text}"


def detect_wave(sav_path: str | Path, columns: Iterable[str]) -> str:
    """The wave (``"W92"``) of a Pew file: from its name if it has that weight column, else the
    single ``WEIGHT_W<n>`` column.
    """
    columns = list(columns)
    weights = {m.group(1).upper(): c for c in columns if (m := _WEIGHT_RE.match(c))}
    for m in _WAVE_RE.finditer(Path(sav_path).stem):
        if f"W{m.group(1)}" in weights:
            return f"W{m.group(1)}"
    if len(weights) == 1:
        return next(iter(weights))
    msg = (
        f"{sav_path}: cannot tell the wave: weight columns {sorted(weights.values())}; "
        "pass wave='W92'"
    )
    raise ValueError(msg)


class _Question(NamedTuple):
    key: str
    opinions: dict[float, Opinion]  # code -> the opinion answering with that code's label
    refused: list[float]  # codes whose label is "Refused"


def _read_questions(info_csv: Path, columns: set[str]) -> list[_Question]:
    """The info.csv questions found in the wave, in info.csv order.

    Each question's choices are validated once, here, by the normal `Opinion` constructor; the
    respondents' opinions are these same (immutable) objects.
    """
    pd = require("pandas")
    info = pd.read_csv(info_csv)
    missing_cols = [c for c in ("key", "question", "option_mapping") if c not in info.columns]
    if missing_cols:
        msg = f"{info_csv}: missing column(s) {missing_cols}; found {list(info.columns)}"
        raise ValueError(msg)
    keys = info["key"].astype(str).tolist()
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        msg = f"{info_csv}: duplicate question keys {dupes}"
        raise ValueError(msg)
    absent = [k for k in keys if k not in columns]
    if absent:
        logger.warning(
            "%s: %d questions not in the .sav file, skipped: %s", info_csv, len(absent), absent[:5]
        )
    questions = []
    for n, row in enumerate(info.itertuples(index=False), start=1):
        key = str(row.key)
        if key not in columns:
            continue
        where = f"{info_csv}, row {n}, question {key!r}"
        mapping = _parse_mapping(row.option_mapping, where)
        kept = {code: label for code, label in mapping.items() if not _is_refused(code, label)}
        question = "" if pd.isna(row.question) else str(row.question)
        by_code = {}
        for code, label in kept.items():
            try:
                by_code[code] = Opinion(
                    id=key, question=question, choices=list(kept.values()), answer=label
                )
            except ValidationError as e:
                msg = f"{where}: {reasons(e).removeprefix(f'opinion {key!r}: ')}"
                raise ValueError(msg) from None
        if not by_code:
            msg = f"{where}: option_mapping has no option besides Refused"
            raise ValueError(msg)
        questions.append(_Question(key, by_code, [c for c in mapping if c not in kept]))
    return questions


def _parse_mapping(text: Any, where: str) -> dict[float, str]:
    try:
        mapping = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        msg = f"{where}: option_mapping is not a Python dict literal: {text!r}"
        raise ValueError(msg) from None
    if not isinstance(mapping, dict) or not mapping:
        msg = f"{where}: option_mapping must be a non-empty {{code: label}} dict, got {text!r}"
        raise ValueError(msg)
    return {float(code): str(label) for code, label in mapping.items()}


def _attribute_columns(
    meta_labels: dict[str, dict], columns: set[str], metadata_csv: Path | None
) -> dict[str, str]:
    """Attribute name -> Pew column for the demographics present (limited to metadata.csv's)."""
    keys = list(PEW_DEMOGRAPHICS)
    if metadata_csv is not None:
        pd = require("pandas")
        listed = set(pd.read_csv(metadata_csv)["key"].astype(str))
        keys = [k for k in keys if k in listed]
    out = {}
    for key in keys:
        name, col = PEW_DEMOGRAPHICS[key]
        if col in columns and col in meta_labels:
            out[name] = col
    if len(out) < len(keys):
        absent = [PEW_DEMOGRAPHICS[k][1] for k in keys if PEW_DEMOGRAPHICS[k][0] not in out]
        logger.warning("demographic columns not in the file (or unlabelled), left out: %s", absent)
    return out


def _decode_attributes(df: Any, attr_cols: dict[str, str], meta_labels: dict[str, dict]) -> Any:
    """One column per attribute holding the label, or None (missing / Refused)."""
    pd = require("pandas")
    decoded = {}
    for name, col in attr_cols.items():
        labels = {
            float(c): str(lbl)
            for c, lbl in meta_labels[col].items()
            if not _is_refused(float(c), str(lbl))
        }
        decoded[name] = df[col].map(labels).astype(object).where(lambda s: s.notna(), None)
    return pd.DataFrame(decoded, index=df.index)


def _user_ids(column: Any, sav_path: Path) -> Any:
    """QKEY as text: integer strings for Pew's numeric ids (``100260.0`` -> ``"100260"``)."""
    pd = require("pandas")
    if pd.api.types.is_numeric_dtype(column):
        ids = column.astype("int64").astype(str)
    else:
        ids = column.astype(str).str.strip()
    dupes = sorted(set(ids[ids.duplicated()]))
    if dupes:
        msg = f"{sav_path}: duplicate {USER_ID_COLUMN} values {dupes[:5]}"
        raise ValueError(msg)
    return ids


def _answer_slots(df: Any, questions: list[_Question], qkeys: Any) -> tuple[list[Opinion], Any]:
    """The shared opinions and, per (respondent, question), the index of the answer in them.

    -1 marks a dropped answer (not asked, or a Refused code). A code the mapping does not know
    is an error: it would otherwise vanish silently.
    """
    pd = require("pandas")
    np = require("numpy")
    pool: list[Opinion] = []
    slots = np.full((len(df), len(questions)), -1, dtype=np.int64)
    for j, q in enumerate(questions):
        codes = df[q.key].to_numpy(dtype=float)
        index = {code: len(pool) + n for n, code in enumerate(q.opinions)}
        pool.extend(q.opinions.values())
        mapped = pd.Series(codes).map(index)
        dropped = np.isnan(codes) | np.isin(codes, [REFUSED_CODE, *q.refused])
        unknown = ~dropped & mapped.isna().to_numpy()
        if unknown.any():
            row = int(np.argmax(unknown))
            msg = (
                f"user {qkeys.iloc[row]!r}, opinion {q.key!r}: answer code {codes[row]} is not "
                f"in option_mapping {[*q.opinions, *q.refused]}"
            )
            raise ValueError(msg)
        slots[:, j] = mapped.fillna(-1).to_numpy(dtype=np.int64)
    return pool, slots


def load_pew_atp(
    sav_path: str | Path,
    info_csv: str | Path,
    metadata_csv: str | Path | None = None,
    *,
    wave: str | int | None = None,
    min_opinions: int = 1,
    max_users: int | None = None,
    user_ids: Iterable[str | int] | None = None,
) -> list[UserProfile]:
    """Load a Pew ATP wave as users: demographics as attributes, answered items as opinions.

    Only respondents of the wave are kept (``WEIGHT_<wave>`` not null). Answers are the option
    text of OpinionQA's ``option_mapping``; "Refused" (code 99) and not-asked items (NaN) are
    dropped, and so are demographic "Refused" values. Choices are the mapping's labels without
    "Refused", in its order. User ids are ``QKEY`` as an integer string.

    Args:
        sav_path: The wave's ``.sav`` file.
        info_csv: OpinionQA's ``info.csv`` for the wave.
        metadata_csv: OpinionQA's ``metadata.csv``: when given, only the demographics it lists.
        wave: ``"W92"`` or ``92``; by default from the file name or the ``WEIGHT_W*`` column.
        min_opinions: Skip respondents with fewer answered questions.
        max_users: Keep the first ``max_users`` respondents (file order) after the filters.
        user_ids: Keep only these respondents (QKEYs).

    Returns:
        One `UserProfile` per respondent, in file order.

    Example:
        >>> users = load_pew_atp("ATP W92.sav", "info.csv", min_opinions=50, max_users=100)
    """
    np = require("numpy")
    pyreadstat = require("pyreadstat")
    sav_path, info_csv = Path(sav_path), Path(info_csv)
    _, meta = pyreadstat.read_sav(str(sav_path), metadataonly=True)
    columns = set(meta.column_names)
    wave = _normalize_wave(wave) if wave is not None else detect_wave(sav_path, meta.column_names)
    weight = f"WEIGHT_{wave}"
    for needed in (USER_ID_COLUMN, weight):
        if needed not in columns:
            msg = f"{sav_path}: no {needed!r} column (wave {wave})"
            raise ValueError(msg)

    questions = _read_questions(info_csv, columns)
    labels = meta.variable_value_labels
    attr_cols = _attribute_columns(labels, columns, Path(metadata_csv) if metadata_csv else None)
    usecols = [USER_ID_COLUMN, weight, *attr_cols.values(), *(q.key for q in questions)]
    df, _ = pyreadstat.read_sav(
        str(sav_path), usecols=list(dict.fromkeys(usecols)), apply_value_formats=False
    )
    df = df[df[weight].notna() & df[USER_ID_COLUMN].notna()]
    qkeys = _user_ids(df[USER_ID_COLUMN], sav_path)
    if user_ids is not None:
        wanted = {str(int(u)) if isinstance(u, (int, float)) else str(u).strip() for u in user_ids}
        keep = qkeys.isin(wanted).to_numpy()
        df, qkeys = df[keep], qkeys[keep]
        if len(qkeys) < len(wanted):
            absent = sorted(wanted - set(qkeys))
            logger.warning(
                "%s: %d requested users are not respondents: %s", sav_path, len(absent), absent[:5]
            )
    pool, slots = _answer_slots(df, questions, qkeys)
    counts = (slots >= 0).sum(axis=1)
    rows = np.flatnonzero(counts >= min_opinions)
    if max_users is not None:
        rows = rows[:max_users]
    attrs = _decode_attributes(df.iloc[rows], attr_cols, labels)
    users = [
        UserProfile(
            user_id=uid,
            attributes={k: v for k, v in zip(attr_cols, values, strict=True) if v is not None},
            opinions=[pool[s] for s in answer_slots if s >= 0],
        )
        for uid, values, answer_slots in zip(
            qkeys.iloc[rows].tolist(),
            attrs.itertuples(index=False, name=None),
            slots[rows].tolist(),
            strict=True,
        )
    ]
    logger.info("%s: %d users, %d opinions", sav_path, len(users), int(counts[rows].sum()))
    return users
