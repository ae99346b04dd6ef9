# syntax=docker/dockerfile:1
#
# pylon's container image: `pylon serve` as an unprivileged user, data under
# /var/lib/pylon (a volume), ports 4321 (HTTP API, and /ws, /events, /shard on the same
# port), 4322 (entity-sync socket), 4323 (SSE), 4324 (shard sockets).
#
#   docker build -t pylon .
#   docker run -d --name pylon -p 4321-4324:4321-4324 -v pylon-data:/var/lib/pylon \
#       -e PYLON_ADMIN_TOKEN=$(openssl rand -hex 32) \
#       -e PYLON_CORS_ORIGIN=https://game.example.com pylon
#   docker stop -t 45 pylon
#
# Stopping: SIGTERM starts pylon's graceful shutdown, which takes at most 2 s plus
# PYLON_SHUTDOWN_GRACE_SECS (30 s by default). Docker's default stop timeout is 10 s:
# give 45 s (`docker stop -t 45`, `docker run --stop-timeout 45`, compose
# `stop_grace_period: 45s`), or lower PYLON_SHUTDOWN_GRACE_SECS to fit.

# --- build ------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cargo registry and the target directory are cache mounts: a rebuild after a code
# change recompiles pylon's crates only. The binary is copied out of the cache mount in
# the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pylon \
    && install -D -m 0755 target/release/pylon /out/pylon

# --- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pylon \
    && useradd --system --uid 10001 --gid pylon --home-dir /var/lib/pylon \
       --shell /usr/sbin/nologin pylon \
    && install -d -o pylon -g pylon -m 0750 /var/lib/pylon
COPY --from=build /out/pylon /usr/local/bin/pylon
# The example manifest, for trying the entity API (PYLON_MANIFEST=/usr/share/pylon/…).
COPY examples/pylon.manifest.json /usr/share/pylon/pylon.manifest.example.json

ENV PYLON_HOST=0.0.0.0 \
    PYLON_PORT=4321 \
    PYLON_DB_PATH=/var/lib/pylon/pylon.db \
    PYLON_SESSION_DB=/var/lib/pylon/sessions.db \
    PYLON_LOG_FORMAT=json

USER pylon:pylon
WORKDIR /var/lib/pylon
VOLUME /var/lib/pylon
EXPOSE 4321-4324
STOPSIGNAL SIGTERM
# Liveness without curl: bash's /dev/tcp speaks one HTTP/1.0 request to /health and
# wants a 200 status line back.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PYLON_PORT:-4321} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q '^HTTP/1\\.[01] 200 '"]

ENTRYPOINT ["/usr/local/bin/pylon"]
CMD ["serve"]
