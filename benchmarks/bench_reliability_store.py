"""Storage reliability of `FermiStore` under faults: one writer, no lost data, verified forgetting.

    python -m benchmarks.bench_reliability_store [--saves 200] [--embeddings minilm|hash]

* ``two_writers``: two processes save different users into one embedded folder at the same time
  (``--saves`` each, with the store's write lock); then a fresh process reopens the folder and
  checks every user: damaged users (snapshot fails or differs from what was saved) must be 0, and
  every refused write must be a clear `StoreLockedError`.
* ``purge``: a user whose profile, questions and prompts carry a unique marker is saved between
  other users (enough rows for Chroma to write its vector index files), deleted, then purged;
  every file under the folder is scanned for the marker and for one of their opinion vectors
  (exact float32 bytes, and the unit-length copy the vector index keeps). Hits after the plain
  delete show what a purge is for; hits after the purge must be 0.
* ``replace_failure``: ``import_user(replace=True)`` of a user with more opinions than Chroma's
  largest batch (5,461), with a Chroma write, then a delete, failing at each call in turn: the
  user must export exactly as before (failure before the switch) or exactly as the new dump
  (after it), never a mix; the last replace leaves no extra rows. (Hashed embeddings: the
  questions are re-embedded for every attempt, and embedding is not what is measured.)
* ``read_only``: the purged store opened with ``read_only=True`` (a temporary copy): time to open
  and list it against a normal open, and that a write is refused.

Prints a table and writes ``benchmarks/results/reliability_store.json``. The scenario functions are
also run, smaller, by ``tests/test_store_faults.py`` and ``tests/test_store_purge.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_fermi.errors import StoreLockedError
from langchain_fermi.store import FermiStore
from langchain_fermi.store.faults import fail_on_call, row_counts, set_batch_size
from langchain_fermi.types import FermiResult, Opinion, ScoredPrompt, UserProfile

RESULTS = Path(__file__).resolve().parent / "results" / "reliability_store.json"
ROOT = Path(__file__).resolve().parent.parent
_MODULE = (sys.executable, "-m", "benchmarks.bench_reliability_store")
TOPICS = ["taxes", "guns", "climate", "schools", "health", "jobs", "housing", "crime", "trade"]


class HashEmbeddings(Embeddings):
    """Hashed bag of words, unit length: fast, offline and deterministic (for quick runs)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def _vec(self, text: str) -> list[float]:
        v = np.zeros(self.dim)
        for w in re.findall(r"[a-z0-9]+", text.lower()):
            v[int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        v[0] += 1e-3
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)


def make_embeddings(name: str) -> Embeddings:
    """``"hash"`` (`HashEmbeddings`) or ``"minilm"`` (the packaged offline MiniLM)."""
    if name == "hash":
        return HashEmbeddings()
    from langchain_fermi.models.embeddings import MiniLMEmbeddings

    return MiniLMEmbeddings()


def synthetic_user(uid: str, n_opinions: int = 8, marker: str = "") -> UserProfile:
    """A user whose questions and profile name them (``marker`` is added to every text)."""
    tag = f" {marker}" if marker else ""
    return UserProfile(
        user_id=uid,
        attributes={"Region": f"West{tag}", "Age": "30-49"},
        opinions=[
            Opinion(
                id=f"q{i}",
                question=f"How much do you care about {TOPICS[i % len(TOPICS)]} ({uid} {i}){tag}?",
                choices=["A lot", "A little", "Not at all"],
                answer=["A lot", "A little", "Not at all"][i % 3],
            )
            for i in range(n_opinions)
        ],
    )


def synthetic_prompts(user: UserProfile, marker: str = "", n: int = 2) -> list[ScoredPrompt]:
    """``n`` scored prompts of ``user`` (best first) whose texts name the user."""
    ids = [o.id for o in user.opinions[:4]]
    tag = f" {marker}" if marker else ""
    return [
        ScoredPrompt(
            text=f"You are {user.user_id}, prompt {r}.{tag}",
            score=1.0 - r / 10,
            opinion_ids=ids,
            correctness=[1.0] * len(ids),
            answers=["A lot"] * len(ids),
        )
        for r in range(n)
    ]


def _result(user: UserProfile) -> FermiResult:
    prompts = synthetic_prompts(user)
    return FermiResult(user_id=user.user_id, model="synthetic", prompts=prompts, memory=prompts)


# -- two writer processes --------------------------------------------------------------------------
def _writer(path: str, tag: str, saves: int, embeddings: str) -> dict[str, Any]:
    store = FermiStore(path, embeddings=make_embeddings(embeddings), lock_timeout=60)
    refused, other = 0, []
    for i in range(saves):
        user = synthetic_user(f"{tag}{i}")
        try:
            store.save_result(_result(user), user=user)
        except StoreLockedError:
            refused += 1
        except Exception as e:  # reported, never hidden
            other.append(f"{type(e).__name__}: {e}")
    return {"refused": refused, "errors": other}


def _verify(path: str, tags: list[str], saves: int, embeddings: str) -> dict[str, Any]:
    store = FermiStore(path, embeddings=make_embeddings(embeddings))
    damaged: list[str] = []
    for tag in tags:
        for i in range(saves):
            user = synthetic_user(f"{tag}{i}")
            try:
                ok = (
                    store.get_user(user.user_id) == user
                    and store.get_prompts(user.user_id) == synthetic_prompts(user)
                    and len(store.nearest_opinions(user.user_id, "taxes", k=3)) == 3
                )
            except Exception as e:  # a damaged user: counted, with the reason
                ok = False
                damaged.append(f"{user.user_id}: {type(e).__name__}: {str(e)[:120]}")
                continue
            if not ok:
                damaged.append(f"{user.user_id}: differs from what was saved")
    return {"users": len(store.list_users()), "damaged": len(damaged), "examples": damaged[:5]}


def _run_module(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [*_MODULE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        msg = f"{args[0]} failed ({out.returncode}): {out.stderr[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(out.stdout.strip().splitlines()[-1])


def two_writers(path: Path, saves: int, embeddings: str = "hash") -> dict[str, Any]:
    """Two writer processes x ``saves`` saves of different users; verified in a fresh process."""
    FermiStore(path, embeddings=make_embeddings(embeddings))  # create the collections first
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*_MODULE, "_writer", str(path), tag, str(saves), embeddings],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for tag in ("a", "b")
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1800)
        if p.returncode != 0:
            msg = f"writer failed ({p.returncode}): {stderr[-2000:]}"
            raise RuntimeError(msg)
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    write_s = time.perf_counter() - t0
    check = _run_module("_verify", str(path), "a,b", str(saves), embeddings)
    return {
        "processes": 2,
        "saves_per_process": saves,
        "write_s": round(write_s, 1),
        "refused_writes": sum(o["refused"] for o in outs),
        "other_errors": [e for o in outs for e in o["errors"]],
        "users_found": check["users"],
        "damaged_users": check["damaged"],
        "damaged_examples": check["examples"],
    }


# -- purge -------------------------------------------------------------------------------------
def _windows(data: bytes, offset: int) -> np.ndarray:
    n = (len(data) - offset) // 4
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    return np.frombuffer(data, dtype=np.float32, count=n, offset=offset)


def _has_vector(data: bytes, vec: np.ndarray, atol: float = 1e-6) -> bool:
    """Whether ``data`` holds ``vec`` as float32 at any byte offset (within ``atol``)."""
    d = len(vec)
    for offset in range(4):
        a = _windows(data, offset)
        if len(a) < d:
            continue
        with np.errstate(invalid="ignore"):
            starts = np.flatnonzero(np.abs(a[: len(a) - d + 1] - vec[0]) <= atol)
        for s in starts:
            if np.allclose(a[s : s + d], vec, atol=atol):
                return True
    return False


def _contains(needle: bytes) -> Callable[[bytes], bool]:
    return lambda data: needle in data


def scan(path: Path, texts: list[str], vectors: list[np.ndarray]) -> dict[str, list[str]]:
    """The files under ``path`` holding each text (UTF-8 bytes) or vector (raw and unit-length
    float32), as ``{needle name: [relative file paths]}``."""
    needles: dict[str, Callable[[bytes], bool]] = {}
    for t in texts:
        needles[f"text {t!r}"] = _contains(t.encode())
    for k, v in enumerate(vectors):
        raw = np.asarray(v, dtype=np.float32)
        unit = raw / np.linalg.norm(raw)
        needles[f"vector {k} (raw bytes)"] = _contains(raw.tobytes())
        needles[f"vector {k} (unit length)"] = lambda data, u=unit: _has_vector(data, u)
    hits: dict[str, list[str]] = {name: [] for name in needles}
    for root, _, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            data = file.read_bytes()
            for needle, found in needles.items():
                if found(data):
                    hits[needle].append(str(file.relative_to(path)))
    return hits


def purge_scenario(
    path: Path, embeddings: str = "hash", before: int = 140, after: int = 20
) -> dict[str, Any]:
    """Save ``before`` users around a marked one (their rows make Chroma write its index files),
    ``after`` more, delete the marked user, scan; purge, scan again; check the others. File
    paths in the result are relative to ``path``."""
    marker = "ZQXMARKER" + hashlib.sha1(str(path).encode()).hexdigest()[:8]
    emb = make_embeddings(embeddings)
    store = FermiStore(path, embeddings=emb)
    marked = synthetic_user("marked", marker=marker)
    first = [synthetic_user(f"u{i:03d}") for i in range(before)]
    items = [(u, synthetic_prompts(u)) for u in first[: before // 2]]
    items += [(marked, synthetic_prompts(marked, marker))]
    items += [(u, synthetic_prompts(u)) for u in first[before // 2 :]]
    store.bulk_import(items, users_per_batch=len(items))
    for i in range(after):
        u = synthetic_user(f"v{i:03d}")
        store.save_result(_result(u), user=u)
    others = store.list_users()
    others.remove("marked")
    exports = {uid: store.export_user(uid) for uid in others}
    vector = np.asarray(emb.embed_documents([marked.opinions[0].question])[0], dtype=np.float32)
    texts = [marker, "marked:q0"]  # their texts, and a row id (their user id)
    saved = scan(path, texts, [vector])
    store.delete_user("marked")
    deleted = scan(path, texts, [vector])
    t0 = time.perf_counter()
    compaction = store.purge()
    purge_s = time.perf_counter() - t0
    purged = scan(path, texts, [vector])
    intact = all(store.export_user(uid) == exports[uid] for uid in others)
    reopened = _run_module("_list", str(path), embeddings)
    read_only = _run_module("_read_only", str(path), embeddings)
    return {
        "users": len(others) + 1,
        "needles": list(saved),
        "hits_while_saved": saved,
        "hits_after_delete": deleted,
        "hits_after_purge": purged,
        "hit_count_after_delete": _count(deleted),
        "hit_count_after_purge": _count(purged),
        "purge_s": round(purge_s, 2),
        "compaction": compaction,
        "others_intact": intact and reopened["users"] == others,
        "read_only": read_only,
    }


def _count(hits: dict[str, list[str]]) -> int:
    return sum(len(files) for files in hits.values())


# -- replace with a failure ----------------------------------------------------------------------
def replace_failure_scenario(
    path: Path, embeddings: str = "hash", n_opinions: int = 6000, batch: int | None = None
) -> dict[str, Any]:
    """Replace a user of ``n_opinions`` opinions (more than one Chroma batch) while the 1st, 2nd,
    ... row write, then row delete, fails. Every time the user must export either exactly as
    before (failure before the switch) or exactly as the new dump (after it), never a mix.
    ``batch`` lowers the store's batch size (quick runs with many batches)."""
    emb = make_embeddings(embeddings)
    store = FermiStore(path, embeddings=emb)
    if batch is not None:
        set_batch_size(store, batch)
    old = synthetic_user("big", n_opinions=n_opinions)
    old_dump = _dump(old, synthetic_prompts(old, n=3))
    store.import_user(old_dump)
    before = store.export_user("big")
    new = synthetic_user("big", n_opinions=n_opinions, marker="v2")
    new_dump = _dump(new, synthetic_prompts(new, "v2", n=2))
    outcomes: list[dict[str, Any]] = []
    calls_per_replace = {}
    for method in ("upsert", "delete"):
        n = 1
        while True:  # fail each call in turn until a replace needs fewer calls than that
            with fail_on_call(n, method) as calls:
                try:
                    store.import_user(new_dump, replace=True)
                    failed = False
                except OSError:
                    failed = True
            if not failed:
                calls_per_replace[method] = calls[0]
                store.import_user(old_dump, replace=True)  # back to the old user
                break
            got = store.export_user("big")
            state = "old" if got == before else "new" if got == new_dump else "MIXED"
            outcomes.append({"method": method, "failing_call": n, "user_is": state})
            if state == "new":
                store.import_user(old_dump, replace=True)
            n += 1
    store.import_user(new_dump, replace=True)
    rows = row_counts(store, "big")
    return {
        "opinions": n_opinions,
        "max_batch": store.max_batch_size,
        "write_calls_per_replace": calls_per_replace,
        "failures_injected": len(outcomes),
        "outcomes": outcomes,
        "mixed_users": sum(o["user_is"] == "MIXED" for o in outcomes),
        "replaced_after": store.export_user("big") == new_dump,
        "leftover_rows_after": rows["opinions"] + rows["prompts"] - n_opinions - 2,
    }


def _dump(user: UserProfile, prompts: list[ScoredPrompt]) -> dict[str, Any]:
    return {
        "format": "langchain-fermi.user/1",
        "user": user.model_dump(mode="json"),
        "prompts": [p.model_dump(mode="json") for p in prompts],
        "summary": None,
    }


# -- entry points ----------------------------------------------------------------------------------
def _sub(argv: list[str]) -> None:
    cmd, args = argv[0], argv[1:]
    if cmd == "_writer":
        out = _writer(args[0], args[1], int(args[2]), args[3])
    elif cmd == "_verify":
        out = _verify(args[0], args[1].split(","), int(args[2]), args[3])
    elif cmd == "_read_only":
        out = _read_only(Path(args[0]), args[1])
    else:  # _list
        out = {"users": FermiStore(args[0], embeddings=make_embeddings(args[1])).list_users()}
    print(json.dumps(out))


def _read_only(path: Path, embeddings: str) -> dict[str, Any]:
    """Open and list a store normally and read-only (in a fresh process: no warm caches)."""
    from langchain_fermi.errors import StoreReadOnlyError

    emb = make_embeddings(embeddings)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    FermiStore(path, embeddings=emb).list_users()  # the imports and first open, not timed
    t0 = time.perf_counter()
    FermiStore(path, embeddings=emb).list_users()
    rw_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ro = FermiStore(path, embeddings=emb, read_only=True)
    users = ro.list_users()
    ro_s = time.perf_counter() - t0
    try:
        ro.save_user(synthetic_user("intruder"))
        refused = False
    except StoreReadOnlyError:
        refused = True
    return {
        "store_mb": round(size / 1e6, 2),
        "users_listed": len(users),
        "open_and_list_read_only_s": round(ro_s, 3),
        "open_and_list_s": round(rw_s, 3),
        "write_refused": refused,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--saves", type=int, default=200, help="saves per writer process")
    p.add_argument("--embeddings", choices=["minilm", "hash"], default="minilm")
    p.add_argument("--opinions", type=int, default=6000, help="opinions of the replaced user")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_reliability_") as tmp:
        work = Path(tmp)
        results = {
            "two_writers": two_writers(work / "writers", args.saves, args.embeddings),
            "purge": purge_scenario(work / "purge", args.embeddings),
            "replace_failure": replace_failure_scenario(work / "replace", "hash", args.opinions),
        }
    report = {
        "benchmark": "FermiStore storage reliability under faults",
        "embeddings": args.embeddings,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    w, pu, r = results["two_writers"], results["purge"], results["replace_failure"]
    rows = [
        ("two writer processes x saves", f"2 x {w['saves_per_process']}"),
        ("damaged users after reopening", w["damaged_users"]),
        ("refused writes (StoreLockedError)", w["refused_writes"]),
        ("marker/vector hits after plain delete", pu["hit_count_after_delete"]),
        ("marker/vector hits after purge", pu["hit_count_after_purge"]),
        ("other users intact after purge", pu["others_intact"]),
        (f"replace of {r['opinions']} opinions: failures injected", r["failures_injected"]),
        ("users left mixed by a failure", r["mixed_users"]),
        (
            "read-only open+list s (normal open s)",
            f"{pu['read_only']['open_and_list_read_only_s']} "
            f"({pu['read_only']['open_and_list_s']}), {pu['read_only']['store_mb']} MB",
        ),
    ]
    for name, value in rows:
        print(f"{name:<44} {value}")
    print(f"(results: {args.output})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        _sub(sys.argv[1:])
    else:
        main()
