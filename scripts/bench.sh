#!/usr/bin/env bash
# `npm run bench`: Berth's benchmarks (see docs/BENCHMARKS.md).
#
#   scripts/bench.sh [all|latency|pool|burst|density|bookkeeping|api-keys|browsers|gateway]
#
# 1. makes sure Postgres, Redis and the Docker engine run (scripts/ensure-services.sh),
#    the images exist (scripts/build-images.sh; not needed by `gateway`), wrk and
#    taskset are installed (gateway) and dist/ is built,
# 2. runs, one after the other (never two at once: they would measure each other):
#      latency      bench/start-latency.ts   cold terminal start, POST -> started -> echo (~1 min)
#      pool         bench/pool.ts            warm-pool claims, terminals then headless browsers (~2 min)
#      burst        bench/burst.ts           50 launches at once vs 50 `docker run -d` (~3 min)
#      density      bench/density.ts         idle terminals in steps, memory curve (SVG) and API latency (~15 min at 500)
#      bookkeeping  bench/bookkeeping.ts     10,000 ended + 500 live sessions: list pages, sweep, EXPLAIN (~5 min)
#      api-keys     bench/api-keys.ts        GET at 500 req/s with a tenant key (~1 min)
#      browsers     bench/browsers.ts        browser cold/warm start, idle memory, CDP round trip (~10 min)
#      gateway      bench/gateway.ts         the gateway vs configurable-http-proxy and libraries (~30 min)
# 3. prints where the results went: bench/results/ (gitignored), one JSON file and one
#    markdown file per benchmark, plus Berth's own logs of each run.
#
# Extra options go through BENCH_<NAME>_ARGS (LATENCY, POOL, BURST, DENSITY, BOOKKEEPING,
# API_KEYS, BROWSERS, GATEWAY), e.g.
#   BENCH_LATENCY_ARGS="--n 100" BENCH_DENSITY_ARGS="--max 200" scripts/bench.sh
#   BENCH_GATEWAY_ARGS="--idle-hold-s 60" scripts/bench.sh gateway
# The benchmarks only talk to 127.0.0.1 and the local Docker socket; they use their own
# database (berth_bench), queue prefix (berth-bench) and container label (berth.instance=bench).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL="latency pool burst density bookkeeping api-keys browsers gateway"
WHAT="${1:-all}"
case " all $ALL " in
  *" $WHAT "*) ;;
  *)
    if [ "$WHAT" = -h ] || [ "$WHAT" = --help ]; then sed -n '2,27p' "$0"; exit 0; fi
    echo "usage: scripts/bench.sh [all|${ALL// /|}]" >&2; exit 2 ;;
esac
wants() { [ "$WHAT" = all ] || [ "$WHAT" = "$1" ]; }

log() { printf '[bench] %s\n' "$*"; }

if [ ! -d node_modules/ws ] || [ ! -d node_modules/ts-node ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
bash scripts/ensure-services.sh
if [ "$WHAT" != gateway ]; then
  bash scripts/build-images.sh
fi
if wants gateway; then
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

wants latency && run_bench bench/start-latency.ts "${BENCH_LATENCY_ARGS:-}"
if wants pool; then
  run_bench bench/pool.ts "--kind terminals ${BENCH_POOL_ARGS:-}"
  run_bench bench/pool.ts "--kind browsers --pool 3 --n 20 --interval-ms 1500 --burst 6 ${BENCH_POOL_ARGS:-}"
fi
wants burst && run_bench bench/burst.ts "${BENCH_BURST_ARGS:-}"
wants density && run_bench bench/density.ts "${BENCH_DENSITY_ARGS:-}"
wants bookkeeping && run_bench bench/bookkeeping.ts "${BENCH_BOOKKEEPING_ARGS:-}"
wants api-keys && run_bench bench/api-keys.ts "${BENCH_API_KEYS_ARGS:-}"
wants browsers && run_bench bench/browsers.ts "${BENCH_BROWSERS_ARGS:-}"
wants gateway && run_bench bench/gateway.ts "${BENCH_GATEWAY_ARGS:-}"

log "done. Results:"
for f in "${outputs[@]}"; do [ -n "$f" ] && log "  $f"; done
log "Berth's own logs of each run: bench/results/*-{all,api,worker,berth}.log"
