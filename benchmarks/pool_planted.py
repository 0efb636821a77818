"""Repeated draws of one planted setting, pooled: each user's held-out accuracy averaged over
the runs, then the share of the gap between the profile and the hidden prompt recovered.

A sampling optimizer draws different prompts each run (single users move by up to 0.25), so
one run's figure is one draw. Runs of the same setting that differ only in
``--optimizer-seed`` are draws for the same users and splits; their per-user mean is a
steadier estimate of what the setting recovers than any one of them.

    python -m benchmarks.pool_planted benchmarks/results/planted-qwen15-contrast-ties \\
        benchmarks/results/planted-qwen15-contrast-ties-s1 ... \\
        --out benchmarks/results/planted-qwen15-contrast-ties-pooled.json

Prints a table and writes a JSON report (run names only, no paths).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.compare_planted import accuracies, by_trait, user_records
from langchain_fermi.evaluation.metrics import paired_bootstrap_ci
from langchain_fermi.evaluation.report import gap_share

METHOD = "fermi_rop"


def pool(
    runs: dict[str, dict[str, dict[str, float]]],
    *,
    method: str = METHOD,
    control: str | None = "opro",
    training: dict[str, dict[str, float]] | None = None,
    n: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Pool ``runs`` (name -> user id -> method -> accuracy) over the users they all finished.

    With ``training`` (name -> user id -> best training score of the run's optimization), also
    report what keeping, per user, the draw with the best *training* score would serve: an
    estimate of independent restarts selected on the user's own opinions (ties averaged).

    Raises:
        ValueError: no user is shared, or a user's profile or hidden-prompt accuracy differs
            between runs (they are not draws of the same users and splits).
    """
    names = list(runs)
    ids = sorted(set.intersection(*({i for i, r in runs[k].items() if method in r} for k in names)))
    if not ids:
        msg = f"the runs share no user with {method!r}"
        raise ValueError(msg)
    first = runs[names[0]]
    for k in names[1:]:
        for i in ids:
            for m in ("profile", "hidden_prompt"):
                if abs(runs[k][i][m] - first[i][m]) > 1e-9:
                    msg = f"user {i}: {m} differs between {names[0]} and {k}: not the same users"
                    raise ValueError(msg)
    profile = np.array([first[i]["profile"] for i in ids])
    gap = np.array([first[i]["hidden_prompt"] for i in ids]) - profile
    per_run = {k: np.array([runs[k][i][method] for i in ids]) for k in names}
    stacked = np.array(list(per_run.values()))
    pooled = stacked.mean(axis=0)
    spread = stacked.max(axis=0) - stacked.min(axis=0)

    def share_of(gain: np.ndarray, g: np.ndarray) -> dict[str, float] | None:
        return gap_share(list(gain), list(g), n_samples=n, seed=seed)

    def share(acc: np.ndarray) -> dict[str, float] | None:
        return share_of(acc - profile, gap)

    def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        ci = paired_bootstrap_ci(list(a), list(b), n_samples=n, seed=seed)
        return {"mean": ci.mean, "low": ci.low, "high": ci.high}

    out: dict[str, Any] = {
        "method": method,
        "runs": names,
        "users": len(ids),
        "profile": float(profile.mean()),
        "hidden_prompt": float((profile + gap).mean()),
        "per_run": {
            k: {"accuracy": float(v.mean()), "gap_recovered": share(v)} for k, v in per_run.items()
        },
        "pooled": {
            "accuracy": float(pooled.mean()),
            "gap_recovered": share(pooled),
            "minus_profile": paired(pooled, profile),
        },
        # how far one user's accuracy moves between draws (max - min over the runs)
        "draw_spread": {
            "mean": float(spread.mean()),
            "max": float(spread.max()),
            "users_moving_over_0.2": int((spread > 0.2 + 1e-9).sum()),
        },
        "by_trait": {
            t: {
                "users": int(mask.sum()),
                "profile": float(profile[mask].mean()),
                "accuracy": float(pooled[mask].mean()),
                "gap_recovered": share_of(pooled[mask] - profile[mask], gap[mask]),
            }
            for t, mask in _traits(ids).items()
        },
    }
    if training and all(i in training.get(k, {}) for k in names for i in ids):
        best = np.array([_best_by_training(i, names, runs, training, method) for i in ids])
        out["best_by_training"] = {
            "accuracy": float(best.mean()),
            "gap_recovered": share(best),
            "minus_pooled": paired(best, pooled),
        }
    with_control = [k for k in names if control and all(control in runs[k][i] for i in ids)]
    if control and with_control:
        ctrl = np.mean([[runs[k][i][control] for i in ids] for k in with_control], axis=0)
        out["pooled"][f"minus_{control}"] = paired(pooled, ctrl)
        out[control] = {
            "runs": with_control,
            "accuracy": float(ctrl.mean()),
            "gap_recovered": share(ctrl),
        }
    return out


def _best_by_training(
    uid: str,
    names: list[str],
    runs: dict[str, dict[str, dict[str, float]]],
    training: dict[str, dict[str, float]],
    method: str,
) -> float:
    """The held-out accuracy of the draw whose optimization scored best on training (ties: mean)."""
    top = max(training[k][uid] for k in names)
    chosen = [runs[k][uid][method] for k in names if training[k][uid] >= top - 1e-9]
    return float(np.mean(chosen))


def training_scores(users: list[dict[str, Any]], variant: str = "fermi") -> dict[str, float]:
    """Best training score of ``variant``'s optimization, by user id, from per-user records
    (users without it left out)."""
    out: dict[str, float] = {}
    for u in users:
        best = (u.get("optimization") or {}).get(variant, {}).get("best_score")
        if best is not None:
            out[u["user_id"]] = float(best)
    return out


def _traits(ids: list[str]) -> dict[str, np.ndarray]:
    """`by_trait`, as masks over ``ids``."""
    return {t: np.isin(ids, members) for t, members in by_trait(ids).items()}


def _share(g: dict[str, float] | None) -> str:
    return f"{g['recovered']:.0%} [{g['ci_low']:.0%}, {g['ci_high']:.0%}]" if g else "n/a"


def _ci(d: dict[str, float]) -> str:
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def render(r: dict[str, Any]) -> str:
    """The pooled report as a Markdown table and a line per paired difference."""
    lines = [
        f"{r['method']} over {len(r['runs'])} draw(s), {r['users']} users "
        f"(profile {r['profile']:.3f}, hidden prompt {r['hidden_prompt']:.3f})",
        "| draw | accuracy | gap recovered [95 % CI] |",
        "|---|---|---|",
    ]
    for k, v in r["per_run"].items():
        lines.append(f"| {k} | {v['accuracy']:.3f} | {_share(v['gap_recovered'])} |")
    p = r["pooled"]
    lines.append(
        f"| **mean of the draws** | {p['accuracy']:.3f} | **{_share(p['gap_recovered'])}** |"
    )
    for t, v in r["by_trait"].items():
        lines.append(
            f"| mean of the draws, {t} ({v['users']} users) | {v['accuracy']:.3f} "
            f"| {_share(v['gap_recovered'])} |"
        )
    lines.append(f"pooled − profile, paired: {_ci(p['minus_profile'])}")
    for key, value in p.items():
        if key.startswith("minus_") and key != "minus_profile":
            ctrl = key.removeprefix("minus_")
            lines.append(
                f"pooled − {ctrl} (mean of {len(r[ctrl]['runs'])} run(s)), paired: {_ci(value)}"
            )
    if b := r.get("best_by_training"):
        lines.append(
            f"per user, the draw with the best training score (restarts, post hoc): "
            f"{b['accuracy']:.3f}, {_share(b['gap_recovered'])} of the gap; − mean of the draws, "
            f"paired: {_ci(b['minus_pooled'])}"
        )
    s = r["draw_spread"]
    lines.append(
        f"one user's accuracy between draws (max − min): mean {s['mean']:.2f}, "
        f"largest {s['max']:.2f}; {s['users_moving_over_0.2']} of {r['users']} users move by more "
        "than 0.2"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders: draws of one setting")
    p.add_argument("--method", default=METHOD, help="the method pooled (default fermi_rop)")
    p.add_argument("--control", default="opro", help="a method compared with, paired")
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = p.parse_args(argv)
    records = {d.name: user_records(d) for d in args.runs}
    runs = {name: accuracies(users) for name, users in records.items()}
    training = {name: training_scores(users) for name, users in records.items()}
    try:
        report = pool(runs, method=args.method, control=args.control or None, training=training)
    except ValueError as e:
        p.error(str(e))
    print(render(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
