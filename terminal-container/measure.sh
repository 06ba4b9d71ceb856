#!/usr/bin/env bash
# Measure the terminal image: size, `docker run` -> ready callback latency (median of N),
# and the idle memory of one container (cgroup v1) without a shell and with one attached.
# Loopback only; same hardening flags as the platform. Extra `docker run` arguments can be
# passed in MEASURE_ARGS (e.g. MEASURE_ARGS="-e GOGC=100").
#
#   terminal-container/measure.sh [RUNS]      (after scripts/build-images.sh)
set -uo pipefail
IMAGE="${BERTH_TERMINAL_IMAGE:-berth/terminal:latest}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELPER="$HERE/smoke-helper.js"
RUNS="${1:-10}"
TMP="$(mktemp -d /tmp/berth-measure.XXXXXX)"
PREFIX="berth-measure-$$"
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

node "$HELPER" receiver "$TMP/api.port" 204 >"$TMP/api.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$TMP/api.port" ] && break; sleep 0.1; done
API=$(cat "$TMP/api.port")

start() {  # start NAME -> prints the agent's port
  local port; port=$(node "$HELPER" freeport)
  # shellcheck disable=SC2086
  docker run -d --name "$PREFIX-$1" --read-only --tmpfs /tmp --tmpfs /home/berth:uid=1000,gid=1000 \
    --cap-drop ALL --security-opt no-new-privileges --pids-limit 256 --memory 256m \
    --network host --user 1000:1000 -e BERTH_PORT="$port" -e BERTH_LISTEN_HOST=127.0.0.1 \
    -e BERTH_SECRET_SHA256="$SHA" -e BERTH_SESSION_ID="$SID" -e BERTH_CALLBACK_TOKEN=cb \
    -e BERTH_CALLBACK_URL="http://127.0.0.1:$API/cb" ${MEASURE_ARGS:-} "$IMAGE" >/dev/null
  echo "$port"
}

echo "image: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"

latencies=()
for i in $(seq "$RUNS"); do
  before=$(wc -l <"$TMP/api.log")
  t0=$(date +%s%3N)
  start "lat$i" >/dev/null
  for _ in $(seq 200); do [ "$(wc -l <"$TMP/api.log")" -gt "$before" ] && break; sleep 0.01; done
  t1=$(tail -1 "$TMP/api.log" | sed 's/.*"t":\([0-9]*\).*/\1/')
  latencies+=($((t1 - t0)))
  docker rm -f "$PREFIX-lat$i" >/dev/null
done
sorted=$(printf '%s\n' "${latencies[@]}" | sort -n | tr '\n' ' ')
echo "docker run -> ready callback (ms, $RUNS runs): $sorted"
echo "  median: $(printf '%s\n' "${latencies[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}') ms"

memory() {  # memory LABEL CONTAINER
  local id pid cg
  id=$(docker inspect -f '{{.Id}}' "$2"); pid=$(docker inspect -f '{{.State.Pid}}' "$2")
  cg=/sys/fs/cgroup/memory/docker/$id
  local usage; usage=$(cat "$cg/memory.usage_in_bytes")
  stat() { awk -v k="$1" '$1 == k {print $2}' "$cg/memory.stat"; }
  local rss mapped cache inactive
  rss=$(stat total_rss); mapped=$(stat total_mapped_file); cache=$(stat total_cache); inactive=$(stat total_inactive_file)
  awk -v l="$1" -v u="$usage" -v r="$rss" -v m="$mapped" -v c="$cache" -v i="$inactive" 'BEGIN {
    M = 1048576
    printf "%s:\n  cgroup usage_in_bytes %.2f MiB (cache %.2f MiB); usage - cache %.2f MiB\n", l, u/M, c/M, (u-c)/M
    printf "  cgroup total_rss %.2f MiB, total_mapped_file %.2f MiB, rss+mapped %.2f MiB\n", r/M, m/M, (r+m)/M
    printf "  docker stats figure (usage - total_inactive_file) %.2f MiB\n", (u-i)/M }'
  echo "  processes (host ps, RSS KiB):"
  ps -o pid=,rss=,args= --ppid "$pid" -p "$pid" | sed 's/^/    /'
  echo "  agent: $(grep -E '^(RssAnon|RssFile|Threads)' "/proc/$pid/status" | tr -s ' \t' ' ' | paste -sd, -)"
}

port=$(start idle)
node "$HELPER" wait "$port" "$SECRET"
sleep 5
memory "idle, no shell" "$PREFIX-idle"

node "$HELPER" hold "$port" "$SECRET" 60000 >"$TMP/hold.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q open "$TMP/hold.out" && break; sleep 0.1; done
sleep 5
memory "one shell, one client attached" "$PREFIX-idle"
