#!/usr/bin/env bash
# Stops the gateway, API and worker started by quickstart (SIGTERM: they finish
# in-flight work, then exit). Session containers are left to their TTL.
set -uo pipefail
cd "$(dirname "$0")/.."
quiet=${1:-}
for name in gateway api worker; do
  pidfile=".berth/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    [ "$quiet" = "--quiet" ] || echo "[stop] stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done
