"""PNG plots of a report: accuracy by method with intervals, and the optimization curves.

matplotlib runs on the Agg backend (no display needed); it is the ``bench`` extra, so a
missing matplotlib skips the plots with a warning instead of failing the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from langchain_fermi.evaluation.config import LEARNED_METHODS, REFERENCE_METHODS
from langchain_fermi.evaluation.schema import BenchReport

__all__ = ["plot_accuracy", "plot_curves", "short_model", "write_plots"]

logger = logging.getLogger(__name__)

_LEARNED_COLOR = "#c0392b"
_BASELINE_COLOR = "#7f8c8d"
_REFERENCE_COLOR = "#2e86c1"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def short_model(model_id: str) -> str:
    """``LocalLlamaChatModel:smollm2:file.gguf:size`` -> ``smollm2``."""
    parts = model_id.split(":")
    return parts[1] if len(parts) > 1 and parts[1] else model_id


def plot_accuracy(report: BenchReport, path: Path) -> Path:
    """Bar chart of mean accuracy per method with the 95 % bootstrap interval as error bars."""
    plt = _pyplot()
    names = [m.method for m in report.methods]
    means = [m.accuracy for m in report.methods]
    err = [
        [m.accuracy - m.ci_low for m in report.methods],
        [m.ci_high - m.accuracy for m in report.methods],
    ]
    colors = [
        _LEARNED_COLOR
        if n in LEARNED_METHODS
        else _REFERENCE_COLOR
        if n in REFERENCE_METHODS or n == "hidden_prompt"
        else _BASELINE_COLOR
        for n in names
    ]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(names)), 4.0))
    ax.bar(names, means, yerr=err, capsize=4, color=colors)
    for i, m in enumerate(report.methods):  # above the error bar, so they do not overlap
        ax.text(i, m.ci_high + 0.01, f"{m.accuracy:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("accuracy (mean over users)")
    ax.set_ylim(0, min(1.05, max(m.ci_high for m in report.methods) + 0.1))
    ax.set_title(
        f"{report.dataset}: {report.n_users} users, target {short_model(report.target_model)}"
    )
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_curves(report: BenchReport, path: Path) -> Path | None:
    """Mean best score on the scoring opinions by iteration, one line per variant."""
    curves = {v: c for v, c in report.curves.items() if c}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for variant, curve in sorted(curves.items()):
        ax.plot(range(len(curve)), curve, marker="o", label=variant)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration (0: the profile prompt)")
    ax.set_ylabel("mean best score (optimization opinions)")
    ax.set_title(f"optimization curve, {report.n_users} users")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(report: BenchReport, out_dir: Path) -> list[Path]:
    """Write ``accuracy.png`` and ``curve.png`` (when there is a curve); [] without matplotlib."""
    try:
        _pyplot()
    except ImportError:
        logger.warning(
            "matplotlib is not installed: no plots (pip install 'langchain-fermi[bench]')"
        )
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_accuracy(report, out_dir / "accuracy.png")]
    curve = plot_curves(report, out_dir / "curve.png")
    if curve is not None:
        written.append(curve)
    return written
