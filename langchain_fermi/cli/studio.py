"""``fermi studio``: print or write a ``langgraph.json`` that serves the Fermi graphs in Studio.

The graphs ship in the package (``langchain_fermi.studio``), so the config works from any
directory of an installed wheel:

    fermi studio -o langgraph.json
    langgraph dev --config langgraph.json --no-browser   # needs langgraph-cli[inmem]

It serves ``fermi`` and ``fermi_opro`` (learn a user's prompts, configurable per assistant, saved
to the server's store) and ``fermi_agent`` (answers a user with them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from langchain_fermi.cli._common import UsageError, add_command

__all__ = ["register", "run"]


def _env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            msg = f"argument --env: expected KEY=VALUE, got {pair!r}"
            raise UsageError(msg)
        env[key.strip()] = value
    return env


def run(args: argparse.Namespace) -> int:
    """Print the config, or write it to ``--out``."""
    from langchain_fermi.studio import langgraph_config, write_langgraph_config

    options: dict[str, Any] = {"dependencies": args.dependency, "env": _env(args.env)}
    if args.out is None:
        print(json.dumps(langgraph_config(**options), indent=2))
        return 0
    path = write_langgraph_config(args.out, **options)
    print(f"wrote {path}; serve it with: langgraph dev --config {path}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add ``fermi studio`` to the ``fermi`` command."""
    p = add_command(
        subparsers,
        "studio",
        run,
        help="print or write a langgraph.json for LangGraph Studio",
        description=__doc__,
    )
    p.add_argument("-o", "--out", type=Path, default=None, help="write it here (default: print)")
    p.add_argument(
        "--dependency",
        action="append",
        default=None,
        metavar="SPEC",
        help="what `langgraph build/up` installs (repeatable; default langchain-fermi[local])",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the graphs, e.g. FERMI_TARGET_LLM=openai:gpt-4o-mini (repeatable)",
    )
