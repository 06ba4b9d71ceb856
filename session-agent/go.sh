#!/usr/bin/env bash
# Run the go tool on this tree in GOPATH mode, offline, with Debian's Go 1.19 and Debian's
# packaged libraries (/usr/share/gocode). The import path is berth/session-agent, so the
# tree must sit at GOPATH/src/berth/session-agent: a temporary GOPATH with a symlink does it.
#
#   session-agent/go.sh test ./...
#   session-agent/go.sh vet ./...
#   session-agent/go.sh build -trimpath -ldflags '-s -w' -o /tmp/berth-terminal ./cmd/berth-terminal
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-$(command -v go 2>/dev/null || echo /usr/lib/go-1.19/bin/go)}"
[ -x "$GO" ] || GO=/usr/lib/go-1.19/bin/go

case "$HERE" in
  */src/berth/session-agent) GOPATH_DIR="${HERE%/src/berth/session-agent}" ;;
  *)
    GOPATH_DIR="${TMPDIR:-/tmp}/berth-gopath-$(id -u)"
    mkdir -p "$GOPATH_DIR/src/berth"
    ln -sfn "$HERE" "$GOPATH_DIR/src/berth/session-agent"
    ;;
esac
cd "$GOPATH_DIR/src/berth/session-agent"
export GO111MODULE=off GOPATH="$GOPATH_DIR:/usr/share/gocode" CGO_ENABLED="${CGO_ENABLED:-0}" GOFLAGS="${GOFLAGS:-}" GOPROXY=off
exec "$GO" "$@"
