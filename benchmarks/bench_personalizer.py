"""Selection latency of `FermiPersonalizer` with 1,000 and 10,000 stored users (no LLM call).

    python -m benchmarks.bench_personalizer [--users 1000 10000] [--queries 200] [--work-dir DIR]

Synthetic users: 20 opinions each (5 question templates + random words, as in PERF_NOTES) and
10 prompts with random 0/1 correctness vectors. Every opinion is embedded for real with the
offline MiniLM, in large batches; the stores are built with `FermiStore.bulk_import`. Each timed
query is a random user and a new, never-seen question, so the query embedding is always computed:

* ``embed``: the query embedding alone.
* ``cold``: ``select_prompt`` through a fresh `FermiStore` (per-user snapshot not cached yet:
  user record + opinions + prompts fetched by id).
* ``warm``: the same users again with new questions (snapshot cached; only the user's record
  is read to revalidate it).
* ``invoke``: ``FermiPersonalizer.invoke`` (warm), i.e. selection + messages + tracing.

Chroma's ``query(where={"user_id": u}, n_results=3)`` on the opinions collection (the approach
PERF_NOTES measured at 122 ms) was once timed here as ``where_query``; only
``langchain_fermi.store`` touches Chroma now, so new runs leave it out (older result files keep it).

Prints a table and writes ``benchmarks/results/bench_personalizer.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_fermi.models.embeddings import embed_texts
from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.store import FermiStore
from langchain_fermi.types import Opinion, ScoredPrompt, UserProfile

RESULTS = Path(__file__).resolve().parent / "results" / "bench_personalizer.json"
TEMPLATES = [
    "How much do you agree that {} matters for {}?",
    "Should the government spend more on {} and {}?",
    "Do you think {} will get better or worse because of {}?",
    "How often do you worry about {} when you think of {}?",
    "Is {} a bigger problem than {} in your community?",
]
WORDS = [
    *("taxes", "guns", "climate", "schools", "healthcare", "immigration", "jobs", "housing"),
    *("crime", "privacy", "unions", "farming", "energy", "transit", "religion", "science"),
    *("media", "elections", "courts", "police", "trade", "wages", "pensions", "internet"),
    *("vaccines", "water", "roads", "childcare", "drugs", "tariffs", "banks", "museums"),
]
CHOICES = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]


def _question(rng: random.Random) -> str:
    extra = " ".join(rng.choices(WORDS, k=rng.randint(2, 5)))
    return rng.choice(TEMPLATES).format(*rng.sample(WORDS, 2)) + f" ({extra})"


def synth_users(n: int, n_opinions: int, n_prompts: int, pool: int, seed: int) -> list[Any]:
    """``(user, prompts)`` pairs with deterministic random content.

    Each user answers ``n_opinions`` questions drawn from a pool of ``pool`` distinct questions
    (as survey respondents share a questionnaire); ``pool=0`` gives every opinion its own text.
    """
    rng = random.Random(seed)
    questions = [_question(rng) + f" [{i}]" for i in range(pool)]
    out = []
    for u in range(n):
        if pool:
            texts = rng.sample(questions, n_opinions)
        else:
            texts = [_question(rng) for _ in range(n_opinions)]
        ops = [
            Opinion(id=f"q{j}", question=t, choices=CHOICES, answer=rng.choice(CHOICES))
            for j, t in enumerate(texts)
        ]
        ids = [o.id for o in ops]
        prompts = []
        for r in range(n_prompts):
            corr = [float(rng.random() < 0.5) for _ in ids]
            prompts.append(
                ScoredPrompt(
                    text=f"Prompt {r} for user {u}: answer as a {rng.choice(WORDS)} voter would.",
                    score=sum(corr) / len(corr),
                    opinion_ids=ids,
                    correctness=corr,
                    answers=[CHOICES[0]] * len(ids),
                    iteration=r // 2,
                )
            )
        prompts.sort(key=lambda p: -p.score)
        out.append((UserProfile(user_id=f"user{u:05d}", opinions=ops), prompts))
    return out


class PrecomputedEmbeddings(Embeddings):
    """Vectors computed up front in big batches; unseen texts (queries) go to MiniLM."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.table]
        if missing:
            self.table.update(zip(missing, embed_texts(missing), strict=True))
        return [self.table[t].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return embed_texts([text])[0].tolist()


def _pct(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return {"p50_ms": 1000 * statistics.median(xs), "p95_ms": 1000 * p95, "n": len(xs)}


def _timed(fn: Any, args: list[Any]) -> list[float]:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(*a)
        out.append(time.perf_counter() - t)
    return out


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def bench_one(
    n_users: int, items: list[Any], table: dict[str, np.ndarray], work: Path, args: Any
) -> dict[str, Any]:
    path = work / f"store_{n_users}"
    emb = PrecomputedEmbeddings(table)
    build_s = None
    marker = work / f"store_{n_users}.complete"  # not inside the store: Chroma owns that folder
    if not (args.reuse and marker.is_file()):
        marker.unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)  # before any client opens it in this process
        t0 = time.perf_counter()
        FermiStore(path, embeddings=emb).bulk_import(items[:n_users], users_per_batch=1000)
        build_s = time.perf_counter() - t0
        marker.write_text(f"{n_users}\n")
    rng = random.Random(args.seed + n_users)
    users = rng.sample(range(n_users), min(n_users, args.queries + args.warmup))  # distinct: cold
    qs = [[_question(rng) + f" #{i}" for i in range(len(users))] for _ in range(4)]
    uid = [items[u][0].user_id for u in users]

    store = FermiStore(path, embeddings=emb, cache_size=max(n_users, 1))
    pers = FermiPersonalizer(store)
    # ONNX session init, and a first pass over many input lengths (new shapes are slow once)
    for i in range(60):
        embed_texts([_question(rng) + " x" * (i % 30)])
    w = args.warmup
    res: dict[str, Any] = {"users": n_users, "build_write_s": build_s, "disk_mb": _dir_mb(path)}
    res["embed"] = _pct(_timed(lambda q: emb.embed_query(q), [[q] for q in qs[3][w:]]))
    cold = _timed(pers.select_prompt, list(zip(uid, qs[0], strict=True)))
    res["cold"] = _pct(cold[w:])
    warm = _timed(pers.select_prompt, list(zip(uid, qs[1], strict=True)))
    res["warm"] = _pct(warm[w:])
    inputs = [
        [{"question": q, "user_id": u, "choices": CHOICES}] for u, q in zip(uid, qs[2], strict=True)
    ]
    res["invoke"] = _pct(_timed(pers.invoke, inputs)[w:])
    # correctness: the cached path agrees with brute force on the raw rows
    res["checked_selections"] = _check(store, pers, uid[:20], qs[1][:20])
    return res


def _check(store: FermiStore, pers: FermiPersonalizer, uids: list[str], qs: list[str]) -> int:
    for u, q in zip(uids, qs, strict=True):
        snap = store.snapshot(u)  # brute force over the stored vectors
        sims = snap.matrix @ store.embed_query(q)
        top = {snap.opinions[i].id for i in np.argsort(-sims)[:3]}
        sel = pers.select_prompt(u, q)
        assert {n.opinion_id for n in sel.neighbours} == top, (u, q)
    return len(uids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--opinions", type=int, default=20)
    p.add_argument("--prompts", type=int, default=10)
    p.add_argument(
        "--question-pool", type=int, default=10000,
        help="distinct question texts shared by the users (0: every opinion unique)",
    )  # fmt: skip
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the stores in --work-dir")
    p.add_argument("--reuse", action="store_true", help="reuse complete stores in --work-dir")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_personalizer_"))
    work.mkdir(parents=True, exist_ok=True)
    n_max = max(args.users)
    items = synth_users(n_max, args.opinions, args.prompts, args.question_pool, args.seed)
    texts = list(dict.fromkeys(o.question for u, _ in items for o in u.opinions))
    cached = work / f"vectors_{len(texts)}_{args.seed}.npy"
    t0 = time.perf_counter()
    if args.reuse and cached.is_file():
        vectors = np.load(cached)
    else:
        vectors = embed_texts(texts, batch_size=64)
        np.save(cached, vectors)
    table = dict(zip(texts, vectors, strict=True))
    embed_s = time.perf_counter() - t0
    print(
        f"embedded {len(texts):,} opinion texts in {embed_s:.0f} s ({len(texts) / embed_s:.0f}/s)"
    )
    runs = []
    try:
        for n in sorted(args.users):
            r = bench_one(n, items, table, work, args)
            runs.append(r)
            print(json.dumps(r))
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "FermiPersonalizer selection latency (no LLM call)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
        "params": {  # paths are where this machine put things: record only their names
            k: (v.name if isinstance(v, Path) else v) for k, v in vars(args).items()
        },
        "opinion_texts": len(texts), "embed_opinions_s": embed_s, "runs": runs,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    cols = ["embed", "cold", "warm", "invoke"]
    print(
        f"\n{'users':>7} {'build s':>8} {'MB':>6} "
        + " ".join(f"{c + ' p50/p95 ms':>22}" for c in cols)
    )
    for r in runs:
        cells = [f"{r[c]['p50_ms']:.1f} / {r[c]['p95_ms']:.1f}" if c in r else "-" for c in cols]
        build = f"{r['build_write_s']:.0f}" if r["build_write_s"] is not None else "reused"
        print(f"{r['users']:>7} {build:>8} {r['disk_mb']:>6.0f} "
              + " ".join(f"{c:>22}" for c in cells))  # fmt: skip
    print(f"(opinion embedding: {embed_s:.0f} s for {len(texts):,} texts; results: {args.output})")


if __name__ == "__main__":
    main()
