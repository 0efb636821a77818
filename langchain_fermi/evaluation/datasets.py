"""The benchmark's users: Pew ATP W92 respondents (OpinionQA) or countries (GlobalOpinionQA).

Data come from the shared evaluation folder (``../shared/data`` or ``$FERMI_DATA_DIR``, or
``--data-dir``) laid out as its README describes; nothing from it is ever written into results
except user ids and opinion ids.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path

from langchain_fermi.data import find_shared_data_dir, load_global_opinionqa, load_pew_atp
from langchain_fermi.evaluation.config import BenchConfig
from langchain_fermi.types import UserProfile

__all__ = ["load_bench_users", "load_dataset", "resolve_data_dir", "sample_users"]

logger = logging.getLogger(__name__)

W92_DIR = Path("pew_atp_w92")
W92_META = Path("opinionqa_meta") / "American_Trends_Panel_W92"
GLOBAL_FILE = Path("globalopinionqa") / "eval.json"


def resolve_data_dir(data_dir: Path | None) -> Path:
    """``data_dir`` if given, else the shared data folder; ``FileNotFoundError`` if none."""
    path = data_dir if data_dir is not None else find_shared_data_dir()
    if path is None or not Path(path).is_dir():
        msg = (
            f"evaluation data folder not found ({data_dir or '../shared/data'}): "
            "pass --data-dir or set FERMI_DATA_DIR"
        )
        raise FileNotFoundError(msg)
    return Path(path)


def sample_users(users: Sequence[UserProfile], n: int, *, seed: int) -> list[UserProfile]:
    """A seeded sample of ``n`` users, independent of the loader's order.

    The users are sorted by id and shuffled with ``seed``; the first ``n`` are taken, so a run
    with more users keeps the users of a smaller run with the same seed (and resumes them).
    """
    if n < 1:
        msg = f"n must be >= 1, got {n!r}"
        raise ValueError(msg)
    ordered = sorted(users, key=lambda u: u.user_id)
    random.Random(seed).shuffle(ordered)
    return ordered[:n]


def load_dataset(config: BenchConfig, *, min_opinions: int = 1) -> list[UserProfile]:
    """Every user of the dataset with at least ``min_opinions`` opinions: respondents of the
    Pew wave (also the sources of planted users) or GlobalOpinionQA's countries."""
    root = resolve_data_dir(config.data_dir)
    if config.dataset in ("opinionqa", "planted"):
        users = load_pew_atp(
            config.wave_dir or root / W92_DIR,
            config.wave_meta or root / W92_META,
            min_opinions=min_opinions,
        )
        for line in users.report.summary().splitlines():  # shown by `fermi bench`
            logger.warning("%s", line) if "left out" in line else logger.info("%s", line)
        return list(users)
    return list(load_global_opinionqa(root / GLOBAL_FILE, min_opinions=min_opinions))


def load_bench_users(
    config: BenchConfig, everyone: Sequence[UserProfile] | None = None, *, n: int | None = None
) -> list[UserProfile]:
    """The dataset's users with enough opinions for the split, a seeded sample of ``n``
    (default ``max_users``); ``everyone`` avoids loading the data again."""
    root = resolve_data_dir(config.data_dir) if everyone is None else Path(".")
    needed = config.n_optimize + config.n_test
    if everyone is None:
        users = load_dataset(config, min_opinions=needed)
    else:
        users = [u for u in everyone if len(u.opinions) >= needed]
    n = config.max_users if n is None else n
    if not users:
        msg = (
            f"no {config.dataset} user has {needed} opinions "
            f"(n_optimize={config.n_optimize} + n_test={config.n_test}) in {root}"
        )
        raise ValueError(msg)
    sample = sample_users(users, n, seed=config.seed)
    if len(sample) < n:
        logger.warning(
            "only %d %s users have >= %d opinions (asked for %d)",
            len(sample),
            config.dataset,
            needed,
            n,
        )
    return sample
