# The cde image: the `cde` command line and server, plus the static Container API
# binary that cde copies into its data directory and mounts into every run.
#
# The orchestrator bind-mounts run directories (and that binary) into runs by host path,
# so mount the data directory at the same path inside and outside:
#   docker run -v /var/run/docker.sock:/var/run/docker.sock \
#              -v /var/lib/cde:/var/lib/cde cde ...
ARG BUILDER_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
        --target x86_64-unknown-linux-gnu -p cde -p container-api

FROM ${BASE_IMAGE}
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/cde /usr/local/bin/cde
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/container-api /usr/local/lib/cde/container-api
ENV CDE_CONTAINER_API_BINARY=/usr/local/lib/cde/container-api \
    CDE_DATA_DIR=/var/lib/cde
LABEL cde.managed-by=cde
ENTRYPOINT ["cde"]
CMD ["--help"]
