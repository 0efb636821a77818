#!/usr/bin/env bash
# Start or stop a throw-away PostgreSQL, Chroma server and Ray head on 127.0.0.1, for trying the
# scale engine (docs/SCALE.md) from a shell. The tests do not need this: they start their own.
#
#   scripts/services.sh start [postgres] [chroma] [ray]   # all three by default
#   source "${FERMI_SERVICES_DIR:-/tmp/fermi-services}/env" # FERMI_PG_URL, FERMI_CHROMA_*, RAY_ADDRESS
#   scripts/services.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${FERMI_SERVICES_DIR:-/tmp/fermi-services}
PY=${FERMI_VENV:-.venv}/bin/python
case "${1:-}" in
  start)
    shift
    mkdir -p "$DIR"
    if [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
      echo "[services] already running (pid $(cat "$DIR/pid")); $DIR/env has the addresses" >&2
      exit 0
    fi
    rm -f "$DIR/env"
    nohup "$PY" -m langchain_fermi.scale.local serve --env-file "$DIR/env" "$@" >"$DIR/log" 2>&1 &
    echo $! >"$DIR/pid"
    for _ in $(seq 1 240); do
      [ -s "$DIR/env" ] && { cat "$DIR/env"; exit 0; }
      kill -0 "$(cat "$DIR/pid")" 2>/dev/null || { tail -20 "$DIR/log" >&2; exit 1; }
      sleep 0.5
    done
    echo "[services] not up after 120 s; see $DIR/log" >&2
    exit 1
    ;;
  stop)
    [ -f "$DIR/pid" ] || { echo "[services] not running" >&2; exit 0; }
    pid=$(cat "$DIR/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$DIR/pid"
    echo "[services] stopped" >&2
    ;;
  *)
    echo "usage: $0 start [postgres] [chroma] [ray] | stop" >&2
    exit 2
    ;;
esac
