"""Pew American Trends Panel waves with OpinionQA's question metadata -> per-respondent users.

A wave is Pew's SPSS file (``ATP W92.sav``: one row per panelist, one column per survey item,
answers as numeric codes) plus OpinionQA's ``info.csv`` for that wave (``key``, ``question``,
``option_mapping`` code -> label). Any wave loads: the questions come from ``info.csv``, the
demographics from the ``F_*`` columns found under their usual names (`pew_columns`) and the
weight from ``WEIGHT_<wave>``; non-answers are recognised by label, whatever their code.

Speed: W92's ~720k opinions are a few hundred shared `Opinion` objects (one per question and
answer, validated once; opinions are immutable), so loading is vectorised pandas work plus one
validated `UserProfile` per respondent: about 2 s for W92's 10,221 respondents.
"""

from __future__ import annotations

import ast
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from langchain_fermi.data._common import read_text, reasons, require
from langchain_fermi.data.pew_columns import (
    PewLoadReport,
    PewUsers,
    is_nonresponse,
    match_columns,
    resolve_demographics,
)
from langchain_fermi.types import Opinion, UserProfile

__all__ = ["REFUSED_CODE", "PewWaveFiles", "detect_wave", "find_wave_files", "load_pew_atp"]

logger = logging.getLogger(__name__)

REFUSED_CODE = 99.0
"""Pew's usual code for "Refused": dropped when the mapping gives it no label of its own."""

USER_ID_COLUMN = "QKEY"
INFO_CSV = "info.csv"
METADATA_CSV = "metadata.csv"
_WAVE_RE = re.compile(r"W(\d+)", re.IGNORECASE)
_WEIGHT_RE = re.compile(r"^WEIGHT_(W\d+)$", re.IGNORECASE)


class PewWaveFiles(NamedTuple):
    """The files of one wave: Pew's ``.sav`` and OpinionQA's ``info.csv`` / ``metadata.csv``."""

    sav_path: Path
    info_csv: Path
    metadata_csv: Path | None


def find_wave_files(
    sav: str | Path, meta: str | Path | None = None, metadata_csv: str | Path | None = None
) -> PewWaveFiles:
    """Resolve a wave's files from folders or files, so no wave's file names are hard-coded.

    ``sav`` is the ``.sav`` file or a folder holding exactly one. ``meta`` is ``info.csv`` or a
    folder holding it (default: the ``.sav``'s folder); when it is a folder (or omitted), its
    ``metadata.csv`` is used too unless ``metadata_csv`` is given.
    """
    sav = Path(sav)
    if sav.is_dir():
        found = sorted(p for p in sav.iterdir() if p.suffix.lower() == ".sav")
        if len(found) != 1:
            names = [p.name for p in found] or "none"
            msg = f"{sav}: expected exactly one .sav file in the folder, found {names}"
            raise ValueError(msg)
        sav = found[0]
    elif not sav.is_file():
        msg = f"{sav}: no such .sav file or folder"
        raise FileNotFoundError(msg)
    folder = Path(meta) if meta is not None else sav.parent
    if folder.is_dir():
        info = folder / INFO_CSV
        if metadata_csv is None and (folder / METADATA_CSV).is_file():
            metadata_csv = folder / METADATA_CSV
    else:
        info = folder
    if not info.is_file():
        msg = f"{info}: no OpinionQA info.csv for the wave {sav.name}; pass its path or folder"
        raise FileNotFoundError(msg)
    return PewWaveFiles(sav, info, Path(metadata_csv) if metadata_csv is not None else None)


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
    dropped: dict[float, str]  # non-answer codes (by label) -> label


def _read_csv(path: Path) -> Any:
    """pandas' read_csv, via `read_text` (BOM, encoding errors naming the file)."""
    pd = require("pandas")
    try:
        return pd.read_csv(io.StringIO(read_text(path)))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        msg = f"{path}: not a readable CSV file: {e}"
        raise ValueError(msg) from None


def _read_questions(info_csv: Path, columns: set[str]) -> tuple[list[_Question], list[str]]:
    """The info.csv questions found in the wave, in info.csv order, and the keys not found.

    Each question's choices are validated once, here, by the normal `Opinion` constructor; the
    respondents' opinions are these same (immutable) objects.
    """
    pd = require("pandas")
    info = _read_csv(info_csv)
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
        kept = {code: label for code, label in mapping.items() if not is_nonresponse(label)}
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
            msg = f"{where}: option_mapping has no option besides non-answers ({mapping})"
            raise ValueError(msg)
        dropped = {c: lbl for c, lbl in mapping.items() if c not in kept}
        questions.append(_Question(key, by_code, dropped))
    return questions, absent


def _parse_mapping(text: Any, where: str) -> dict[float, str]:
    try:
        mapping = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        msg = f"{where}: option_mapping is not a Python dict literal: {text!r}"
        raise ValueError(msg) from None
    if not isinstance(mapping, dict) or not mapping:
        msg = f"{where}: option_mapping must be a non-empty {{code: label}} dict, got {text!r}"
        raise ValueError(msg)
    try:
        return {float(code): str(label) for code, label in mapping.items() if label is not None}
    except (TypeError, ValueError):
        msg = f"{where}: option_mapping codes must be numbers, got {list(mapping)}"
        raise ValueError(msg) from None


def _decode_attributes(
    df: Any, attr_cols: dict[str, str], meta_labels: Mapping[str, Mapping[float, str]]
) -> Any:
    """One column per attribute holding the label, or None (missing / a non-answer)."""
    pd = require("pandas")
    decoded = {}
    for name, col in attr_cols.items():
        labels = {
            float(c): str(lbl)
            for c, lbl in meta_labels[col].items()
            if not is_nonresponse(str(lbl))
        }
        decoded[name] = df[col].map(labels).astype(object).where(lambda s: s.notna(), None)
    return pd.DataFrame(decoded, index=df.index)


def _nonresponse_codes(
    attr_cols: dict[str, str],
    meta_labels: Mapping[str, Mapping[float, str]],
    questions: list[_Question],
) -> dict[str, dict[float, str]]:
    """Column / question key -> the codes dropped as non-answers (for the report)."""
    out = {q.key: dict(q.dropped) for q in questions if q.dropped}
    for col in attr_cols.values():
        codes = {float(c): str(lbl) for c, lbl in meta_labels[col].items() if is_nonresponse(lbl)}
        if codes:
            out[col] = codes
    return out


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

    -1 marks a dropped answer (not asked, or a non-answer code). A code the mapping does not
    know is an error: it would otherwise vanish silently. Code 99 without a label of its own is
    Pew's "Refused".
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
        drop_codes = [*q.dropped, *([REFUSED_CODE] if REFUSED_CODE not in q.opinions else [])]
        dropped = np.isnan(codes) | np.isin(codes, drop_codes)
        unknown = ~dropped & mapped.isna().to_numpy()
        if unknown.any():
            row = int(np.argmax(unknown))
            msg = (
                f"user {qkeys.iloc[row]!r}, opinion {q.key!r}: answer code {codes[row]} is not "
                f"in option_mapping {[*q.opinions, *q.dropped]}"
            )
            raise ValueError(msg)
        slots[:, j] = mapped.fillna(-1).to_numpy(dtype=np.int64)
    return pool, slots


def _read_sav(sav_path: Path, **kwargs: Any) -> tuple[Any, Any]:
    pyreadstat = require("pyreadstat")
    try:
        return pyreadstat.read_sav(str(sav_path), **kwargs)
    except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as e:
        msg = f"{sav_path}: not a readable SPSS .sav file ({e})"
        raise ValueError(msg) from None


def _metadata_keys(metadata_csv: Path | None) -> list[str] | None:
    if metadata_csv is None:
        return None
    meta = _read_csv(metadata_csv)
    if "key" not in meta.columns:
        msg = f"{metadata_csv}: no 'key' column; found {list(meta.columns)}"
        raise ValueError(msg)
    return meta["key"].astype(str).tolist()


def load_pew_atp(
    sav_path: str | Path,
    info_csv: str | Path | None = None,
    metadata_csv: str | Path | None = None,
    *,
    wave: str | int | None = None,
    demographics: Mapping[str, str | Sequence[str] | None] | None = None,
    min_opinions: int = 1,
    max_users: int | None = None,
    user_ids: Iterable[str | int] | None = None,
) -> PewUsers:
    """Load a Pew ATP wave as users: demographics as attributes, answered items as opinions.

    Only respondents of the wave are kept (``WEIGHT_<wave>`` not null). Answers are the option
    text of OpinionQA's ``option_mapping``; non-answers ("Refused", "Don't know", "DK/Ref", ...:
    by label, whatever the code; code 99 when unlabelled) and not-asked items (NaN) are dropped,
    and so are demographic non-answers. Choices are the mapping's other labels, in its order.
    User ids are ``QKEY`` as an integer string.

    Args:
        sav_path: The wave's ``.sav`` file, or a folder holding exactly one.
        info_csv: OpinionQA's ``info.csv`` for the wave, or its folder (default: the ``.sav``'s
            folder); a folder's ``metadata.csv`` is used too unless ``metadata_csv`` is given.
        metadata_csv: OpinionQA's ``metadata.csv``: when given, only the default demographics
            it lists.
        wave: ``"W92"`` or ``92``; by default from the file name or the ``WEIGHT_W*`` column.
        demographics: Attribute name (or OpinionQA key such as ``"POLIDEOLOGY"``) -> the column,
            or columns to try in order, merged over `PEW_DEMOGRAPHICS`; ``None`` leaves one out.
        min_opinions: Skip respondents with fewer answered questions.
        max_users: Keep the first ``max_users`` respondents (file order) after the filters.
        user_ids: Keep only these respondents (QKEYs).

    Returns:
        One `UserProfile` per respondent, in file order: a list whose ``report`` (a
        `PewLoadReport`) says which column each attribute came from, which attributes were
        not found and why, and which codes were dropped as non-answers.

    Example:
        >>> users = load_pew_atp("ATP W92.sav", "info.csv", min_opinions=50, max_users=100)
        >>> users.report.missing_attributes
        {}
    """
    np = require("numpy")
    files = find_wave_files(sav_path, info_csv, metadata_csv)
    sav_path = files.sav_path
    _, meta = _read_sav(sav_path, metadataonly=True)
    columns = set(meta.column_names)
    wave = _normalize_wave(wave) if wave is not None else detect_wave(sav_path, meta.column_names)
    weight = f"WEIGHT_{wave}"
    for needed in (USER_ID_COLUMN, weight):
        if needed not in columns:
            msg = f"{sav_path}: no {needed!r} column (wave {wave})"
            raise ValueError(msg)

    questions, skipped = _read_questions(files.info_csv, columns)
    labels = meta.variable_value_labels
    table = resolve_demographics(demographics, _metadata_keys(files.metadata_csv))
    attr_cols, missing = match_columns(table, meta.column_names, labels)
    if missing:
        logger.warning("%s: attributes left out: %s", sav_path, missing)
    usecols = [USER_ID_COLUMN, weight, *attr_cols.values(), *(q.key for q in questions)]
    df, _ = _read_sav(sav_path, usecols=list(dict.fromkeys(usecols)), apply_value_formats=False)
    df = df[df[weight].notna() & df[USER_ID_COLUMN].notna()]
    qkeys = _user_ids(df[USER_ID_COLUMN], sav_path)
    absent: list[str] = []
    if user_ids is not None:
        wanted = {str(int(u)) if isinstance(u, (int, float)) else str(u).strip() for u in user_ids}
        keep = qkeys.isin(wanted).to_numpy()
        df, qkeys = df[keep], qkeys[keep]
        absent = sorted(wanted - set(qkeys))
        if absent:
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
    report = PewLoadReport(
        sav_path=sav_path,
        info_csv=files.info_csv,
        metadata_csv=files.metadata_csv,
        wave=wave,
        attribute_columns=attr_cols,
        missing_attributes=missing,
        nonresponse=_nonresponse_codes(attr_cols, labels, questions),
        skipped_questions=skipped,
        absent_user_ids=absent,
        n_users=len(users),
        n_opinions=int(counts[rows].sum()),
    )
    logger.info("%s: %d users, %d opinions", sav_path, report.n_users, report.n_opinions)
    return PewUsers(users, report)
