"""``python -m benchmarks.opinionqa ARGS`` is ``fermi bench ARGS`` (see ``fermi bench --help``)."""

import sys

from langchain_fermi.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
