#!/usr/bin/env bash
# Stops one node of the three-node RabbitMQ cluster (docker-compose.cluster.yml) for maintenance,
# only when that is safe: `rabbitmq-upgrade await_online_quorum_plus_one` on the node returns
# once every quorum queue keeps a majority of its replicas online without this node (it waits
# while another node is down or a replica is still catching up). Then `docker compose stop NODE`.
# Bring it back with `docker compose start NODE`: it rejoins the cluster from its volume and its
# quorum replicas catch up by themselves; no hub process needs a restart (each one reconnects
# to the next node in HUB_AMQP_URL).
#
#   docker/rabbitmq-node-stop.sh rabbitmq-2            (default timeout 300 s: HUB_NODE_STOP_WAIT_S)
#
# HUB_COMPOSE (default: docker compose) and COMPOSE_FILE (default: both files) name the stack;
# COMPOSE_PROJECT_NAME as for docker compose itself.
set -euo pipefail
cd "$(dirname "$0")/.."
node=${1:?usage: docker/rabbitmq-node-stop.sh rabbitmq|rabbitmq-2|rabbitmq-3}
read -r -a compose <<<"${HUB_COMPOSE:-docker compose}"
export COMPOSE_FILE=${COMPOSE_FILE:-docker-compose.yml:docker-compose.cluster.yml}
wait_s=${HUB_NODE_STOP_WAIT_S:-300}
log() { printf 'rabbitmq-node-stop: %s\n' "$*" >&2; }

log "$node: waiting until every quorum queue keeps a majority without it (at most ${wait_s}s)"
"${compose[@]}" exec -T "$node" rabbitmq-upgrade -q await_online_quorum_plus_one -t "$wait_s"
log "$node: safe to stop; docker compose stop $node"
"${compose[@]}" stop "$node"
log "$node stopped; bring it back with: ${compose[*]} start $node"
