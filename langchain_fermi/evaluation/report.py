"""Aggregate per-user results into the report: accuracy with bootstrap intervals, costs, curves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from langchain_fermi.evaluation.config import LEARNED_METHODS, REFERENCE_METHODS, BenchConfig
from langchain_fermi.evaluation.costs import ratio
from langchain_fermi.evaluation.meter import LatencyProbe
from langchain_fermi.evaluation.metrics import bootstrap_ci, mean_curve, paired_bootstrap_ci
from langchain_fermi.evaluation.planted import PlantedSet
from langchain_fermi.evaluation.schema import (
    BenchReport,
    MethodCostSummary,
    MethodSummary,
    UserResult,
)
from langchain_fermi.evaluation.signal import SignalCheck
from langchain_fermi.types import Cost

__all__ = ["REFERENCE_METHOD", "build_report", "format_table", "gap_share", "user_accuracy"]

REFERENCE_METHOD = "fermi_rop"
"""Differences are reported as this method minus each other method, paired by user."""


def user_accuracy(result: UserResult, method: str) -> float:
    """A user's accuracy for ``method``; the random baseline counts its expected accuracy."""
    r = result.methods[method]
    if method == "random" and r.expected_accuracy is not None:
        return r.expected_accuracy
    return r.accuracy


def _summary(
    method: str, results: Sequence[UserResult], config: BenchConfig, reference: list[float] | None
) -> MethodSummary:
    accs = [user_accuracy(r, method) for r in results]
    ci = bootstrap_ci(accs, n_samples=config.bootstrap_samples, seed=config.seed)
    n_q = sum(len(r.methods[method].correct) for r in results)
    if method == "random":
        micro = sum(
            (r.methods[method].expected_accuracy or 0.0) * len(r.methods[method].correct)
            for r in results
        ) / max(n_q, 1)
    else:
        micro = sum(sum(r.methods[method].correct) for r in results) / max(n_q, 1)
    diff = None
    if reference is not None and method != REFERENCE_METHOD:
        d = paired_bootstrap_ci(
            reference, accs, n_samples=config.bootstrap_samples, seed=config.seed
        )
        diff = {"mean": d.mean, "ci_low": d.low, "ci_high": d.high}
    return MethodSummary(
        method=method,
        accuracy=ci.mean,
        ci_low=ci.low,
        ci_high=ci.high,
        n_users=len(results),
        n_questions=n_q,
        micro_accuracy=micro,
        diff_vs_fermi_rop=diff,
    )


def _optimization_summary(results: Sequence[UserResult], variant: str) -> dict[str, Any]:
    """How the optimizations went: prompts scored, final best score, why they stopped, what the
    guard dropped and served, and the optimizer's tokens per candidate."""
    recs = [r.optimization[variant] for r in results if variant in r.optimization]
    dropped: Counter[str] = Counter()
    for r in recs:
        dropped.update(r.dropped)
    per_candidate = [
        r.optimizer_tokens_per_candidate
        for r in recs
        if r.optimizer_tokens_per_candidate is not None
    ]
    return {
        "users": len(recs),
        "mean_prompts_scored": sum(r.prompts_scored for r in recs) / len(recs),
        "mean_best_score": sum(r.best_score for r in recs) / len(recs),
        "users_improved": sum(1 for r in recs if r.curve and r.curve[-1] > r.curve[0]),
        "stop_reasons": dict(Counter(r.stop_reason for r in recs)),
        "guard": all(r.guard for r in recs),
        "fallback_users": sum(1 for r in recs if r.fallback),
        "degenerate_served": sum(r.degenerate_served for r in recs),
        "dropped": dict(dropped),
        "optimizer_tokens_per_candidate": (
            sum(per_candidate) / len(per_candidate) if per_candidate else None
        ),
    }


def gap_share(
    gain: Sequence[float], gap: Sequence[float], *, n_samples: int, seed: int
) -> dict[str, float] | None:
    """The share of the mean ``gap`` that the mean ``gain`` covers (one value of each per
    user), with a user-bootstrap 95 % interval; ``None`` when the mean gap is not positive."""
    gains, gaps = np.asarray(gain, dtype=float), np.asarray(gap, dtype=float)
    if not len(gains) or gaps.mean() <= 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(gains), size=(n_samples, len(gains)))
    ratios = gains[idx].mean(axis=1) / np.maximum(gaps[idx].mean(axis=1), 1e-9)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return {
        "recovered": float(gains.mean() / gaps.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "gap": float(gaps.mean()),
    }


def gap_recovery(
    results: Sequence[UserResult], method: str, *, n_samples: int, seed: int
) -> dict[str, float] | None:
    """Planted users: the share of the held-out gap between the profile prompt and the hidden
    prompt that ``method`` recovers (ratio of the mean gains), with a user bootstrap interval."""
    if not results or not all(
        m in r.methods for r in results for m in (method, "profile", "hidden_prompt")
    ):
        return None
    gain = [user_accuracy(r, method) - user_accuracy(r, "profile") for r in results]
    gap = [user_accuracy(r, "hidden_prompt") - user_accuracy(r, "profile") for r in results]
    return gap_share(gain, gap, n_samples=n_samples, seed=seed)


def _sum(costs: Sequence[Cost]) -> Cost:
    total = Cost()
    for c in costs:
        total = total + c
    return total


def _cost_summary(
    method: str, results: Sequence[UserResult], methods: Sequence[str]
) -> MethodCostSummary:
    """One method's cost: its queries plus its optimization, which the run's other methods
    on the same optimization (``shares``) report too."""
    actual = _sum([r.methods[method].cost for r in results])
    naive = _sum([r.methods[method].naive for r in results])
    variant = LEARNED_METHODS.get(method)
    shares: list[str] = []
    if variant is not None:
        actual = actual + _sum([r.optimization[variant].cost for r in results])
        naive = naive + _sum([r.optimization[variant].naive for r in results])
        shares = sorted(m for m in methods if LEARNED_METHODS.get(m) == variant and m != method)
    return _cost_row(method, actual, naive, shares)


def _cost_row(method: str, actual: Cost, naive: Cost, shares: list[str]) -> MethodCostSummary:
    return MethodCostSummary(
        method=method,
        actual=actual,
        naive=naive,
        call_ratio=ratio(
            naive.target_calls + naive.optimizer_calls, actual.target_calls + actual.optimizer_calls
        ),
        token_ratio=ratio(naive.total_tokens, actual.total_tokens),
        shares_optimization_with=shares,
    )


def _total_cost(results: Sequence[UserResult], methods: Sequence[str]) -> MethodCostSummary:
    """The whole run: every method's test queries, each variant's optimization counted once."""
    actual = _sum([r.methods[m].cost for r in results for m in methods])
    naive = _sum([r.methods[m].naive for r in results for m in methods])
    for r in results:
        for rec in r.optimization.values():
            actual, naive = actual + rec.cost, naive + rec.naive
    return _cost_row("total", actual, naive, [])


def build_report(
    config: BenchConfig,
    results: Sequence[UserResult],
    *,
    target_model: str,
    optimizer_model: str,
    wall_seconds: float = 0.0,
    failed_users: Sequence[str] = (),
    probe: LatencyProbe | None = None,
    signal: SignalCheck | None = None,
    planted: PlantedSet | None = None,
) -> BenchReport:
    """The run's report from its per-user results (methods every user has, in report order)."""
    if not results:
        msg = "build_report needs at least one user result"
        raise ValueError(msg)
    methods = [m for m in config.methods if all(m in r.methods for r in results)]
    reference = (
        [user_accuracy(r, REFERENCE_METHOD) for r in results]
        if REFERENCE_METHOD in methods
        else None
    )
    variants = sorted({v for r in results for v in r.optimization})
    curves = {
        v: mean_curve([r.optimization[v].curve for r in results if v in r.optimization])
        for v in variants
    }
    optimization = {v: _optimization_summary(results, v) for v in variants}
    draw = (
        sum(r.methods["random"].accuracy for r in results) / len(results)
        if "random" in methods
        else None
    )
    costs = [
        _cost_summary(m, results, methods)
        for m in methods
        if m != "random" and m not in REFERENCE_METHODS  # no model call
    ]
    costs.append(_total_cost(results, methods))
    if probe is not None:
        for c in costs:
            c.naive_target_seconds = c.naive.target_calls * probe.naive
    return BenchReport(
        run_name=config.run_name,
        dataset=config.dataset,
        config=config.model_dump(mode="json", by_alias=False),
        target_model=target_model,
        optimizer_model=optimizer_model,
        n_users=len(results),
        methods=[_summary(m, results, config, reference) for m in methods],
        random_draw_accuracy=draw,
        costs=costs,
        curves=curves,
        optimization=optimization,
        leak_free=all(r.leak_check.ok for r in results),
        users=list(results),
        wall_seconds=wall_seconds,
        naive_call_seconds=probe.naive if probe else None,
        scoring_call_seconds=probe.scored if probe else None,
        probe_pairs=probe.pairs if probe else 0,
        failed_users=list(failed_users),
        signal=signal.model_dump() if signal is not None else None,
        planted=_planted_summary(planted, results),
        gap_recovery={
            m: g
            for m in methods
            if m not in ("profile", "hidden_prompt", "random")
            and (
                g := gap_recovery(results, m, n_samples=config.bootstrap_samples, seed=config.seed)
            )
            is not None
        },
    )


def _planted_summary(
    planted: PlantedSet | None, results: Sequence[UserResult]
) -> dict[str, Any] | None:
    """The planting filter's counts, and each evaluated planted user's rates."""
    if planted is None:
        return None
    evaluated = {r.user_id for r in results}
    users = [
        {
            "user_id": c.user_id,
            "trait": c.trait,
            "flip_rate": c.flip_rate,
            "paraphrase_agreement": c.paraphrase_agreement,
            "other_agreement": c.other_agreement,
        }
        for c in planted.kept
        if c.user_id in evaluated
    ]
    return {**planted.summary(), "users": users}


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}x"


def _has_reference(report: BenchReport) -> bool:
    return any(m.method == REFERENCE_METHOD for m in report.methods)


def _head(report: BenchReport) -> list[str]:
    """The signal check's verdict, and for planted users what the filter kept."""
    lines: list[str] = []
    if report.signal:
        lines += [f"signal check: {report.signal['verdict']}", ""]
    if report.planted:
        p = report.planted
        lines += [
            "planted users (the offline proof that the loop optimizes, not a claim about people): "
            f"{p['kept']} kept of {p['tried']} tried; dropped {p['dropped_low_flips']} "
            f"(flips < {p['flip_min']:.0%}) and {p['dropped_no_meaning']} (a paraphrase agrees "
            f"< {p['margin_min']:.2f} more than another person); kept: mean flip rate "
            f"{p['mean_flip_rate_kept'] or 0:.2f}, paraphrase agreement "
            f"{p['mean_paraphrase_agreement_kept'] or 0:.2f} vs other "
            f"{p['mean_other_agreement_kept'] or 0:.2f}",
            "",
        ]
    return lines


def _tail(report: BenchReport) -> list[str]:
    """Gap recovery (planted), the guard's counts and the optimizer's tokens per candidate."""
    lines: list[str] = []
    for m, g in report.gap_recovery.items():
        lines.append(
            f"{m} recovers {g['recovered']:.0%} [{g['ci_low']:.0%}, {g['ci_high']:.0%}] of the "
            f"held-out gap between the profile and the hidden prompt ({g['gap']:.3f})"
        )
    for v, o in report.optimization.items():
        if "fallback_users" not in o:
            continue
        per = o.get("optimizer_tokens_per_candidate")
        lines.append(
            f"  {v}: guard {'on' if o['guard'] else 'off'}; "
            f"{o['fallback_users']}/{o['users']} users fall back to the profile prompt; "
            f"degenerate prompts served: {o['degenerate_served']}; dropped "
            + (", ".join(f"{k} {n}" for k, n in sorted(o["dropped"].items()) if n) or "none")
            + (f"; optimizer tokens per candidate {per:.0f}" if per else "")
        )
    return lines


def format_table(report: BenchReport) -> str:
    """The report as two plain-text tables (accuracy, then cost), for the terminal and READMEs."""
    lines = [
        f"run {report.run_name}: {report.dataset}, {report.n_users} users, "
        f"target {report.target_model}, optimizer {report.optimizer_model or '-'}",
        "",
        *_head(report),
        f"{'method':<18} {'accuracy':>8}  {'95% CI':<15} "
        + (f"{REFERENCE_METHOD} - method [95% CI]" if _has_reference(report) else ""),
    ]
    for m in report.methods:
        d = m.diff_vs_fermi_rop
        diff = f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d else ""
        name = f"{m.method}*" if m.method in REFERENCE_METHODS else m.method
        lines.append(
            f"{name:<18} {m.accuracy:>8.3f}  [{m.ci_low:.3f}, {m.ci_high:.3f}]  {diff}".rstrip()
        )
    if any(m.method in REFERENCE_METHODS for m in report.methods):
        lines.append(
            "(* reference rows: other respondents' answers, no model; never given to Fermi)"
        )
    if report.random_draw_accuracy is not None:
        lines.append(
            f"(random: expected accuracy; one seeded draw gave {report.random_draw_accuracy:.3f})"
        )
    lines += [
        "",
        f"{'cost':<15} {'target':>7} {'optim.':>6} {'tokens':>9} {'wall s':>7} | "
        f"{'naive calls':>11} {'naive tokens':>12} {'naive s':>8} | {'calls':>6} {'tokens':>6}",
    ]
    for c in report.costs:
        a, n = c.actual, c.naive
        naive_s = "-" if c.naive_target_seconds is None else f"{c.naive_target_seconds:.0f}"
        lines.append(
            f"{c.method:<15} {a.target_calls:>7} {a.optimizer_calls:>6} {a.total_tokens:>9} "
            f"{a.wall_seconds:>7.0f} | {n.target_calls + n.optimizer_calls:>11} "
            f"{n.total_tokens:>12} {naive_s:>8} | "
            f"{_fmt_ratio(c.call_ratio):>6} {_fmt_ratio(c.token_ratio):>6}"
        )
    lines.append(
        "(ratios: naive / actual; fermi_best and fermi_rop share one optimization; naive s: "
        "naive target calls x measured time of one plain chat call, optimizer time not included)"
    )
    if report.naive_call_seconds is not None and report.scoring_call_seconds is not None:
        lines.append(
            f"time per target call on the same {report.probe_pairs} pairs: naive chat completion "
            f"{report.naive_call_seconds * 1000:.0f} ms, our scoring (no cache) "
            f"{report.scoring_call_seconds * 1000:.0f} ms"
        )
    for v, curve in report.curves.items():
        lines.append(f"mean best score by iteration, {v}: " + " ".join(f"{x:.3f}" for x in curve))
        o = report.optimization.get(v)
        if o:
            lines.append(
                f"  {v}: {o['mean_prompts_scored']:.1f} distinct prompts scored per user, "
                f"best prompt beat the profile prompt for {o['users_improved']}/{o['users']} users"
            )
    lines += _tail(report)
    lines.append(f"leak check: {'passed' if report.leak_free else 'FAILED'}")
    if report.failed_users:
        lines.append(f"failed users (rerun to retry): {', '.join(report.failed_users)}")
    return "\n".join(lines)
