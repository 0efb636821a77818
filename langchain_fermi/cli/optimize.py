"""``fermi optimize``: learn each user's prompts with Fermi and print the final memory.

Example:
    fermi optimize --users examples/data/users.json --user-id alice -K 2 --iterations 3 \\
        --checkpoint runs/fermi.sqlite --out runs/result.json

With ``--checkpoint``, an interrupted command resumes where it stopped when run again (each user
is one thread, its id the thread id; finished users are not recomputed). Results are saved to the
Fermi store (see ``fermi users``) unless ``--no-store``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from langchain_fermi.errors import UnknownUserError

__all__ = ["config_from_args", "register", "render_result", "run"]

_TEXT_WIDTH = 100


def _short(text: str, width: int = _TEXT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render_result(result: Any, *, full: bool = False) -> str:
    """The final memory as ``score  text`` lines, best first, under a one-line summary."""
    c = result.cost
    lines = [
        f"user {result.user_id}: best {result.memory[0].score:.3f} after {len(result.curve)} "
        f"iteration(s), stopped by {result.stop_reason or '?'}; {c.target_calls} target calls "
        f"({c.cache_hits} cached), {c.optimizer_calls} optimizer calls, "
        f"{c.total_tokens} tokens, {c.wall_seconds:.1f} s"
    ]
    for p in result.memory:
        text = " ".join(p.text.split()) if full else _short(p.text)
        lines.append(f"  {p.score:.3f}  {text}")
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> Any:
    """A `FermiConfig` from the command's options (paper defaults for those not given)."""
    from langchain_fermi.types import FermiConfig

    given = {
        "num_candidates": args.K,
        "memory_size": args.L,
        "iterations": args.iterations,
        "variant": args.variant,
        "seed": args.seed,
        "patience": args.patience,
        "max_target_calls": args.max_target_calls,
        "max_optimizer_calls": args.max_optimizer_calls,
        "max_concurrency": args.max_concurrency,
        "bracket_fallback": args.bracket_fallback,
    }
    return FermiConfig(**{k: v for k, v in given.items() if v is not None})


def _select_users(users: list[Any], ids: list[str] | None, path: Path) -> list[Any]:
    if not ids:
        return users
    by_id = {u.user_id: u for u in users}
    missing = [i for i in ids if i not in by_id]
    if missing:
        msg = f"no user {missing[0]!r} in {path} (it has {len(users)} users)"
        raise UnknownUserError(msg)
    return [by_id[i] for i in dict.fromkeys(ids)]


def _open_store(args: argparse.Namespace) -> Any:
    """The Fermi store to save results in, or None (``--no-store``, or no store module)."""
    if args.no_store:
        return None
    if importlib.util.find_spec("langchain_fermi.store") is None:
        if args.store is not None:
            print("fermi: the store module is not available; not saving", file=sys.stderr)
        return None
    from langchain_fermi.cli.users import open_store

    return open_store(args, must_exist=False)


def run(args: argparse.Namespace) -> int:
    """Optimize the selected users one after the other."""
    from tqdm.auto import tqdm

    from langchain_fermi.data import load_users
    from langchain_fermi.graph import optimize_user
    from langchain_fermi.models import get_chat_model
    from langchain_fermi.scoring import ScoreCache

    users = _select_users(load_users(args.users), args.user_id, args.users)
    config = config_from_args(args)
    target = get_chat_model(args.model, role="target", temperature=config.target_temperature)
    optimizer = get_chat_model(
        args.optimizer_model, role="optimizer", temperature=config.optimizer_temperature
    )
    cache = ScoreCache(args.cache) if args.cache is not None else None
    store = _open_store(args)
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
        print(render_result(result, full=args.full), flush=True)
        if store is not None:
            generation = store.save_result(result, user)
            print(f"  saved as generation {generation} in the Fermi store", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = [r.model_dump(mode="json") for r in results]
        args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {len(results)} result(s) to {args.out}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``fermi optimize`` to the ``fermi`` command."""
    p = subparsers.add_parser(
        "optimize",
        help="learn users' prompts with Fermi",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--users", type=Path, required=True, help="users file (JSON, JSONL or CSV)")
    p.add_argument(
        "--user-id", nargs="+", default=None, metavar="ID", help="only these users (default: all)"
    )
    p.add_argument(
        "--model", default=None, help="target model (default: $FERMI_TARGET_LLM or smollm2)"
    )
    p.add_argument(
        "--optimizer-model",
        default=None,
        help="optimizer model (default: $FERMI_OPTIMIZER_LLM or smollm2)",
    )
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
        "--checkpoint",
        type=Path,
        default=None,
        help="SQLite checkpoint file: makes the run resumable (one thread per user)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="SQLite score cache (default: <checkpoint>.scores.sqlite with --checkpoint)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the results as a JSON list")
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="Fermi store to save the prompts in (default: as `fermi users`)",
    )
    p.add_argument("--no-store", action="store_true", help="do not save to the Fermi store")
    p.add_argument("--full", action="store_true", help="print whole prompts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
