# syntax=docker/dockerfile:1.7
#
# georec: one image with every workspace binary (model-sync, region-node, router, and any
# later ones such as loadtest). The command picks the role:
#   docker run georec:local region-node --region eu-west
#   docker run georec:local router
#   docker run georec:local model-sync status
#
# Needs BuildKit (the default of Docker >= 23 and of `docker compose`; with the Python
# docker-compose 1.29 set DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1). Cache mounts keep
# the cargo registry and target/ between builds, so a source change does not rebuild the
# dependency tree (aws-sdk-s3 above all).

ARG RUST_VERSION=1.94
ARG DEBIAN_RELEASE=bookworm

############################################################################ builder
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

# cc and cmake for aws-lc-sys (rustls' crypto provider); no OpenSSL (rustls everywhere).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# --locked: the image is built from exactly Cargo.lock. Every binary target of the workspace
# is copied out, so a new binary crate needs no change here; the dev-only testkit crate
# (local-s3, the local cluster's S3 stand-in) is left out.
RUN --mount=type=cache,id=georec-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=georec-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=georec-target,target=/src/target \
    cargo build --release --locked --workspace --exclude testkit --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -perm -u+x -exec cp {} /out/ \; \
 && ls -l /out

############################################################################ runtime
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

ARG GEOREC_UID=10001
LABEL org.opencontainers.image.title="georec" \
      org.opencontainers.image.description="georec region-node, router and model-sync" \
      org.opencontainers.image.licenses="Apache-2.0"

# ca-certificates: TLS to S3 and to other regions; curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid "${GEOREC_UID}" georec \
 && useradd --system --uid "${GEOREC_UID}" --gid georec --home-dir /var/lib/georec \
            --create-home --shell /usr/sbin/nologin georec

COPY --from=builder /out/ /usr/local/bin/
COPY --chmod=0755 deploy/docker/healthcheck.sh /usr/local/bin/georec-healthcheck
COPY --chmod=0755 deploy/docker/bootstrap-model.sh /usr/local/bin/georec-bootstrap-model
# The cluster file the binaries read by default; deployments override single keys with
# GEOREC__<SECTION>__<KEY> variables (see README.md "Configuration") or mount their own.
COPY regions.toml /etc/georec/regions.toml

ENV GEOREC_CONFIG=/etc/georec/regions.toml \
    GEOREC_LOG_JSON=true \
    RUST_LOG=info

USER ${GEOREC_UID}:${GEOREC_UID}
WORKDIR /var/lib/georec

# Region nodes 8000-8003 (us-west, us-east, eu-west, ap-south), router 8080.
EXPOSE 8000 8001 8002 8003 8080

# GEOREC_HEALTHCHECK_URL picks what is probed: a node's /health/ready, the router's /regions.
# One-shot model-sync containers disable the check (compose: healthcheck.disable).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["georec-healthcheck"]

CMD ["router"]
