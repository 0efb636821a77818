"""Fermi vs the paper's baselines on Pew ATP W92 respondents (OpinionQA) or GlobalOpinionQA.

    python -m benchmarks.opinionqa --max-users 20 -K 4 -L 5 -T 3

Same options as ``fermi bench`` (``--help``); the logic lives in `langchain_fermi.evaluation`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from langchain_fermi.cli.bench import add_arguments, run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run the benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.opinionqa",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    args = add_arguments(parser).parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, LookupError, ImportError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
