#!/usr/bin/env bash
# Installs (when missing) and starts what Berth needs on a single Debian host:
# PostgreSQL 15, Redis 7 and a Docker engine. Idempotent: already-running
# services are left alone. Used by `npm run quickstart` and `npm test`.
#
# Databases: role `berth` owning databases `berth`, and `berth_test` to `berth_test_4` (one per
# parallel e2e worker).
#
# Credentials: session containers may share the host's network (the default),
# so anything listening on 127.0.0.1 is reachable from a user's shell. Postgres
# and Redis therefore get random passwords, generated once and kept in
# $BERTH_CREDENTIALS (root-only). Scripts and tests read them from there.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "run as root, or install sudo"
  SUDO="sudo"
fi

BERTH_CREDENTIALS=${BERTH_CREDENTIALS:-/var/lib/berth/credentials.env}
if [ ! -f "$BERTH_CREDENTIALS" ]; then
  log "generating database and Redis passwords in $BERTH_CREDENTIALS"
  $SUDO mkdir -p "$(dirname "$BERTH_CREDENTIALS")"
  umask 077
  {
    echo "POSTGRES_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    echo "REDIS_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
  } | $SUDO tee "$BERTH_CREDENTIALS" >/dev/null
  umask 022
fi
# shellcheck disable=SC1090
. <($SUDO cat "$BERTH_CREDENTIALS")

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

wait_for() {
  local what=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "$what did not come up"
}

# --- PostgreSQL ---
apt_install postgresql
if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
  log "creating PostgreSQL cluster"
  $SUDO pg_createcluster 15 main >/dev/null
fi
cluster=$(pg_lsclusters -h | head -n1)
pg_version=$(awk '{print $1}' <<<"$cluster")
pg_name=$(awk '{print $2}' <<<"$cluster")
pg_port=$(awk '{print $3}' <<<"$cluster")
if ! pg_lsclusters -h | awk '{print $4}' | head -n1 | grep -q online; then
  log "starting PostgreSQL $pg_version/$pg_name on port $pg_port"
  $SUDO pg_ctlcluster "$pg_version" "$pg_name" start
fi
as_postgres() { if [ -z "$SUDO" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
wait_for "PostgreSQL" 60 as_postgres psql -p "$pg_port" -qAtc 'SELECT 1'
psql_admin() { as_postgres psql -p "$pg_port" -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'berth'")" != "1" ]; then
  log "creating role berth"
  psql_admin -c "CREATE ROLE berth LOGIN"
fi
# Always (re)set it: the credentials file is the source of truth.
psql_admin -c "ALTER ROLE berth PASSWORD '$POSTGRES_PASSWORD'" >/dev/null
for db in berth berth_test berth_test_2 berth_test_3 berth_test_4; do
  if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    log "creating database $db"
    psql_admin -c "CREATE DATABASE $db OWNER berth"
  fi
done

# --- Redis ---
apt_install redis-server
REDIS_DIR=${BERTH_REDIS_DIR:-/var/lib/berth/redis}
# As BullMQ's documentation asks: never evict keys (noeviction) and persist
# every write (append-only, fsync every second). Berth also rebuilds its jobs
# from Postgres when the data is lost anyway.
start_redis() {
  $SUDO mkdir -p "$REDIS_DIR"
  printf 'requirepass %s\n' "$REDIS_PASSWORD" | $SUDO redis-server - --daemonize yes --bind 127.0.0.1 --port 6379 \
    --maxmemory-policy noeviction --appendonly yes --appendfsync everysec --save '' --dir "$REDIS_DIR" \
    --logfile /var/log/redis-berth.log
}
redis_ping() { REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p 6379 ping 2>/dev/null | grep -q PONG; }
# Answers without a password (started by hand, or by an older version of this script)?
redis_open() { redis-cli -p 6379 ping 2>/dev/null | grep -q PONG; }
if redis_open || ! redis_ping; then
  if redis_open; then
    # Running without a password (started by hand): require ours from now on.
    log "setting the Redis password"
    redis-cli -p 6379 CONFIG SET requirepass "$REDIS_PASSWORD" >/dev/null
  else
    log "starting Redis on 127.0.0.1:6379"
    start_redis
  fi
  wait_for "Redis" 40 redis_ping
fi
# A Redis started by an older version of this script does not persist: restart
# it so it does (its jobs are rebuilt from Postgres by the worker).
if [ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p 6379 CONFIG GET appendonly 2>/dev/null | tail -n1)" != "yes" ]; then
  log "restarting Redis with append-only persistence (in $REDIS_DIR)"
  REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p 6379 SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  for _ in $(seq 50); do redis_ping || break; sleep 0.1; done
  start_redis
  wait_for "Redis" 40 redis_ping
fi

# --- Docker engine ---
if ! command -v dockerd >/dev/null 2>&1; then
  apt_install docker.io
fi
if ! docker info >/dev/null 2>&1; then
  log "starting the Docker engine"
  # No bridge and no iptables: session containers use host networking on a
  # single host; no private-range network is ever created.
  $SUDO sh -c 'nohup dockerd --bridge=none --iptables=false >/var/log/dockerd.log 2>&1 &'
  wait_for "the Docker engine (see /var/log/dockerd.log)" 60 docker info
fi
log "PostgreSQL :$pg_port, Redis :6379 and Docker $(docker version --format '{{.Server.Version}}') are up (credentials: $BERTH_CREDENTIALS)"
