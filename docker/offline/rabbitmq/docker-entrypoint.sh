#!/bin/bash
# Like the official rabbitmq image's entrypoint, for what docker-compose.yml uses: default user,
# password and vhost from RABBITMQ_DEFAULT_* (applied by the broker on its first boot), console
# logs, and the server exec'd as the rabbitmq user so SIGTERM stops it cleanly.
set -euo pipefail
if [ "${1:-}" = "rabbitmq-server" ]; then
  shift
  if [ "$(id -u)" = 0 ]; then
    mkdir -p /var/lib/rabbitmq /etc/rabbitmq/conf.d
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
    conf=/etc/rabbitmq/conf.d/05-docker-defaults.conf
    {
      echo "loopback_users.guest = true"
      [ -n "${RABBITMQ_DEFAULT_USER:-}" ] && echo "default_user = $RABBITMQ_DEFAULT_USER"
      [ -n "${RABBITMQ_DEFAULT_PASS:-}" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
      [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ] && echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
      true
    } >"$conf"
    chown rabbitmq:rabbitmq "$conf"
    chmod 0600 "$conf"
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" rabbitmq-server "$@"
  fi
  exec /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
