"""Across workers on a real local Ray cluster, with PostgreSQL and a Chroma server.

The fault test kills the worker process running a task mid-run (SIGKILL to the PID its marker
file names) and checks that nothing was lost or done twice: the final store equals an
undisturbed run's, every user saved once, and the only scoring calls sent again are the ones
that were in flight when the worker died.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from scale_helpers import new_database, openai_models, stats, synthetic_users

from benchmarks.latency_server import fetch, running
from langchain_fermi.scale import BatchResult, RateLimit, RateLimits, optimize_users
from langchain_fermi.store import FermiStore
from langchain_fermi.types import FermiConfig

pytest_plugins = ("scale_fixtures",)
pytestmark = [pytest.mark.scale, pytest.mark.server, pytest.mark.timeout(300)]

# K=1: one optimizer sample per iteration, so each reply follows from its prompt alone and two
# runs are comparable call by call. 16 scoring opinions, 3 iterations: 64 scoring calls a user.
CONFIG = FermiConfig(K=1, T=3, max_retries=1, retry_backoff=0.1)
USERS = synthetic_users(6)


def _run(
    base: str,
    ray_address: str,
    pg_url: str,
    chroma: tuple[str, int],
    prefix: str,
    users: list[Any] = USERS,
    **kwargs: Any,
) -> BatchResult:
    make_target, make_optimizer = openai_models(base)
    return optimize_users(
        users,
        make_target,
        make_optimizer,
        engine="ray",
        address=ray_address,
        config=CONFIG,
        concurrency=2,
        tasks=2,
        num_cpus=1,
        max_retries=2,
        checkpointer=pg_url,
        store={"host": chroma[0], "port": chroma[1], "collection_prefix": prefix},
        **kwargs,
    )


def _store_view(chroma: tuple[str, int], prefix: str) -> dict[str, Any]:
    store = FermiStore(host=chroma[0], port=chroma[1], collection_prefix=prefix)
    view = {}
    for uid in sorted(store.list_users()):
        snap = store.snapshot(uid)
        summary = store.get_summary(uid) or {}
        view[uid] = {
            "generation": snap.record.generation,
            "opinions": len(snap.opinions),
            "prompts": [(p.text, p.score, p.correctness) for p in snap.prompts],
            "curve": summary.get("curve"),
        }
    return view


def test_a_killed_worker_loses_nothing_and_scores_nothing_twice(
    ray_address: str, postgres_url: str, chroma_server: tuple[str, int], tmp_path: Path
) -> None:
    with running(delay=0.1, takes=1) as base:
        # the undisturbed run
        calm = _run(base, ray_address, new_database(postgres_url, "calm"), chroma_server, "calm")
        assert [o.status for o in calm.outcomes] == ["done"] * 6, calm.failed
        calm_stats = stats(base)
        assert calm_stats["by_kind"] == {"scoring": 6 * 64, "optimizer": 6 * 3}
        assert calm_stats["repeated_pairs"] == 0

        # the same run, with one worker killed in the middle
        fetch(base, "/reset", post=True)
        markers = tmp_path / "markers"
        markers.mkdir()
        box: dict[str, Any] = {}
        pg = new_database(postgres_url, "killed")
        driver = threading.Thread(
            target=lambda: box.update(
                batch=_run(base, ray_address, pg, chroma_server, "killed", progress_dir=markers)
            )
        )
        driver.start()
        deadline = time.monotonic() + 120
        while stats(base)["by_kind"].get("scoring", 0) < 100:  # well into the run
            assert time.monotonic() < deadline and driver.is_alive(), "the run never got going"
            time.sleep(0.05)
        victim = sorted(markers.iterdir())[0]  # task-<chunk>-<pid>
        chunk, pid = victim.name.split("-")[1:]
        os.kill(int(pid), signal.SIGKILL)
        killed_at = time.time()
        driver.join(timeout=240)
        assert not driver.is_alive()
        batch: BatchResult = box["batch"]

        assert [o.status for o in batch.outcomes] == ["done"] * 6, batch.failed
        retried = [m.name for m in markers.iterdir() if m.name.startswith(f"task-{chunk}-")]
        assert len(retried) == 2, retried  # the chunk ran again, in a new worker
        # nothing lost, nothing done twice: the same store, each user saved once
        calm_view = _store_view(chroma_server, "calm")
        assert _store_view(chroma_server, "killed") == calm_view
        assert {u["generation"] for u in calm_view.values()} == {1}
        # no scored pair sent again, except those whose answer was not back when it died
        log = fetch(base, "/log")
        first: dict[str, dict[str, Any]] = {}
        again = []
        for entry in (e for e in log if e["kind"] == "scoring"):
            if entry["pair"] in first:
                again.append(first[entry["pair"]])
            else:
                first[entry["pair"]] = entry
        assert all(e["done"] is None or e["done"] > killed_at - 0.2 for e in again), again
        assert len(again) <= 2 * CONFIG.max_concurrency  # 2 users in flight in that task
        assert len(first) == calm_stats["distinct_pairs"]
        scoring = stats(base)["by_kind"]["scoring"]
        assert scoring == calm_stats["by_kind"]["scoring"] + len(again)


def test_one_rate_limit_for_the_whole_cluster(
    ray_address: str, postgres_url: str, chroma_server: tuple[str, int]
) -> None:
    """Two tasks in two worker processes share one limit: 30 scoring calls per 2 s window.

    The margin covers the time from admission to arrival; a worker's first calls also open
    their connections then (up to a second on this busy 2-core machine).
    """
    window = 2.0
    limits = RateLimits(
        target=RateLimit(requests_per_minute=30, window_seconds=window, margin_seconds=1.5)
    )
    with running(delay=0.05, takes=1) as base:
        batch = _run(
            base,
            ray_address,
            new_database(postgres_url, "limited"),
            chroma_server,
            "limited",
            users=USERS[:2],
            rate_limits=limits,
        )
        assert not batch.failed, batch.failed
        times = sorted(e["t"] for e in fetch(base, "/log") if e["kind"] == "scoring")
    assert len(times) == 2 * 64
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        assert end - start + 1 <= 30
    assert times[-1] - times[0] >= window * (len(times) // 30 - 1)
