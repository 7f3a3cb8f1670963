# An image holding the `hype` command (gc, ps, logs), for running
# `hype gc --kube` in the cluster (docs/gc-cronjob.yaml). Build it from
# the root of the hype repository (the build context):
#
#   docker build -f docker/hype.Dockerfile -t europe-docker.pkg.dev/PROJECT/REPOSITORY/hype:1 .
#
# Build arguments: BASE (default debian:bookworm-slim) and RUST_VERSION, as
# in docker/Dockerfile.

ARG RUST_VERSION=1
ARG BASE=debian:bookworm-slim

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hype-cli --bin hype \
    && cp target/release/hype /hype

FROM ${BASE}
# TLS roots: the API server's certificate comes with the service account,
# but `hype gc --staging gs://…` talks to Cloud Storage.
RUN if command -v apt-get >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    elif command -v apk >/dev/null; then apk add --no-cache ca-certificates; fi
COPY --from=build /hype /usr/local/bin/hype
ENTRYPOINT ["hype"]
