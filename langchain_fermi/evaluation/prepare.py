"""A run's users before any method runs: sampled respondents or countries with the population
they are compared with, or planted users with their hidden prompts.

Planting is deterministic (seeded traits and questions, greedy target, the run's score cache).
``planted.json`` in the run folder records every candidate tried (ids, trait names, rates and a
kept user's answer indices; no survey text), and a resumed run takes those candidates from it
without a model call, so resuming needs neither the planting time nor the score cache.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from langchain_fermi.evaluation.config import REFERENCE_METHODS, BenchConfig
from langchain_fermi.evaluation.planted import PlantedSet, plant_users
from langchain_fermi.evaluation.references import Population
from langchain_fermi.evaluation.rundir import write_atomic
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.types import UserProfile

__all__ = ["PreparedUsers", "prepare_users"]

logger = logging.getLogger(__name__)


@dataclass
class PreparedUsers:
    """The users to evaluate and what the methods and the report need besides them."""

    users: list[UserProfile]
    planted: dict[str, str] = field(default_factory=dict)
    """Hidden prompts by planted user id."""
    planted_set: PlantedSet | None = None
    everyone: list[UserProfile] = field(default_factory=list)
    """Every respondent (or country) of the dataset: the population's rows."""
    population: Population | None = None


def _wants_population(config: BenchConfig) -> bool:
    return config.dataset != "planted" and (
        any(m in REFERENCE_METHODS for m in config.methods) or config.signal_check
    )


def prepare_users(
    config: BenchConfig, users: Sequence[UserProfile] | None, scorer: AnswerScorer
) -> PreparedUsers:
    """Load, sample or plant the run's users (``users``: given instead of the dataset's).

    Args:
        config: the run's settings.
        users: the users to evaluate, or (planted) the respondents to plant from; ``None``
            reads the dataset.
        scorer: the target's scorer with the run's calibration and cache (planting answers).
    """
    from langchain_fermi.evaluation.datasets import load_bench_users, load_dataset

    everyone: list[UserProfile] = []
    if users is None and (config.dataset == "planted" or _wants_population(config)):
        everyone = load_dataset(config)
    if config.dataset == "planted":
        n = config.planted_candidates or 3 * config.max_users
        sources = list(users) if users is not None else load_bench_users(config, everyone, n=n)
        planted_users, hidden, planted_set = plant_users(
            sources,
            scorer,
            max_users=config.max_users,
            n_questions=config.n_optimize + config.n_test,
            flip_min=config.planted_flip_min,
            margin=config.planted_margin,
            attempts=config.planted_attempts,
            filter_questions=config.planted_filter_questions,
            seed=config.seed,
            known=(known := _read_planted(config.run_dir)),
        )
        _write_planted(config.run_dir, planted_set, known)
        summary = planted_set.summary()
        logger.warning(
            "planted users: %s kept of %s tried (%s dropped: %s too few flips, %s no meaning)",
            summary["kept"],
            summary["tried"],
            summary["dropped"],
            summary["dropped_low_flips"],
            summary["dropped_no_meaning"],
        )
        return PreparedUsers(planted_users, hidden, planted_set)
    chosen = list(users) if users is not None else load_bench_users(config, everyone)
    population = None
    if _wants_population(config):
        everyone = everyone or list(chosen)
        population = Population.from_users(everyone)
    return PreparedUsers(chosen[: config.max_users], everyone=everyone, population=population)


def _read_planted(run_dir: Path) -> PlantedSet | None:
    """The run's earlier planting (``planted.json``; the run dir's fingerprint already matched
    these settings), so a resumed run, even without its score cache, plants no one twice."""
    path = run_dir / "planted.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("summary", None)
        return PlantedSet.model_validate(data)
    except (ValueError, TypeError) as exc:  # unreadable: plant again (the cache makes it cheap)
        logger.warning("%s: not reused (%s)", path, exc)
        return None


def _write_planted(run_dir: Path, planted: PlantedSet, known: PlantedSet | None = None) -> None:
    """Record the planting; candidates an earlier, larger run tried and this one did not reach
    (a smaller ``--max-users``) are kept after this run's, so no recorded planting is lost."""
    planted = planted.keeping(known)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"summary": planted.summary(), **planted.model_dump(mode="json")}
    write_atomic(run_dir / "planted.json", json.dumps(data, indent=1) + "\n")
