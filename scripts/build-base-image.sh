#!/usr/bin/env bash
# Make the image `debian:bookworm-slim` available to the local Docker engine.
#
# Berth's images are built `FROM debian:bookworm-slim`. On a machine that can reach
# Docker Hub a pull is enough; on an air-gapped host (only a Debian package mirror
# reachable) we build an equivalent image from Debian packages with debootstrap,
# trimmed the way the official slim image is. Idempotent: does nothing when the
# image is already present.
#
# Environment:
#   BERTH_BASE_IMAGE   tag to produce (default debian:bookworm-slim)
#   DEBIAN_MIRROR      mirror for debootstrap (default http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  security archive for the image's sources.list
#                      (default http://deb.debian.org/debian-security; empty to omit)
#   PULL_TIMEOUT       seconds to wait for `docker pull` before falling back (default 20)
set -euo pipefail

IMAGE="${BERTH_BASE_IMAGE:-debian:bookworm-slim}"
SUITE="bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
PULL_TIMEOUT="${PULL_TIMEOUT:-20}"

log() { printf '[base-image] %s\n' "$*"; }
die() { printf '[base-image] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running?)"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE already present, nothing to do"
  exit 0
fi

log "trying docker pull $IMAGE (timeout ${PULL_TIMEOUT}s)"
if timeout "$PULL_TIMEOUT" docker pull "$IMAGE" >/dev/null 2>&1; then
  log "pulled $IMAGE"
  exit 0
fi
log "pull failed or timed out; building $IMAGE from Debian packages"

[ "$(id -u)" -eq 0 ] || die "building with debootstrap needs root"

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  # Another process may hold the apt lock: retry for a while instead of failing.
  for attempt in $(seq 1 30); do
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; then
      break
    fi
    [ "$attempt" -eq 30 ] && die "could not install debootstrap"
    log "apt busy or failing, retrying in 10s ($attempt/30)"
    sleep 10
  done
fi

WORK="$(mktemp -d /tmp/berth-base.XXXXXX)"
ROOTFS="$WORK/rootfs"
# Always remove the (root-owned, ~200 MB) rootfs, also on failure.
trap 'rm -rf "$WORK"' EXIT

log "debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

log "trimming rootfs like the official slim image"
# Same dpkg excludes as the official debian:*-slim images: later `apt-get install`
# inside derived images will not unpack docs, man pages or translations either.
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CFG
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-gzip-indexes" <<'CFG'
Acquire::GzipIndexes "true";
CFG
# Files already unpacked by debootstrap are not covered by the excludes above.
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$ROOTFS"/usr/share/{man,groff,info,lintian,linda}/*
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# Each container must get its own machine id; an empty file is what the official image ships.
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb
rm -rf "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/debootstrap
# debootstrap only lists the release itself; add updates and security like the official image.
{
  echo "deb $MIRROR $SUITE main"
  echo "deb $MIRROR $SUITE-updates main"
  [ -n "$SECURITY_MIRROR" ] && echo "deb $SECURITY_MIRROR $SUITE-security main"
} >"$ROOTFS/etc/apt/sources.list"

log "importing rootfs as $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import --change 'CMD ["bash"]' - "$IMAGE" >/dev/null

log "done: $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
