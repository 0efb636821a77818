"""Markdown tables from a run's ``report.json`` for its README (numbers only; the reading is
written by hand).

    python -m benchmarks.report_tables benchmarks/results/planted-qwen15
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REFERENCES = {"ref_majority", "ref_group_majority", "ref_knn"}
TRAIT_METHODS = (
    "profile", "few_shot_bm25", "opro", "fermi_rop", "fermi_rop_paper", "hidden_prompt"
)  # fmt: skip


def _ci(m: dict[str, Any]) -> str:
    return f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def accuracy_table(report: dict[str, Any]) -> str:
    """Methods with accuracy, interval and the paired difference against Fermi+RoP."""
    rows = ["| method | accuracy | 95 % CI (users) | fermi_rop − method, paired [95 % CI] |"]
    rows.append("|---|---|---|---|")
    for m in report["methods"]:
        d = m.get("diff_vs_fermi_rop")
        diff = f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d else ""
        name = m["method"] + (" (reference)" if m["method"] in REFERENCES else "")
        name += " (expected)" if m["method"] == "random" else ""
        rows.append(f"| {name} | {m['accuracy']:.3f} | {_ci(m)} | {diff} |")
    return "\n".join(rows)


def planted_table(report: dict[str, Any]) -> str:
    """Each planted user's trait and rates."""
    p = report.get("planted")
    if not p:
        return ""
    rows = ["| user | trait | flips vs profile | paraphrase agrees | other agrees |"]
    rows.append("|---|---|---|---|---|")
    for u in p["users"]:
        rows.append(
            f"| {u['user_id']} | {u['trait']} | {u['flip_rate']:.2f} | "
            f"{u['paraphrase_agreement']:.2f} | {u['other_agreement']:.2f} |"
        )
    return "\n".join(rows)


def trait_table(run_dir: Path, methods: tuple[str, ...] = TRAIT_METHODS) -> str:
    """Planted runs: mean held-out accuracy per hidden trait, and the share of the gap between
    the profile and the hidden prompt that Fermi+RoP recovers (ratio of mean gains)."""
    by_trait: dict[str, list[dict[str, float]]] = {}
    for f in sorted((run_dir / "users").glob("*.json")):
        user = json.loads(f.read_text(encoding="utf-8"))
        trait = user["user_id"].rsplit("-", 1)[-1]
        accs = {m: r["accuracy"] for m, r in user["methods"].items()}
        by_trait.setdefault(trait, []).append(accs)
    if not by_trait or not all("hidden_prompt" in a for us in by_trait.values() for a in us):
        return ""
    shown = [m for m in methods if all(m in a for us in by_trait.values() for a in us)]
    rows = ["| trait | users | " + " | ".join(shown) + " | fermi_rop: gap recovered |"]
    rows.append("|---|---|" + "---|" * (len(shown) + 1))
    for trait, users in sorted(by_trait.items()):
        mean = {m: sum(a[m] for a in users) / len(users) for m in shown}
        gap = mean["hidden_prompt"] - mean["profile"]
        rec = f"{(mean['fermi_rop'] - mean['profile']) / gap:.0%}" if gap > 0 else "n/a"
        cells = " | ".join(f"{mean[m]:.3f}" for m in shown)
        rows.append(f"| {trait} | {len(users)} | {cells} | {rec} |")
    return "\n".join(rows)


def restarts_table(report: dict[str, Any]) -> str:
    """Runs with restarts: per user, the Fermi search kept, each search's training score and the
    held-out accuracy of profile, OPRO, one search, all searches and the hidden prompt."""
    users = [u for u in report["users"] if u["optimization"].get("fermi", {}).get("search_scores")]
    if not users:
        return ""
    cols = [
        ("profile", "profile"),
        ("opro", "OPRO"),
        ("fermi_rop_first_search", "1 search"),
        ("fermi_rop", "restarts"),
        ("hidden_prompt", "hidden"),
    ]
    cols = [(m, name) for m, name in cols if all(m in u["methods"] for u in users)]
    rows = ["| user | kept search | training score of each search's best | "]
    rows[0] += " | ".join(name for _, name in cols) + " |"
    rows.append("|---|---|---|" + "---|" * len(cols))
    for u in sorted(users, key=lambda u: u["user_id"]):
        fermi = u["optimization"]["fermi"]
        scores = ", ".join(f"{s:.2f}" for s in fermi["search_scores"])
        cells = " | ".join(f"{u['methods'][m]['accuracy']:.2f}" for m, _ in cols)
        rows.append(f"| {u['user_id']} | {fermi.get('restart', 0)} | {scores} | {cells} |")
    return "\n".join(rows)


def guard_lines(report: dict[str, Any]) -> str:
    """Per optimization: the guard, fallbacks, degenerate served, dropped, tokens/candidate."""
    out = []
    for v, o in report.get("optimization", {}).items():
        if "fallback_users" not in o:
            continue
        dropped = ", ".join(f"{k} {n}" for k, n in sorted(o["dropped"].items()) if n) or "none"
        per = o.get("optimizer_tokens_per_candidate")
        out.append(
            f"* `{v}`: guard {'on' if o['guard'] else 'off'}; {o['fallback_users']}/{o['users']} "
            f"users fall back to the profile prompt; degenerate prompts served: "
            f"**{o['degenerate_served']}**; dropped before scoring: {dropped}; "
            f"{o['mean_prompts_scored']:.1f} prompts scored per user; training score of the "
            f"best served prompt {o['mean_best_score']:.3f}"
            + (f"; optimizer tokens per candidate {per:.0f}" if per else "")
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of the run folder given."""
    args = argv if argv is not None else sys.argv[1:]
    report = json.loads((Path(args[0]) / "report.json").read_text(encoding="utf-8"))
    if report.get("signal"):
        print(f"Signal check: {report['signal']['verdict']}\n")
    print(accuracy_table(report))
    for m, g in report.get("gap_recovery", {}).items():
        print(
            f"\n{m}: recovers {g['recovered']:.0%} [{g['ci_low']:.0%}, {g['ci_high']:.0%}] of the "
            f"held-out gap between the profile and the hidden prompt ({g['gap']:.3f})"
        )
    table = planted_table(report)
    if table:
        print("\n" + table)
    traits = trait_table(Path(args[0]))
    if traits:
        print("\n" + traits)
    restarts = restarts_table(report)
    if restarts:
        print("\n" + restarts)
    print("\n" + guard_lines(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
