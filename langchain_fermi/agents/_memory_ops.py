"""Pure helpers of `FermiMemoryStore`: namespace routing, value codecs, filters, pagination.

Nothing here does I/O, so the sync and async batch paths share all of it (the
`InMemoryStore` pattern: `_prepare_ops` / `_apply_put_ops`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from langgraph.store.base import InvalidNamespaceError, Item, MatchCondition, SearchItem
from pydantic import ValidationError

from langchain_fermi.errors import validation_message
from langchain_fermi.types import Opinion, ScoredPrompt, validate_user_id

__all__ = [
    "KINDS",
    "OPINION_FIELDS",
    "PROFILE_KEY",
    "Address",
    "CrossUserSearchError",
    "ReadOnlyNamespaceError",
    "make_item",
    "matches_filter",
    "namespace_matches",
    "no_fallback_error",
    "opinion_value",
    "page",
    "parse_opinion_put",
    "parse_profile_put",
    "profile_value",
    "prompt_value",
    "rank",
    "route_namespace",
    "route_prefix",
    "search_item",
    "select_namespaces",
]

Kind = Literal["opinions", "prompts", "profile"]
KINDS: tuple[str, ...] = ("opinions", "prompts", "profile")
PROFILE_KEY = "profile"
OPINION_FIELDS = frozenset({"id", "question", "choices", "answer", "topic"})


class ReadOnlyNamespaceError(InvalidNamespaceError):
    """A write to a namespace only Fermi itself writes (a user's learned prompts)."""


class CrossUserSearchError(InvalidNamespaceError):
    """A search whose prefix names no user would mix several users' memories."""


@dataclass(frozen=True)
class Address:
    """Where a namespace lives: one of a user's Fermi namespaces, or the fallback store."""

    user_id: str | None = None
    kind: str | None = None  # one of KINDS; None with a user id: every kind (search prefixes)
    fallback: bool = False


def _user(ns: Sequence[str], root: str) -> str:
    try:
        return validate_user_id(ns[1])
    except ValueError as e:
        msg = f"namespace {tuple(ns)!r}: {e} (the second label under {root!r} is the user id)"
        raise InvalidNamespaceError(msg) from None


def route_namespace(ns: tuple[str, ...], root: str) -> Address:
    """Route a full namespace (get / put / delete).

    ``(root, user_id, kind)`` with ``kind`` in `KINDS` is Fermi memory; any other namespace,
    ``(root, user_id, "notes")`` included, belongs to the fallback store.

    Raises:
        InvalidNamespaceError: A malformed namespace under ``root`` (no user id, an unsafe one,
            or labels below a Fermi namespace).
    """
    if not ns or ns[0] != root:
        return Address(fallback=True)
    if len(ns) < 3:
        msg = f"namespace {ns!r}: Fermi memory is ({root!r}, <user_id>, one of {list(KINDS)})"
        raise InvalidNamespaceError(msg)
    uid = _user(ns, root)
    if ns[2] not in KINDS:
        return Address(uid, fallback=True)
    if len(ns) > 3:
        msg = f"namespace {ns!r}: ({root!r}, {uid!r}, {ns[2]!r}) has no sub-namespaces"
        raise InvalidNamespaceError(msg)
    return Address(uid, ns[2])


def no_fallback_error(ns: tuple[str, ...], root: str) -> InvalidNamespaceError:
    """The error for a write outside Fermi memory when there is no fallback store."""
    msg = (
        f"namespace {ns!r} is not Fermi memory ({root!r}, <user_id>, one of {list(KINDS)}) and "
        "this FermiMemoryStore has no fallback store: pass fallback=InMemoryStore() (or another "
        "BaseStore) to keep other memories"
    )
    return InvalidNamespaceError(msg)


def route_prefix(prefix: tuple[str, ...], root: str) -> tuple[Address | None, bool]:
    """Route a search prefix: ``(Fermi part or None, whether the fallback is searched too)``.

    Raises:
        CrossUserSearchError: ``()`` or ``(root,)``: a search that would mix users.
    """
    if not prefix or prefix == (root,):
        msg = (
            f"search prefix {prefix!r} names no user and would mix several users' memories: "
            f"search ({root!r}, <user_id>) or a narrower prefix; list_namespaces() lists users"
        )
        raise CrossUserSearchError(msg)
    if prefix[0] != root:
        return None, True
    uid = _user(prefix, root)
    if len(prefix) == 2:
        return Address(uid), True
    if prefix[2] in KINDS:
        return (Address(uid, prefix[2]) if len(prefix) == 3 else None), False
    return None, True


# -- values -----------------------------------------------------------------------------------
def opinion_value(o: Opinion) -> dict[str, Any]:
    """The stored value of an opinion item (the key is the opinion id)."""
    return {
        "question": o.question,
        "choices": list(o.choices),
        "answer": o.answer,
        "topic": o.topic,
    }


def prompt_value(p: ScoredPrompt, rank: int, generation: int) -> dict[str, Any]:
    """A learned prompt as an item value: the `ScoredPrompt` fields plus its rank and generation."""
    return {**p.model_dump(mode="json"), "rank": rank, "generation": generation}


def profile_value(attributes: Mapping[str, str]) -> dict[str, Any]:
    """The profile item's value: the attributes themselves, so filters read them directly."""
    return dict(attributes)


def parse_opinion_put(user_id: str, key: str, value: Mapping[str, Any]) -> Opinion:
    """Validate an opinion put; the message names the user and the opinion.

    Raises:
        ValueError: Unknown fields, an ``id`` other than the key, or an invalid opinion.
    """
    where = f"user {user_id!r}, opinion {key!r}"
    extra = sorted(set(value) - OPINION_FIELDS)
    if extra:
        msg = f"{where}: unknown fields {extra}; an opinion has question, choices, answer, topic"
        raise ValueError(msg)
    if "id" in value and str(value["id"]) != key:
        msg = f"{where}: value id {value['id']!r} differs from the key"
        raise ValueError(msg)
    try:
        return Opinion.model_validate({**value, "id": key})
    except ValidationError as e:
        text = validation_message(e).replace(f"opinion {key!r}: ", "")
        msg = f"{where}: {text}"
        raise ValueError(msg) from None


def parse_profile_put(user_id: str, key: str, value: Mapping[str, Any]) -> dict[str, str]:
    """Validate a profile put: key ``"profile"``, scalar attribute values (stored as text).

    Raises:
        ValueError: Another key, or a non-scalar attribute value.
    """
    if key != PROFILE_KEY:
        msg = f"user {user_id!r}: the profile namespace has one key, {PROFILE_KEY!r}, got {key!r}"
        raise ValueError(msg)
    bad = sorted(k for k, v in value.items() if not isinstance(v, str | int | float | bool))
    if bad:
        msg = f"user {user_id!r}, profile: attributes {bad} must be text or numbers"
        raise ValueError(msg)
    return {str(k): str(v) for k, v in value.items()}


# -- filters, ranking, pagination --------------------------------------------------------------
def _apply_operator(value: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(value == operand)
    if operator == "$ne":
        return bool(value != operand)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        if value is None:
            return False
        try:
            a, b = float(value), float(operand)
        except (TypeError, ValueError):
            return False
        return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[operator]
    msg = f"unsupported filter operator {operator!r}; use $eq, $ne, $gt, $gte, $lt or $lte"
    raise ValueError(msg)


def _compare(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        if any(str(k).startswith("$") for k in wanted):
            return all(_apply_operator(value, k, v) for k, v in wanted.items())
        return isinstance(value, dict) and all(_compare(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(wanted)
            and all(_compare(a, b) for a, b in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def matches_filter(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """LangGraph filter semantics (as `InMemoryStore`): exact match or ``$eq/$ne/$gt/...``."""
    return not filter or all(_compare(value.get(k), v) for k, v in filter.items())


def page(items: Sequence[Any], offset: int, limit: int) -> list[Any]:
    """``items[offset:offset + limit]``, rejecting negative numbers (which would slice oddly)."""
    if offset < 0 or limit < 0:
        msg = f"limit and offset must be >= 0, got limit={limit}, offset={offset}"
        raise ValueError(msg)
    return list(items[offset : offset + limit])


def rank(items: Iterable[SearchItem], *, scored: bool) -> list[SearchItem]:
    """Order search results: by score (highest first, unscored last, stable) when ``scored``."""
    out = list(items)
    if scored:
        out.sort(key=lambda it: (it.score is None, -(it.score or 0.0)))
    return out


def search_item(item: Item, score: float | None = None) -> SearchItem:
    """An `Item` as a `SearchItem` with ``score``."""
    return SearchItem(
        item.namespace, item.key, item.value, item.created_at, item.updated_at, score=score
    )


def make_item(ns: tuple[str, ...], key: str, value: dict[str, Any], when: datetime) -> Item:
    """An `Item` stamped with the user's last write time (Fermi keeps one per user)."""
    return Item(value=value, key=key, namespace=ns, created_at=when, updated_at=when)


# -- namespaces --------------------------------------------------------------------------------
def namespace_matches(cond: MatchCondition, ns: tuple[str, ...]) -> bool:
    """Whether ``ns`` matches a prefix/suffix condition (``"*"`` matches any one label)."""
    path = tuple(cond.path)
    if len(ns) < len(path):
        return False
    if cond.match_type == "prefix":
        pairs = zip(ns, path, strict=False)
    elif cond.match_type == "suffix":
        pairs = zip(reversed(ns), reversed(path), strict=False)
    else:
        msg = f"unsupported match type {cond.match_type!r}; use 'prefix' or 'suffix'"
        raise ValueError(msg)
    return all(p == "*" or a == p for a, p in pairs)


def select_namespaces(
    namespaces: Iterable[tuple[str, ...]],
    conditions: Sequence[MatchCondition] | None,
    max_depth: int | None,
) -> list[tuple[str, ...]]:
    """Matching namespaces, truncated to ``max_depth``, deduplicated and sorted (unpaged)."""
    kept = [ns for ns in namespaces if all(namespace_matches(c, ns) for c in conditions or ())]
    if max_depth is not None:
        kept = [ns[:max_depth] for ns in kept]
    return sorted(set(kept))


def fermi_namespace_owner(conditions: Sequence[MatchCondition] | None, root: str) -> str | None:
    """The one user a listing's prefix condition pins down (so only that user is read)."""
    for c in conditions or ():
        path = tuple(c.path)
        if c.match_type == "prefix" and len(path) >= 2 and path[0] == root and path[1] != "*":
            return path[1]
    return None
