# A baked env image for hype (the second option; docker/Dockerfile, the
# generic image, is the first): your binary installed as
# /usr/local/bin/hype-run,
# which is the ENTRYPOINT, so a container started with the call as its only
# argument executes it. Copy this file into your project and build from the
# root of your workspace (the build context):
#
#   docker build -f docker/baked.Dockerfile --build-arg BIN=my-app -t my-env-image:1 .
#
# Build arguments:
#   BIN       the binary target to build (cargo build --release --bin $BIN);
#   EXAMPLE   or an example target instead (cargo build --release --example $EXAMPLE);
#   PACKAGE   the package holding it, in a workspace (-p $PACKAGE);
#   FEATURES  cargo features to enable (--features "$FEATURES");
#   RUST_VERSION  the rust image's tag prefix (default 1: the latest stable).
#
# The binary must be built with #[hype::main] (or call
# hype::dispatch_if_hype_run() first thing in main), and from the same
# source as the program that sends the calls: hype refuses a call whose
# function ID or signature the image does not know.
#
# Both base images come from Docker Hub; the machine that builds must be
# able to pull them.

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG BIN=
ARG EXAMPLE=
ARG PACKAGE=
ARG FEATURES=
WORKDIR /src
COPY . .
RUN set -eu; \
    if [ -n "$EXAMPLE" ]; then target="--example $EXAMPLE"; built="target/release/examples/$EXAMPLE"; \
    elif [ -n "$BIN" ]; then target="--bin $BIN"; built="target/release/$BIN"; \
    else echo "set --build-arg BIN=<your binary> (or EXAMPLE=<example>)" >&2; exit 1; fi; \
    cargo build --release --locked $target \
        ${PACKAGE:+-p "$PACKAGE"} ${FEATURES:+--features "$FEATURES"}; \
    cp "$built" /hype-run

FROM debian:bookworm-slim
# TLS roots for binaries that call HTTPS services (Google Cloud Storage, ...).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /hype-run /usr/local/bin/hype-run
# Containers run as root by default: the Docker runner bind-mounts the
# submitter's staging directory, which the container's user must be able to
# write. To run as another user, make the staging directory writable by it.
ENTRYPOINT ["hype-run"]
