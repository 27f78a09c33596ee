#!/usr/bin/env bash
# `make images-offline`: builds, from Debian packages only, local stand-ins for every image the
# compose file uses, and writes their names to .env. No image registry is contacted.
#
#   1. debootstrap a minimal bookworm rootfs from the Debian mirror apt uses on this machine
#      (cached in $HUB_IMAGES_CACHE, default /var/cache/psop-hub-images; reused on later runs)
#   2. `tar -C rootfs -c . | docker import - psop-local/debian:bookworm`
#   3. `docker build` FROM it (apt-get install from the same mirror; Docker's layer cache makes a
#      second run fast): python3 (HUB_BASE_IMAGE), rabbitmq-server (RABBITMQ_IMAGE),
#      postgresql (POSTGRES_IMAGE), haproxy (LB_IMAGE), each with an entrypoint that behaves like
#      the official image for what docker-compose.yml uses (see docker/offline/*/)
#   4. write HUB_BASE_IMAGE, RABBITMQ_IMAGE, POSTGRES_IMAGE, LB_IMAGE to .env (git-ignored), and
#      copy the host CA bundle into docker/certs/ (git-ignored) so pip in the hub build reaches PyPI
#
# Options: --refresh  debootstrap again and rebuild every layer (new Debian point release).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=docker/offline
CACHE=${HUB_IMAGES_CACHE:-/var/cache/psop-hub-images}
SUITE=bookworm
PREFIX=${HUB_IMAGES_PREFIX:-psop-local}
BASE=$PREFIX/debian:$SUITE
REFRESH=0
[ "${1:-}" = "--refresh" ] && REFRESH=1

log() { printf 'images-offline: %s\n' "$*" >&2; }
command -v docker >/dev/null && docker info >/dev/null 2>&1 || {
  log "Docker is not running: run docker/install-docker.sh first"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap missing: run docker/install-docker.sh"; exit 1; }

# The mirror apt already uses here (deb822 .sources first, then one-line sources.list).
mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${HUB_DEBIAN_MIRROR:-$(mirror)}

ROOTFS=$CACHE/rootfs-$SUITE
if [ "$REFRESH" = 1 ]; then rm -rf "$ROOTFS"; fi
if [ ! -f "$ROOTFS/.psop-complete" ]; then
  log "debootstrap $SUITE from $MIRROR into $ROOTFS"
  rm -rf "$ROOTFS"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include=ca-certificates,tzdata "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
  # apt inside the images uses the same sources as this machine (only Debian's own entries)
  rm -f "$ROOTFS/etc/apt/sources.list"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$ROOTFS/etc/apt/sources.list.d/debian.sources"
  else
    echo "deb $MIRROR $SUITE main" >"$ROOTFS/etc/apt/sources.list"
  fi
  # A container build must not start services, and needs no docs or recommends.
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
  chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$ROOTFS/etc/apt/apt.conf.d/90psop-no-recommends"
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n' \
    >"$ROOTFS/etc/dpkg/dpkg.cfg.d/90psop-nodoc"
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
    "$ROOTFS"/usr/share/man/*
  date -u +%FT%TZ >"$ROOTFS/.psop-complete"
else
  log "reusing the $SUITE rootfs in $ROOTFS (built $(cat "$ROOTFS/.psop-complete"); --refresh rebuilds it)"
fi

# Import again only when the rootfs changed since the image was made.
stamp=$(cat "$ROOTFS/.psop-complete")
have=$(docker image inspect -f '{{ index .Config.Labels "psop.rootfs" }}' "$BASE" 2>/dev/null || true)
if [ "$have" != "$stamp" ]; then
  log "docker import $BASE"
  tar -C "$ROOTFS" --exclude=./.psop-complete -c . | docker import \
    -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' -c "LABEL psop.rootfs=$stamp" - "$BASE" >/dev/null
else
  log "reusing $BASE"
fi

build() { # build NAME DIR
  local name=$1 dir=$2 flags=()
  [ "$REFRESH" = 1 ] && flags+=(--no-cache)
  log "docker build $name"
  DOCKER_BUILDKIT=0 docker build -q "${flags[@]}" --build-arg "BASE=$BASE" -t "$name" "$dir" >/dev/null
}
PY=$PREFIX/python:3.11-$SUITE
RABBIT=$PREFIX/rabbitmq:3.10-$SUITE
PG=$PREFIX/postgres:15-$SUITE
LB=$PREFIX/haproxy:2.6-$SUITE
build "$PY" "$HERE/python"
build "$RABBIT" "$HERE/rabbitmq"
build "$PG" "$HERE/postgres"
build "$LB" "$HERE/haproxy"

# pip in the hub's build stage trusts what this machine trusts (a proxy's CA, if any).
mkdir -p docker/certs
cp /etc/ssl/certs/ca-certificates.crt docker/certs/host-ca-certificates.crt

# .env: the image variables are replaced, every other line is kept.
touch .env
tmp=$(mktemp)
grep -v -E '^(HUB_BASE_IMAGE|RABBITMQ_IMAGE|POSTGRES_IMAGE|LB_IMAGE)=' .env >"$tmp" || true
{
  cat "$tmp"
  echo "HUB_BASE_IMAGE=$PY"
  echo "RABBITMQ_IMAGE=$RABBIT"
  echo "POSTGRES_IMAGE=$PG"
  echo "LB_IMAGE=$LB"
} >.env
rm -f "$tmp"
log "wrote .env:"
grep -E '^(HUB_BASE_IMAGE|RABBITMQ_IMAGE|POSTGRES_IMAGE|LB_IMAGE)=' .env >&2
