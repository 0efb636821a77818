"""Which local models' planted users pass the filter, raw and calibrated (no optimization).

For a few real W92 respondents and the first traits of their seeded order, measures the flip
rate against the profile prompt, the agreement with a paraphrase and with the opposite person,
per model and calibration mode (`langchain_fermi.evaluation.planted`). Writes a JSON summary;
the data themselves are read from the shared data folder and never written.

    python -m benchmarks.bench_planted_filter --models smollm2,qwen2.5-coder-0.5b \\
        --respondents 4 --out benchmarks/results/planted-filter/filter.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Measure and write the JSON summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="smollm2,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    p.add_argument("--calibrations", default="none,neutral")
    p.add_argument("--respondents", type=int, default=4)
    p.add_argument("--attempts", type=int, default=2)
    p.add_argument("--questions", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/planted-filter.json")
    args = p.parse_args(argv)

    from langchain_fermi.evaluation.config import BenchConfig
    from langchain_fermi.evaluation.datasets import load_bench_users
    from langchain_fermi.evaluation.planted import plant_users
    from langchain_fermi.models import get_chat_model
    from langchain_fermi.scoring import AnswerScorer, ScoreCache

    sources = load_bench_users(BenchConfig(max_users=args.respondents, seed=args.seed))
    out: dict[str, object] = {
        "what": "planted-user filter rates per model and calibration (no optimization)",
        "respondents": [u.user_id for u in sources],
        "questions": args.questions,
        "runs": [],
    }
    for name in [m for m in args.models.split(",") if m]:
        model = get_chat_model(name)
        cache = ScoreCache()  # raw answers shared by both calibration modes
        for cal in [c for c in args.calibrations.split(",") if c]:
            scorer = AnswerScorer(model, cache=cache, calibration=None if cal == "none" else cal)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            _, _, planted = plant_users(
                sources, scorer, max_users=len(sources) * args.attempts,
                n_questions=args.questions, attempts=args.attempts, seed=args.seed,
            )  # fmt: skip
            run = {
                "model": name,
                "calibration": cal,
                "seconds": round(time.perf_counter() - t0, 1),
                "summary": planted.summary(),
                "candidates": [
                    c.model_dump(exclude={"opinion_ids"}) | {"margin": round(c.margin, 3)}
                    for c in planted.candidates
                ],
            }
            out["runs"].append(run)  # type: ignore[attr-defined]
            print(json.dumps({k: v for k, v in run.items() if k != "candidates"}), file=sys.stderr)
            for c in run["candidates"]:  # type: ignore[union-attr]
                print("   ", c, file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
