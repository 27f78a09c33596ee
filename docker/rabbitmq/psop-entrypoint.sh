#!/bin/sh
# The rabbitmq service's entrypoint, for the official image and the offline one alike: starts the
# image's own entrypoint (which creates RABBITMQ_DEFAULT_USER/PASS on first boot), then makes sure
# the hub's vhost HUB_RABBITMQ_VHOST exists with QUORUM as its default queue type and that the
# user has every permission on it (idempotent: runs on every start). The compose health check is
# `rabbitmq-diagnostics -q ping` and the marker file written at the end of this setup.
set -eu
vhost=${HUB_RABBITMQ_VHOST:-psop}
user=${RABBITMQ_DEFAULT_USER:-guest}
marker=/tmp/psop-vhost-ready
rm -f "$marker"

docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server" 2>/dev/null' TERM INT

for _ in $(seq 1 120); do
  kill -0 "$server" 2>/dev/null || { wait "$server"; exit $?; }
  rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1 && break
  sleep 1
done
if ! rabbitmqctl -q list_vhosts name | grep -qx "$vhost"; then
  rabbitmqctl -q add_vhost "$vhost" --default-queue-type quorum
  echo "psop-entrypoint: vhost $vhost created, default queue type quorum" >&2
elif [ "$(rabbitmqctl -q list_vhosts name default_queue_type | awk -v v="$vhost" '$1 == v {print $2}')" != "quorum" ]; then
  echo "psop-entrypoint: WARNING: vhost $vhost exists without default queue type quorum" >&2
fi
rabbitmqctl -q set_permissions -p "$vhost" "$user" '.*' '.*' '.*'
touch "$marker"

# Wait for the server; a SIGTERM from `docker stop` is passed on by the trap (wait returns early).
while kill -0 "$server" 2>/dev/null; do
  wait "$server" || true
done
