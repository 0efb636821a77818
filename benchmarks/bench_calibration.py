"""Calibrated vs raw letter scores on W92 respondents: held-out accuracy of the profile prompt.

For the same users and splits as ``fermi bench`` (seed 0, 20 optimization / 30 test opinions),
scores every test question under the profile prompt (and the neutral prompt) raw and calibrated
(`AnswerScorer(calibration="neutral")`), per model; reports accuracy, a paired bootstrap interval
of the difference and the share of the most frequent letter (letter bias). ``--cache`` can point
at a benchmark run's score cache: its raw answers are reused.

    python -m benchmarks.bench_calibration --models smollm2,qwen2.5-coder-1.5b --users 12 \\
        --out benchmarks/results/calibration/calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Measure and write the JSON summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="smollm2,qwen2.5-coder-1.5b")
    p.add_argument("--users", type=int, default=12)
    p.add_argument("--n-optimize", type=int, default=20)
    p.add_argument("--n-test", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", action="append", default=[], help="model=path of a score cache")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/calibration.json")
    args = p.parse_args(argv)

    from langchain_fermi.data import split_user
    from langchain_fermi.evaluation.config import BenchConfig
    from langchain_fermi.evaluation.datasets import load_bench_users
    from langchain_fermi.evaluation.metrics import bootstrap_ci, paired_bootstrap_ci
    from langchain_fermi.models import get_chat_model
    from langchain_fermi.questions import profile_prompt
    from langchain_fermi.scoring import NEUTRAL_PROMPT, AnswerScorer, ScoreCache

    caches = dict(c.split("=", 1) for c in args.cache)
    users = load_bench_users(BenchConfig(max_users=args.users, seed=args.seed))
    splits = [
        split_user(u, n_optimize=args.n_optimize, n_test=args.n_test, seed=args.seed) for u in users
    ]
    out: dict[str, object] = {
        "what": "held-out accuracy of the profile prompt, raw vs calibrated letter scores",
        "users": [u.user_id for u in users],
        "n_test": args.n_test,
        "runs": [],
    }
    for name in [m for m in args.models.split(",") if m]:
        model = get_chat_model(name)
        cache = ScoreCache(caches[name]) if name in caches else ScoreCache()
        t0 = time.perf_counter()
        row: dict[str, object] = {"model": name}
        per_user: dict[str, list[float]] = {}
        for mode in ("none", "neutral"):
            scorer = AnswerScorer(model, cache=cache, calibration=None if mode == "none" else mode)  # type: ignore[arg-type]
            for prompt_name in ("profile", "neutral"):
                accs, letters = [], Counter[str]()
                for user, (_, test) in zip(users, splits, strict=True):
                    prompt = profile_prompt(user) if prompt_name == "profile" else NEUTRAL_PROMPT
                    answers = scorer.score([(prompt, o) for o in test])
                    accs.append(
                        sum(a.index == o.answer_index for a, o in zip(answers, test, strict=True))
                        / len(test)
                    )
                    letters.update(a.letter or "?" for a in answers)
                key = f"{prompt_name}_{mode}"
                per_user[key] = accs
                ci = bootstrap_ci(accs, seed=args.seed)
                top, n = letters.most_common(1)[0]
                row[key] = {
                    "accuracy": ci.mean,
                    "ci": [ci.low, ci.high],
                    "top_letter": top,
                    "top_letter_share": n / sum(letters.values()),
                }
        d = paired_bootstrap_ci(per_user["profile_neutral"], per_user["profile_none"], seed=0)
        row["profile_calibrated_minus_raw"] = {"mean": d.mean, "ci": [d.low, d.high]}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        out["runs"].append(row)  # type: ignore[attr-defined]
        print(json.dumps(row), file=sys.stderr)
        cache.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
