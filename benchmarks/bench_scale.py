"""Users per minute against a 200 ms latency stand-in: concurrency 1, 4, 16, 64, and Ray.

    python -m benchmarks.bench_scale [--users 200] [--delay 0.2] [--levels 1,4,16,64,ray]

Synthetic users (20 three-choice opinions each: 16 scored, 4 shown to the optimizer), K=4, T=2,
the paper's L=5: per user (1 + K*T) * 16 = 144 scoring calls and K*T = 8 optimizer calls, all
to `benchmarks/latency_server.py` (a load stand-in, not a model: every call waits ``--delay``).
Target and optimizer are `ChatOpenAI` on it; the target is scored through logprobs.

* in one process: `optimize_users(concurrency=N)`, per-user checkpoint threads in memory
  (``InMemorySaver``), no store.
* on Ray: a local cluster (``ray start --head --num-cpus 2``), 2 tasks (one per worker), 32
  users at once in each, checkpoints and score cache in a local PostgreSQL, results in a
  ``chroma run`` server: the full multi-machine setup, on one machine.

Concurrency 1 would take ~25 minutes for 200 users, so the lower levels run on the first users
only (``--subset``, default ``1=10,4=50``); the JSON says how many users each level measured.
Calls and tokens per user are compared with the sequential run's for the users both ran, and the
stand-in's own counters are compared with the sum of what the users' `Cost` records.

Writes ``benchmarks/results/scale.json`` and ``scale.png`` (no machine paths).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.latency_server import fetch, running
from langchain_fermi.types import FermiConfig, Opinion, UserProfile

RESULTS = Path(__file__).parent / "results"
CHOICES = ["Agree", "Neutral", "Disagree"]
CONFIG = FermiConfig(K=4, T=2, max_retries=2, retry_backoff=0.5)


def make_users(n: int) -> list[UserProfile]:
    """``n`` distinct synthetic users (distinct profiles, so no two share a prompt)."""
    users = []
    for u in range(n):
        ops = [
            Opinion(
                id=f"q{i}",
                question=f"Statement {i * 7 + u} for respondent {u}: do you agree?",
                choices=CHOICES,
                answer=CHOICES[(i * (u + 1)) % 3],
            )
            for i in range(20)
        ]
        attrs = {"AGE": str(18 + u % 60), "REGION": f"region {u % 9}", "ID": f"r{u}"}
        users.append(UserProfile(user_id=f"user{u:04d}", attributes=attrs, opinions=ops))
    return users


def _models(base: str) -> tuple[Any, Any]:
    from functools import partial

    from langchain_openai import ChatOpenAI

    common = {"model": "standin", "base_url": f"{base}/v1", "api_key": "x", "max_retries": 0}
    return partial(ChatOpenAI, temperature=0.0, **common), partial(
        ChatOpenAI, temperature=1.0, **common
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (from /proc), 0 where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _per_user(batch: Any) -> dict[str, dict[str, int]]:
    return {
        o.user_id: {
            "target_calls": o.cost.target_calls,
            "optimizer_calls": o.cost.optimizer_calls,
            "tokens": o.cost.total_tokens,
        }
        for o in batch.outcomes
        if o.status == "done"
    }


def run_level(base: str, server_pid: int, users: list[UserProfile], level: str) -> dict[str, Any]:
    """Optimize ``users`` at one level; the measurements as a JSON-ready dict."""
    from langchain_fermi.scale import optimize_users

    make_target, make_optimizer = _models(base)
    fetch(base, "/reset", post=True)
    server_cpu0, client_cpu0 = _cpu_seconds(server_pid), time.process_time()
    if level == "ray":
        batch, setup = _run_ray(users, make_target, make_optimizer)
    else:
        from langgraph.checkpoint.memory import InMemorySaver

        concurrency = int(level)
        started = time.perf_counter()
        batch = optimize_users(
            users,
            make_target(),
            make_optimizer(),
            config=CONFIG,
            concurrency=concurrency,
            checkpointer=InMemorySaver(),
            keep_results=False,
        )
        setup = {"concurrency": concurrency, "process": "one", "wall_with_setup_s": 0.0}
        setup["wall_with_setup_s"] = round(time.perf_counter() - started, 2)
    served = fetch(base, "/stats")
    per_user = _per_user(batch)
    calls = sum(u["target_calls"] + u["optimizer_calls"] for u in per_user.values())
    return {
        "level": level,
        "users": len(users),
        "done": len(batch.done),
        "failed": [o.error for o in batch.failed][:3],
        "wall_s": round(batch.wall_seconds, 2),
        "users_per_min": round(batch.users_per_minute, 2),
        "calls_per_s": round(calls / batch.wall_seconds, 1) if batch.wall_seconds else 0.0,
        "client_cpu_s": round(time.process_time() - client_cpu0, 2),
        "server_cpu_s": round(_cpu_seconds(server_pid) - server_cpu0, 2),
        "server": {k: served[k] for k in ("by_kind", "tokens", "max_in_flight", "repeated_pairs")},
        "cost_matches_server": (
            served["by_kind"].get("scoring", 0) == sum(u["target_calls"] for u in per_user.values())
            and served["by_kind"].get("optimizer", 0)
            == sum(u["optimizer_calls"] for u in per_user.values())
        ),
        "setup": setup,
        "per_user": per_user,
    }


def _run_ray(users: list[UserProfile], make_target: Any, make_optimizer: Any) -> tuple[Any, dict]:
    from langchain_fermi.scale import optimize_users
    from langchain_fermi.scale.local import local_chroma, local_postgres, local_ray

    started = time.perf_counter()
    with local_postgres() as pg, local_chroma() as (host, port), local_ray(num_cpus=2) as address:
        batch = optimize_users(
            users,
            make_target,
            make_optimizer,
            engine="ray",
            address=address,
            config=CONFIG,
            tasks=2,
            concurrency=32,
            num_cpus=1,
            checkpointer=pg,
            store={"host": host, "port": port, "collection_prefix": "bench"},
            keep_results=False,
        )
    setup = {
        "workers": 2,
        "concurrency_per_worker": 32,
        "checkpoints": "PostgreSQL (local)",
        "score_cache": "PostgreSQL (local)",
        "store": "chroma run (local server)",
        "wall_with_setup_s": round(time.perf_counter() - started, 2),
    }
    return batch, setup


def sdk_ceiling(base: str, calls: int = 1500, concurrency: int = 64) -> dict[str, float]:
    """Bare `ChatOpenAI.ainvoke` scoring calls (no Fermi code at all) at ``concurrency``: the
    most calls per second the client side manages on this machine, and its CPU per call."""
    import asyncio

    from langchain_core.messages import HumanMessage, SystemMessage

    make_target, _ = _models(base)
    model = make_target().bind(logprobs=True, top_logprobs=20, max_tokens=1)
    inputs = [
        [
            SystemMessage(f"You answer as person {i}."),
            HumanMessage(f"Question: q{i}?\nA. Yes\nB. No"),
        ]
        for i in range(calls + 1)
    ]

    async def main() -> dict[str, float]:
        gate = asyncio.Semaphore(concurrency)

        async def one(messages: list[Any]) -> Any:
            async with gate:
                return await model.ainvoke(messages)

        await one(inputs[0])  # connections opened
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(m) for m in inputs[1:]))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {
            "calls": calls,
            "concurrency": concurrency,
            "calls_per_s": round(calls / wall, 1),
            "client_cpu_ms_per_call": round(1000 * cpu / calls, 2),
        }

    return asyncio.run(main())


def _sdk_ceiling_in_subprocess(base: str) -> dict[str, float]:
    """`sdk_ceiling` in a fresh process (langchain-openai keeps its async HTTP client per event
    loop; this process's loop must stay the engine's)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_scale", "--sdk-ceiling", base],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plot(levels: list[dict[str, Any]], path: Path, ceiling: float, critical: float) -> None:
    """Bars: measured users/min; ticks: the latency-only ideal; line: the bare-client ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"c={r['level']}" if r["level"] != "ray" else "Ray 2x32" for r in levels]
    values = [r["users_per_min"] for r in levels]
    ideal = [60 / critical * (64 if r["level"] == "ray" else int(r["level"])) for r in levels]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    bars = ax.bar(names, values, color=["#8da0cb"] * (len(values) - 1) + ["#fc8d62"])
    top = max(values) * 1.45
    ax.scatter(names, [min(i, top * 0.97) for i in ideal], marker="_", s=900, color="#555",
               label="latency-only ideal (capped)")  # fmt: skip
    ax.axhline(ceiling, ls="--", color="#b22", lw=1,
               label=f"bare ChatOpenAI in one process: {ceiling:.0f} users/min")  # fmt: skip
    base = levels[0]["users_per_min"] or 1.0
    for bar, r in zip(bars, levels, strict=True):
        label = (
            f"{r['users_per_min']:.0f}/min\n{r['users_per_min'] / base:.1f}x\n({r['users']} users)"
        )
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_ylabel("users optimized per minute")
    ax.set_title("Fermi K=4 T=2, 16 scoring opinions, 200 ms per LLM call (stand-in)", fontsize=10)
    ax.set_ylim(0, top)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(levels: list[dict[str, Any]], delay: float) -> dict[str, Any]:
    """Speed-ups, the per-user calls/tokens check, and where the time goes."""
    sequential = levels[0]
    checks = {}
    for r in levels[1:]:
        common = set(r["per_user"]) & set(sequential["per_user"])
        checks[r["level"]] = {
            "users_compared": len(common),
            "calls_equal": all(
                (r["per_user"][u]["target_calls"], r["per_user"][u]["optimizer_calls"])
                == (
                    sequential["per_user"][u]["target_calls"],
                    sequential["per_user"][u]["optimizer_calls"],
                )
                for u in common
            ),
            "tokens_equal": all(
                r["per_user"][u]["tokens"] == sequential["per_user"][u]["tokens"] for u in common
            ),
        }
    k, t, opinions, conc = CONFIG.num_candidates, CONFIG.iterations, 16, CONFIG.max_concurrency
    rounds = (1 + k * t) * -(-opinions // conc) + t  # calls one after another, per user
    critical = rounds * delay
    calls_per_user = (1 + k * t) * opinions + k * t
    where = {r["level"]: _where(r, critical) for r in levels}
    return {
        "speedup_vs_1": {
            r["level"]: round(r["users_per_min"] / sequential["users_per_min"], 2) for r in levels
        },
        "per_user_matches_sequential": checks,
        "critical_path_s_per_user": round(critical, 2),
        "calls_per_user": calls_per_user,
        "where_the_time_goes": where,
    }


def _where(r: dict[str, Any], critical: float) -> dict[str, Any]:
    """Ideal throughput (every call waits only the latency), measured share of it, CPU per call."""
    slots = 64 if r["level"] == "ray" else int(r["level"])
    ideal = 60 / critical * slots
    calls = r["calls_per_s"] * r["wall_s"]
    cpu = r["client_cpu_s"] + r["server_cpu_s"]
    return {
        "ideal_users_per_min": round(ideal, 1),
        "share_of_ideal": round(r["users_per_min"] / ideal, 3),
        "client_cpu_ms_per_call": (
            round(1000 * r["client_cpu_s"] / calls, 2) if calls and r["level"] != "ray" else None
        ),
        "server_cpu_ms_per_call": round(1000 * r["server_cpu_s"] / calls, 2) if calls else None,
        "cpu_busy_share_of_2_cores": (
            round(cpu / (2 * r["wall_s"]), 3) if r["wall_s"] and r["level"] != "ray" else None
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--levels", default="1,4,16,64,ray")
    parser.add_argument("--subset", default="1=10,4=50", help="users per level, LEVEL=N,...")
    parser.add_argument("--out", default=str(RESULTS / "scale.json"))
    parser.add_argument("--sdk-ceiling", metavar="BASE", help=argparse.SUPPRESS)
    parser.add_argument("--replot", action="store_true", help="redraw the PNG from --out")
    args = parser.parse_args(argv)
    if args.replot:
        report = json.loads(Path(args.out).read_text())
        ceiling = report["bare_chatopenai_ceiling"]["calls_per_s"] * 60 / report["calls_per_user"]
        _plot(
            report["levels"],
            Path(args.out).with_suffix(".png"),
            ceiling,
            report["critical_path_s_per_user"],
        )
        return 0
    if args.sdk_ceiling:
        print(json.dumps(sdk_ceiling(args.sdk_ceiling)))
        return 0
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray on 127.0.0.1
    subset = {k: int(v) for k, v in (p.split("=") for p in args.subset.split(",") if p)}
    users = make_users(args.users)
    levels = []
    with running(delay=args.delay, takes=CONFIG.num_candidates) as base:
        server_pid = _server_pid(base)
        ceiling = _sdk_ceiling_in_subprocess(base)
        print(f"[bench_scale] bare ChatOpenAI: {ceiling}", flush=True)
        for level in args.levels.split(","):
            group = users[: subset.get(level, args.users)]
            print(f"[bench_scale] level {level}: {len(group)} users ...", flush=True)
            row = run_level(base, server_pid, group, level)
            levels.append(row)
            print(
                f"  {row['users_per_min']:8.1f} users/min  {row['wall_s']:7.1f} s  "
                f"{row['calls_per_s']:6.1f} calls/s  client cpu {row['client_cpu_s']:.1f} s  "
                f"server cpu {row['server_cpu_s']:.1f} s  failed {len(row['failed'])}",
                flush=True,
            )
    summary = summarize(levels, args.delay)
    report = {
        "what": "users optimized per minute against a fixed-latency OpenAI-compatible stand-in",
        "stand_in": {"delay_s": args.delay, "server": "benchmarks/latency_server.py (uvicorn)"},
        "config": {
            "K": 4,
            "L": CONFIG.memory_size,
            "T": 2,
            "scoring_opinions": 16,
            "max_concurrency_per_user": CONFIG.max_concurrency,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "a 2-core machine shared with other jobs while measuring",
        },
        "bare_chatopenai_ceiling": ceiling,
        "levels": [{k: v for k, v in r.items() if k != "per_user"} for r in levels],
        **summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    per_user_calls = summary["calls_per_user"]
    _plot(
        levels,
        out.with_suffix(".png"),
        ceiling["calls_per_s"] * 60 / per_user_calls,
        summary["critical_path_s_per_user"],
    )
    print(f"\n{'level':>6} {'users':>6} {'users/min':>10} {'speed-up':>9}")
    for r in levels:
        print(f"{r['level']:>6} {r['users']:>6} {r['users_per_min']:>10.1f} "
              f"{summary['speedup_vs_1'][r['level']]:>8.1f}x")  # fmt: skip
    print(json.dumps(summary["per_user_matches_sequential"]))
    print(f"wrote {out.name} and {out.with_suffix('.png').name} in {out.parent.name}/")
    return 0


def _server_pid(base: str) -> int:
    """The stand-in's PID, found by its port (for its CPU time)."""
    port = base.rsplit(":", 1)[1]
    with tempfile.TemporaryFile("w+") as out:
        import subprocess

        subprocess.run(["ss", "-tlnpH", f"sport = :{port}"], stdout=out, check=False)
        out.seek(0)
        text = out.read()
    marker = "pid="
    return int(text.split(marker, 1)[1].split(",", 1)[0]) if marker in text else 0


if __name__ == "__main__":
    raise SystemExit(main())
