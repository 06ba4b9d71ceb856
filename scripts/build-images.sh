#!/usr/bin/env bash
# Build Berth's container images from this checkout.
#
#   scripts/build-images.sh [--force]
#
# - makes sure the base image exists (scripts/build-base-image.sh: pull, or debootstrap offline)
# - makes sure xterm.js is in node_modules (the terminal image copies it from there)
# - builds the terminal image only when it is missing, --force is given, or its inputs changed:
#   a hash of terminal-container/, the session agent packages the image is built from, the
#   xterm.js files and the base image id is stored as the image label berth.build-hash and
#   compared on the next run.
# - builds the browser image the same way (browser-container/Dockerfile and its agent packages)
#
# Environment: BERTH_TERMINAL_IMAGE (default berth/terminal:latest),
#              BERTH_BROWSER_IMAGE (default berth/browser:latest),
#              BERTH_BASE_IMAGE (default debian:bookworm-slim).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

IMAGE="${BERTH_TERMINAL_IMAGE:-berth/terminal:latest}"
BASE_IMAGE="${BERTH_BASE_IMAGE:-debian:bookworm-slim}"
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force|-f) FORCE=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[images] %s\n' "$*"; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running?)"

BERTH_BASE_IMAGE="$BASE_IMAGE" bash "$ROOT/scripts/build-base-image.sh"

# The browser image needs nothing from node_modules. Its inputs: its Dockerfile, the agent
# packages it builds (tests included: they gate the build) and the base image.
BROWSER_IMAGE="${BERTH_BROWSER_IMAGE:-berth/browser:latest}"
BROWSER_INPUTS=(
  browser-container/Dockerfile
  session-agent/internal/agent session-agent/internal/cdp session-agent/internal/vnc
  session-agent/internal/browser session-agent/cmd/berth-browser
)
browser_hash="$({
  find "${BROWSER_INPUTS[@]}" -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  docker image inspect -f '{{.Id}}' "$BASE_IMAGE"
} | sha256sum | cut -c1-64)"
if [ "$FORCE" -eq 0 ] && [ "$(docker image inspect -f '{{index .Config.Labels "berth.build-hash"}}' "$BROWSER_IMAGE" 2>/dev/null || true)" = "$browser_hash" ]; then
  log "$BROWSER_IMAGE is up to date (${browser_hash:0:12})"
else
  log "building $BROWSER_IMAGE (${browser_hash:0:12})"
  started=$(date +%s)
  docker build --network host \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "berth.build-hash=$browser_hash" \
    -f browser-container/Dockerfile -t "$BROWSER_IMAGE" .
  size=$(docker image inspect -f '{{.Size}}' "$BROWSER_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')
  log "built $BROWSER_IMAGE ($size) in $(( $(date +%s) - started )) s"
fi

# The files terminal-container/Dockerfile copies out of node_modules.
XTERM_FILES=(
  node_modules/@xterm/xterm/lib/xterm.js
  node_modules/@xterm/xterm/css/xterm.css
  node_modules/@xterm/addon-fit/lib/addon-fit.js
)
missing=0
for f in "${XTERM_FILES[@]}"; do [ -f "$f" ] || missing=1; done
if [ "$missing" -eq 1 ]; then
  if [ ! -d node_modules ] && command -v npm >/dev/null 2>&1; then
    log "node_modules absent: running npm ci"
    npm ci --no-audit --no-fund
  else
    # Do not wipe an existing node_modules with npm ci behind the developer's back.
    die "xterm.js missing from node_modules: run 'npm install' (needs @xterm/xterm and @xterm/addon-fit)"
  fi
  for f in "${XTERM_FILES[@]}"; do [ -f "$f" ] || die "still missing after npm ci: $f"; done
fi

# The session agent directories terminal-container/Dockerfile copies (the browser kind's
# packages are not part of this image).
AGENT_DIRS=(
  session-agent/internal/agent
  session-agent/internal/terminal
  session-agent/cmd/berth-terminal
)

# Everything the build reads (docs excluded) plus the base image id, so a rebuilt base
# image also triggers a rebuild.
build_hash() {
  {
    find terminal-container "${AGENT_DIRS[@]}" -type f ! -name '*.md' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum "${XTERM_FILES[@]}"
    docker image inspect -f '{{.Id}}' "$BASE_IMAGE"
  } | sha256sum | cut -c1-64
}
HASH="$(build_hash)"
CURRENT="$(docker image inspect -f '{{index .Config.Labels "berth.build-hash"}}' "$IMAGE" 2>/dev/null || true)"

if [ "$FORCE" -eq 0 ] && [ "$CURRENT" = "$HASH" ]; then
  log "$IMAGE is up to date (${HASH:0:12})"
  exit 0
fi
if [ -z "$CURRENT" ]; then
  log "$IMAGE missing or unlabelled: building"
elif [ "$FORCE" -eq 1 ]; then
  log "--force: rebuilding $IMAGE"
else
  log "inputs changed (${CURRENT:0:12} -> ${HASH:0:12}): rebuilding $IMAGE"
fi

started=$(date +%s)
docker build --network host \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --label "berth.build-hash=$HASH" \
  -f terminal-container/Dockerfile -t "$IMAGE" .
size=$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')
log "built $IMAGE ($size) in $(( $(date +%s) - started )) s"
