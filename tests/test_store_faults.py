"""Store fault tests: one writer per folder, readers across processes, replaces that cannot lose
data, non-finite scores, and damaged users that never hide the others."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fermi_store_fakes import KeywordEmbeddings, make_user, prompt

from benchmarks.bench_reliability_store import (
    replace_failure_scenario,
    synthetic_prompts,
    synthetic_user,
    two_writers,
)
from langchain_fermi.errors import DamagedUserError, FermiError, StoreLockedError
from langchain_fermi.store import FermiStore
from langchain_fermi.store.embedded import LOCK_FILE
from langchain_fermi.store.faults import fail_on_call, row_counts, set_batch_size
from langchain_fermi.types import ScoredPrompt

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture
def store(tmp_path: Path) -> FermiStore:
    return FermiStore(tmp_path / "chroma", embeddings=KeywordEmbeddings())


def _dump(store: FermiStore, user_id: str) -> str:
    return json.dumps(store.export_user(user_id), sort_keys=True)


# -- one writer per embedded folder ---------------------------------------------------------------
def test_second_writer_process_is_refused_clearly_and_readers_go_on(tmp_path: Path):
    path = tmp_path / "chroma"
    store = FermiStore(path, embeddings=KeywordEmbeddings(), lock_timeout=0.3)
    store.save_user(make_user("alice"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from filelock import FileLock; "
            f"lock = FileLock({str(path / LOCK_FILE)!r}); lock.acquire(); "
            "print('held', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError) as err:
            store.save_user(make_user("bob"))
        assert 0.25 < time.monotonic() - t0 < 5
        assert isinstance(err.value, TimeoutError) and isinstance(err.value, FermiError)
        msg = str(err.value)
        assert "being written by another process" in msg and "gave up after 0.3 s" in msg
        assert "FermiStore(host=..., port=...)" in msg  # points to the server mode
        # readers never wait for the lock
        assert store.get_user("alice") == make_user("alice")
        assert store.list_users() == ["alice"]
    finally:
        holder.communicate("\n", timeout=30)
    store.save_user(make_user("bob"))  # the lock is free again
    assert store.list_users() == ["alice", "bob"]


def test_lock_timeout_from_argument_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FERMI_STORE_LOCK_TIMEOUT", "0.25")
    assert FermiStore(tmp_path / "a", embeddings=KeywordEmbeddings()).lock_timeout == 0.25
    assert FermiStore(tmp_path / "a", lock_timeout=3).lock_timeout == 3
    monkeypatch.setenv("FERMI_STORE_LOCK_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="FERMI_STORE_LOCK_TIMEOUT='soon' must be a number"):
        FermiStore(tmp_path / "a")
    monkeypatch.delenv("FERMI_STORE_LOCK_TIMEOUT")
    assert FermiStore(tmp_path / "a").lock_timeout == 10.0
    with pytest.raises(ValueError, match="lock_timeout must be >= 0"):
        FermiStore(tmp_path / "a", lock_timeout=-1)


def test_two_writer_processes_leave_no_damaged_user(tmp_path: Path):
    # Without the lock and re-open, 2 x 200 saves damaged 122 of 400 users on this machine.
    got = two_writers(tmp_path / "chroma", saves=25)
    assert got["other_errors"] == [] and got["refused_writes"] == 0
    assert got["users_found"] == 50
    assert got["damaged_users"] == 0, got["damaged_examples"]


def test_reader_process_sees_another_process_writes(tmp_path: Path):
    path = tmp_path / "chroma"
    writer = FermiStore(path, embeddings=KeywordEmbeddings())
    writer.save_user(make_user("alice"))
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(TESTS)!r})
        from fermi_store_fakes import KeywordEmbeddings
        from langchain_fermi.store import FermiStore
        store = FermiStore({str(path)!r}, embeddings=KeywordEmbeddings())
        print(len(store.get_user("alice").opinions), flush=True)  # loads the vector index
        sys.stdin.readline()
        out = {{uid: [[o.id, round(s, 6)] for o, s in store.nearest_opinions(uid, "cats dogs", k=3)]
               for uid in ("alice", "bob")}}
        print(json.dumps(out), flush=True)
    """)
    reader = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "8"
        writer.save_user(make_user("bob", extra=" cats"))  # a new user, new vectors
        writer.save_user(make_user("alice", extra=" dogs"))  # same ids, new questions
        out, _ = reader.communicate("\n", timeout=120)
    finally:
        reader.kill()
    there = json.loads(out.strip().splitlines()[-1])
    here = {
        uid: [[o.id, round(s, 6)] for o, s in writer.nearest_opinions(uid, "cats dogs", k=3)]
        for uid in ("alice", "bob")
    }
    assert there == here and all(s > 0.2 for _, s in there["bob"])


# -- replacing a user can never lose it ----------------------------------------------------------
def test_replace_failing_at_any_write_leaves_old_or_new_user_never_a_mix(tmp_path: Path):
    got = replace_failure_scenario(tmp_path / "chroma", n_opinions=30, batch=8)
    assert got["write_calls_per_replace"]["upsert"] >= 6  # 4 opinion batches, prompts, record
    states = [(o["method"], o["user_is"]) for o in got["outcomes"]]
    upserts = [s for m, s in states if m == "upsert"]
    assert upserts and set(upserts) == {"old"}  # every write before the switch: old user intact
    assert got["mixed_users"] == 0 and {s for _, s in states} == {"old", "new"}
    assert got["replaced_after"] and got["leftover_rows_after"] == 0


def test_replace_larger_than_chromas_batch(store: FermiStore):
    big = synthetic_user("big", n_opinions=6000)
    store.import_user(
        {"format": "langchain-fermi.user/1", "user": big.model_dump(mode="json"), "prompts": []}
    )
    assert store.max_batch_size < 6000  # the writes below span two Chroma batches
    before = _dump(store, "big")
    new = synthetic_user("big", n_opinions=6000, marker="v2")
    data = {
        "format": "langchain-fermi.user/1",
        "user": new.model_dump(mode="json"),
        "prompts": [p.model_dump(mode="json") for p in synthetic_prompts(new, n=2)],
        "summary": None,
    }
    with fail_on_call(2) as calls, pytest.raises(OSError, match="injected failure"):
        store.import_user(data, replace=True)  # fails after the first batch of opinions
    assert calls[0] == 2 and _dump(store, "big") == before
    store.import_user(data, replace=True)
    assert store.export_user("big") == data
    assert row_counts(store, "big") == {"users": 1, "opinions": 6000, "prompts": 2}
    # prompts: more than one batch, and a failure half-way keeps the old set
    many = [prompt(f"p{r}", {"q0": 1}, score=1 - r / 6000) for r in range(5600)]
    with fail_on_call(2), pytest.raises(OSError):
        store.save_prompts("big", many)
    assert store.export_user("big") == data
    assert store.save_prompts("big", many) == store.get_record("big").generation
    assert [p.text for p in store.get_prompts("big")] == [p.text for p in many]


def test_save_prompts_failing_half_way_keeps_the_old_prompts(store: FermiStore):
    store.save_user(make_user("alice"))
    store.save_prompts("alice", [prompt("OLD", {"o1": 1})])
    before = _dump(store, "alice")
    set_batch_size(store, 2)
    with fail_on_call(2), pytest.raises(OSError):
        store.save_prompts("alice", [prompt(f"NEW{r}", {"o1": 1}) for r in range(5)])
    assert _dump(store, "alice") == before
    store.save_prompts("alice", [prompt("NEWER", {"o1": 1})])
    assert [p.text for p in store.get_prompts("alice")] == ["NEWER"]
    assert row_counts(store, "alice")["prompts"] == 1  # the interrupted save's rows are swept


# -- non-finite scores, damaged users ------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_never_reach_the_store(store: FermiStore, bad: float):
    store.save_user(make_user("alice"))
    store.save_prompts("alice", [prompt("OK", {"o1": 1})])
    before = _dump(store, "alice")
    good = prompt("X", {"o1": 1, "o2": 0})
    for fields in ({"score": bad}, {"correctness": [1.0, bad]}):
        with pytest.raises(ValueError, match="finite"):  # the model refuses it ...
            ScoredPrompt(**{**good.model_dump(), **fields})
        sneaky = good.model_copy(update=fields)  # ... and the store's write path too
        with pytest.raises(ValueError, match="non-finite score or correctness"):
            store.save_prompts("alice", [sneaky])
        dump = json.loads(before)
        dump["prompts"][0].update(fields)
        with pytest.raises(ValueError, match="finite"):
            store.import_user(dump, replace=True)
    assert _dump(store, "alice") == before
    assert store.describe_users()[0]["prompts"] == 1


def test_a_damaged_user_never_hides_the_others(store: FermiStore):
    for uid in ("alice", "bob", "carol"):
        store.save_user(make_user(uid))
        store.save_prompts(uid, [prompt(uid.upper(), {"o1": 1})])
    # bob's prompt row loses its score behind the store's back (what a NaN did before)
    row = store._prompts.get(ids=["bob:p:1:0"], include=["documents", "metadatas"])
    meta = {k: v for k, v in row["metadatas"][0].items() if k != "score"}
    store._prompts.delete(ids=["bob:p:1:0"])
    store._prompts.add(ids=["bob:p:1:0"], documents=row["documents"], metadatas=[meta],
                       embeddings=[[1.0] * 8])  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(DamagedUserError, match="user 'bob' is damaged: row 'bob:p:1:0'"):
        store.get_prompts("bob")
    assert time.monotonic() - t0 < 2  # a decode error is not retried for 5 s
    rows = store.describe_users()
    assert [r["user_id"] for r in rows] == ["alice", "bob", "carol"]
    assert "error" in rows[1] and "damaged" in rows[1]["error"]
    assert rows[0]["prompts"] == rows[2]["prompts"] == 1
    assert [s.user_id for s in store.iter_snapshots(skip_damaged=True)] == ["alice", "carol"]
    with pytest.raises(DamagedUserError):
        list(store.iter_snapshots())
    store.delete_user("bob")  # a damaged user can still be deleted
    assert store.list_users() == ["alice", "carol"]
