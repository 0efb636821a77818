"""What every ``fermi`` subcommand shares: the parser, store opening, options, JSON output, errors.

Subcommand modules import from here and never from each other. Exit codes (also in ``fermi
--help``): 0 success, 1 runtime error (a missing or damaged file, an unknown user, a failing
model), 2 usage error (argparse's own errors and option values out of range), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from langchain_fermi.errors import FermiError, UnknownUserError, validation_message

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from pydantic import BaseModel

    from langchain_fermi.retrieval import PromptSelection
    from langchain_fermi.store import FermiStore

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    runtime error: a missing or damaged file or store, an unknown user, a failing model
  2    usage error: an unknown option, a missing argument, an option value out of range
  130  interrupted (Ctrl-C)

Errors are one line on stderr, "fermi: error: ..."; --debug also prints the traceback."""

PROJECT_STORE = Path(".fermi") / "chroma"
"""The project-local store, relative to the working directory (``fermi quickstart`` writes it)."""

_MAX_MESSAGE = 600  # characters of an error line; a library's message can be a page long

M = TypeVar("M", bound="BaseModel")


class UsageError(FermiError, ValueError):
    """A command-line option has a value the command cannot use (exit code 2)."""


class FermiArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors are one ``fermi: error:`` line (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the problem and where the help is, then exit with 2."""
        self.exit(EXIT_USAGE, f"fermi: error: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------------------------- parser


class _RawWithDefaults(
    argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter
):
    """Descriptions and epilog as written, and each option's default in its help."""


def add_command(
    subparsers: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str | None = None,
    raw: bool = True,
) -> argparse.ArgumentParser:
    """Add one subcommand running ``func(args)``, with ``--debug`` accepted after it too.

    Args:
        raw: Keep the description as written; otherwise also show each option's default.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else _RawWithDefaults,
    )
    add_debug_argument(parser, default=argparse.SUPPRESS)
    parser.set_defaults(func=func)
    return parser


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= low`` (argparse names the option in the error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            msg = f"expected an integer, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if value < low:
            msg = f"must be at least {low} (got {value})"
            raise argparse.ArgumentTypeError(msg)
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def add_debug_argument(parser: argparse.ArgumentParser, *, default: Any = False) -> None:
    """``--debug``: print the traceback of an error (``default`` SUPPRESS on subcommands, so a
    subcommand never resets the global flag)."""
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show the traceback of an error"
    )


def add_json_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json``: print ``what`` as JSON on stdout (messages go to stderr)."""
    parser.add_argument("--json", action="store_true", help=f"JSON on stdout: {what}")


def add_model_arguments(
    parser: argparse.ArgumentParser,
    *,
    optimizer: bool = True,
    default: str | None = None,
) -> None:
    """``--model`` (the target) and, with ``optimizer``, ``--optimizer-model``."""
    shown = default or "$FERMI_TARGET_LLM or smollm2"
    parser.add_argument(
        "--model",
        default=default,
        help=f"target model: smollm2, qwen2.5-coder-1.5b, openai:<model>, x.gguf (default {shown})",
    )
    if optimizer:
        shown = default or "$FERMI_OPTIMIZER_LLM or smollm2"
        parser.add_argument(
            "--optimizer-model", default=default, help=f"optimizer model (default {shown})"
        )


def chat_model(name: str | BaseChatModel | None, flag: str, **kwargs: Any) -> Any:
    """`get_chat_model` for the value of ``flag``; an unusable name is a `UsageError`."""
    from langchain_fermi import models  # looked up at call time: tests swap get_chat_model

    try:
        return models.get_chat_model(name, **kwargs)
    except ValueError as e:
        msg = f"argument {flag}: {_one_line(e)}"
        raise UsageError(msg) from None


def build_model(cls: type[M], values: Mapping[str, Any], flags: Mapping[str, str]) -> M:
    """``cls(**values)``, turning a validation error into a `UsageError` that names the flag.

    Args:
        cls: A pydantic model (a config, a runnable).
        values: Field name (or alias) -> value; ``None`` values are left to the defaults.
        flags: Field name or alias -> the option that sets it (e.g. ``"num_candidates": "-K"``).
    """
    from pydantic import ValidationError

    given = {k: v for k, v in values.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as e:
        parts = []
        aliases = {f.alias: name for name, f in cls.model_fields.items() if f.alias}
        for err in e.errors():
            field = str(err["loc"][0]) if err.get("loc") else ""
            field = aliases.get(field, field)
            msg = str(err["msg"]).removeprefix("Value error, ")
            flag = flags.get(field)
            if flag is None:
                parts.append(f"{field}: {msg}" if field else msg)
            else:
                parts.append(f"argument {flag}: {msg[:1].lower()}{msg[1:]} (got {err['input']!r})")
        raise UsageError("; ".join(parts)) from None


# ----------------------------------------------------------------------------------- store


def add_store_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """Add ``--store PATH``."""
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help=help
        or "Chroma store folder (default: $FERMI_STORE_PATH, ./.fermi/chroma if it exists, "
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
        NotADirectoryError: The store path is a file.
        RuntimeError: Chroma cannot open the folder (not a store, or a damaged one).
    """
    path = resolve_store_path(getattr(args, "store", None))
    if must_exist and path is not None and not path.exists():
        msg = f"no Fermi store at {path} (run `fermi quickstart` or `fermi optimize` first)"
        raise FileNotFoundError(msg)
    return open_store_at(path)


def open_store_at(path: Path | None, *, embeddings: Any = None) -> FermiStore:
    """`FermiStore` at ``path`` (None: the environment's), with one-line errors.

    Raises:
        NotADirectoryError: The store path is a file.
        RuntimeError: Chroma cannot open the folder (not a store, or a damaged one).
    """
    from langchain_fermi.store import FermiStore, default_store_path

    checked = path
    if checked is None and not os.environ.get("FERMI_CHROMA_HOST"):
        checked = Path(default_store_path())
    if checked is not None and checked.exists() and not checked.is_dir():
        msg = f"{checked}: is a file, not a store folder (--store must name a store's folder)"
        raise NotADirectoryError(msg)
    try:
        return FermiStore(path, embeddings=embeddings)
    except FermiError:
        raise
    except Exception as e:
        where = f"at {checked}" if checked is not None else "on the Chroma server"
        msg = (
            f"cannot open the Fermi store {where}: {_one_line(e)}; is it a Fermi store? "
            "Pass another --store, or move the damaged folder away"
        )
        raise RuntimeError(msg) from e


def store_where(store: FermiStore) -> str:
    """`` at PATH`` for an embedded store, empty for a server."""
    return f" at {store.path}" if store.path is not None else ""


def require_user(store: FermiStore, user_id: str) -> None:
    """Raise `UnknownUserError` naming the store and how to list its users."""
    if not store.has_user(user_id):
        opt = f" --store {store.path}" if store.path is not None else ""
        msg = (
            f"unknown user {user_id!r}: the store{store_where(store)} has no such user "
            f"(`fermi users list{opt}` lists them)"
        )
        raise UnknownUserError(msg)


# ------------------------------------------------------------------------------ input/output


def check_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is an existing file.

    Raises:
        FileNotFoundError, IsADirectoryError: Naming the path and what was expected.
    """
    p = Path(path)
    if p.is_dir():
        msg = f"{p}: is a directory, expected a {what}"
        raise IsADirectoryError(msg)
    if not p.exists():
        msg = f"{p}: no such {what} (check the path)"
        raise FileNotFoundError(msg)
    return p


def read_text(path: str | Path, what: str = "file") -> str:
    """The text of ``path`` (``-``: stdin); UTF-8 with or without a byte-order mark.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: With the path in the message.
        ValueError: The file is not UTF-8 text.
    """
    if str(path) == "-":
        return sys.stdin.read().removeprefix("\ufeff")
    p = check_file(path, what)
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        msg = f"{p}: not UTF-8 text (byte {e.start}); save the {what} as UTF-8"
        raise ValueError(msg) from None


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (non-JSON values as strings)."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def short(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with ``...``."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render_selection(selection: PromptSelection, *, width: int = 110) -> str:
    """A few readable lines: the chosen prompt, the neighbours and every prompt's accuracy."""
    lines: list[str] = []
    p = selection.prompt
    if p is None:
        lines.append("no system prompt (fallback 'none')")
    else:
        where = f"#{selection.index}" if selection.index is not None else "(profile)"
        lines.append(f"prompt {where} [{selection.strategy}], overall score {p.score:.2f}:")
        lines.append(f'  "{short(p.text, width)}"')
    if selection.neighbours:
        lines.append("nearest past opinions of the user:")
        for n in selection.neighbours:
            sim = f"{n.similarity:.2f}" if n.similarity is not None else "  - "
            q = short(n.question or "", width - 40)
            lines.append(f"  {sim}  {n.opinion_id}: {q} -> {n.answer}")
    if selection.accuracies:
        lines.append("accuracy of each prompt on those opinions:")
        for a in selection.accuracies:
            acc = f"{a.correct:g}/{a.covered}" if a.accuracy is not None else "n/a"
            mark = " <- chosen" if a.index == selection.index else ""
            lines.append(f"  #{a.index}: {acc} right on them, overall {a.score:.2f}{mark}")
    lines.append(f"why: {selection.explanation}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- errors


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def error_line(e: BaseException, *, hint: bool = True) -> tuple[int, str]:
    """The exit code and the one-line message (without ``fermi: error:``) for an exception;
    ``hint`` adds where to find the traceback of an unexpected one."""
    from pydantic import ValidationError

    if isinstance(e, UsageError):
        return EXIT_USAGE, _one_line(e)
    if isinstance(e, ValidationError):
        return EXIT_ERROR, " ".join(validation_message(e).split())
    if isinstance(e, OSError) and e.filename is not None:
        what = (e.strerror or type(e).__name__).lower()
        advice = {
            FileNotFoundError: "check the path",
            IsADirectoryError: "expected a file",
            NotADirectoryError: "expected a folder",
            PermissionError: "check the permissions",
        }.get(type(e))
        return EXIT_ERROR, f"{e.filename}: {what}" + (f" ({advice})" if advice else "")
    text = _one_line(e)
    expected = (FermiError, ValueError, OSError, ImportError, RuntimeError)
    if isinstance(e, expected) and type(e) is not KeyError and text:
        return EXIT_ERROR, text
    name = type(e).__name__
    line = f"unexpected {name}: {text or '(no message)'}"
    return EXIT_ERROR, line + (" (--debug shows the traceback)" if hint else "")
