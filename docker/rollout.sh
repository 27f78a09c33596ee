#!/usr/bin/env bash
# `make rollout`: rebuild the hub image and replace every hub container one at a time, with no
# failed request: migrate first; then for api, worker and files, for each old container: start one
# more container from the new image, wait until Docker reports it healthy (and, for api, until
# HAProxy has had time to find and check it), then stop the old one gracefully (its
# stop_grace_period: uvicorn drains, Dramatiq finishes its messages, the file adapter its file) and
# remove it. The scheduler is replaced stop-first, so that two never run at once.
# HUB_COMPOSE selects the Compose command (default `docker compose`; `docker-compose` for 1.29).
# HUB_ROLLOUT_FORCE=1 replaces containers that already run the new image too (a rolling restart).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a COMPOSE <<<"${HUB_COMPOSE:-docker compose}"
IMAGE=psop-hub:${HUB_TAG:-local}
log() { printf 'rollout: %s\n' "$*" >&2; }

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1"; }
image_of() { docker inspect -f '{{.Image}}' "$1"; }
grace() { # the service's stop_grace_period in seconds (docker stop -t)
  docker inspect -f '{{.Config.StopTimeout}}' "$1" 2>/dev/null | grep -E '^[0-9]+$' || echo 30
}
wait_healthy() {
  local c=$1 deadline=$((SECONDS + ${2:-${HUB_ROLLOUT_HEALTH_WAIT_S:-300}}))
  while [ "$(health "$c")" != healthy ]; do
    if [ "$SECONDS" -gt "$deadline" ] || [ "$(docker inspect -f '{{.State.Status}}' "$c")" = exited ]; then
      log "container ${c:0:12} did not become healthy ($(health "$c")); the old containers are left running"
      docker logs --tail 30 "$c" >&2 || true
      return 1
    fi
    sleep 1
  done
}

log "building $IMAGE"
"${COMPOSE[@]}" build api
new=$(docker image inspect -f '{{.Id}}' "$IMAGE")

log "migrating the schema (before any new code runs)"
"${COMPOSE[@]}" run --rm --no-deps migrate >/dev/null

for svc in api worker files; do
  for old in $("${COMPOSE[@]}" ps -q "$svc"); do
    if [ "$(image_of "$old")" = "$new" ] && [ "${HUB_ROLLOUT_FORCE:-0}" != 1 ]; then
      continue
    fi
    before=$("${COMPOSE[@]}" ps -q "$svc" | sort)
    count=$(wc -l <<<"$before")
    "${COMPOSE[@]}" up -d --no-deps --no-recreate --scale "$svc=$((count + 1))" "$svc" 2>/dev/null
    started=$(comm -13 <(echo "$before") <("${COMPOSE[@]}" ps -q "$svc" | sort))
    [ -n "$started" ] || { log "$svc: no new container started"; exit 1; }
    log "$svc: ${started:0:12} started from the new image; waiting for it to be healthy"
    wait_healthy "$started"
    # HAProxy finds a new replica by DNS (1 s) and needs 2 good checks 2 s apart.
    [ "$svc" = api ] && sleep 6
    log "$svc: stopping ${old:0:12} (grace $(grace "$old")s)"
    docker stop -t "$(grace "$old")" "$old" >/dev/null
    docker rm "$old" >/dev/null
  done
done

old=$("${COMPOSE[@]}" ps -q scheduler)
if [ -z "$old" ] || [ "$(image_of "$old")" != "$new" ] || [ "${HUB_ROLLOUT_FORCE:-0}" = 1 ]; then
  log "scheduler: stop first, then start (never two at once)"
  [ -n "$old" ] && docker stop -t "$(grace "$old")" "$old" >/dev/null && docker rm "$old" >/dev/null
  "${COMPOSE[@]}" up -d --no-deps scheduler 2>/dev/null
  wait_healthy "$("${COMPOSE[@]}" ps -q scheduler)"
fi
log "done: every hub container runs ${new:7:12}"
"${COMPOSE[@]}" ps >&2
