#!/usr/bin/env bash
# End-to-end smoke test of the terminal image against docs/SESSION-CONTAINERS.md, with the
# production hardening flags. Loopback only (host networking, everything on 127.0.0.1).
# Needs Docker and Node 20 with the repository's node_modules (`ws`): the callback receiver
# and the HTTP/WebSocket client are terminal-container/smoke-helper.js.
#
#   terminal-container/smoke-test.sh      (after scripts/build-images.sh)
# Prints "ok   name" / "FAIL name" per check and "N passed, M failed" last.
# KEEP_TMP=1 keeps the receivers' logs (the temporary directory) for a look afterwards.
# No `set -e`: a failing check must be counted, not abort the run.
set -uo pipefail

IMAGE="${BERTH_TERMINAL_IMAGE:-berth/terminal:latest}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELPER="$HERE/smoke-helper.js"
TMP="$(mktemp -d /tmp/berth-smoke.XXXXXX)"
PREFIX="berth-smoke-$$"
PASSED=0 FAILED=0
PIDS=()
cleanup() {
  docker ps -aq --filter "name=^${PREFIX}-" | xargs -r docker rm -f >/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

check() {  # check NAME EXIT-CODE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; PASSED=$((PASSED + 1)); else echo "FAIL $1"; FAILED=$((FAILED + 1)); fi
}
count() {  # count FILE: add the helper's check lines to the totals
  PASSED=$((PASSED + $(grep -c '^ok ' "$1"))); FAILED=$((FAILED + $(grep -c '^FAIL ' "$1")))
}
receiver() {  # receiver NAME HTTP-STATUS -> prints its port; requests go to $TMP/NAME.log
  node "$HELPER" receiver "$TMP/$1.port" "$2" >"$TMP/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do [ -s "$TMP/$1.port" ] && break; sleep 0.1; done
  cat "$TMP/$1.port"
}
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
run_agent() {  # run_agent NAME PORT SECRET [docker args...]: the platform's flags
  local name=$1 port=$2 secret=$3; shift 3
  docker run -d --name "$PREFIX-$name" --read-only --tmpfs /tmp \
    --tmpfs /home/berth:uid=1000,gid=1000 --cap-drop ALL --security-opt no-new-privileges \
    --pids-limit 256 --memory 256m --network host --user 1000:1000 \
    -e BERTH_PORT="$port" -e BERTH_LISTEN_HOST=127.0.0.1 -e BERTH_SECRET_SHA256="$(sha "$secret")" \
    "$@" "$IMAGE" >/dev/null
}
session_env() {  # session_env CALLBACK-PORT: the variables of a bound (cold) start
  echo -e "-e BERTH_SESSION_ID=$SID -e BERTH_CALLBACK_URL=http://127.0.0.1:$1/api/v1/callbacks -e BERTH_CALLBACK_TOKEN=cb-secret"
}
wait_file() {  # wait_file FILE PATTERN
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
exit_code() { timeout 10 docker wait "$PREFIX-$1" 2>/dev/null || echo none; }

SID=9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d
POOL_SID=0c2d3e4f-5061-4b7c-8d9e-1f2a3b4c5d6e
SECRET="smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
POOL_SECRET="pool-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "image $IMAGE missing: run scripts/build-images.sh"; exit 1; }
[ -f "$HERE/../node_modules/ws/package.json" ] || { echo "node_modules/ws missing: run npm ci"; exit 1; }

api=$(receiver api 204)
[ -n "$api" ] || { echo "callback receiver did not start"; exit 1; }

# --- a bound (cold) start
port=$(node "$HELPER" freeport)
# shellcheck disable=SC2046
run_agent main "$port" "$SECRET" $(session_env "$api")
wait_file "$TMP/api.log" '"/api/v1/callbacks/tunnel"'
check "ready callback arrives" $?
grep '/tunnel' "$TMP/api.log" | grep -q "\"auth\":\"Bearer cb-secret\",\"type\":\"application/json\",\"body\":{\"session_id\":\"$SID\"}"
check "ready callback carries the bearer token and {\"session_id\"}" $?
node "$HELPER" session "$port" "$SECRET" "$SID" >"$TMP/session.out" 2>&1
cat "$TMP/session.out"; count "$TMP/session.out"
docker logs "$PREFIX-main" 2>&1 | grep -qE "$SECRET|cb-secret"
[ $? -ne 0 ]; check "no secret in the logs" $?

# docker stop while a client is attached: 1001 to the client, exit 0, quickly.
node "$HELPER" hold "$port" "$SECRET" >"$TMP/hold.out" 2>&1 &
hold=$!; PIDS+=($hold)
wait_file "$TMP/hold.out" '^open'
started=$(date +%s%N)
docker stop -t 5 "$PREFIX-main" >/dev/null
took=$(( ($(date +%s%N) - started) / 1000000 ))
[ "$(docker inspect -f '{{.State.ExitCode}}' "$PREFIX-main")" = 0 ] && [ "$took" -lt 2000 ]
check "docker stop exits 0 within 2 s (${took} ms)" $?
wait "$hold" 2>/dev/null
[ "$(tail -1 "$TMP/hold.out")" = 1001 ]; check "attached client closed with 1001 on stop" $?

# --- an unbound (warm pool) start, bound later
pool_port=$(node "$HELPER" freeport)
run_agent pool "$pool_port" "$POOL_SECRET"
node "$HELPER" wait "$pool_port" "$POOL_SECRET"; check "unbound container answers health" $?
node "$HELPER" pool "$pool_port" "$POOL_SECRET" "$SECRET" "$POOL_SID" "http://127.0.0.1:$api/api/v1/callbacks" >"$TMP/pool.out" 2>&1
cat "$TMP/pool.out"; count "$TMP/pool.out"
sleep 0.3
! grep -q "$POOL_SID" "$TMP/api.log"; check "unbound start and bind make no callback" $?

# --- failures
bad_port=$(node "$HELPER" freeport)
# shellcheck disable=SC2046
run_agent badshell "$bad_port" "$SECRET" $(session_env "$api") -e BERTH_SHELL=/nonexistent
[ "$(exit_code badshell)" = 1 ]; check "missing shell exits 1" $?
grep '/status' "$TMP/api.log" | grep '"auth":"Bearer cb-secret"' | grep '"status":"failed"' |
  grep -q '"error_message":"terminal start-up failed: shell not executable: /nonexistent"'
check "missing shell posts a failed status" $?

# shellcheck disable=SC2046
docker run -d --name "$PREFIX-badenv" --network host --user 1000:1000 -e BERTH_PORT="$bad_port" \
  -e BERTH_SECRET_SHA256=not-a-hash $(session_env "$api") "$IMAGE" >/dev/null
[ "$(exit_code badenv)" = 1 ]; check "bad environment exits 1" $?
grep '/status' "$TMP/api.log" | grep -q 'BERTH_SECRET_SHA256 must be 64 hex characters'
check "bad environment posts a failed status" $?

gone=$(receiver api409 409)
# shellcheck disable=SC2046
run_agent gone "$bad_port" "$SECRET" $(session_env "$gone")
[ "$(exit_code gone)" = 3 ]; check "ready callback answered 409 exits 3" $?

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
