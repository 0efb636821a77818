"""The ``fermi`` command line: one module per subcommand, each with a ``register`` function, and
the helpers they share in `langchain_fermi.cli._common`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from langchain_fermi.cli._common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FermiArgumentParser,
    add_debug_argument,
    error_line,
)

__all__ = ["build_parser", "main", "run_command"]

# module name -> registers one or more subcommands on the parser
_SUBCOMMAND_MODULES = ("quickstart", "optimize", "ask", "users", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every installed subcommand."""
    from langchain_fermi import __version__

    parser = FermiArgumentParser(
        prog="fermi",
        description="Few-shot personalization of LLMs (Fermi) for LangChain.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_debug_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"langchain_fermi.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"langchain_fermi.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at devnull so the interpreter's final flush is quiet
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    finally:
        os.close(devnull)


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand: every failure becomes one ``fermi: error:`` line and an exit code."""
    debug = bool(getattr(args, "debug", False))
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the try
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR  # the reader went away (`| head`): like Python's own EPIPE code
    except KeyboardInterrupt:
        print("fermi: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            traceback.print_exc()
        code, line = error_line(e)
        print(f"fermi: error: {line}", file=sys.stderr)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fermi`` script; returns the process exit code (see ``--help``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return 0 if e.code is None else e.code if isinstance(e.code, int) else EXIT_USAGE
    return run_command(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
