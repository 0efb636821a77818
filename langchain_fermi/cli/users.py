"""``fermi users list|show|delete|export|import``: inspect and move the users in a Fermi store.

The store is ``--store PATH``, else ``$FERMI_STORE_PATH``, else ``./.fermi/chroma`` when it exists
(where ``fermi quickstart`` writes), else ``~/.local/share/langchain-fermi/chroma``. A Chroma
server is used instead when ``$FERMI_CHROMA_HOST`` (and ``$FERMI_CHROMA_PORT``) are set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_fermi.store import FermiStore

__all__ = ["PROJECT_STORE", "add_store_argument", "open_store", "register", "resolve_store_path"]

PROJECT_STORE = Path(".fermi") / "chroma"
"""The project-local store, relative to the working directory."""


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--store PATH``."""
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="Chroma store folder (default: $FERMI_STORE_PATH, ./.fermi/chroma if it exists, "
        "else ~/.local/share/langchain-fermi/chroma; $FERMI_CHROMA_HOST for a server)",
    )


def resolve_store_path(store: Path | None) -> Path | None:
    """The store folder the CLI uses; None lets `FermiStore` read the environment."""
    if store is not None:
        return store
    if os.environ.get("FERMI_STORE_PATH") or os.environ.get("FERMI_CHROMA_HOST"):
        return None
    return PROJECT_STORE if PROJECT_STORE.is_dir() else None


def open_store(args: argparse.Namespace, *, must_exist: bool = True) -> FermiStore:
    """Open the store named by ``args.store`` (see `resolve_store_path`).

    Raises:
        FileNotFoundError: ``must_exist`` and an explicit ``--store`` folder does not exist
            (a typo should not silently create an empty store).
    """
    from langchain_fermi.store import FermiStore

    path = resolve_store_path(getattr(args, "store", None))
    if must_exist and path is not None and not path.is_dir():
        msg = f"no Fermi store at {path} (run `fermi quickstart` or `fermi optimize` first)"
        raise FileNotFoundError(msg)
    return FermiStore(path)


def _list(args: argparse.Namespace) -> int:
    store = open_store(args)
    ids = store.list_users()
    if not ids:
        print(f"no users in the store{_where(store)}")
        return 0
    print(f"{'user':<24} {'opinions':>8} {'prompts':>7} {'best':>5}  model")
    for uid in ids:
        info = store.snapshot(uid).describe()
        best = f"{info['best_score']:.2f}" if info["best_score"] is not None else "-"
        model = info["model"] or "-"
        print(f"{uid:<24} {info['opinions']:>8} {info['prompts']:>7} {best:>5}  {model}")
    return 0


def _where(store: FermiStore) -> str:
    return f" at {store.path}" if store.path is not None else ""


def _show(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.json:
        print(json.dumps(store.export_user(args.user_id), indent=2, ensure_ascii=False))
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
        text = " ".join(p.text.split())
        text = text if args.full or len(text) <= 160 else text[:157] + "..."
        print(f"  #{i} score {p.score:.2f}  it {p.iteration}  {p.variant}: {text}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    store = open_store(args)
    store.delete_user(args.user_id)
    print(f"deleted user {args.user_id}{_where(store)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    store = open_store(args)
    text = json.dumps(store.export_user(args.user_id), indent=2, ensure_ascii=False)
    if args.output is None or str(args.output) == "-":
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"exported user {args.user_id} to {args.output}", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    raw = sys.stdin.read() if str(args.file) == "-" else Path(args.file).read_text(encoding="utf-8")
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as e:
        msg = f"{args.file}: not JSON ({e})"
        raise ValueError(msg) from None
    store = open_store(args, must_exist=False)
    uid = store.import_user(data, replace=args.replace)
    print(f"imported user {uid}{_where(store)}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``fermi users`` and its sub-commands to the ``fermi`` command."""
    parser = subparsers.add_parser(
        "users", help="list, show, delete, export or import stored users", description=__doc__
    )
    sub = parser.add_subparsers(dest="users_command", required=True)

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        add_store_argument(p)
        p.set_defaults(func=func)
        return p

    add("list", _list, "list the stored users")
    p = add("show", _show, "show a user's profile and learned prompts")
    p.add_argument("user_id")
    p.add_argument("--full", action="store_true", help="do not shorten long prompts")
    p.add_argument("--json", action="store_true", help="print the full export instead")
    p = add("delete", _delete, "delete everything stored for a user")
    p.add_argument("user_id")
    p = add("export", _export, "write a user (profile, opinions, prompts) as JSON")
    p.add_argument("user_id")
    p.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    p = add("import", _import, "load a user written by `fermi users export`")
    p.add_argument("file", help="JSON file, or - for stdin")
    p.add_argument("--replace", action="store_true", help="replace the user if it exists")
