#!/usr/bin/env bash
# Type-check the package and the README's Python snippets with mypy + the pydantic plugin
# (configuration: [tool.mypy] in pyproject.toml). Run by scripts/test.sh; a warm cache takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m mypy
snippets=$(mktemp -d)
trap 'rm -rf "$snippets"' EXIT
"$PY" scripts/readme_snippets.py README.md "$snippets"
"$PY" -m mypy "$snippets"
