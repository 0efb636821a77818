"""Verified forgetting: after ``delete_user(..., purge=True)`` no byte of the user's texts, ids or
vectors is left in any file under the store folder, and every other user is intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fermi_store_fakes import KeywordEmbeddings, make_result, make_user, prompt

import langchain_fermi.store.purge as purge_module
from benchmarks.bench_reliability_store import purge_scenario, scan
from langchain_fermi.errors import UnknownUserError
from langchain_fermi.store import FermiStore

MARKER = "QZMARKERX81"


def test_purge_leaves_no_byte_of_the_user_on_disk(tmp_path: Path):
    # 141 users x 8 opinions: enough rows for Chroma to write its vector index files, so the
    # scan also covers the index segments (not only chroma.sqlite3).
    got = purge_scenario(tmp_path / "chroma", before=140, after=10)
    saved, deleted = got["hits_while_saved"], got["hits_after_delete"]
    # the scan finds what it looks for: text, row id and vector while the user is stored ...
    assert all(saved[needle] for needle in saved if "raw bytes" not in needle), saved
    # ... and a plain delete leaves bytes behind, in the database and an index segment file
    files = {f for fs in deleted.values() for f in fs}
    assert "chroma.sqlite3" in files and any(f.endswith(".bin") for f in files), deleted
    assert got["hit_count_after_purge"] == 0, got["hits_after_purge"]
    assert got["others_intact"] and got["users"] == 151
    assert got["compaction"]["segment_dirs_removed"] >= 3


def test_delete_user_with_purge(tmp_path: Path):
    path = tmp_path / "chroma"
    emb = KeywordEmbeddings()
    store = FermiStore(path, embeddings=emb)
    store.save_result(make_result("before", [prompt("B", {"o1": 1})]), user=make_user("before"))
    marked = make_user("marked", extra=f" {MARKER}")
    marked = marked.model_copy(update={"attributes": {"Note": MARKER}})
    store.save_result(make_result("marked", [prompt(f"You are {MARKER}.", {"o1": 1})]), user=marked)
    store.save_result(make_result("after", [prompt("A", {"o1": 1})]), user=make_user("after"))
    others = {uid: store.export_user(uid) for uid in ("after", "before")}
    vector = np.asarray(emb.embed_documents([marked.opinions[0].question])[0], dtype=np.float32)
    assert any(scan(path, [MARKER], [vector]).values())  # the scan sees the user while stored
    store.get_prompts("marked")  # cached: the purge must not serve it from memory either
    store.delete_user("marked", purge=True)
    hits = scan(path, [MARKER, "marked:o1"], [vector])
    assert not any(hits.values()), hits
    with pytest.raises(UnknownUserError):
        store.get_prompts("marked")
    assert store.list_users() == ["after", "before"]
    assert {uid: store.export_user(uid) for uid in others} == others
    assert [o.id for o, _ in store.nearest_opinions("before", "gun laws", k=2)]
    store.save_user(make_user("later"))  # still writable, through the new collections
    assert FermiStore(path, embeddings=emb).list_users() == ["after", "before", "later"]


def test_purge_interrupted_before_the_rename_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "chroma"
    store = FermiStore(path, embeddings=KeywordEmbeddings())
    for uid in ("alice", "bob"):
        store.save_result(make_result(uid, [prompt(uid, {"o1": 1})]), user=make_user(uid))
    before = {uid: json.dumps(store.export_user(uid)) for uid in ("alice", "bob")}

    def crash(*args: object) -> None:
        raise KeyboardInterrupt  # the process dies after dropping the old collection

    monkeypatch.setattr(purge_module, "_rename", crash)
    with pytest.raises(KeyboardInterrupt):
        store.purge()
    monkeypatch.undo()
    # the users collection now exists only as its copy; opening the store finishes the rename
    reopened = FermiStore(path, embeddings=KeywordEmbeddings())
    assert {uid: json.dumps(reopened.export_user(uid)) for uid in before} == before
    names = sorted(c.name for c in reopened._client.list_collections())
    assert names == ["fermi_opinions", "fermi_prompts", "fermi_users"]
    assert store.list_users() == ["alice", "bob"]  # the first store finds the new collections


def test_purge_without_deleted_users_changes_nothing_visible(tmp_path: Path):
    store = FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())
    store.save_result(make_result("alice", [prompt("A", {"o1": 1})]), user=make_user("alice"))
    before = store.export_user("alice")
    report = store.purge()
    assert report["bytes_after"] <= report["bytes_before"]
    assert store.export_user("alice") == before
