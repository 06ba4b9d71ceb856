#!/usr/bin/env bash
# End-to-end smoke test of the terminal image with the production hardening flags.
# Loopback only (host networking, everything bound to 127.0.0.1). Needs only Docker: the
# callback receiver and the WebSocket client run in the image under test.
#
#   terminal-container/smoke-test.sh      (after scripts/build-images.sh)
# No `set -e`: a failing check must be counted, not abort the run.
set -uo pipefail

IMAGE="${BERTH_TERMINAL_IMAGE:-berth/terminal:latest}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d /tmp/berth-smoke.XXXXXX)"
chmod 777 "$TMP"   # the receiver runs as uid 1000 and writes its port here
PREFIX="berth-smoke-$$"
PASSED=0 FAILED=0
cleanup() {
  docker ps -aq --filter "name=^${PREFIX}-" | xargs -r docker rm -f >/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

check() {  # check NAME CONDITION-EXIT-CODE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; PASSED=$((PASSED + 1)); else echo "FAIL $1"; FAILED=$((FAILED + 1)); fi
}
tool() {  # run python from the image with the test script mounted
  docker run --rm --network host --read-only -v "$HERE/smoke_test.py:/t.py:ro" -v "$TMP:/out" \
    --entrypoint python3 "$IMAGE" /t.py "$@"
}
receiver() {  # receiver NAME HTTP-STATUS -> prints its port
  docker run -d --name "$PREFIX-$1" --network host -v "$HERE/smoke_test.py:/t.py:ro" -v "$TMP:/out" \
    --entrypoint python3 "$IMAGE" /t.py receiver "/out/$1.port" "$2" >/dev/null
  for _ in $(seq 50); do [ -s "$TMP/$1.port" ] && break; sleep 0.1; done
  cat "$TMP/$1.port"
}
session() {  # session NAME CALLBACK-PORT [docker args...]
  local name=$1 port=$2; shift 2
  docker run -d --name "$PREFIX-$name" --read-only --tmpfs /tmp \
    --tmpfs /home/berth:uid=1000,gid=1000 --cap-drop ALL --security-opt no-new-privileges \
    --pids-limit 256 --memory 256m --network host --user 1000:1000 \
    -e BERTH_SESSION_ID="$SID" -e BERTH_CALLBACK_URL="http://127.0.0.1:$port/api/v1/callbacks" \
    -e BERTH_CALLBACK_TOKEN=cb-secret -e BERTH_ACCESS_TOKEN_SHA256="$TOKEN_SHA" \
    -e BERTH_PORT=0 -e BERTH_LISTEN_HOST=127.0.0.1 "$@" "$IMAGE" >/dev/null
}
wait_log() {  # wait_log CONTAINER PATTERN
  for _ in $(seq 100); do docker logs "$1" 2>&1 | grep -q "$2" && return 0; sleep 0.1; done
  return 1
}

SID=9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d
TOKEN="smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TOKEN_SHA="$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)"
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "image $IMAGE missing: run scripts/build-images.sh"; exit 1; }

port=$(receiver api 204)
[ -n "$port" ] || { echo "callback receiver did not start"; exit 1; }
session main "$port"
wait_log "$PREFIX-api" '/tunnel'
check "tunnel callback arrives" $?
docker logs "$PREFIX-api" | grep '/tunnel' | grep -q "\"Bearer cb-secret\".*\"terminal_id\": \"$SID\""
check "tunnel callback carries bearer token and session id" $?
url=$(docker logs "$PREFIX-api" | grep '/tunnel' | head -1 | sed 's/.*"tunnel_url": "\([^"]*\)".*/\1/')

tool client "$url" "$TOKEN" "berth_${SID:0:8}" > "$TMP/client.out" || true
cat "$TMP/client.out"
PASSED=$((PASSED + $(grep -c '^ok ' "$TMP/client.out" || true)))
FAILED=$((FAILED + $(grep -c '^FAIL ' "$TMP/client.out" || true)))
grep -q '^ok ' "$TMP/client.out"; check "client checks ran" $?

started=$(date +%s%N)
docker stop -t 5 "$PREFIX-main" >/dev/null
took=$(( ($(date +%s%N) - started) / 1000000 ))
[ "$(docker inspect -f '{{.State.ExitCode}}' "$PREFIX-main")" = 0 ] && [ "$took" -lt 2500 ]
check "docker stop exits 0 quickly (${took} ms)" $?

session badshell "$port" -e BERTH_SHELL=/nonexistent
[ "$(docker wait "$PREFIX-badshell")" = 1 ]; check "missing shell exits 1" $?
docker logs "$PREFIX-api" | grep '/status' | grep -q '"status": "failed".*shell not executable'
check "missing shell posts failed status" $?

gone=$(receiver api409 409)
session gone "$gone"
[ "$(docker wait "$PREFIX-gone")" = 3 ]; check "tunnel answered 409 exits 3" $?

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
