#!/usr/bin/env bash
# Prints DATABASE_URL and REDIS_URL for the services ensure-services.sh runs,
# with the generated credentials, as shell assignments:
#   eval "$(bash scripts/service-urls.sh berth)"            # DATABASE_URL=… REDIS_URL=…
#   eval "$(bash scripts/service-urls.sh berth_test TEST_)" # TEST_DATABASE_URL=… TEST_REDIS_URL=…
set -euo pipefail
database=${1:-berth}
prefix=${2:-}
credentials=${BERTH_CREDENTIALS:-/var/lib/berth/credentials.env}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# shellcheck disable=SC1090
. <($SUDO cat "$credentials")
port=$(pg_lsclusters -h | head -n1 | awk '{print $3}')
echo "${prefix}DATABASE_URL=postgres://berth:${POSTGRES_PASSWORD}@127.0.0.1:${port}/${database}"
echo "${prefix}REDIS_URL=redis://:${REDIS_PASSWORD}@127.0.0.1:6379"
