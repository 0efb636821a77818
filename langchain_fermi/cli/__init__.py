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

__all__ = ["build_parser", "main"]

# module name -> registers one or more subcommands on the parser
_SUBCOMMAND_MODULES = ("quickstart", "optimize", "ask", "users", "bench", "studio")


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


def _guarded(command: Callable[[], int], args: Callable[[], argparse.Namespace]) -> int:
    """Run ``command``: every failure becomes one ``fermi: error:`` line and an exit code;
    ``args()`` gives the parsed options (``debug``, ``on_interrupt``) once there are any."""
    try:
        code = command()
        sys.stdout.flush()  # a closed pipe shows up here, inside the try
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR  # the reader went away (`| head`): Python's own exit code for EPIPE
    except KeyboardInterrupt:
        hint = getattr(args(), "on_interrupt", None)
        print("fermi: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if getattr(args(), "debug", False):
            traceback.print_exc()
        code, line = error_line(e)
        print(f"fermi: error: {line}", file=sys.stderr)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fermi`` script; returns the process exit code (see ``--help``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parsed: list[argparse.Namespace] = []

    def parse_and_run() -> int:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:  # --help, --version, or a usage error already printed
            return 0 if e.code is None else e.code if isinstance(e.code, int) else EXIT_USAGE
        parsed.append(args)
        return int(args.func(args) or 0)

    def args() -> argparse.Namespace:
        return parsed[0] if parsed else argparse.Namespace(debug="--debug" in argv)

    return _guarded(parse_and_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
