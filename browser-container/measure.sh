#!/usr/bin/env bash
# Measure the browser image: size, `docker run` -> CDP answering (median of N, headless and
# headful) and idle memory (cgroup v1). Loopback only; the platform's hardening flags.
#
#   browser-container/measure.sh [RUNS]     start-up latency and idle memory (default 10 runs)
#   browser-container/measure.sh flags      idle memory without the lean flags, then with each
#
# "CDP answering" is the first 200 from GET /json/version through the agent (polled every
# 10 ms with curl), on a cold (bound) start; the ready callback arrives at the same moment.
# Memory is read 10 s after ready: usage_in_bytes, and rss + shmem, which is what the session
# itself allocates (page cache is charged to whichever container first read a file, so it
# varies with what ran before on the host).
set -uo pipefail
IMAGE="${BERTH_BROWSER_IMAGE:-berth/browser:latest}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELPER="$HERE/smoke-helper.js"
MODE="${1:-10}"
TMP="$(mktemp -d /tmp/berth-bmeasure.XXXXXX)"
PREFIX="berth-bmeasure-$$"
PIDS=()
cleanup() {
  docker ps -aq --filter "name=^${PREFIX}-" | xargs -r docker rm -f >/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
SECRET=measure-secret
SHA="$(printf %s "$SECRET" | sha256sum | cut -d' ' -f1)"
SID=9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d

node "$HELPER" receiver 204 "$TMP/api.port" >"$TMP/api.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$TMP/api.port" ] && break; sleep 0.1; done
API=$(cat "$TMP/api.port")

start() {  # start NAME PORT OPTIONS-JSON [docker args...]
  local name=$1 port=$2 options=$3; shift 3
  docker run -d --name "$PREFIX-$name" --read-only --tmpfs /tmp --tmpfs /home/berth:uid=1000,gid=1000 \
    --cap-drop ALL --security-opt no-new-privileges --pids-limit 1024 --memory 1g \
    --network host --user 1000:1000 -e BERTH_PORT="$port" -e BERTH_LISTEN_HOST=127.0.0.1 \
    -e BERTH_SECRET_SHA256="$SHA" -e BERTH_SESSION_ID="$SID" -e BERTH_CALLBACK_TOKEN=cb \
    -e BERTH_CALLBACK_URL="http://127.0.0.1:$API/cb" -e BERTH_OPTIONS="$options" "$@" "$IMAGE" >/dev/null
}
cdp_up() {  # cdp_up PORT: poll /json/version until it answers 200
  for _ in $(seq 1000); do
    curl -sf -o /dev/null -H "X-Berth-Secret: $SECRET" "http://127.0.0.1:$1/json/version" && return 0
    sleep 0.01
  done
  return 1
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mem() {  # mem CONTAINER -> "usage U MiB, rss+shmem R MiB (rss X, shmem Y, cache C), N processes"
  local id cg
  id=$(docker inspect -f '{{.Id}}' "$1"); cg=/sys/fs/cgroup/memory/docker/$id
  awk -v u="$(cat "$cg/memory.usage_in_bytes")" -v n="$(docker top "$1" -o pid | tail -n +2 | wc -l)" '
    $1 == "total_rss" {r = $2} $1 == "total_shmem" {s = $2} $1 == "total_cache" {c = $2}
    END {M = 1048576; printf "usage %.0f MiB, rss+shmem %.0f MiB (rss %.0f, shmem %.0f, cache %.0f), %d processes\n",
      u/M, (r+s)/M, r/M, s/M, c/M, n}' "$cg/memory.stat"
}
echo "image: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

if [ "$MODE" = flags ]; then
  run_idle() {  # run_idle LABEL OPTIONS-JSON LEAN FLAGS
    local port n; port=$(node "$HELPER" freeport); n="idle-$RANDOM"
    start "$n" "$port" "$2" -e BERTH_CHROMIUM_LEAN="$3" -e BERTH_CHROMIUM_FLAGS="$4"
    cdp_up "$port"; sleep 10
    printf '  %-58s %s\n' "$1" "$(mem "$PREFIX-$n")"
    docker rm -f "$PREFIX-$n" >/dev/null
  }
  for mode in '{"headless":true}' '{}'; do
    echo "idle memory, options $mode:"
    run_idle "no lean flags" "$mode" 0 ""
    run_idle "+ --in-process-gpu" "$mode" 0 "--in-process-gpu"
    run_idle "+ NetworkServiceInProcess2" "$mode" 0 "--enable-features=NetworkServiceInProcess2"
    run_idle "+ no WebUIOmniboxPopup, WebUIOmniboxAimPopup" "$mode" 0 "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup"
    run_idle "+ no SpareRendererForSitePerProcess" "$mode" 0 "--disable-features=SpareRendererForSitePerProcess"
    run_idle "all lean flags (the default)" "$mode" 1 ""
  done
  exit 0
fi

RUNS="$MODE"
for mode in '{"headless":true}' '{}'; do
  latencies=()
  for i in $(seq "$RUNS"); do
    port=$(node "$HELPER" freeport)
    t0=$(date +%s%3N)
    start "lat$i" "$port" "$mode"
    cdp_up "$port"
    latencies+=($(( $(date +%s%3N) - t0 )))
    docker rm -f "$PREFIX-lat$i" >/dev/null
  done
  echo "options $mode: docker run -> CDP answering (ms): $(printf '%s\n' "${latencies[@]}" | sort -n | tr '\n' ' ')"
  echo "  median $(printf '%s\n' "${latencies[@]}" | median) ms"
  port=$(node "$HELPER" freeport)
  start idle "$port" "$mode"
  cdp_up "$port"; sleep 10
  echo "  idle: $(mem "$PREFIX-idle")"
  docker rm -f "$PREFIX-idle" >/dev/null
done
