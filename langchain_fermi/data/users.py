"""Users and their opinions as JSON, JSON Lines or CSV files (format: docs/DATA_FORMATS.md).

Only the standard library is used here, so these loaders work without the ``data`` extra.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from langchain_fermi.data._common import read_text, reasons, validate_user
from langchain_fermi.types import Opinion, UserProfile, validate_user_id

__all__ = ["CSV_COLUMNS", "UserFileFormat", "load_users", "save_users"]

UserFileFormat = Literal["json", "jsonl", "csv"]
"""The file formats of `load_users` / `save_users`."""

CSV_COLUMNS = ("user_id", "opinion_id", "question", "choices", "answer", "topic")
"""The fixed CSV columns, in the order `save_users` writes them; ``attr.<name>`` columns follow."""

ATTR_PREFIX = "attr."
_USER_KEYS = frozenset({"user_id", "attributes", "opinions"})
_OPINION_KEYS = frozenset({"id", "question", "choices", "answer", "topic"})
_SUFFIXES: dict[str, UserFileFormat] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}


def _resolve_format(path: Path, format: str | None) -> UserFileFormat:
    if format is not None:
        if format not in ("json", "jsonl", "csv"):
            msg = f"unknown format {format!r}: use 'json', 'jsonl' or 'csv'"
            raise ValueError(msg)
        return format  # type: ignore[return-value]
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        msg = (
            f"{path}: cannot tell the format from the extension {path.suffix!r}; "
            f"use one of {sorted(_SUFFIXES)} or pass format='json' | 'jsonl' | 'csv'"
        )
        raise ValueError(msg)
    return fmt


def load_users(path: str | Path, *, format: UserFileFormat | None = None) -> list[UserProfile]:
    """Read users and their opinions from a JSON, JSON Lines or CSV file.

    The format follows the extension (``.json``, ``.jsonl`` / ``.ndjson``, ``.csv``) unless
    ``format`` is given. Every user is validated like `UserProfile`; a bad one raises
    ``ValueError`` naming the file, the line or position, the user and the opinion. Files are
    UTF-8, with or without a byte-order mark (Excel writes one); syntax and encoding errors name
    ``file:line:column``.

    Args:
        path: The file to read.
        format: Overrides the format implied by the extension.

    Returns:
        The users, in file order (CSV: in order of first appearance).

    Example:
        >>> users = load_users("examples/data/users.json")
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    if fmt == "json":
        users = _load_json(path)
    elif fmt == "jsonl":
        users = _load_jsonl(path)
    else:
        users = _load_csv(path)
    return users


def save_users(
    users: Iterable[UserProfile], path: str | Path, *, format: UserFileFormat | None = None
) -> Path:
    """Write users in the format `load_users` reads back (JSON, JSON Lines or CSV).

    JSON is a list of users (indented, UTF-8); JSON Lines one user per line; CSV one row per
    opinion with ``attr.<name>`` columns (a user without opinions gets one row with an empty
    ``opinion_id``). Parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    users = list(users)
    _check_unique_ids(users, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    dumped = [u.model_dump(mode="json", exclude_none=True) for u in users]
    if fmt == "json":
        path.write_text(json.dumps(dumped, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        lines = (json.dumps(d, ensure_ascii=False) + "\n" for d in dumped)
        path.write_text("".join(lines), encoding="utf-8")
    else:
        _write_csv(users, path)
    return path


# --- JSON / JSON Lines -------------------------------------------------------------------------


def _check_keys(raw: Any, where: str) -> None:
    """Reject misspelt keys: a typo such as ``"opinons"`` would otherwise load an empty user."""
    if not isinstance(raw, dict):
        msg = f"{where}: expected a JSON object for a user, got {type(raw).__name__}"
        raise ValueError(msg)
    where = f"{where}: user {raw.get('user_id')!r}"
    extra = sorted(set(raw) - _USER_KEYS)
    if extra:
        msg = f"{where}: unknown user field(s) {extra}; allowed: {sorted(_USER_KEYS)}"
        raise ValueError(msg)
    for i, op in enumerate(raw.get("opinions") or []):
        if isinstance(op, dict):
            bad = sorted(set(op) - _OPINION_KEYS)
            if bad:
                msg = (
                    f"{where}, opinion {op.get('id', f'#{i}')!r}: unknown opinion field(s) "
                    f"{bad}; allowed: {sorted(_OPINION_KEYS)}"
                )
                raise ValueError(msg)


def _load_json(path: Path) -> list[UserProfile]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        msg = f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}"
        raise ValueError(msg) from None
    if isinstance(data, dict) and "users" in data:
        data = data["users"]
    elif isinstance(data, dict) and "user_id" in data:
        data = [data]  # a single user
    if not isinstance(data, list):
        msg = f'{path}: expected a list of users or {{"users": [...]}}, got {type(data).__name__}'
        raise ValueError(msg)
    users = []
    for i, raw in enumerate(data):
        where = f"{path}, user #{i}"
        _check_keys(raw, where)
        users.append(validate_user(raw, where))
    _check_unique_ids(users, str(path))
    return users


def _load_jsonl(path: Path) -> list[UserProfile]:
    users = []
    # Only "\n" ends a record: JSON escapes every control character inside strings, and
    # str.splitlines would also split on U+2028 and friends, which JSON allows unescaped.
    for lineno, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            msg = f"{path}:{lineno}:{e.colno}: invalid JSON: {e.msg}"
            raise ValueError(msg) from None
        where = f"{path}, line {lineno}"
        _check_keys(raw, where)
        users.append(validate_user(raw, where))
    _check_unique_ids(users, str(path))
    return users


def _check_unique_ids(users: list[UserProfile], where: str) -> None:
    seen: set[str] = set()
    for u in users:
        if u.user_id in seen:
            msg = f"{where}: duplicate user id {u.user_id!r}"
            raise ValueError(msg)
        seen.add(u.user_id)


# --- CSV ---------------------------------------------------------------------------------------


def _parse_choices(cell: str) -> list[str]:
    """A JSON list (``["Yes", "No"]``) or ``|``-separated text (``Yes|No``)."""
    text = cell.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            msg = f"choices look like a JSON list but do not parse ({e.msg}): {cell!r}"
            raise ValueError(msg) from None
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            msg = f"choices must be a JSON list of strings, got {cell!r}"
            raise ValueError(msg)
        return value
    return [c.strip() for c in text.split("|")] if text else []


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (first line number, row) pairs, checking the header and the quoting.

    The reader is strict, so a stray quote (``"Yes"x``) is an error on its line; a quote that is
    never closed swallows the following lines into one cell, which shows as a row with too few
    cells (or the end of the file inside a quote): reported on the line where the quote opened.
    """
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    header: list[str] = []
    start = 1
    try:
        for cells in reader:
            if not header:
                header = [c.strip() for c in cells]
                _check_header(path, header)
            elif cells:
                _check_cell_count(path, cells, header, start, reader.line_num)
                yield start, dict(zip(header, cells, strict=False))
            start = reader.line_num + 1
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            msg = (
                f"{path}:{start}: a quoted cell that starts on this line is never closed "
                f"(the file ends inside it, {reader.line_num - start + 1} lines later)"
            )
        else:
            msg = f"{path}:{reader.line_num}: bad CSV quoting: {e}"
        raise ValueError(msg) from None
    if not header:
        msg = f"{path}: empty CSV file; the header needs {list(CSV_COLUMNS)}"
        raise ValueError(msg)


def _check_header(path: Path, header: list[str]) -> None:
    required = [c for c in CSV_COLUMNS if c != "topic"]
    missing = [c for c in required if c not in header]
    if missing:
        msg = f"{path}: missing CSV column(s) {missing}; the header is {header}"
        raise ValueError(msg)
    unknown = [c for c in header if c not in CSV_COLUMNS and not c.startswith(ATTR_PREFIX)]
    if unknown:
        msg = (
            f"{path}: unknown CSV column(s) {unknown}; allowed: {list(CSV_COLUMNS)} "
            f"and '{ATTR_PREFIX}<name>' attribute columns"
        )
        raise ValueError(msg)
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        msg = f"{path}: duplicate CSV column(s) {dupes}"
        raise ValueError(msg)


def _check_cell_count(
    path: Path, cells: list[str], header: list[str], start: int, end: int
) -> None:
    if len(cells) > len(header):
        msg = f"{path}, line {start}: more cells than header columns"
        raise ValueError(msg)
    if end == start:
        return
    where = (
        f"{path}:{start}: unbalanced quote: a quoted cell opened on this line runs to line {end}"
    )
    if len(cells) < len(header):
        msg = f"{where}, leaving {len(cells)} of {len(header)} cells"
        raise ValueError(msg)
    # A multi-line cell is fine (a long question), but one holding whole rows swallowed them.
    for cell in cells:
        for offset, line in enumerate(cell.split("\n")[1:], start=1):
            if len(next(csv.reader([line]), [])) >= len(header):
                msg = f"{where} and holds line {start + offset}, which looks like a whole row"
                raise ValueError(msg)


def _load_csv(path: Path) -> list[UserProfile]:
    users: dict[str, dict[str, Any]] = {}  # insertion order = first appearance
    first_line: dict[str, int] = {}
    opinion_lines: dict[tuple[str, str], int] = {}
    for lineno, row in _csv_rows(path):
        uid = (row.get("user_id") or "").strip()
        oid = (row.get("opinion_id") or "").strip()
        where = f"{path}, line {lineno}: user {uid!r}"
        attrs = {
            k[len(ATTR_PREFIX) :]: v for k, v in row.items() if k.startswith(ATTR_PREFIX) and v
        }
        if uid not in users:
            try:
                validate_user_id(uid)
            except ValueError as e:
                msg = f"{where}, opinion {oid!r}: {e}"
                raise ValueError(msg) from None
            users[uid] = {"user_id": uid, "attributes": attrs, "opinions": []}
            first_line[uid] = lineno
        else:
            known = users[uid]["attributes"]
            for k, v in attrs.items():
                if known.setdefault(k, v) != v:
                    msg = (
                        f"{where}: attribute {k!r} is {v!r} here but {known[k]!r} on line "
                        f"{first_line[uid]}"
                    )
                    raise ValueError(msg)
        if not oid and not any(row.get(c) for c in ("question", "choices", "answer")):
            continue  # a user without opinions (or an attributes-only row)
        if (uid, oid) in opinion_lines:
            msg = (
                f"{where}: duplicate opinion id {oid!r} (first on line {opinion_lines[(uid, oid)]})"
            )
            raise ValueError(msg)
        opinion_lines[(uid, oid)] = lineno
        users[uid]["opinions"].append(_csv_opinion(row, oid, f"{where}, opinion {oid!r}"))
    return [validate_user(raw, f"{path}, line {first_line[uid]}") for uid, raw in users.items()]


def _csv_opinion(row: dict[str, str], oid: str, where: str) -> Opinion:
    try:
        choices = _parse_choices(row.get("choices") or "")
    except ValueError as e:
        msg = f"{where}: {e}"
        raise ValueError(msg) from None
    data = {
        "id": oid,
        "question": row.get("question") or "",
        "choices": choices,
        "answer": row.get("answer") or "",
        "topic": row.get("topic") or None,
    }
    try:
        return Opinion.model_validate(data)
    except ValidationError as e:
        # Opinion's own messages start with "opinion 'id': "; ``where`` already says so.
        text = reasons(e).removeprefix(f"opinion {oid!r}: ")
        msg = f"{where}: {text}"
        raise ValueError(msg) from None


def _write_csv(users: list[UserProfile], path: Path) -> None:
    attr_names: list[str] = []
    for u in users:
        attr_names += [k for k in u.attributes if k not in attr_names]
    header = [*CSV_COLUMNS, *(ATTR_PREFIX + k for k in attr_names)]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for u in users:
            attrs = [u.attributes.get(k, "") for k in attr_names]
            if not u.opinions:
                writer.writerow([u.user_id, "", "", "", "", "", *attrs])
            for o in u.opinions:
                choices = json.dumps(o.choices, ensure_ascii=False)
                writer.writerow(
                    [u.user_id, o.id, o.question, choices, o.answer, o.topic or "", *attrs]
                )
