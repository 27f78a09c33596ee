#!/bin/sh
# The rabbitmq service's entrypoint, for the official image and the offline one alike: starts the
# image's own entrypoint (which creates RABBITMQ_DEFAULT_USER/PASS on first boot), then makes sure
# the hub's vhost HUB_RABBITMQ_VHOST exists with QUORUM as its default queue type and that the
# user has every permission on it (idempotent: runs on every start). The compose health check
# (docker/rabbitmq/psop-health.sh) is the marker file written at the end of this setup and a
# `rabbitmq-diagnostics -q ping` that succeeded within 30 s: this script pings every 10 s.
#
# Cluster (docker-compose.cluster.yml): HUB_RABBITMQ_CLUSTER names every node
# ("rabbit@rabbitmq rabbit@rabbitmq-2 rabbit@rabbitmq-3") and HUB_RABBITMQ_COOKIE is their shared
# Erlang cookie. Before the server starts this writes the cookie and a classic-config peer
# discovery file (a blank node joins the nodes that are up; a node with data rejoins its cluster
# by itself), and after start it waits until every listed node runs, then adds this node to every
# quorum queue of the vhost that lacks it (`rabbitmq-queues grow`: a node replaced with an empty
# volume gets its replicas back). Only then is the node marked ready.
set -eu
vhost=${HUB_RABBITMQ_VHOST:-psop}
user=${RABBITMQ_DEFAULT_USER:-guest}
cluster=${HUB_RABBITMQ_CLUSTER:-}
marker=/tmp/psop-vhost-ready
rm -f "$marker"

if [ -n "$cluster" ]; then
  [ -n "${HUB_RABBITMQ_COOKIE:-}" ] || { echo "psop-entrypoint: HUB_RABBITMQ_COOKIE is not set" >&2; exit 1; }
  cookie=/var/lib/rabbitmq/.erlang.cookie
  mkdir -p /var/lib/rabbitmq /etc/rabbitmq/conf.d
  [ -f "$cookie" ] && chmod 0600 "$cookie"
  printf '%s' "$HUB_RABBITMQ_COOKIE" >"$cookie"
  chmod 0400 "$cookie"
  chown rabbitmq:rabbitmq "$cookie" 2>/dev/null || true
  [ -e /root/.erlang.cookie ] || ln -s "$cookie" /root/.erlang.cookie 2>/dev/null || true
  conf=/etc/rabbitmq/conf.d/20-psop-cluster.conf
  {
    echo "cluster_formation.peer_discovery_backend = classic_config"
    i=0
    for node in $cluster; do
      i=$((i + 1))
      echo "cluster_formation.classic_config.nodes.$i = $node"
    done
    # A node cut off from the majority stops serving instead of accepting writes it may lose.
    echo "cluster_partition_handling = pause_minority"
  } >"$conf"
  chown rabbitmq:rabbitmq "$conf" 2>/dev/null || true
fi

docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server" 2>/dev/null' TERM INT

for _ in $(seq 1 120); do
  kill -0 "$server" 2>/dev/null || { wait "$server"; exit $?; }
  rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1 && break
  sleep 1
done
if ! rabbitmqctl -q list_vhosts name | grep -qx "$vhost"; then
  # Two cluster nodes starting together may both get here: the second add fails, harmlessly.
  if rabbitmqctl -q add_vhost "$vhost" --default-queue-type quorum; then
    echo "psop-entrypoint: vhost $vhost created, default queue type quorum" >&2
  else
    rabbitmqctl -q list_vhosts name | grep -qx "$vhost"
  fi
elif [ "$(rabbitmqctl -q list_vhosts name default_queue_type | awk -v v="$vhost" '$1 == v {print $2}')" != "quorum" ]; then
  echo "psop-entrypoint: WARNING: vhost $vhost exists without default queue type quorum" >&2
fi
rabbitmqctl -q set_permissions -p "$vhost" "$user" '.*' '.*' '.*'
if [ -n "$cluster" ]; then
  want=$(echo $cluster | wc -w)
  waited=0
  while :; do
    kill -0 "$server" 2>/dev/null || { wait "$server"; exit $?; }
    running=$(rabbitmq-diagnostics -q cluster_status --formatter json 2>/dev/null \
      | sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | grep -c 'rabbit@' || true)
    [ "${running:-0}" -ge "$want" ] && break
    if [ "$waited" -ge "${HUB_RABBITMQ_CLUSTER_WAIT_S:-300}" ]; then
      echo "psop-entrypoint: WARNING: only ${running:-0} of $want nodes after ${waited}s; going on" >&2
      break
    fi
    sleep 2
    waited=$((waited + 2))
  done
  echo "psop-entrypoint: $running of $want cluster nodes running" >&2
  rabbitmq-queues -q grow "rabbit@$(hostname)" all --vhost-pattern "^$vhost\$" --queue-pattern '.*' \
    >/dev/null 2>&1 || echo "psop-entrypoint: WARNING: rabbitmq-queues grow failed" >&2
fi
touch "$marker"

# The health check's ping, one at a time (docker/rabbitmq/psop-health.sh reads its file's age).
alive=/tmp/psop-alive
(
  while kill -0 "$server" 2>/dev/null; do
    if timeout 30 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then touch "$alive"; else rm -f "$alive"; fi
    sleep "${HUB_RABBITMQ_PING_INTERVAL_S:-10}"
  done
) &

# Wait for the server; a SIGTERM from `docker stop` is passed on by the trap (wait returns early).
while kill -0 "$server" 2>/dev/null; do
  wait "$server" || true
done
