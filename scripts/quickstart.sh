#!/usr/bin/env bash
# `npm run quickstart`: from a fresh Debian host to a running Berth.
# Installs what is missing (PostgreSQL, Redis, a Docker engine, the session
# image), builds, migrates, starts the API and the worker in the background,
# and prints the URLs to open. Safe to re-run: it restarts Berth's processes.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[quickstart] %s\n' "$*"; }

if [ ! -x node_modules/.bin/nest ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
bash scripts/ensure-services.sh
if [ ! -f .env ]; then
  # The example's connection URLs, with the credentials ensure-services generated.
  eval "$(bash scripts/service-urls.sh berth)"
  awk -v db="$DATABASE_URL" -v redis="$REDIS_URL" '
    /^DATABASE_URL=/ { print "DATABASE_URL=" db; next }
    /^REDIS_URL=/ { print "REDIS_URL=" redis; next }
    { print }' .env.example >.env
  chmod 600 .env
  log "wrote .env from .env.example with generated credentials (edit it to change settings)"
fi
set -a
# shellcheck disable=SC1091
. ./.env
set +a
PORT=${PORT:-3000}
PUBLIC_URL=${PUBLIC_URL:-http://127.0.0.1:$PORT}

bash scripts/build-images.sh
log "compiling"
npx nest build

bash scripts/stop.sh --quiet
log "migrating the database"
npm run --silent migration:run

mkdir -p .berth/logs
start() {
  local name=$1 entry=$2
  nohup node "$entry" >>".berth/logs/$name.log" 2>&1 &
  echo $! >".berth/$name.pid"
  log "started $name (pid $!, logs in .berth/logs/$name.log)"
}
start api dist/src/main.js
start worker dist/src/worker.js

for _ in $(seq 120); do
  # node, not curl: a fresh machine may have nothing but Node and npm.
  if node -e "fetch('http://127.0.0.1:$PORT/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then
    cat <<MSG

Berth is running.
  API:          $PUBLIC_URL/api/v1/terminals
  Swagger UI:   $PUBLIC_URL/docs
  Health:       $PUBLIC_URL/health

Create a terminal and open it:
  curl -s -X POST $PUBLIC_URL/api/v1/terminals
  curl -s "$PUBLIC_URL/api/v1/terminals/<id>?wait_seconds=30"   # answers once "started"
  open  <tunnel_url>?token=<access_token>

Stop:  bash scripts/stop.sh
MSG
    exit 0
  fi
  sleep 0.5
done
log "the API did not become healthy; last log lines:"
tail -n 20 .berth/logs/api.log >&2
exit 1
