#!/usr/bin/env bash
# `npm run chaos -- [--duration SECONDS] [--rate LAUNCHES_PER_SECOND] [--cleanup-interval MINUTES]
#                   [--start-timeout SECONDS] [--report FILE | --no-report] [--logs DIR]`
#
# The long chaos run (test/chaos/run.ts; docs/RELIABILITY.md explains it and
# holds the latest figures): a steady stream of launches and deletes against
# two API processes and two workers while workers and APIs are kill -9'd
# mid-provision, Redis is restarted with and without its data and flushed,
# and Postgres and the Docker engine are restarted. Default: 5 minutes at 2
# launches/s. Writes the figures into docs/RELIABILITY.md; exits 1 when a
# count that must be zero is not.
#
# It never touches the machine's shared Postgres, Redis or Docker engine (the
# normal test suite's): it runs its own private ones from /tmp/berth-chaos-*,
# on loopback with passwords, and removes them at the end. Needs root (a
# second dockerd; Postgres runs as the postgres user). The session image is
# copied from the machine's engine, so that one must be running.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[chaos] %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "[chaos] run as root: it starts its own dockerd and Postgres" >&2; exit 1; }
if [ ! -x node_modules/.bin/ts-node ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
# The packages (postgresql, redis-server, docker.io) and the machine's engine, the image's source.
# The shared Postgres and Redis themselves are not used: only installed when something is missing.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null || ! command -v dockerd >/dev/null \
  || ! timeout 10 docker version >/dev/null 2>&1; then
  bash scripts/ensure-services.sh
fi
IMAGE="${TERMINAL_IMAGE:-berth/terminal:latest}"
if timeout 30 docker info >/dev/null 2>&1; then
  bash scripts/build-images.sh
elif docker image inspect "$IMAGE" >/dev/null 2>&1; then
  # Seen while someone's benchmark kept the engine busy: `docker info` hung, everything else answered.
  log "WARNING: the machine's Docker engine does not answer 'docker info'; using $IMAGE as it is"
else
  echo "[chaos] the machine's Docker engine does not answer and $IMAGE is missing" >&2
  exit 1
fi
log "compiling (the run starts the built entry points)"
npx nest build
exec npx ts-node --transpile-only --project tsconfig.json test/chaos/run.ts "$@"
