"""Two planted runs side by side on the users they share: each run's Fermi+RoP accuracy, the
paired difference, and the share of the held-out gap between the profile and the hidden prompt
each recovers, for all shared users, per hidden trait and, with ``--exclude``, for the users
not listed (say, those looked at while a setting was designed). ``--control opro`` adds the same
comparison for a method whose settings the two runs share: its difference is what a rerun
alone changes (the optimizer samples differently each run). ``--method-a`` / ``--method-b``
compare two different methods of the runs (say run A's OPRO against run B's Fermi+RoP on the
same users and splits).

    python -m benchmarks.compare_planted benchmarks/results/planted-qwen15 \\
        benchmarks/results/planted-qwen15-contrast --exclude 286663-pessimist,... \\
        --out benchmarks/results/planted-qwen15-contrast/comparison.json

Prints a table and writes a JSON report (run names relative to the results folder, no paths).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from langchain_fermi.evaluation.metrics import paired_bootstrap_ci
from langchain_fermi.evaluation.report import gap_share

METHOD = "fermi_rop"


def user_records(run_dir: Path) -> list[dict[str, Any]]:
    """The per-user records of a run: the users of its ``report.json`` (what its tables are
    about), or every file in ``users/`` when there is no report yet."""
    report = run_dir / "report.json"
    if report.is_file():
        return list(json.loads(report.read_text(encoding="utf-8"))["users"])
    files = sorted((run_dir / "users").glob("*.json"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def by_trait(ids: list[str]) -> dict[str, list[str]]:
    """Users grouped by the persona planted in them (the id's suffix, ``<respondent>-<trait>``)."""
    traits = sorted({i.rsplit("-", 1)[-1] for i in ids if "-" in i})
    return {t: [i for i in ids if i.endswith(f"-{t}")] for t in traits}


def accuracies(users: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Held-out accuracy per method, by user id, from per-user records."""
    return {u["user_id"]: {m: r["accuracy"] for m, r in u["methods"].items()} for u in users}


def load_users(run_dir: Path) -> dict[str, dict[str, float]]:
    """Held-out accuracy per method, by user id (`user_records`)."""
    return accuracies(user_records(run_dir))


def compare(
    a: dict[str, dict[str, float]],
    b: dict[str, dict[str, float]],
    ids: list[str],
    *,
    seed: int = 0,
    n: int = 2000,
    method: str = METHOD,
    method_b: str | None = None,
) -> dict[str, Any]:
    """Run A's ``method`` vs run B's ``method_b`` (default: the same method) on ``ids``: both
    runs' profile and hidden rows must agree (same users and splits)."""
    for i in ids:
        for m in ("profile", "hidden_prompt"):
            if abs(a[i][m] - b[i][m]) > 1e-9:
                msg = f"user {i}: {m} differs between the runs ({a[i][m]} vs {b[i][m]})"
                raise ValueError(msg)
    profile = np.array([a[i]["profile"] for i in ids])
    gap = np.array([a[i]["hidden_prompt"] for i in ids]) - profile
    acc_a = np.array([a[i][method] for i in ids])
    acc_b = np.array([b[i][method_b or method] for i in ids])
    diff = paired_bootstrap_ci(list(acc_b), list(acc_a), n_samples=n, seed=seed)
    return {
        "users": len(ids),
        "profile": float(profile.mean()),
        "hidden_prompt": float((profile + gap).mean()),
        "a": float(acc_a.mean()),
        "b": float(acc_b.mean()),
        "b_minus_a": {"mean": diff.mean, "low": diff.low, "high": diff.high},
        "gap_a": gap_share(list(acc_a - profile), list(gap), n_samples=n, seed=seed),
        "gap_b": gap_share(list(acc_b - profile), list(gap), n_samples=n, seed=seed),
    }


def _share(g: dict[str, float] | None) -> str:
    return f"{g['recovered']:.0%} [{g['ci_low']:.0%}, {g['ci_high']:.0%}]" if g else "n/a"


def _row(name: str, r: dict[str, Any]) -> str:
    d, ga, gb = r["b_minus_a"], r["gap_a"], r["gap_b"]
    return (
        f"| {name} | {r['users']} | {r['profile']:.3f} | {r['a']:.3f} | {r['b']:.3f} | "
        f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] | "
        f"{_share(ga)} | {_share(gb)} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_a", type=Path, help="the reference run folder")
    p.add_argument("run_b", type=Path, help="the run compared with it")
    p.add_argument("--exclude", default="", help="comma-separated user ids for the last row")
    p.add_argument("--control", default=None, help="a method the two runs share unchanged")
    p.add_argument("--method-a", default=METHOD, help="run A's method (default fermi_rop)")
    p.add_argument("--method-b", default=METHOD, help="run B's method (default fermi_rop)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = p.parse_args(argv)
    a, b = load_users(args.run_a), load_users(args.run_b)
    ma, mb = args.method_a, args.method_b
    shared = [i for i in a if i in b and ma in a[i] and mb in b[i]]
    if not shared:
        p.error("the runs share no finished user")
    groups = {"all": shared, **by_trait(shared)}
    excluded = {s for s in args.exclude.split(",") if s}
    if excluded:
        groups["not excluded"] = [i for i in shared if i not in excluded]
    results = {
        name: compare(a, b, ids, method=ma, method_b=mb) for name, ids in groups.items() if ids
    }
    if args.control:
        both = [i for i in shared if args.control in a[i] and args.control in b[i]]
        if both:
            results[f"control: {args.control}"] = compare(a, b, both, method=args.control)
    print(f"A = {args.run_a.name} {ma}, B = {args.run_b.name} {mb}; held-out accuracy")
    print("| users | n | profile | A | B | B − A, paired [95 % CI] | A: gap recovered | "
          "B: gap recovered |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(_row(name, r))
    if args.out:
        report = {
            "run_a": args.run_a.name,
            "run_b": args.run_b.name,
            "method": ma if ma == mb else None,
            "method_a": ma,
            "method_b": mb,
            "excluded": sorted(excluded),
            "control": args.control,
            "groups": results,
        }
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
