#!/bin/sh
# The rabbitmq services' Docker health check: the vhost set-up is done and the entrypoint's own
# `rabbitmq-diagnostics -q ping` loop (every HUB_RABBITMQ_PING_INTERVAL_S, 10 s) succeeded within
# the last HUB_RABBITMQ_PING_MAX_AGE_S (30 s). The ping itself boots an Erlang VM (about a second
# of CPU): run by Docker every few seconds on three nodes it costs a core, and Docker does not kill
# a check that outlives its timeout, so on a loaded host they pile up (seen here: over a hundred
# at once, load average 400). This check costs a `stat`.
set -eu
test -f /tmp/psop-vhost-ready
age=$(( $(date +%s) - $(stat -c %Y /tmp/psop-alive 2>/dev/null || echo 0) ))
[ "$age" -lt "${HUB_RABBITMQ_PING_MAX_AGE_S:-30}" ]
