# syntax=docker/dockerfile:1
# syncd's image: a wheel built in a throwaway stage, installed with its dependencies (PostgreSQL
# driver included) into a slim runtime that runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore lets through only what the wheel is built from.
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="syncd" \
      org.opencontainers.image.description="Keeps a seller's stock in step across sales channels from the ERP." \
      org.opencontainers.image.licenses="Apache-2.0"
# SYNCD_CONFIG is the file every syncd command reads by default (the HEALTHCHECK's among them).
# syncd listens on loopback unless told otherwise; in a container that would be unreachable, so the
# image says 0.0.0.0 here, which the example config's server.host reads (${SYNCD_SERVER_HOST:-...}).
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SYNCD_CONFIG=/etc/syncd/syncd.yaml \
    SYNCD_SERVER_HOST=0.0.0.0

# A fixed uid lets volume ownership and runAsNonRoot policies be set ahead of time.
RUN groupadd --system --gid 10001 syncd \
    && useradd --system --no-log-init --uid 10001 --gid syncd \
        --home-dir /var/lib/syncd --shell /usr/sbin/nologin syncd \
    && install -d -o syncd -g syncd -m 0750 /var/lib/syncd \
    && install -d -m 0755 /etc/syncd

# The wheel is bind-mounted rather than copied so it never lands in a layer; the direct reference
# pins the install to that one file while still pulling the extra's dependencies.
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels \
    set -- /tmp/wheels/syncd-*.whl \
    && pip install --no-cache-dir --root-user-action=ignore "syncd[postgres] @ file://$1"

# Relative paths (such as the default sqlite:///data/syncd.db) then land on the data volume.
WORKDIR /var/lib/syncd
VOLUME ["/var/lib/syncd"]
EXPOSE 8080
USER 10001:10001

# `syncd health` asks /health on loopback at the config's server.port, so a port changed in the
# config needs no change here; it ignores proxy variables set for the daemon's API calls.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["syncd", "health"]

ENTRYPOINT ["syncd"]
CMD ["run", "--config", "/etc/syncd/syncd.yaml"]
