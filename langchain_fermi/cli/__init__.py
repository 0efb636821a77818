"""The ``fermi`` command line: each subcommand has its own module with a ``register`` function."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# module name -> registers one or more subcommands on the parser
_SUBCOMMAND_MODULES = ("quickstart", "optimize", "ask", "users", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every installed subcommand."""
    parser = argparse.ArgumentParser(
        prog="fermi", description="Few-shot personalization of LLMs (Fermi) for LangChain."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"langchain_fermi.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"langchain_fermi.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fermi`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, LookupError, ImportError, FileNotFoundError) as e:
        print(f"fermi: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
