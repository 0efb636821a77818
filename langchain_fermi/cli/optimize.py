"""``fermi optimize``: learn each user's prompts with Fermi and print the final memory.

Example:
    fermi optimize --users examples/data/users.json --user-id alice -K 2 --iterations 3 \\
        --checkpoint runs/fermi.sqlite --out runs/result.json

With ``--checkpoint``, an interrupted command resumes where it stopped when run again (each user
is one thread, its id the thread id; finished users are not recomputed). Results are saved to the
Fermi store (see ``fermi users``) unless ``--no-store``.

``--estimate`` prints each user's expected and upper-bound calls and tokens (and money with
``--price-per-1k-prompt`` / ``--price-per-1k-completion``) without calling any model; after a
run the same table shows the actual cost next to the estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from langchain_fermi.cli._common import (
    UsageError,
    add_command,
    add_json_argument,
    add_model_arguments,
    add_store_argument,
    build_model,
    chat_model,
    check_file,
    open_store,
    print_json,
    short,
)
from langchain_fermi.errors import UnknownUserError

__all__ = [
    "config_from_args",
    "estimates",
    "iterations_run",
    "register",
    "render_result",
    "run",
]

_TEXT_WIDTH = 100

# FermiConfig field -> (the args attribute, the option that sets it)
_CONFIG_OPTIONS = {
    "num_candidates": ("K", "-K"),
    "memory_size": ("L", "-L"),
    "iterations": ("iterations", "--iterations/-T"),
    "variant": ("variant", "--variant"),
    "seed": ("seed", "--seed"),
    "patience": ("patience", "--patience"),
    "max_target_calls": ("max_target_calls", "--max-target-calls"),
    "max_optimizer_calls": ("max_optimizer_calls", "--max-optimizer-calls"),
    "max_concurrency": ("max_concurrency", "--max-concurrency"),
    "bracket_fallback": ("bracket_fallback", "--bracket-fallback"),
    "prompt_form": ("prompt_form", "--prompt-form"),
    "meta_prompt_style": ("meta_prompt_style", "--meta-prompt-style"),
    "tie_break": ("tie_break", "--tie-break"),
    "restarts": ("restarts", "--restarts"),
}


def iterations_run(result: Any) -> int:
    """Optimization iterations a result went through: its curve also holds iteration 0, the
    initial (profile) prompt's score, so ``-T 2`` gives a curve of 3 points and 2 iterations."""
    return max(len(result.curve) - 1, 0)


def render_result(result: Any, *, full: bool = False) -> str:
    """The final memory as ``score  text`` lines, best first, under a one-line summary."""
    c = result.cost
    lines = [
        f"user {result.user_id}: best {result.memory[0].score:.3f} after "
        f"{iterations_run(result)} iteration(s), stopped by {result.stop_reason or '?'}; "
        f"{c.target_calls} target calls ({c.cache_hits} cached), {c.optimizer_calls} optimizer "
        f"calls, {c.total_tokens} tokens, {c.wall_seconds:.1f} s"
    ]
    if result.searches:
        scores = ", ".join(f"{s.best_served.score:.3f}" for s in result.searches)
        lines[0] += f"; kept restart {result.restart} of {len(result.searches)} (best: {scores})"
    for p in result.memory:
        text = " ".join(p.text.split()) if full else short(p.text, _TEXT_WIDTH)
        lines.append(f"  {p.score:.3f}  {text}")
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> Any:
    """A `FermiConfig` from the command's options (paper defaults for those not given).

    Raises:
        UsageError: A value out of range, naming the option (e.g. ``argument -K: ...``).
    """
    from langchain_fermi.types import FermiConfig

    values = {field: getattr(args, attr) for field, (attr, _) in _CONFIG_OPTIONS.items()}
    flags = {field: flag for field, (_, flag) in _CONFIG_OPTIONS.items()}
    return build_model(FermiConfig, values, flags)


def _select_users(users: list[Any], ids: list[str] | None, path: Path) -> list[Any]:
    if not users:
        msg = f"{path}: holds no user"
        raise ValueError(msg)
    if not ids:
        return users
    by_id = {u.user_id: u for u in users}
    missing = [i for i in ids if i not in by_id]
    if missing:
        some = ", ".join(list(by_id)[:5]) + (", ..." if len(by_id) > 5 else "")
        msg = f"no user {missing[0]!r} in {path} (it has {len(users)} users: {some})"
        raise UnknownUserError(msg)
    return [by_id[i] for i in dict.fromkeys(ids)]


def _price(value: float | None, flag: str) -> float | None:
    if value is not None and value < 0:
        msg = f"argument {flag}: must be >= 0, got {value}"
        raise UsageError(msg)
    return value


def estimates(
    users: list[Any], config: Any, target: Any, optimizer: Any, prices: tuple[Any, Any]
) -> dict[str, Any]:
    """Each user's `CostEstimate` (by user id) at (prompt, completion) prices per 1k tokens;
    no model is called."""
    from langchain_fermi.graph.estimate import estimate_cost

    prompt, completion = prices
    return {
        u.user_id: estimate_cost(
            u,
            config,
            target=target,
            optimizer=optimizer,
            price_per_1k_prompt=prompt,
            price_per_1k_completion=completion,
        )
        for u in users
    }


def run(args: argparse.Namespace) -> int:
    """Optimize the selected users one after the other, or ``--concurrency`` of them at once
    (``--engine ray`` across a Ray cluster), or only estimate (``--estimate``)."""
    from langchain_fermi.data import load_users
    from langchain_fermi.graph import optimize_user
    from langchain_fermi.scoring import ScoreCache

    config = config_from_args(args)  # usage errors before any file is read
    prices = (
        _price(args.price_per_1k_prompt, "--price-per-1k-prompt"),
        _price(args.price_per_1k_completion, "--price-per-1k-completion"),
    )
    users_file = check_file(args.users, "users file")
    users = _select_users(load_users(users_file), args.user_id, users_file)
    target = chat_model(args.model, "--model", role="target", temperature=config.target_temperature)
    optimizer = chat_model(
        args.optimizer_model,
        "--optimizer-model",
        role="optimizer",
        temperature=config.optimizer_temperature,
    )
    costs = estimates(users, config, target, optimizer, prices)
    if args.estimate:
        if args.json:
            print_json([est.summary() for est in costs.values()])
        else:
            print("\n\n".join(est.report() for est in costs.values()))
        return 0
    cache = ScoreCache(args.cache) if args.cache is not None else None
    store = None if args.no_store else open_store(args, must_exist=False)
    say = sys.stderr if args.json else sys.stdout  # with --json, stdout is only the JSON
    failed = False
    if args.concurrency < 1:
        msg = f"argument --concurrency: must be >= 1, got {args.concurrency}"
        raise UsageError(msg)
    if args.concurrency > 1 or args.engine == "ray":  # many users at once (docs/SCALE.md)
        from langchain_fermi.scale.cli import run_batch

        batch = run_batch(
            args, users, (target, optimizer), config, store=store, cache=cache, out=say
        )
        results = [o.result for o in batch.outcomes if o.result is not None]
        failed = bool(batch.failed)
    else:
        models = (target, optimizer)
        results = _one_by_one(args, users, models, config, costs, cache, store, say, optimize_user)
    payload = [r.model_dump(mode="json") for r in results]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {len(results)} result(s) to {args.out}", file=say)
    if args.json:
        print_json(payload)
    return 1 if failed else 0


def _one_by_one(
    args: argparse.Namespace,
    users: list[Any],
    models: tuple[Any, Any],
    config: Any,
    costs: dict[str, Any],
    cache: Any,
    store: Any,
    say: Any,
    optimize_user: Any,
) -> list[Any]:
    """The users one after the other, each with its progress bar and cost report."""
    from tqdm.auto import tqdm

    target, optimizer = models
    progress = not args.quiet
    results = []
    for user in tqdm(users, desc="users", unit="user", disable=not progress or len(users) < 2):
        result = optimize_user(
            user,
            target,
            optimizer,
            config=config,
            checkpointer=args.checkpoint,
            cache=cache,
            progress=progress,
        )
        results.append(result)
        print(render_result(result, full=args.full), file=say, flush=True)
        print(costs[user.user_id].report(result.cost), file=say, flush=True)
        if store is not None:
            generation = store.save_result(result, user)
            print(f"  saved as generation {generation} in the Fermi store", file=say, flush=True)
    return results


def register(subparsers: Any) -> None:
    """Add ``fermi optimize`` to the ``fermi`` command."""
    p = add_command(
        subparsers, "optimize", run, help="learn users' prompts with Fermi", description=__doc__
    )
    p.add_argument("--users", type=Path, required=True, help="users file (JSON, JSONL or CSV)")
    p.add_argument(
        "--user-id", nargs="+", default=None, metavar="ID", help="only these users (default: all)"
    )
    add_model_arguments(p)
    p.add_argument("--iterations", "-T", type=int, default=None, help="T (default 10)")
    p.add_argument("-K", type=int, default=None, help="new prompts per iteration (default 4)")
    p.add_argument("-L", type=int, default=None, help="prompts kept in memory (default 5)")
    p.add_argument("--variant", choices=["fermi", "opro"], default=None, help="default fermi")
    p.add_argument("--seed", type=int, default=None, help="seed of the scoring/demo split")
    p.add_argument("--patience", type=int, default=None, help="stop after N stalled iterations")
    p.add_argument("--max-target-calls", type=int, default=None, help="budget per user")
    p.add_argument("--max-optimizer-calls", type=int, default=None, help="budget per user")
    p.add_argument("--max-concurrency", type=int, default=None, help="parallel model calls")
    p.add_argument(
        "--bracket-fallback",
        choices=["drop", "reply"],
        default=None,
        help="optimizer replies without [...]: drop them (default) or use the whole reply",
    )
    p.add_argument(
        "--prompt-form",
        choices=["addendum", "full"],
        default=None,
        help="addendum (default): the optimizer writes a paragraph added to the profile prompt; "
        "full: a whole new prompt (the paper's form)",
    )
    p.add_argument(
        "--meta-prompt-style",
        choices=["figure8", "contrast"],
        default=None,
        help="Fermi's optimizer prompt: figure8 (default, the paper's layout) or contrast (the "
        "best description's mis-aligned answers first; addendum form only)",
    )
    p.add_argument(
        "--tie-break",
        choices=["order", "likelihood"],
        default=None,
        help="which of two equal scores ranks first in memory: order (default, the earlier "
        "scored) or likelihood (the higher mean probability of the user's options)",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=None,
        metavar="N",
        help="independent searches per user, the best on the user's opinions kept (default 1); "
        "N times the calls, steadier prompts from a small optimizer",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="SQLite checkpoint file, or a postgresql:// URL (--engine ray): makes the run "
        "resumable (one thread per user)",
    )
    p.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="users optimized at once"
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="ray: spread the users over a Ray cluster (pip install 'langchain-fermi[scale]')",
    )
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS)")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="SQLite score cache (default: <checkpoint>.scores.sqlite with --checkpoint)",
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="print the expected and upper-bound calls, tokens (and money) per user; run nothing",
    )
    p.add_argument(
        "--price-per-1k-prompt", type=float, default=None, metavar="PRICE", help="for the estimate"
    )
    p.add_argument(
        "--price-per-1k-completion",
        type=float,
        default=None,
        metavar="PRICE",
        help="for the estimate",
    )
    p.add_argument("--out", type=Path, default=None, help="write the results as a JSON list")
    add_store_argument(p, "Fermi store to save the prompts in (default: as `fermi users`)")
    p.add_argument("--no-store", action="store_true", help="do not save to the Fermi store")
    p.add_argument("--full", action="store_true", help="print whole prompts")
    add_json_argument(p, "the results (as --out writes them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(on_interrupt="with --checkpoint, rerun the same command to resume")
