# The cde image: one static `cde` executable on an empty (`scratch`) file system. It runs
# `cde server` by default. Runs need nothing else from it: cde copies its own executable into
# `<data dir>/bin/` and mounts it into every run's container as the entrypoint.
#
# Two ways to build it:
#
#   docker build -t cde .
#       Builds cde from source in the `builder` stage (FROM ${RUST_IMAGE}, by default the
#       public rust:1-bookworm; give `--build-arg RUST_IMAGE=...` for a mirror or your own).
#       Needs a registry for that image and crates.io for the dependencies.
#
#   cargo build --release && mkdir -p dist && cp target/*/release/cde dist/cde
#   docker build --target from-host -t cde .
#       Puts the binary you built on this machine (or copied onto it: any static Linux `cde`
#       of the engine's architecture) into the image. No registry, no network: the way to
#       build the image on an air-gapped machine.
#
# Run it with the engine's socket and the data directory mounted at the SAME path inside and
# outside (run containers mount their run directories from the engine's host, by path), and a
# token for the API:
#
#   docker run -d --name cde \
#       -v /var/run/docker.sock:/var/run/docker.sock \
#       -v /var/lib/cde:/var/lib/cde \
#       -e CDE_API_TOKEN=change-me \
#       -p 127.0.0.1:8780:8780 cde
#
# For another data directory, mount it at its own path and say so: `-v /srv/cde:/srv/cde -e
# CDE_DATA_DIR=/srv/cde`. cde runs as root in the container; whoever may use the engine's
# socket controls the machine anyway. See compose.yaml for cde with PostgreSQL.

ARG RUST_IMAGE=rust:1-bookworm

# What both images share: the configuration and how they start.
FROM scratch AS runtime
ENV CDE_DATA_DIR=/var/lib/cde \
    CDE_LISTEN=0.0.0.0:8780
EXPOSE 8780
LABEL org.opencontainers.image.title="cde" \
      org.opencontainers.image.description="A self-hosted runner for containerised data connectors" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/cde"]
CMD ["server"]

# The image from a binary built on the host: `docker build --target from-host`, with the
# binary at dist/cde. This stage comes before the builder because the legacy builder
# (DOCKER_BUILDKIT=0, docker-compose 1.x) builds every stage up to its target in file order,
# so only stages above `FROM ${RUST_IMAGE}` can be built without pulling that image.
#
# For the same reason the legacy builder passes through this stage when it builds the default
# image, where there may be no dist/cde. So the binary is copied with a pattern, beside the
# `.ci/` directory, which .dockerignore empties: the COPY always has a source and never fails.
# A from-host image built without dist/cde lacks /usr/local/bin/cde and fails when started.
FROM runtime AS from-host
COPY .ci/ dist/cd[e] /usr/local/bin/

# Builds cde from source. It picks up .cargo/config.toml: a static executable for the
# builder's own target (target/<host tuple>/release/cde), x86_64 and aarch64 alike.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cde \
    && set -- target/*/release/cde \
    && if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then echo "expected one target/*/release/cde, found: $*" >&2; exit 1; fi \
    && cp "$1" /cde

# The default image: the binary built above, nothing else. cde has the public CA roots built
# in; for a private CA, mount its certificate and name it in SSL_CERT_FILE.
FROM runtime
COPY --from=builder /cde /usr/local/bin/cde
