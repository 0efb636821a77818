"""Optimizer efficiency: time per user and tokens per candidate, with and without the bracket stop.

Runs `optimize_user` on one example user (``examples/data/users.json``) with the same local model
as target and optimizer, once per mode, in one process on the same machine:

* ``before``: ``stop_at_bracket=False`` (each reply runs to its token limit, as in 0.1);
* ``after``: ``stop_at_bracket=True`` (replies end at the closing bracket).

Every llama.cpp evaluation is counted, so the JSON also shows whether the meta-prompt is
evaluated once for the K samples of an iteration (KV-prefix cache): per optimizer call, the prompt
tokens billed and the prompt tokens actually run through the model.

    python -m benchmarks.bench_optimizer --model smollm2 -K 4 -L 5 -T 10 \\
        --out benchmarks/results/bench_optimizer.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class _Meter:
    """Counts llama.cpp evaluations inside optimizer calls (``_generate``)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._local = threading.local()

    @contextmanager
    def installed(self) -> Iterator[None]:
        import llama_cpp

        from langchain_fermi.models import LocalLlamaChatModel

        meter = self
        orig_eval = llama_cpp.Llama.eval
        orig_generate = LocalLlamaChatModel._generate

        def eval_(llm: Any, tokens: Any) -> Any:
            rec = getattr(meter._local, "rec", None)
            if rec is not None:
                rec["evals"].append(len(tokens))
            return orig_eval(llm, tokens)

        def generate(model: Any, messages: Any, stop: Any = None, **kw: Any) -> Any:
            rec: dict[str, Any] = {"evals": []}
            meter._local.rec = rec
            t0 = time.perf_counter()
            try:
                out = orig_generate(model, messages, stop=stop, **kw)
            finally:
                meter._local.rec = None
            msg = out.generations[0].message
            usage = msg.usage_metadata or {}
            t1 = time.perf_counter()
            meter.calls.append(
                {
                    "started": t0,
                    "ended": t1,
                    "seconds": t1 - t0,
                    "prompt_tokens": int(usage.get("input_tokens", 0)),
                    "prompt_tokens_evaluated": rec["evals"][0] if rec["evals"] else 0,
                    "completion_tokens": int(usage.get("output_tokens", 0)),
                    "finish_reason": msg.response_metadata.get("finish_reason"),
                    "stop": list(stop or []),
                }
            )
            return out

        llama_cpp.Llama.eval = eval_  # type: ignore[method-assign]
        LocalLlamaChatModel._generate = generate  # type: ignore[method-assign]
        try:
            yield
        finally:
            llama_cpp.Llama.eval = orig_eval  # type: ignore[method-assign]
            LocalLlamaChatModel._generate = orig_generate  # type: ignore[method-assign]


def _busy_seconds(calls: list[dict[str, Any]]) -> float:
    """Wall time covered by the calls (the K samples run in threads that wait on one lock, so
    their own durations overlap)."""
    total, end = 0.0, float("-inf")
    for c in sorted(calls, key=lambda c: c["started"]):
        start = max(c["started"], end)
        if c["ended"] > start:
            total += c["ended"] - start
        end = max(end, c["ended"])
    return total


def _prefix_reuse(calls: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """Per group of K consecutive calls (one iteration): did samples 2..K skip the prompt?"""
    groups = [calls[i : i + k] for i in range(0, len(calls), k)]
    first = [g[0]["prompt_tokens_evaluated"] for g in groups if g]
    later = [c["prompt_tokens_evaluated"] for g in groups for c in g[1:]]
    billed = [c["prompt_tokens"] for g in groups for c in g[1:]]
    return {
        "first_sample_prompt_tokens_evaluated_mean": statistics.fmean(first) if first else 0.0,
        "later_samples_prompt_tokens_evaluated_mean": statistics.fmean(later) if later else 0.0,
        "later_samples_prompt_tokens_billed_mean": statistics.fmean(billed) if billed else 0.0,
    }


def run_mode(
    mode: str, user: Any, model_name: str, k: int, memory: int, t: int, seed: int
) -> dict[str, Any]:
    """One optimization of ``user`` with ``stop_at_bracket`` off (before) or on (after)."""
    from langchain_fermi.graph import optimize_user
    from langchain_fermi.models import get_chat_model
    from langchain_fermi.scoring import ScoreCache
    from langchain_fermi.types import FermiConfig

    target = get_chat_model(model_name, role="target")
    optimizer = get_chat_model(model_name, role="optimizer")
    config = FermiConfig(K=k, L=memory, T=t, seed=seed, stop_at_bracket=(mode == "after"))
    meter = _Meter()
    t0 = time.perf_counter()
    with meter.installed():
        result = optimize_user(user, target, optimizer, config=config, cache=ScoreCache())
    seconds = time.perf_counter() - t0
    calls = meter.calls
    opt_seconds = _busy_seconds(calls)
    candidates = max(len(result.prompts) - 1, 0)  # the profile prompt is not a candidate
    generated = len(calls)
    tokens = result.cost.optimizer_tokens
    return {
        "mode": mode,
        "stop_at_bracket": config.stop_at_bracket,
        "seconds_per_user": round(seconds, 1),
        "optimizer_seconds": round(opt_seconds, 1),
        "scoring_and_other_seconds": round(seconds - opt_seconds, 1),
        "optimizer_calls": generated,
        "candidates_scored": candidates,
        "dropped": result.dropped,
        "optimizer_prompt_tokens": result.cost.optimizer_prompt_tokens,
        "optimizer_completion_tokens": result.cost.optimizer_completion_tokens,
        "optimizer_tokens_per_call": round(tokens / generated, 1) if generated else None,
        "optimizer_tokens_per_candidate": round(tokens / candidates, 1) if candidates else None,
        "completion_tokens_per_call": round(
            statistics.fmean(c["completion_tokens"] for c in calls), 1
        )
        if calls
        else None,
        "finish_reasons": {
            r: sum(1 for c in calls if c["finish_reason"] == r)
            for r in sorted({str(c["finish_reason"]) for c in calls})
        },
        "kv_prefix_reuse": _prefix_reuse(calls, k),
        "best_score": result.best.score,
        "curve": result.curve,
        "calls": [{k: v for k, v in c.items() if k not in ("started", "ended")} for c in calls],
    }


def main(argv: list[str] | None = None) -> int:
    """Run both modes and write the JSON report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--users", type=Path, default=ROOT / "examples" / "data" / "users.json")
    p.add_argument("--user-id", default="maya-chen")
    p.add_argument("--n-optimize", type=int, default=20)
    p.add_argument("-K", type=int, default=4)
    p.add_argument("-L", type=int, default=5)
    p.add_argument("-T", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="before,after")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/bench_optimizer.json")
    args = p.parse_args(argv)

    from langchain_fermi.data import load_users, split_user
    from langchain_fermi.models.llama_runtime import default_threads

    user = next(u for u in load_users(args.users) if u.user_id == args.user_id)
    optimize, _ = split_user(user, n_optimize=args.n_optimize, n_test=None, seed=args.seed)
    runs = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        runs.append(run_mode(mode, optimize, args.model, args.K, args.L, args.T, args.seed))
        short = {k: v for k, v in runs[-1].items() if k != "calls"}
        print(json.dumps(short, indent=1), file=sys.stderr)
    report = {
        "what": "one user's optimization, same machine, same process: replies run to their "
        "token limit (before) vs end at the closing bracket (after)",
        "model": args.model,
        "user_id": args.user_id,
        "n_optimize": len(optimize.opinions),
        "K": args.K,
        "L": args.L,
        "T": args.T,
        "llama_threads": default_threads(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
