#!/usr/bin/env bash
# Build Berth's container images from this checkout.
#
#   scripts/build-images.sh [--force]
#
# - makes sure the base image exists (scripts/build-base-image.sh: pull, or debootstrap offline)
# - makes sure xterm.js and noVNC are in node_modules (the images copy them from there)
# - builds the terminal image only when it is missing, --force is given, or its inputs changed:
#   a hash of terminal-container/, the session agent packages the image is built from, the
#   xterm.js files and the base image id is stored as the image label berth.build-hash and
#   compared on the next run.
# - builds the browser image the same way (browser-container/Dockerfile, its live view page,
#   noVNC and its agent packages; the build context is exactly those files)
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

# node_modules must hold what the images copy: xterm.js (terminal), noVNC (browser).
NODE_FILES=(
  node_modules/@xterm/xterm/lib/xterm.js
  node_modules/@xterm/xterm/css/xterm.css
  node_modules/@xterm/addon-fit/lib/addon-fit.js
  node_modules/@novnc/novnc/core/rfb.js
  node_modules/@novnc/novnc/vendor/pako/lib/zlib/inflate.js
)
missing=0
for f in "${NODE_FILES[@]}"; do [ -f "$f" ] || missing=1; done
if [ "$missing" -eq 1 ]; then
  if [ ! -d node_modules ] && command -v npm >/dev/null 2>&1; then
    log "node_modules absent: running npm ci"
    npm ci --no-audit --no-fund
  else
    # Do not wipe an existing node_modules with npm ci behind the developer's back.
    die "files missing from node_modules: run 'npm install' (needs @xterm/xterm, @xterm/addon-fit, @novnc/novnc)"
  fi
  for f in "${NODE_FILES[@]}"; do [ -f "$f" ] || die "still missing after npm ci: $f"; done
fi

# The browser image's inputs: its Dockerfile, the live view page, noVNC from node_modules,
# the agent packages it builds (tests included: they gate the build) and the base image.
# They are also exactly its build context (a tar on stdin): the repository's .dockerignore
# leaves node_modules out, and nothing the hash does not cover can reach the build.
BROWSER_IMAGE="${BERTH_BROWSER_IMAGE:-berth/browser:latest}"
BROWSER_INPUTS=(
  browser-container/Dockerfile browser-container/live
  node_modules/@novnc/novnc/core node_modules/@novnc/novnc/vendor/pako node_modules/@novnc/novnc/LICENSE.txt
  session-agent/internal/agent session-agent/internal/cdp session-agent/internal/vnc
  session-agent/internal/browser session-agent/cmd/berth-browser
)
browser_files() {  # NUL-separated, sorted: the hash and the context read the same list
  find "${BROWSER_INPUTS[@]}" -type f ! -name '*.md' -print0 | LC_ALL=C sort -z
}
browser_hash="$({
  browser_files | xargs -0 sha256sum
  docker image inspect -f '{{.Id}}' "$BASE_IMAGE"
} | sha256sum | cut -c1-64)"
if [ "$FORCE" -eq 0 ] && [ "$(docker image inspect -f '{{index .Config.Labels "berth.build-hash"}}' "$BROWSER_IMAGE" 2>/dev/null || true)" = "$browser_hash" ]; then
  log "$BROWSER_IMAGE is up to date (${browser_hash:0:12})"
else
  log "building $BROWSER_IMAGE (${browser_hash:0:12})"
  started=$(date +%s)
  browser_files | tar --null -T - -cf - | docker build --network host \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "berth.build-hash=$browser_hash" \
    -f browser-container/Dockerfile -t "$BROWSER_IMAGE" -
  size=$(docker image inspect -f '{{.Size}}' "$BROWSER_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')
  log "built $BROWSER_IMAGE ($size) in $(( $(date +%s) - started )) s"
fi

# The files terminal-container/Dockerfile copies out of node_modules (checked above).
XTERM_FILES=(
  node_modules/@xterm/xterm/lib/xterm.js
  node_modules/@xterm/xterm/css/xterm.css
  node_modules/@xterm/addon-fit/lib/addon-fit.js
)

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
