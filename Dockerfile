# psop-hub: one image for every hub process; the command chooses which (hub api | worker | files |
# scheduler | migrate | clients ...). Build: `docker build -t psop-hub .`
# HUB_BASE_IMAGE: the official python:3.11-slim, or the Debian-built stand-in from
# `make images-offline` (no registry needed). Both stages use the same base, so the venv's
# interpreter path is the same in both.
ARG HUB_BASE_IMAGE=python:3.11-slim

# --- 1: wheels -------------------------------------------------------------------------------
FROM ${HUB_BASE_IMAGE} AS wheels
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=60
WORKDIR /src
# Extra CA bundles (docker/certs/*.crt, placed by `make images-offline`) for pip only.
COPY docker/certs/ /tmp/certs/
COPY pyproject.toml README.md ./
COPY psop_hub ./psop_hub
RUN set -eu; \
    if ls /tmp/certs/*.crt >/dev/null 2>&1; then cat /tmp/certs/*.crt > /tmp/ca.pem; \
      export PIP_CERT=/tmp/ca.pem; fi; \
    python3 -m venv /tmp/buildenv; \
    /tmp/buildenv/bin/pip install -q --upgrade pip wheel; \
    # tzdata: zoneinfo's fallback when the base image has no /usr/share/zoneinfo (Europe/Helsinki)
    /tmp/buildenv/bin/pip wheel -q --wheel-dir /wheels . tzdata; \
    python3 -m venv /opt/hub; \
    /opt/hub/bin/pip install -q --no-index --find-links /wheels psop-hub tzdata; \
    /opt/hub/bin/pip uninstall -q -y pip; \
    find /opt/hub -name '__pycache__' -prune -exec rm -rf {} +; \
    rm -f /tmp/ca.pem

# --- 2: runtime ------------------------------------------------------------------------------
FROM ${HUB_BASE_IMAGE}
LABEL org.opencontainers.image.title="psop-hub" \
      org.opencontainers.image.licenses="EUPL-1.2"
# A fixed uid/gid, so that the file-drop folder on the host can be prepared for it.
ARG HUB_UID=10001
ARG HUB_GID=10001
RUN groupadd --system --gid ${HUB_GID} hub \
 && useradd --system --uid ${HUB_UID} --gid hub --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin hub \
 && mkdir -p /data/files \
 && chown hub:hub /data/files
COPY --from=wheels /opt/hub /opt/hub
COPY docker/hub-health docker/hub-prepare-files /usr/local/bin/
ENV PATH=/opt/hub/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_DATA_DIR=/data/files \
    HUB_HTTP_PORT=8000
USER hub
WORKDIR /data
EXPOSE 8000
# The API's check; the other processes' checks are set per service in docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["hub-health", "http"]
# exec form: `hub` is PID 1 and gets SIGTERM itself (each command drains on SIGTERM).
ENTRYPOINT ["hub"]
CMD ["api"]
