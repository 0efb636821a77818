"""FermiStore.bulk_import writes exactly what saving the users one by one writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fermi_store_fakes import KeywordEmbeddings, economy_and_gun_prompts, make_user, prompt

from langchain_fermi.store import FermiStore


def test_bulk_import_equals_one_by_one(tmp_path: Path):
    items = [
        (make_user("alice"), economy_and_gun_prompts()),
        (make_user("bob", answer="No"), [prompt("BOB", {"o1": 0})]),
        (make_user("carol"), []),
    ]
    one = FermiStore(tmp_path / "one", embeddings=KeywordEmbeddings())
    for user, prompts in items:
        one.save_user(user)
        one.save_prompts(user.user_id, list(prompts))
    bulk = FermiStore(tmp_path / "bulk", embeddings=KeywordEmbeddings())
    seen: list[int] = []
    assert bulk.bulk_import(items, users_per_batch=2, on_batch=seen.append) == 3
    assert seen == [2, 3]
    assert bulk.list_users() == one.list_users() == ["alice", "bob", "carol"]
    for user, _ in items:
        assert bulk.export_user(user.user_id) == one.export_user(user.user_id)
        a = bulk.nearest_opinions(user.user_id, "gun laws", k=3)
        b = one.nearest_opinions(user.user_id, "gun laws", k=3)
        assert [(o, pytest.approx(s)) for o, s in a] == [(o, s) for o, s in b]
    # a later re-optimization replaces the bulk-loaded generation as usual
    bulk.save_prompts("alice", [prompt("NEW", {"o1": 1})])
    assert [p.text for p in bulk.get_prompts("alice")] == ["NEW"]
    assert len(bulk._prompts.get(where={"user_id": "alice"}, include=[])["ids"]) == 1


def test_bulk_import_refuses_existing_or_repeated_users(tmp_path: Path):
    store = FermiStore(tmp_path / "s", embeddings=KeywordEmbeddings())
    store.save_user(make_user("alice"))
    with pytest.raises(ValueError, match=r"already present or repeated: \['alice'\]"):
        store.bulk_import([(make_user("alice"), [])])
    with pytest.raises(ValueError, match=r"\['bob'\]"):
        store.bulk_import([(make_user("bob"), []), (make_user("bob"), [])])
    assert store.list_users() == ["alice"]
