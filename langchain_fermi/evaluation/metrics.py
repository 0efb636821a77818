"""Accuracy, the random baseline and seeded bootstrap confidence intervals.

The benchmark reports *macro* accuracy (each user's test accuracy, averaged over users), as the
paper does, so the confidence interval resamples users, not questions: users are the unit that
was sampled from the survey, and the questions of one user are not independent draws.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from langchain_fermi.types import Opinion

__all__ = [
    "ConfidenceInterval",
    "accuracy",
    "bootstrap_ci",
    "mean_curve",
    "paired_bootstrap_ci",
    "random_draws",
    "random_expected_accuracy",
]

DEFAULT_BOOTSTRAP_SAMPLES = 2000


class ConfidenceInterval(BaseModel):
    """A mean with its percentile-bootstrap interval.

    Example:
        >>> bootstrap_ci([0.5, 0.6, 0.7], seed=0)
        ConfidenceInterval(mean=0.6, low=0.5, high=0.7, n=3, level=0.95)
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95


def accuracy(correct: Sequence[bool | float]) -> float:
    """Fraction of correct answers; ``ValueError`` on an empty list (an accuracy of nothing)."""
    if not correct:
        msg = "accuracy of an empty list of answers is undefined"
        raise ValueError(msg)
    return float(sum(float(c) for c in correct) / len(correct))


def _resampled_means(values: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_samples, len(values)))
    return values[idx].mean(axis=1)


def bootstrap_ci(
    values: Sequence[float],
    *,
    level: float = 0.95,
    n_samples: int = DEFAULT_BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of the mean of ``values`` (one value per user).

    Seeded, so a report is reproducible. With one value, or all values equal, the interval
    collapses to the mean: there is no spread to resample.
    """
    if not values:
        msg = "bootstrap_ci needs at least one value, got none"
        raise ValueError(msg)
    if not 0.0 < level < 1.0:
        msg = f"level must be in (0, 1), got {level!r}"
        raise ValueError(msg)
    if n_samples < 1:
        msg = f"n_samples must be >= 1, got {n_samples!r}"
        raise ValueError(msg)
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) == 1 or np.all(arr == arr[0]):
        return ConfidenceInterval(mean=mean, low=mean, high=mean, n=len(arr), level=level)
    means = _resampled_means(arr, n_samples, seed)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # Guard against float noise putting the mean a hair outside a very tight interval.
    return ConfidenceInterval(
        mean=mean, low=min(float(low), mean), high=max(float(high), mean), n=len(arr), level=level
    )


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    level: float = 0.95,
    n_samples: int = DEFAULT_BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> ConfidenceInterval:
    """Interval of the mean per-user difference ``a - b`` (same users, same order).

    Pairing removes the between-user spread that both methods share, so a difference can be
    significant even when the two methods' own intervals overlap.
    """
    if len(a) != len(b):
        msg = f"paired values need the same length, got {len(a)} and {len(b)}"
        raise ValueError(msg)
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    return bootstrap_ci(diffs, level=level, n_samples=n_samples, seed=seed)


def random_expected_accuracy(opinions: Sequence[Opinion]) -> float:
    """Expected accuracy of a uniform random answer: the mean of ``1 / number of choices``."""
    if not opinions:
        msg = "random_expected_accuracy needs at least one opinion"
        raise ValueError(msg)
    return float(sum(1.0 / len(o.choices) for o in opinions) / len(opinions))


def random_draws(opinions: Sequence[Opinion], *, seed: int) -> list[int]:
    """One seeded uniform draw of an option index per opinion (the realised random baseline)."""
    rng = random.Random(seed)
    return [rng.randrange(len(o.choices)) for o in opinions]


def mean_curve(curves: Sequence[Sequence[float]]) -> list[float]:
    """Mean best-score-by-iteration over users, carrying a stopped user's last value forward.

    A user whose run stopped early (patience, budget) keeps its final best score for the later
    iterations, which is what it would report at that point; empty curves are ignored.
    """
    kept = [list(c) for c in curves if c]
    if not kept:
        return []
    length = max(len(c) for c in kept)
    padded = [c + [c[-1]] * (length - len(c)) for c in kept]
    return [float(v) for v in np.asarray(padded, dtype=float).mean(axis=0)]
