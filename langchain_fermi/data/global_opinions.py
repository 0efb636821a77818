"""GlobalOpinionQA (Durmus et al. 2023): each country becomes a user answering with its majority.

The file is a JSON list of ``{"country", "question", "options", "distribution"}`` records, one per
(question, country) pair, where ``distribution[i]`` is the share of the country's respondents who
chose ``options[i]`` (the ``eval.json`` reshaping of HF ``Anthropic/llm_global_opinions``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from langchain_fermi.data._common import read_text, reasons
from langchain_fermi.types import Opinion, UserProfile

__all__ = ["country_user_id", "load_global_opinionqa", "majority_index", "opinion_id_for"]

logger = logging.getLogger(__name__)

COUNTRY_ATTRIBUTE = "Country"


def country_user_id(country: str) -> str:
    """A safe user id for a country: lower case, runs of other characters turned into ``-``.

    ``"S. Africa (Non-national sample)"`` -> ``"s-africa-non-national-sample"``.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", country.lower()).strip("-")[:100]
    if not slug:
        slug = "country-" + hashlib.sha256(country.encode()).hexdigest()[:8]
    return slug


def opinion_id_for(question: str, options: list[str]) -> str:
    """A stable opinion id: a hash of the question and its options, shared across countries.

    The same survey item gets the same id in every country, so results can be compared per item,
    and the id does not depend on the file's order.
    """
    digest = hashlib.sha256(
        json.dumps([question, options], ensure_ascii=False).encode()
    ).hexdigest()
    return f"goqa-{digest[:12]}"


def majority_index(distribution: list[float]) -> int | None:
    """The position of the largest share; ties go to the option listed first.

    Returns ``None`` when no option has a positive share (nothing to answer with).
    """
    best: int | None = None
    for i, share in enumerate(distribution):
        if share > 0 and (best is None or share > distribution[best]):
            best = i
    return best


def _option_text(option: Any) -> str:
    # Some scales list bare numbers (2.0, 3.0, ...) between labelled ends; show them as "2", "3".
    if isinstance(option, float) and option.is_integer():
        return str(int(option))
    return str(option)


def load_global_opinionqa(
    path: str | Path,
    *,
    countries: Iterable[str] | None = None,
    min_opinions: int = 1,
) -> list[UserProfile]:
    """Load GlobalOpinionQA's ``eval.json``: one `UserProfile` per country.

    Each (question, country) record becomes an opinion whose answer is the country's majority
    option (ties: the option listed first; records whose shares are all zero are skipped).
    Options keep the file's order and text, non-substantive ones ("Don't know", "No answer")
    included, since they were offered to respondents; numeric options become text (``2.0`` ->
    ``"2"``). The user id is `country_user_id` of the name (``-2``, ``-3``, ... appended in
    the unlikely case two names give the same slug) and ``attributes == {"Country": name}``.

    Args:
        path: The JSON file.
        countries: Keep only these countries (names as in the file, or their user ids).
        min_opinions: Skip countries with fewer opinions.

    Returns:
        The countries, in order of first appearance in the file.
    """
    path = Path(path)
    try:
        records = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        msg = f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}"
        raise ValueError(msg) from None
    if not isinstance(records, list):
        msg = f"{path}: expected a list of {{country, question, options, distribution}} records"
        raise ValueError(msg)

    by_country: dict[str, list[Opinion]] = {}
    skipped = 0
    for i, rec in enumerate(records):
        opinion = _record_opinion(rec, f"{path}, record #{i}")
        by_country.setdefault(rec["country"], [])
        if opinion is None:
            skipped += 1
        else:
            by_country[rec["country"]].append(opinion)
    if skipped:
        logger.info("%s: skipped %d records with no positive share", path, skipped)

    ids = _unique_ids(list(by_country))
    wanted = _wanted(countries, by_country, ids, path)
    users = []
    for name, opinions in by_country.items():
        if wanted is not None and name not in wanted:
            continue
        if len(opinions) < min_opinions:
            continue
        users.append(_country_user(ids[name], name, opinions, path))
    return users


def _record_opinion(rec: Any, where: str) -> Opinion | None:
    if not isinstance(rec, dict) or not {"country", "question", "options", "distribution"} <= set(
        rec
    ):
        msg = f"{where}: expected keys country, question, options, distribution"
        raise ValueError(msg)
    where = f"{where}: country {rec['country']!r}"
    raw_options, dist = rec["options"], rec["distribution"]
    if not isinstance(raw_options, list) or not isinstance(dist, list):
        msg = f"{where}: options and distribution must be lists"
        raise ValueError(msg)
    if any(o is None or isinstance(o, (bool, list, dict)) for o in raw_options):
        msg = f"{where}: options must be texts or numbers, got {raw_options!r}"
        raise ValueError(msg)
    options = [_option_text(o) for o in raw_options]
    if len(options) != len(dist):
        msg = f"{where}: {len(options)} options but {len(dist)} shares"
        raise ValueError(msg)
    if any(
        isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in dist
    ):
        msg = f"{where}: the distribution must hold finite numbers, got {dist!r}"
        raise ValueError(msg)
    best = majority_index(dist)
    if best is None:
        return None
    oid = opinion_id_for(rec["question"], options)
    try:
        return Opinion(id=oid, question=rec["question"], choices=options, answer=options[best])
    except ValidationError as e:
        msg = f"{where}, opinion {oid!r}: {reasons(e).removeprefix(f'opinion {oid!r}: ')}"
        raise ValueError(msg) from None


def _unique_ids(names: list[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = uid = country_user_id(name)
        n = 2
        while uid in taken:
            uid = f"{base}-{n}"
            n += 1
        ids[name] = uid
        taken.add(uid)
    return ids


def _wanted(
    countries: Iterable[str] | None, by_country: dict[str, Any], ids: dict[str, str], path: Path
) -> set[str] | None:
    if countries is None:
        return None
    names_by_id = {uid: name for name, uid in ids.items()}
    wanted: set[str] = set()
    unknown = []
    for c in [countries] if isinstance(countries, str) else countries:
        if c in by_country:
            wanted.add(c)
        elif c in names_by_id:
            wanted.add(names_by_id[c])
        else:
            unknown.append(c)
    if unknown:
        msg = f"{path}: unknown countries {unknown}; e.g. {sorted(by_country)[:5]}"
        raise ValueError(msg)
    return wanted


def _country_user(uid: str, name: str, opinions: list[Opinion], path: Path) -> UserProfile:
    try:
        return UserProfile(user_id=uid, attributes={COUNTRY_ATTRIBUTE: name}, opinions=opinions)
    except ValidationError as e:
        msg = f"{path}: country {name!r}: {reasons(e)}"
        raise ValueError(msg) from None
