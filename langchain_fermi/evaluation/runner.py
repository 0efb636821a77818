"""Run the benchmark: users in parallel, each saved as it finishes, resumable after a stop.

Layout of a run directory (``benchmarks/results/<run name>/``)::

    config.json          the settings and the fingerprint of those that change results
    users/<user_id>.json one `UserResult` per finished user (written atomically)
    cache/scores.sqlite  the shared score cache (git-ignored): a re-run of a half-done user is cheap
    report.json          the aggregated `BenchReport`
    accuracy.png, curve.png

A rerun with the same settings skips the users whose file exists; with different settings it
refuses (pass ``fresh=True`` to start over) rather than mix incompatible results.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from tqdm.auto import tqdm

from langchain_fermi.evaluation.config import LEARNED_METHODS, BenchConfig
from langchain_fermi.evaluation.meter import TestScorer, probe_latency
from langchain_fermi.evaluation.prepare import PreparedUsers, prepare_users
from langchain_fermi.evaluation.retrievers import CachedEmbedder
from langchain_fermi.evaluation.rundir import (
    check_run_dir,
    config_fingerprint,
    load_finished,
    save_user_result,
    write_atomic,
)
from langchain_fermi.evaluation.schema import BenchReport, UserResult
from langchain_fermi.evaluation.signal import SignalCheck, persona_sensitivity
from langchain_fermi.evaluation.userrun import BenchContext, TestLeakError, evaluate_user, top_up
from langchain_fermi.questions import profile_prompt
from langchain_fermi.scoring.calibration import resolve_calibration
from langchain_fermi.types import Opinion, UserProfile

if TYPE_CHECKING:
    from langchain_fermi.personalizer import FermiPersonalizer

__all__ = ["config_fingerprint", "load_finished", "run_benchmark", "save_user_result"]

logger = logging.getLogger(__name__)


def _models(
    config: BenchConfig, target: BaseChatModel | None, optimizer: BaseChatModel | None
) -> tuple[BaseChatModel, BaseChatModel | None]:
    from langchain_fermi.models import get_chat_model

    if target is None:
        target = get_chat_model(
            config.target_model, role="target", temperature=config.target_temperature
        )
    if optimizer is None and config.variants():
        extra = {"max_tokens": config.optimizer_max_tokens} if config.optimizer_max_tokens else {}
        optimizer = get_chat_model(
            config.optimizer_model,
            role="optimizer",
            temperature=config.optimizer_temperature,
            **extra,
        )
    return target, optimizer


def _embedder(config: BenchConfig, embeddings: Embeddings | None) -> CachedEmbedder | None:
    if not {"few_shot_dense", "fermi_rop"} & set(config.methods):
        return None
    if embeddings is None:
        from langchain_fermi.models.embeddings import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings()
    return CachedEmbedder(embeddings)


def _served(
    config: BenchConfig, embedder: CachedEmbedder | None, folder: Path
) -> FermiPersonalizer | None:
    """The selection ``fermi ask`` makes, over a store in ``folder`` fed each user's result."""
    if "fermi_rop" not in config.methods or embedder is None:
        return None
    from langchain_fermi.personalizer import FermiPersonalizer
    from langchain_fermi.store import FermiStore

    store = FermiStore(folder, embeddings=embedder)
    return FermiPersonalizer(store, num_neighbors=config.num_neighbors)


def _calls(result: UserResult) -> int:
    total = sum(r.cost.target_calls + r.cost.optimizer_calls for r in result.optimization.values())
    return total + sum(m.cost.target_calls for m in result.methods.values())


def _run_users(
    todo: Sequence[UserProfile],
    ctx: BenchContext,
    on_done: Callable[[UserResult], None],
    spent: int,
) -> list[str]:
    """Evaluate users, ``ctx.config.jobs`` at a time; returns the ids that failed."""
    cfg = ctx.config
    failed: list[str] = []
    queue = list(todo)
    running: dict[Future[UserResult], str] = {}
    bar = tqdm(total=len(todo), desc="users", unit="user", disable=not ctx.show_progress)
    with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        while queue or running:
            capped = cfg.max_total_calls is not None and spent >= cfg.max_total_calls
            while queue and len(running) < cfg.jobs and not capped:
                user = queue.pop(0)
                running[pool.submit(evaluate_user, user, ctx)] = user.user_id
            if capped and queue:
                logger.warning(
                    "call cap %d reached (%d calls): %d user(s) not started",
                    cfg.max_total_calls,
                    spent,
                    len(queue),
                )
                queue.clear()
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                uid = running.pop(fut)
                try:
                    result = fut.result()
                except TestLeakError:
                    raise
                except Exception:
                    logger.exception("user %s failed; it will be retried on the next run", uid)
                    failed.append(uid)
                else:
                    spent += _calls(result)
                    on_done(result)
                    best = result.methods.get("fermi_rop") or next(iter(result.methods.values()))
                    bar.set_postfix(user=uid, acc=f"{best.accuracy:.2f}")
                bar.update(1)
    bar.close()
    return failed


def _probe_groups(
    users: Sequence[UserProfile], results: dict[str, UserResult]
) -> list[tuple[str, list[Opinion]]]:
    """Prompts the run scored (learned ones, else the profile prompt) with their opinions."""
    groups: list[tuple[str, list[Opinion]]] = []
    for user in users:
        result = results[user.user_id]
        allowed = set(result.optimize_ids)
        opinions = [o for o in user.opinions if o.id in allowed]
        texts = [m["text"] for rec in result.optimization.values() for m in rec.memory]
        groups += [(t, opinions) for t in texts or [profile_prompt(user)]]
    return groups


def _signal(config: BenchConfig, scorer: TestScorer, prepared: PreparedUsers) -> SignalCheck | None:
    """The target model's persona sensitivity on the dataset's questions (survey datasets)."""
    if not config.signal_check or prepared.population is None or config.dataset == "planted":
        return None
    check = persona_sensitivity(
        scorer.scorer, prepared.everyone, prepared.population, config.dataset
    )
    write_atomic(config.run_dir / "signal.json", check.model_dump_json(indent=1))
    return check


def _topped_up(
    done: dict[str, UserResult], users: Sequence[UserProfile], ctx: BenchContext
) -> dict[str, UserResult]:
    """Finished users, with any newly selected method added (`top_up`: a reference row, a
    baseline, or a learned method whose optimization the user lacks); users missing a learned
    method whose optimization they have are left to run again."""
    by_id = {u.user_id: u for u in users}
    out: dict[str, UserResult] = {}
    for uid, result in done.items():
        missing = [m for m in ctx.config.methods if m not in result.methods]
        if uid not in by_id or any(
            LEARNED_METHODS[m] in result.optimization for m in missing if m in LEARNED_METHODS
        ):
            continue
        if missing:
            result = top_up(by_id[uid], result, missing, ctx)
            save_user_result(ctx.config.run_dir / "users", result)
        out[uid] = result
    return out


def run_benchmark(
    config: BenchConfig,
    *,
    users: Sequence[UserProfile] | None = None,
    target: BaseChatModel | None = None,
    optimizer: BaseChatModel | None = None,
    embeddings: Embeddings | None = None,
    progress: bool = True,
    fresh: bool = False,
    console: Callable[[str], Any] | None = print,
) -> BenchReport:
    """Run (or resume) a benchmark and write its report, plots and per-user results.

    Args:
        config: The settings.
        users: The users to evaluate (the first ``max_users``); default: sampled from the
            dataset in ``config.data_dir`` / the shared data folder.
        target: The target model; default ``get_chat_model(config.target_model)``.
        optimizer: The optimizer model; default ``get_chat_model(config.optimizer_model)``.
        embeddings: For the dense retriever and the served store (Retrieval-of-Prompt);
            default `MiniLMEmbeddings`.
        progress: Show progress bars.
        fresh: Delete this run's earlier results and cache first.
        console: Where the summary table goes (``None``: nowhere).

    Returns:
        The report, also written to ``<run dir>/report.json``.
    """
    from langchain_fermi.evaluation.plots import write_plots
    from langchain_fermi.evaluation.report import build_report, format_table
    from langchain_fermi.models import model_id
    from langchain_fermi.scoring import ScoreCache

    start = time.perf_counter()
    target, optimizer = _models(config, target, optimizer)
    fingerprint = config_fingerprint(
        config, model_id(target), model_id(optimizer) if optimizer is not None else None
    )
    check_run_dir(config, fingerprint, fresh)
    cache = ScoreCache(config.run_dir / "cache" / "scores.sqlite")
    scorer = TestScorer(target, cache, calibration=resolve_calibration(config.calibration, target))
    prepared = prepare_users(config, users, scorer.scorer)
    users = prepared.users
    signal = _signal(config, scorer, prepared)
    embedder = _embedder(config, embeddings)
    # Users are served from a throwaway store: Fermi's row measures what `fermi ask` selects.
    served_dir = tempfile.TemporaryDirectory(prefix="fermi-bench-", ignore_cleanup_errors=True)
    ctx = BenchContext(
        config=config,
        target=target,
        optimizer=optimizer,
        scorer=scorer,
        cache=cache,
        embedder=embedder,
        fingerprint=fingerprint,
        show_progress=progress,
        served=_served(config, embedder, Path(served_dir.name)),
        planted=prepared.planted,
        references=prepared.population,
    )
    users_dir = config.run_dir / "users"
    done = _topped_up(load_finished(users_dir, fingerprint, ()), users, ctx)
    results = {u.user_id: done[u.user_id] for u in users if u.user_id in done}
    todo = [u for u in users if u.user_id not in done]
    if done:
        logger.info(
            "resuming %s: %d user(s) done, %d to go", config.run_name, len(results), len(todo)
        )

    def on_done(result: UserResult) -> None:
        save_user_result(users_dir, result)
        results[result.user_id] = result

    spent = sum(_calls(r) for r in results.values())
    try:
        failed = _run_users(todo, ctx, on_done, spent)
    finally:
        cache.close()
        served_dir.cleanup()
    ordered = [results[u.user_id] for u in users if u.user_id in results]
    if not ordered:
        msg = f"run {config.run_name!r}: no user finished ({len(todo)} attempted)"
        raise RuntimeError(msg)
    wall = time.perf_counter() - start
    finished = [u for u in users if u.user_id in results]
    probe = probe_latency(
        target, _probe_groups(finished, results), n=config.naive_probe, seed=config.seed
    )
    report = build_report(
        config,
        ordered,
        target_model=model_id(target),
        optimizer_model=model_id(optimizer) if optimizer is not None else "",
        wall_seconds=wall,
        failed_users=failed,
        probe=probe,
        signal=signal,
        planted=prepared.planted_set,
    )
    report.plots = [str(p.name) for p in write_plots(report, config.run_dir)]
    write_atomic(config.run_dir / "report.json", report.model_dump_json(indent=1))
    if console is not None:
        console(format_table(report))
    return report
