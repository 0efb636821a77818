"""``fermi users list|show|delete|export|import``: inspect and move the users in a Fermi store.

The store is ``--store PATH``, else ``$FERMI_STORE_PATH``, else ``./.fermi/chroma`` when it exists
(where ``fermi quickstart`` writes), else ``~/.local/share/langchain-fermi/chroma``. A Chroma
server is used instead when ``$FERMI_CHROMA_HOST`` (and ``$FERMI_CHROMA_PORT``) are set.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_fermi.cli._common import (
    EXIT_ERROR,
    add_command,
    add_json_argument,
    add_store_argument,
    error_line,
    open_store,
    print_json,
    read_text,
    require_user,
    short,
    store_where,
)

if TYPE_CHECKING:
    from langchain_fermi.store import FermiStore

__all__ = ["describe_users", "register"]


def describe_users(store: FermiStore, *, debug: bool = False) -> list[dict[str, Any]]:
    """One row per user (`UserSnapshot.describe`); a user that cannot be read gets an
    ``error`` row instead (and its traceback on stderr with ``debug``), so one damaged user
    never hides the others."""
    rows: list[dict[str, Any]] = []
    for uid in store.list_users():
        try:
            rows.append(store.snapshot(uid).describe())
        except Exception as e:  # any damage: report it and go on with the next user
            if debug:
                traceback.print_exc()
            rows.append({"user_id": uid, "error": error_line(e, hint=False)[1]})
    return rows


def _list(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = describe_users(store, debug=getattr(args, "debug", False))
    damaged = [r for r in rows if "error" in r]
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no users in the store{store_where(store)}")
    else:
        print(f"{'user':<24} {'opinions':>8} {'prompts':>7} {'best':>5}  model")
        for r in rows:
            if "error" in r:
                print(f"{r['user_id']:<24} DAMAGED: {r['error']}")
                continue
            best = f"{r['best_score']:.2f}" if r["best_score"] is not None else "-"
            print(
                f"{r['user_id']:<24} {r['opinions']:>8} {r['prompts']:>7} {best:>5}  "
                f"{r['model'] or '-'}"
            )
    if damaged:
        ids = ", ".join(r["user_id"] for r in damaged)
        print(
            f"fermi: error: {len(damaged)} user(s) cannot be read: {ids} (export the others, or "
            "`fermi users delete` the damaged ones and optimize or import them again)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return 0


def _show(args: argparse.Namespace) -> int:
    store = open_store(args)
    require_user(store, args.user_id)
    if args.json:
        print_json(store.export_user(args.user_id))
        return 0
    user = store.get_user(args.user_id)
    prompts = store.get_prompts(args.user_id)
    summary = store.get_summary(args.user_id) or {}
    print(f"user {user.user_id}")
    for k, v in user.attributes.items():
        print(f"  {k}: {v}")
    print(f"opinions: {len(user.opinions)}")
    if summary:
        curve = ", ".join(f"{x:.2f}" for x in summary.get("curve", []))
        print(f"optimized with {summary.get('model')} ({summary.get('variant')}): curve [{curve}]")
        if summary.get("stop_reason"):
            print(f"stopped: {summary['stop_reason']}")
    print(f"prompts: {len(prompts)} (best first)")
    for i, p in enumerate(prompts):
        text = " ".join(p.text.split()) if args.full else short(p.text, 160)
        print(f"  #{i} score {p.score:.2f}  it {p.iteration}  {p.variant}: {text}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    store = open_store(args)
    require_user(store, args.user_id)
    store.delete_user(args.user_id, purge=args.purge)
    how = " and purged the store (no byte of them left on disk)" if args.purge else ""
    print(f"deleted user {args.user_id}{how}{store_where(store)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    store = open_store(args)
    require_user(store, args.user_id)
    text = json.dumps(store.export_user(args.user_id), indent=2, ensure_ascii=False)
    if args.output is None or str(args.output) == "-":
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"exported user {args.user_id} to {args.output}", file=sys.stderr)
    return 0


def _dump_user_id(data: Any) -> str | None:
    user = data.get("user") if isinstance(data, dict) else None
    uid = user.get("user_id") if isinstance(user, dict) else None
    return uid if isinstance(uid, str) else None


def _import(args: argparse.Namespace) -> int:
    name = "stdin" if str(args.file) == "-" else str(args.file)
    raw = read_text(args.file, "user dump file")
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as e:
        msg = f"{name}: not JSON ({e}); expected a file written by `fermi users export`"
        raise ValueError(msg) from None
    store = open_store(args, must_exist=False)
    uid = _dump_user_id(data)
    try:
        exists = uid is not None and not args.replace and store.has_user(uid)
        if not exists:
            uid = store.import_user(data, replace=args.replace)
    except (ValueError, KeyError, TypeError) as e:
        msg = f"{name}: cannot import: {error_line(e)[1]}"
        raise ValueError(msg) from e
    if exists:
        msg = (
            f"user {uid!r} already exists{store_where(store)}: pass --replace to overwrite it, "
            f"or `fermi users delete {uid}` first"
        )
        raise ValueError(msg)
    print(f"imported user {uid}{store_where(store)}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``fermi users`` and its sub-commands to the ``fermi`` command."""
    parser = subparsers.add_parser(
        "users",
        help="list, show, delete, export or import stored users",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="users_command", required=True, metavar="COMMAND")

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = add_command(sub, name, func, help=help)
        add_store_argument(p)
        return p

    p = add("list", _list, "list the stored users")
    add_json_argument(p, "the users (a damaged user gets an 'error' entry)")
    p = add("show", _show, "show a user's profile and learned prompts")
    p.add_argument("user_id")
    p.add_argument("--full", action="store_true", help="do not shorten long prompts")
    add_json_argument(p, "the full export")
    p = add("delete", _delete, "delete everything stored for a user")
    p.add_argument("user_id")
    p.add_argument(
        "--purge",
        action="store_true",
        help="also erase their bytes from disk now (rewrites the store; a plain delete makes "
        "them invisible at once, their bytes go at the next purge)",
    )
    p = add("export", _export, "write a user (profile, opinions, prompts) as JSON")
    p.add_argument("user_id")
    p.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    p = add("import", _import, "load a user written by `fermi users export`")
    p.add_argument("file", help="JSON file, or - for stdin")
    p.add_argument("--replace", action="store_true", help="replace the user if it exists")
