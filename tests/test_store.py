"""FermiStore: persistence, isolation, deletion, export/import, concurrency, consistent reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fermi_store_fakes import (
    KeywordEmbeddings,
    economy_and_gun_prompts,
    make_result,
    make_user,
    prompt,
)

from langchain_fermi.errors import DamagedUserError, UnknownUserError
from langchain_fermi.store import FermiStore, result_prompts
from langchain_fermi.store.client import default_store_path
from langchain_fermi.types import Opinion

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def store(tmp_path: Path) -> FermiStore:
    return FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())


def test_save_and_read_back(store: FermiStore):
    user = make_user("alice")
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=user)
    assert store.list_users() == ["alice"]
    assert store.get_user("alice") == user
    got = store.get_prompts("alice")
    assert [p.text for p in got] == ["You care about the economy.", "You are a gun owner."]
    assert got == economy_and_gun_prompts()  # every field survives the JSON metadata
    assert store.get_summary("alice")["model"] == "fake"


def test_nearest_opinions_are_semantic_and_scoped(store: FermiStore):
    store.save_user(make_user("alice"))
    near = store.nearest_opinions("alice", "How many gun owners live near you", k=3)
    assert {o.id for o, _ in near} == {"o1", "o2", "o3"}
    sims = [s for _, s in near]
    assert sims == sorted(sims, reverse=True) and sims[0] > 0.2
    assert store.nearest_opinions("alice", "taxes", k=1)[0][0].id in {"o4", "o7"}
    assert len(store.nearest_opinions("alice", "gun", k=50)) == 8


def test_scored_only_restricts_neighbours(store: FermiStore):
    store.save_user(make_user("alice"))
    store.save_prompts("alice", [prompt("P", {"o4": 1, "o5": 0})])
    near = store.nearest_opinions("alice", "gun laws", k=3, scored_only=True)
    assert {o.id for o, _ in near} == {"o4", "o5"}


def test_unknown_user(store: FermiStore):
    for call in (
        lambda: store.get_user("nobody"),
        lambda: store.get_prompts("nobody"),
        lambda: store.nearest_opinions("nobody", "q"),
        lambda: store.delete_user("nobody"),
        lambda: store.export_user("nobody"),
    ):
        with pytest.raises(UnknownUserError, match="unknown user 'nobody'"):
            call()
    assert not store.has_user("nobody")
    with pytest.raises(ValueError, match="unsafe user id"):
        store.get_user("../etc")


def test_user_without_prompts_has_empty_list(store: FermiStore):
    store.save_user(make_user("bob"))
    assert store.get_prompts("bob") == []


def test_add_opinions_merges_by_id(store: FermiStore):
    store.save_user(make_user("alice"))
    new = Opinion(id="o9", question="Do you like cats?", choices=["Yes", "No"], answer="No")
    changed = Opinion(
        id="o1", question="Should gun laws change?", choices=["Yes", "No"], answer="No"
    )
    store.add_opinions("alice", [new, changed])
    user = store.get_user("alice")
    assert [o.id for o in user.opinions] == [f"o{i}" for i in range(1, 10)]
    assert user.opinion("o1") == changed and user.opinion("o9") == new
    assert user.attributes == {"Age": "30-49", "Region": "West"}  # profile untouched


def test_result_prompts_memory_plus_last_generation():
    p0 = prompt("init", {"o1": 1, "o2": 0}, iteration=0)
    p1 = prompt("it1-a", {"o1": 1, "o2": 1}, iteration=1)
    p2 = prompt("it2-a", {"o1": 0, "o2": 0}, iteration=2)
    p3 = prompt("it2-b", {"o1": 1, "o2": 0}, iteration=2)
    result = make_result("alice", [p0, p1, p2, p3]).model_copy(update={"memory": [p1, p0]})
    texts = [p.text for p in result_prompts(result)]
    assert texts == ["it1-a", "init", "it2-b", "it2-a"]  # by score; ties keep memory first
    assert [p.text for p in result_prompts(result, include_last_generation=False)] == [
        "it1-a",
        "init",
    ]


def test_persistence_across_a_process_restart(tmp_path: Path):
    path = tmp_path / "chroma"
    store = FermiStore(path, embeddings=KeywordEmbeddings())
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    question = "Would you buy a gun for self defense?"
    from langchain_fermi.personalizer import FermiPersonalizer

    here = FermiPersonalizer(store).select_prompt("alice", question)
    script = f"""
import json, sys
sys.path.insert(0, {str(TESTS)!r})
from fermi_store_fakes import KeywordEmbeddings
from langchain_fermi.store import FermiStore
from langchain_fermi.personalizer import FermiPersonalizer
store = FermiStore({str(path)!r}, embeddings=KeywordEmbeddings())
sel = FermiPersonalizer(store).select_prompt("alice", {question!r})
print(json.dumps({{"prompts": [p.model_dump(mode="json") for p in store.get_prompts("alice")],
                  "selection": sel.model_dump(mode="json"), "users": store.list_users()}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there["users"] == ["alice"]
    assert there["prompts"] == [p.model_dump(mode="json") for p in store.get_prompts("alice")]
    assert there["selection"] == here.model_dump(mode="json")
    assert here.index == 1  # the gun question went to the gun prompt


def test_isolation_between_near_identical_users(store: FermiStore):
    alice, bob = make_user("alice", answer="Yes"), make_user("bob", answer="No")
    store.save_result(make_result("alice", [prompt("ALICE", {"o1": 1})]), user=alice)
    store.save_result(make_result("bob", [prompt("BOB", {"o1": 0})]), user=bob)
    for uid, other, answer in (("alice", "BOB", "Yes"), ("bob", "ALICE", "No")):
        assert [p.text for p in store.get_prompts(uid)] == [uid.upper()]
        assert other not in json.dumps(store.export_user(uid))
        near = store.nearest_opinions(uid, "Should gun ownership laws be stricter?", k=8)
        assert len(near) == 8 and all(o.answer == answer for o, _ in near)
    # the raw rows carry their owner's id
    rows = store._opinions.get(where={"user_id": "alice"}, include=["metadatas"])
    assert len(rows["ids"]) == 8 and all(i.startswith("alice:") for i in rows["ids"])


def _raw_rows(store: FermiStore, uid: str) -> list[str]:
    found = []
    for col in (store._users, store._opinions, store._prompts):
        got = col.get(include=["metadatas", "documents"])
        for rid, meta, doc in zip(got["ids"], got["metadatas"], got["documents"], strict=True):
            if rid == uid or rid.startswith(f"{uid}:") or (meta or {}).get("user_id") == uid:
                found.append(rid)
            elif uid.upper() in (doc or ""):
                found.append(f"document of {rid}")
    return found


def test_delete_leaves_nothing(store: FermiStore):
    store.save_result(make_result("alice", [prompt("ALICE", {"o1": 1})]), user=make_user("alice"))
    store.save_result(make_result("alice", [prompt("ALICE2", {"o1": 1})]))  # a 2nd generation
    store.save_result(make_result("bob", [prompt("BOB", {"o1": 1})]), user=make_user("bob"))
    store.get_prompts("alice")  # fill the cache
    assert len(_raw_rows(store, "alice")) == 1 + 8 + 1
    store.delete_user("alice")
    assert _raw_rows(store, "alice") == []
    assert store.list_users() == ["bob"]
    with pytest.raises(UnknownUserError):
        store.get_prompts("alice")
    assert [p.text for p in store.get_prompts("bob")] == ["BOB"]
    assert len(_raw_rows(store, "bob")) == 1 + 8 + 1


def test_export_import_round_trip(store: FermiStore, tmp_path: Path):
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    dump = store.export_user("alice")
    assert json.loads(json.dumps(dump)) == dump  # plain JSON
    other = FermiStore(tmp_path / "other", embeddings=KeywordEmbeddings())
    assert other.import_user(dump) == "alice"
    assert other.export_user("alice") == dump
    assert other.get_user("alice") == store.get_user("alice")
    with pytest.raises(ValueError, match="already exists"):
        other.import_user(dump)
    changed = json.loads(json.dumps(dump))
    changed["prompts"] = changed["prompts"][:1]
    other.import_user(changed, replace=True)
    assert other.export_user("alice") == changed
    with pytest.raises(ValueError, match="not a langchain-fermi user dump"):
        other.import_user({"user": {}})


def test_concurrent_saves_of_different_users(store: FermiStore):
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            uid = f"user{i}"
            for gen in range(3):
                store.save_result(
                    make_result(
                        uid, [prompt(f"{uid}-g{gen}-{r}", {"o1": r % 2}) for r in range(3)]
                    ),
                    user=make_user(uid) if gen == 0 else None,
                )
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.list_users() == [f"user{i}" for i in range(6)]
    for i in range(6):
        texts = sorted(p.text for p in store.get_prompts(f"user{i}"))
        assert texts == [f"user{i}-g2-{r}" for r in range(3)]
        assert len(store.get_user(f"user{i}").opinions) == 8
    assert len(store._prompts.get(include=[])["ids"]) == 18  # old generations are gone


def test_reader_during_reoptimization_never_sees_a_mix(tmp_path: Path):
    path = tmp_path / "chroma"
    writer = FermiStore(path, embeddings=KeywordEmbeddings())
    writer.save_user(make_user("alice"))
    reader = FermiStore(path, embeddings=KeywordEmbeddings(), cache_size=0)
    stop = threading.Event()
    seen: list[tuple[str, ...]] = []
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                for r in (reader, writer):
                    seen.append(tuple(p.text for p in r.get_prompts("alice")))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
                return

    t = threading.Thread(target=read)
    t.start()
    try:
        gen = 0
        while (gen < 24 or len(seen) < 40) and gen < 400 and not errors:  # enough overlap
            gen += 1
            n = 1 + gen % 4  # the set size changes too
            writer.save_prompts("alice", [prompt(f"g{gen}-r{r}", {"o1": 1}) for r in range(n)])
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert len(seen) >= 40 and len({texts[0] for texts in seen if texts}) >= 3
    for texts in seen:
        if not texts:
            continue
        gens = {x.split("-")[0] for x in texts}
        assert len(gens) == 1, texts
        gen = int(next(iter(gens))[1:])
        assert list(texts) == [f"g{gen}-r{r}" for r in range(1 + gen % 4)]


def test_cache_sees_another_writer(tmp_path: Path):
    path = tmp_path / "chroma"
    a = FermiStore(path, embeddings=KeywordEmbeddings())
    b = FermiStore(path, embeddings=KeywordEmbeddings())
    a.save_result(make_result("alice", [prompt("v1", {"o1": 1})]), user=make_user("alice"))
    assert [p.text for p in b.get_prompts("alice")] == ["v1"]
    a.save_result(make_result("alice", [prompt("v2", {"o1": 1})]))
    assert [p.text for p in b.get_prompts("alice")] == ["v2"]
    a.add_opinions("alice", [Opinion(id="z", question="Cats?", choices=["Y", "N"], answer="Y")])
    assert len(b.get_user("alice").opinions) == 9


def test_hot_path_reads_by_id_only(store: FermiStore, monkeypatch: pytest.MonkeyPatch):
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    calls: list[tuple[str, dict]] = []
    for name in ("users", "opinions", "prompts"):
        col = getattr(store, f"_{name}")

        def spy_get(*a, _col=col, _name=name, _orig=col.get, **kw):
            calls.append((_name, kw))
            return _orig(*a, **kw)

        monkeypatch.setattr(col, "get", spy_get)
        monkeypatch.setattr(col, "query", lambda *a, **k: pytest.fail("query on the hot path"))
    store.nearest_opinions("alice", "gun", k=3)  # cold: record + opinions + prompts
    assert [n for n, _ in calls] == ["users", "opinions", "prompts"]
    assert all("where" not in kw and kw.get("ids") for _, kw in calls)
    calls.clear()
    store.nearest_opinions("alice", "taxes", k=3)  # warm: only the record
    assert [n for n, _ in calls] == ["users"]


def test_constructor_rejects_contradictions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError, match="either client= or path="):
        FermiStore(tmp_path, client=object())
    with pytest.raises(ValueError, match="either path="):
        FermiStore(tmp_path, host="localhost")
    with pytest.raises(ValueError, match="port=9 given without host="):
        FermiStore(port=9)
    monkeypatch.setenv("FERMI_CHROMA_HOST", "localhost")
    monkeypatch.setenv("FERMI_STORE_PATH", str(tmp_path))
    with pytest.raises(ValueError, match="both FERMI_CHROMA_HOST and FERMI_STORE_PATH"):
        FermiStore()
    monkeypatch.delenv("FERMI_CHROMA_HOST")
    monkeypatch.setenv("FERMI_CHROMA_PORT", "8000")
    with pytest.raises(ValueError, match="FERMI_CHROMA_PORT=8000 is set without"):
        FermiStore()


def test_default_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FERMI_CHROMA_HOST", raising=False)
    monkeypatch.delenv("FERMI_CHROMA_PORT", raising=False)
    monkeypatch.setenv("FERMI_STORE_PATH", str(tmp_path / "envstore"))
    assert default_store_path() == tmp_path / "envstore"
    store = FermiStore(embeddings=KeywordEmbeddings())
    assert store.path == tmp_path / "envstore" and (tmp_path / "envstore").is_dir()
    monkeypatch.delenv("FERMI_STORE_PATH")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "langchain-fermi" / "chroma"
    assert os.path.isabs(default_store_path())


def test_injected_client(tmp_path: Path):
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        str(tmp_path / "c"), settings=Settings(anonymized_telemetry=False)
    )
    store = FermiStore(client=client, embeddings=KeywordEmbeddings(), collection_prefix="t1")
    store.save_user(make_user("alice"))
    assert store.path is None
    names = sorted(c.name for c in client.list_collections())
    assert names == ["t1_opinions", "t1_prompts", "t1_users"]


def test_damaged_store_fails_clearly(store: FermiStore, monkeypatch: pytest.MonkeyPatch):
    import langchain_fermi.store.fermi_store as store_module

    monkeypatch.setattr(store_module, "_READ_PATIENCE_S", 0.3)  # default: retry for 5 s
    store.save_user(make_user("alice"))
    store._opinions.delete(ids=["alice:o1"])  # a row lost behind the store's back
    with pytest.raises(DamagedUserError, match="user 'alice' is damaged: its rows never matched"):
        store.get_user("alice")
    assert issubclass(DamagedUserError, RuntimeError)
    store.delete_user("alice")  # still cleans up
    assert store.list_users() == [] and not store._opinions.get(include=[])["ids"]


def test_delete_opinions_removes_only_those_of_that_user(store: FermiStore):
    store.save_user(make_user("alice"))
    store.save_user(make_user("bob"))
    before = [o.id for o in store.get_user("alice").opinions]
    store.delete_opinions("alice", [before[0], "no-such-opinion"])
    after = [o.id for o in store.get_user("alice").opinions]
    assert after == before[1:]
    assert [o.id for o in store.get_user("bob").opinions] == before  # bob untouched
    raw = store._opinions.get(ids=[f"alice:{before[0]}", f"bob:{before[0]}"])["ids"]
    assert raw == [f"bob:{before[0]}"]  # the row is gone from Chroma, not just hidden
    store.delete_opinions("nobody", ["x"])  # unknown users are a no-op
