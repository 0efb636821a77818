#!/usr/bin/env bash
# Install (idempotent, fast once installed) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/check_types.sh   # mypy + pydantic plugin: the package and the README's snippets
# llama.cpp threads busy-wait: one thread is the robust choice on a small (possibly shared) CI machine.
export FERMI_LLAMA_THREADS=${FERMI_LLAMA_THREADS:-1}
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
