#!/usr/bin/env bash
# `npm run bench`: Berth's benchmarks (see docs/BENCHMARKS.md).
#
#   scripts/bench.sh [all|latency|density|gateway]
#
# 1. makes sure Postgres, Redis and the Docker engine run (scripts/ensure-services.sh),
#    the images exist (scripts/build-images.sh; not needed by `gateway`), wrk and
#    taskset are installed (`gateway`) and dist/ is built and current,
# 2. runs bench/start-latency.ts (60 cold starts one at a time, API+worker in one
#    process and as separate processes, plus engine baselines), then
#    bench/density.ts (idle sessions in steps up to 200), then bench/gateway.ts
#    (the gateway against direct, configurable-http-proxy and the proxy-library
#    candidates: HTTP, WebSocket round trip and throughput, 1,000 idle WebSockets
#    held 5 minutes; ~30 minutes on 2 cores),
# 3. prints where the results went: bench/results/ (gitignored), one JSON file
#    and one markdown file per benchmark, plus Berth's own logs of each run.
#
# Extra options go through BENCH_LATENCY_ARGS / BENCH_DENSITY_ARGS / BENCH_GATEWAY_ARGS, e.g.
#   BENCH_LATENCY_ARGS="--n 100 --parallel 10" BENCH_DENSITY_ARGS="--max 400" scripts/bench.sh
#   BENCH_GATEWAY_ARGS="--idle-hold-s 60" scripts/bench.sh gateway
# The benchmarks only talk to 127.0.0.1 and the local Docker socket; they use their own
# database (berth_bench), queue prefix (berth-bench) and container label (berth.instance=bench).
set -euo pipefail
cd "$(dirname "$0")/.."

WHAT="${1:-all}"
case "$WHAT" in
  all|latency|density|gateway) ;;
  -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
  *) echo "usage: scripts/bench.sh [all|latency|density|gateway]" >&2; exit 2 ;;
esac

log() { printf '[bench] %s\n' "$*"; }

if [ ! -d node_modules/ws ] || [ ! -d node_modules/ts-node ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
bash scripts/ensure-services.sh
if [ "$WHAT" != gateway ]; then
  bash scripts/build-images.sh
fi
if [ "$WHAT" = all ] || [ "$WHAT" = gateway ]; then
  # The gateway benchmark's load generator (Debian's wrk) and CPU pinning (util-linux's taskset).
  if ! command -v wrk >/dev/null || ! command -v taskset >/dev/null; then
    log "installing wrk and taskset"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq wrk util-linux >/dev/null
  fi
fi

# `nest build` empties dist/ first; only rebuild when it is missing or older than the sources,
# so a benchmark does not pull dist/ from under someone else's run for nothing.
if [ ! -f dist/src/main.js ] || [ ! -f dist/src/worker.js ] \
   || [ -n "$(find src migrations -name '*.ts' -newer dist/src/main.js -print -quit)" ] \
   || [ "${BENCH_FORCE_BUILD:-0}" = "1" ]; then
  log "compiling (npx nest build)"
  npx nest build
else
  log "dist/ is up to date"
fi

mkdir -p bench/results
outputs=()
run_bench() {
  local script=$1 extra=$2 out
  log "running $script $extra (progress on stderr)"
  log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  out="$(mktemp)"
  # shellcheck disable=SC2086 # word splitting of the extra options is intended
  npx ts-node --transpile-only "$script" $extra | tee "$out"
  outputs+=("$(grep '^Results: ' "$out" | tail -n1 | sed 's/^Results: //')")
  rm -f "$out"
}

if [ "$WHAT" = all ] || [ "$WHAT" = latency ]; then
  run_bench bench/start-latency.ts "${BENCH_LATENCY_ARGS:-}"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = density ]; then
  run_bench bench/density.ts "${BENCH_DENSITY_ARGS:-}"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = gateway ]; then
  run_bench bench/gateway.ts "${BENCH_GATEWAY_ARGS:-}"
fi

log "done. Results:"
for f in "${outputs[@]}"; do [ -n "$f" ] && log "  $f"; done
log "Berth's own logs of each run: bench/results/*-{all,api,worker,berth}.log"
