"""The store's writes, each ordered so that no failure can lose or mix a user's data.

Readers only follow a user's record (one row, replaced by one upsert), so every write puts its new
rows first, then flips the record, then deletes what the old record pointed to:

* a failure before the flip leaves the old user exactly as it was (the new rows are invisible and
  the next write of that user clears them);
* a failure after it leaves the new user complete (the old rows are invisible leftovers, swept
  by the next write of that user, `FermiStore.delete_user` and purges).

Run them holding the store's write lock (`FermiStore._writing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from langchain_fermi.store.rows import UserRecord, opinion_row_id
from langchain_fermi.store.tables import Tables, opinion_rows, prompt_rows
from langchain_fermi.types import Opinion, ScoredPrompt, UserProfile

__all__ = ["put_user", "remove_opinions", "remove_user", "replace_prompts", "upsert_opinions"]


def upsert_opinions(
    t: Tables,
    uid: str,
    opinions: Sequence[Opinion],
    vectors: Sequence[Sequence[float]],
    *,
    attributes: dict[str, str] | None,
) -> UserRecord:
    """Add or replace (by id) opinions of a user, creating the user if needed; the profile
    attributes too unless None. Returns the new record."""
    rec = t.read_record(uid) or UserRecord(uid, {}, [])
    t.upsert(t.opinions, opinion_rows(uid, opinions, vectors, rec.epoch))
    ids = list(dict.fromkeys(rec.opinion_ids + [o.id for o in opinions]))
    attrs = rec.attributes if attributes is None else dict(attributes)
    new = replace(rec, attributes=attrs, opinion_ids=ids, revision=rec.revision + 1)
    t.write_records([new])
    return new


def replace_prompts(
    t: Tables, uid: str, prompts: Sequence[ScoredPrompt], summary: dict[str, Any] | None
) -> UserRecord:
    """Save ``prompts`` as the user's next generation; returns the new record."""
    rec = t.read_record(uid) or UserRecord(uid, {}, [])
    gen = rec.generation + 1
    rows = prompt_rows(uid, prompts, gen)  # validates every score before anything is written
    t.upsert(t.prompts, rows)
    new = replace(
        rec,
        revision=rec.revision + 1,
        generation=gen,
        n_prompts=len(prompts),
        summary=summary if summary is not None else rec.summary,
    )
    t.write_records([new])  # the flip: from here on readers load generation `gen`
    _sweep_prompts(t, uid, gen, len(prompts))
    return new


def put_user(
    t: Tables,
    user: UserProfile,
    vectors: Sequence[Sequence[float]],
    prompts: Sequence[ScoredPrompt],
    summary: dict[str, Any] | None,
) -> UserRecord:
    """Write a whole user (profile, opinions, prompts) in place of the stored one, if any, with a
    single flip: readers see either the old user or the new one, never a mix."""
    uid = user.user_id
    old = t.read_record(uid)
    if old is None:  # rows of an earlier, interrupted write of this user: invisible, clear them
        t.delete(t.opinions, where={"user_id": uid})
        t.delete(t.prompts, where={"user_id": uid})
        epoch, gen, revision = 0, 1, 1
    else:
        epoch, gen, revision = old.epoch + 1, old.generation + 1, old.revision + 1
        t.delete(t.opinions, where={"$and": [{"user_id": uid}, {"epoch": epoch}]})
    opinion_part = opinion_rows(uid, user.opinions, vectors, epoch)
    prompt_part = prompt_rows(uid, prompts, gen)
    t.upsert(t.opinions, opinion_part)
    t.upsert(t.prompts, prompt_part)
    new = UserRecord(
        uid,
        dict(user.attributes),
        [o.id for o in user.opinions],
        revision,
        gen,
        len(prompts),
        summary,
        epoch=epoch,
    )
    t.write_records([new])  # the flip
    if old is not None:
        keep = set(opinion_part.ids)
        t.delete(
            t.opinions,  # the old rows, and those of any other earlier epoch
            ids=[i for i in old.opinion_row_ids() if i not in keep],
            where={"$and": [{"user_id": uid}, {"epoch": {"$ne": epoch}}]},
        )
        _sweep_prompts(t, uid, gen, len(prompts))
    return new


def remove_user(t: Tables, rec: UserRecord) -> None:
    """Delete a user: the record first (readers stop finding them at once), then every row."""
    uid = rec.user_id
    t.delete(t.users, ids=[uid])
    t.delete(t.opinions, ids=rec.opinion_row_ids(), where={"user_id": uid})
    t.delete(t.prompts, where={"user_id": uid})


def remove_opinions(t: Tables, uid: str, opinion_ids: Sequence[str]) -> UserRecord | None:
    """Delete some opinions of a user (unknown ids ignored): the record first, then the rows.
    Returns the new record, or None when nothing changed."""
    rec = t.read_record(uid)
    drop = set(opinion_ids)
    gone = [o for o in rec.opinion_ids if o in drop] if rec else []
    if rec is None or not gone:
        return None
    keep = [o for o in rec.opinion_ids if o not in drop]
    new = replace(rec, opinion_ids=keep, revision=rec.revision + 1)
    t.write_records([new])
    t.delete(t.opinions, ids=[opinion_row_id(uid, o, rec.epoch) for o in gone])
    return new


def _sweep_prompts(t: Tables, uid: str, gen: int, n: int) -> None:
    """After the flip, in one call: older generations' rows, and rows of generation ``gen``
    beyond its ``n`` prompts (left by an interrupted earlier save of the same number)."""
    stale = {
        "$or": [
            {"generation": {"$lt": gen}},
            {"$and": [{"generation": gen}, {"rank": {"$gte": n}}]},
        ]
    }
    t.delete(t.prompts, where={"$and": [{"user_id": uid}, stale]})
