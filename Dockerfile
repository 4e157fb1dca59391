# Caravel backend image (docs/OPERATIONS.md). Two stages on Debian 12:
#   build    installs the toolchain and -dev packages (scripts/deps.sh build), runs make
#   runtime  only the shared libraries the binary links, plus curl for the health check
# BASE is the official slim image; `make image-check` (scripts/image-check.mjs) builds and runs
# this file with podman, passing a Debian 12 root imported as a local image where no registry
# is reachable.
ARG BASE=debian:12-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make clean && make -j"$(nproc)" WERROR=1 build/caravel && strip build/caravel

FROM ${BASE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libuv1 libsqlite3-0 libpq5 libsecp256k1-1 libcjson1 libcurl4 libwslay1 libmbedtls14 \
       ca-certificates curl \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 caravel \
    && useradd --system --uid 10001 --gid caravel --home-dir /data --shell /usr/sbin/nologin caravel \
    && mkdir -p /data && chown caravel:caravel /data
COPY --from=build /src/build/caravel /usr/local/bin/caravel
ENV DATABASE_URL=sqlite:///data/caravel.db \
    HOST=0.0.0.0 \
    PORT=3000
VOLUME ["/data"]
WORKDIR /data
USER caravel
EXPOSE 3000
STOPSIGNAL SIGTERM
# PORT may be overridden at run time: the check follows it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT:-3000}/healthz" > /dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/caravel"]
