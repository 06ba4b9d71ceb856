#!/usr/bin/env bash
# End-to-end smoke test of the browser image against docs/SESSION-CONTAINERS.md and
# browser-container/README.md, with the production hardening flags. Loopback only (host
# networking, everything on 127.0.0.1). Needs Docker, `ss` (iproute2) and Node 20 with the
# repository's node_modules (`ws`, `playwright-core`; `puppeteer-core` adds checks when
# installed): the callback receiver, the test web site and the clients are smoke-helper.js.
# The live view page is opened in the host's Chromium (/usr/lib/chromium/chromium, Debian's
# `chromium`; BERTH_SMOKE_CHROMIUM names another) behind a stand-in for Berth's gateway;
# BERTH_SMOKE_SHOTS=DIR keeps screenshots of what the viewer showed.
#
#   browser-container/smoke-test.sh      (after scripts/build-images.sh)
# Prints "ok   name" / "FAIL name" per check and "N passed, M failed" last.
# KEEP_TMP=1 keeps the logs (the temporary directory) for a look afterwards.
# No `set -e`: a failing check must be counted, not abort the run.
set -uo pipefail

IMAGE="${BERTH_BROWSER_IMAGE:-berth/browser:latest}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELPER="$HERE/smoke-helper.js"
TMP="$(mktemp -d /tmp/berth-browser-smoke.XXXXXX)"
PREFIX="berth-bsmoke-$$"
VOLUME="$PREFIX-profile"
PASSED=0 FAILED=0
PIDS=()
cleanup() {
  docker ps -aq --filter "name=^${PREFIX}-" | xargs -r docker rm -f >/dev/null
  docker volume rm "$VOLUME" >/dev/null 2>&1
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

check() {  # check NAME EXIT-CODE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; PASSED=$((PASSED + 1)); else echo "FAIL $1"; FAILED=$((FAILED + 1)); return 1; fi
}
helper() {  # helper OUTNAME ARGS...: run a helper command, show and count its check lines
  node "$HELPER" "${@:2}" >"$TMP/$1.out" 2>&1
  cat "$TMP/$1.out"
  PASSED=$((PASSED + $(grep -c '^ok ' "$TMP/$1.out"))); FAILED=$((FAILED + $(grep -c '^FAIL ' "$TMP/$1.out")))
}
server() {  # server NAME ARGS...: a background helper server (not in a subshell: PIDS)
  node "$HELPER" "${@:2}" "$TMP/$1.port" >"$TMP/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do [ -s "$TMP/$1.port" ] && break; sleep 0.1; done
}
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
run_agent() {  # run_agent NAME PORT SECRET [docker args...]: the platform's flags
  local name=$1 port=$2 secret=$3; shift 3
  docker run -d --name "$PREFIX-$name" --read-only --tmpfs /tmp \
    --tmpfs /home/berth:uid=1000,gid=1000 --cap-drop ALL --security-opt no-new-privileges \
    --pids-limit 1024 --memory 1g --network host --user 1000:1000 \
    -e BERTH_PORT="$port" -e BERTH_LISTEN_HOST=127.0.0.1 -e BERTH_SECRET_SHA256="$(sha "$secret")" \
    "$@" "$IMAGE" >/dev/null
}
session_env() {  # session_env CALLBACK-PORT: the variables of a bound (cold) start
  echo "-e BERTH_SESSION_ID=$SID -e BERTH_CALLBACK_URL=http://127.0.0.1:$1/api/v1/callbacks -e BERTH_CALLBACK_TOKEN=cb-secret"
}
wait_file() {  # wait_file FILE PATTERN
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
stop_clean() {  # stop_clean NAME LABEL: docker stop (SIGTERM) must exit 0 within the 8 s grace
  local started took
  started=$(date +%s%N)
  docker stop -t 10 "$PREFIX-$1" >/dev/null
  took=$(( ($(date +%s%N) - started) / 1000000 ))
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$PREFIX-$1")" = 0 ] && [ "$took" -lt 8000 ]
  check "SIGTERM ($2): exit 0 in ${took} ms" $?
}
bind_body() {  # bind_body SECRET OPTIONS-JSON
  echo "{\"session_id\":\"$POOL_SID\",\"secret_sha256\":\"$(sha "$1")\",\"options\":$2}"
}
in_volume() {  # in_volume CMD: a shell command over the profile volume, as uid 1000
  docker run --rm --network none --user 1000:1000 -v "$VOLUME:/p" --entrypoint /bin/sh "$IMAGE" -c "$1"
}

SID=9b1c2d3e-4f50-4a6b-8c7d-0e1f2a3b4c5d
POOL_SID=0c2d3e4f-5061-4b7c-8d9e-1f2a3b4c5d6e
DEAD_SID=1d3e4f50-6172-4c8d-9eaf-2a3b4c5d6e7f
SECRET="smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
POOL_SECRET="pool-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "image $IMAGE missing: run scripts/build-images.sh"; exit 1; }
[ -f "$HERE/../node_modules/playwright-core/package.json" ] || { echo "node_modules/playwright-core missing: run npm ci"; exit 1; }
command -v ss >/dev/null || { echo "ss (iproute2) missing"; exit 1; }

server api receiver 204
server site site
api=$(cat "$TMP/api.port" 2>/dev/null) site=$(cat "$TMP/site.port" 2>/dev/null)
[ -n "$api" ] && [ -n "$site" ] || { echo "helpers did not start"; exit 1; }

# --- 1. a bound (cold) headful start with a start_url the policy allows -----------------
port=$(node "$HELPER" freeport)
# shellcheck disable=SC2046
run_agent main "$port" "$SECRET" $(session_env "$api") \
  -e BERTH_OPTIONS="{\"start_url\":\"http://127.0.0.1:$site/start\"}" \
  -e BERTH_URL_POLICY='{"allow_cidrs":["127.0.0.0/8"]}' -e BERTH_MAX_UPLOAD_BYTES=1048576
wait_file "$TMP/api.log" '"/api/v1/callbacks/tunnel"'
check "ready callback arrives" $?
grep '/tunnel' "$TMP/api.log" | grep -q "\"auth\":\"Bearer cb-secret\",\"type\":\"application/json\",\"body\":{\"session_id\":\"$SID\"}"
check "ready callback carries the bearer token and {\"session_id\"}" $?
for _ in $(seq 30); do node "$HELPER" page-url "$port" "$SECRET" | grep -q 'Start page' && break; sleep 0.1; done
node "$HELPER" page-url "$port" "$SECRET" | grep -q "^http://127.0.0.1:$site/start Start page"
check "start_url allowed by the policy is loaded in the first tab" $?
helper auth auth "$port" "$SECRET"
helper cdp cdp "$port" "$SECRET" "$site"
helper files files "$port" "$SECRET" "$site"
helper vnc vnc "$port" "$SECRET" "$site" interactive
helper live live "$port" "$SECRET" "$site" interactive

# Nothing but the agent may listen: compare every listening socket's pid with the container's.
pids=$(docker top "$PREFIX-main" -o pid | tail -n +2 | paste -sd'|')
agent_pid=$(docker inspect -f '{{.State.Pid}}' "$PREFIX-main")
ss -Hltnup | grep -E "pid=($pids)," >"$TMP/listeners.txt"
[ "$(wc -l <"$TMP/listeners.txt")" -eq 1 ] && grep -q "127.0.0.1:$port .*pid=$agent_pid," "$TMP/listeners.txt"
check "only the agent's port listens (TCP/UDP) among $(echo "$pids" | tr '|' '\n' | wc -l) container processes" $? ||
  cat "$TMP/listeners.txt"
docker logs "$PREFIX-main" 2>&1 | grep -qE "$SECRET|cb-secret"
[ $? -ne 0 ]; check "no secret in the logs" $?
stop_clean main "headful, clients gone"

# --- 2. an unbound (pool) start, bound view-only with a start_url that redirects inward ---
pool_port=$(node "$HELPER" freeport)
run_agent pool "$pool_port" "$POOL_SECRET" -e BERTH_URL_POLICY='{"allow_hosts":["allowed.localhost"]}'
node "$HELPER" wait "$pool_port" "$POOL_SECRET"; check "unbound container gets ready" $?
start="http://allowed.localhost:$site/redirect?to=http://127.0.0.1:$site/secret"
out=$(node "$HELPER" bind "$pool_port" "$POOL_SECRET" "$(bind_body "$SECRET" "{\"view_only\":true,\"start_url\":\"$start\"}")")
[ "${out%% *}" = 200 ]; check "bind with view_only and start_url: 200 ($out)" $?
wait_file "$TMP/site.log" '"/redirect?to='
sleep 1
! grep -q '"url":"/secret"' "$TMP/site.log"
check "a redirect from an allowed host to 127.0.0.1 is blocked (no request reached /secret)" $?
node "$HELPER" page-url "$pool_port" "$SECRET" | grep -vq 'SECRET'
check "the first tab does not show the blocked page" $?
helper viewonly vnc "$pool_port" "$SECRET" "$site" view-only
helper liveviewonly live "$pool_port" "$SECRET" "$site" view-only
stop_clean pool "headful, bound through /.berth/bind"

# Launch-time options that differ from the pool container's, or a refused start_url, are
# answered 400; the container stays unbound and takes a later bind that fits.
mis_port=$(node "$HELPER" freeport)
run_agent mismatch "$mis_port" "$POOL_SECRET"
node "$HELPER" wait "$mis_port" "$POOL_SECRET"
out=$(node "$HELPER" bind "$mis_port" "$POOL_SECRET" "$(bind_body "$SECRET" '{"headless":true}')")
[ "${out%% *}" = 400 ]; check "bind with headless on a headful pool container: 400 ($out)" $?
out=$(node "$HELPER" bind "$mis_port" "$POOL_SECRET" "$(bind_body "$SECRET" '{"start_url":"http://169.254.169.254/latest/"}')")
[ "${out%% *}" = 400 ]; check "bind with a start_url the policy refuses: 400 ($out)" $?
health=$(curl -s -H "X-Berth-Secret: $POOL_SECRET" "http://127.0.0.1:$mis_port/.berth/health")
[ "$health" = '{"ready":true,"bound":false,"session_id":null}' ]
check "after refused binds the pool secret still opens an unbound agent ($health)" $?
out=$(node "$HELPER" bind "$mis_port" "$POOL_SECRET" "$(bind_body "$SECRET" '{"viewport":{"width":1280,"height":720}}')")
[ "${out%% *}" = 200 ]; check "then a bind that fits the container: 200 ($out)" $?
stop_clean mismatch "headful, bound after two refused binds"

# --- 3. persistent profile on a named volume, headless -----------------------------------
docker volume create "$VOLUME" >/dev/null
p1=$(node "$HELPER" freeport)
# shellcheck disable=SC2046
run_agent profile1 "$p1" "$SECRET" $(session_env "$api") -v "$VOLUME:/home/berth/profile" \
  -e BERTH_OPTIONS='{"headless":true,"profile":"smoke"}'
node "$HELPER" wait "$p1" "$SECRET"; check "headless session with a profile volume gets ready" $?
status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Berth-Secret: $SECRET" "http://127.0.0.1:$p1/vnc")
[ "$status" = 404 ]; check "headless session has no /vnc (404)" $?
page=$(curl -s -w ' %{http_code} %{content_type}' -H "X-Berth-Secret: $SECRET" "http://127.0.0.1:$p1/")
case "$page" in *headless*' 404 text/html; charset=utf-8') true ;; *) false ;; esac
check "headless session: / is a 404 page saying there is no screen" $?
statuses=$(for path in /live/viewer.js /live/config.json; do curl -s -o /dev/null -w '%{http_code} ' -H "X-Berth-Secret: $SECRET" "http://127.0.0.1:$p1$path"; done
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p1/")
[ "$statuses" = "404 404 401" ]; check "headless session: no live view assets (404), / without the secret 401 ($statuses)" $?
helper persist1 persist-set "$p1" "$SECRET" "$site"
stop_clean profile1 "headless, profile saved"
in_volume 'test "$(stat -c %a:%u /p/berth-session-cookies.json)" = 600:1000 && ! ls /p/Singleton* 2>/dev/null'
check "profile consistent after SIGTERM: cookie file 0600, no Singleton lock left" $?

# A killed container leaves its locks, naming a host that no longer exists.
in_volume 'ln -s deadhost-4242 /p/SingletonLock && ln -s /tmp/gone/SingletonSocket /p/SingletonSocket && ln -s 99 /p/SingletonCookie'
p2=$(node "$HELPER" freeport)
# shellcheck disable=SC2046
run_agent profile2 "$p2" "$SECRET" $(session_env "$api") -v "$VOLUME:/home/berth/profile" \
  -e BERTH_OPTIONS='{"headless":true,"profile":"smoke"}'
node "$HELPER" wait "$p2" "$SECRET"; check "a stale SingletonLock from another host does not block the profile" $?
helper persist2 persist-check "$p2" "$SECRET" "$site"
stop_clean profile2 "headless, second session"

# --- 4. Chromium exiting on its own ends the session through the agent ---------------------
dead_port=$(node "$HELPER" freeport)
run_agent dead "$dead_port" "$SECRET" -e BERTH_SESSION_ID="$DEAD_SID" -e BERTH_CALLBACK_TOKEN=cb-secret \
  -e BERTH_CALLBACK_URL="http://127.0.0.1:$api/api/v1/callbacks" -e BERTH_OPTIONS='{"headless":true}'
node "$HELPER" wait "$dead_port" "$SECRET"
docker exec "$PREFIX-dead" sh -c 'for p in $(cat /proc/1/task/*/children); do
  [ "$(cat /proc/$p/comm)" = chromium ] && kill -KILL "$p"; done'
for _ in $(seq 100); do [ "$(docker inspect -f '{{.State.Status}}' "$PREFIX-dead")" = exited ] && break; sleep 0.1; done
[ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$PREFIX-dead")" = "exited 1" ]
check "chromium killed: the agent exits 1" $?
wait_file "$TMP/api.log" '"/api/v1/callbacks/status"'
grep '"/api/v1/callbacks/status"' "$TMP/api.log" | grep "\"session_id\":\"$DEAD_SID\"" | grep -q 'chromium exited unexpectedly'
check "... after reporting the session failed (POST /status, \"chromium exited unexpectedly\")" $?
docker logs "$PREFIX-dead" 2>&1 | grep -q '"msg":"shutting down"'
check "... through the agent's normal shutdown" $?

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
