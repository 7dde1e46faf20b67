# syntax=docker/dockerfile:1
# Basalt's container images, one target each:
#   docker build --target host     -t basalt-host .      # host serve | migrate  (:8001)
#   docker build --target worker   -t basalt-worker .    # worker serve          (health :8081)
#   docker build --target operator -t basalt-operator .  # operator run          (health :8080)
#   docker build --target frontend -t basalt-frontend .  # the web UI, static    (:5173)
# The dependencies are compiled in a layer of their own (cargo-chef), so a change to the
# workspace's code rebuilds only the workspace. The runtime is distroless/cc (glibc, CA
# certificates, no shell) as the non-root user 65532; no secret is baked in: every setting
# comes from the environment at run time (README, "Configuration").
#
# Build arguments:
#   RUST_IMAGE      the builder's image (the toolchain pinned in rust-toolchain.toml)
#   RUNTIME_IMAGE   the runtime's base image
#   BINARIES        build: compile here (the default); prebuilt: take host, worker and
#                   operator from the context's prebuilt/ directory instead (scripts/test,
#                   whose machine can pull no image, builds the runtime stages that way on a
#                   locally assembled RUNTIME_IMAGE)
#   NODE_IMAGE, STATIC_IMAGE   the web UI's builder (Node 20) and server (unprivileged nginx)
#   VITE_API_URL    where the browser finds the API, baked into the web UI's build

ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARIES=build
ARG NODE_IMAGE=docker.io/library/node:20.20-bookworm-slim
ARG STATIC_IMAGE=docker.io/nginxinc/nginx-unprivileged:1.29-alpine

FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.77
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p host -p worker -p operator \
      --bin host --bin worker --bin operator \
    && mkdir -p /out \
    && cp target/release/host target/release/worker target/release/operator /out/

FROM scratch AS prebuilt
COPY prebuilt/host prebuilt/worker prebuilt/operator /out/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.source="https://github.com/basalt-dev/basalt" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Basalt"
USER 65532:65532
WORKDIR /

FROM runtime AS host
LABEL org.opencontainers.image.title="basalt-host" \
      org.opencontainers.image.description="Basalt's API: every route group behind the middleware chain"
COPY --from=binaries /out/host /usr/local/bin/host
ENV BIND_ADDR=0.0.0.0:8001 LOG_FORMAT=json
EXPOSE 8001
ENTRYPOINT ["/usr/local/bin/host"]
CMD ["serve"]

FROM runtime AS worker
LABEL org.opencontainers.image.title="basalt-worker" \
      org.opencontainers.image.description="Basalt's job-queue worker (webhook deliveries)"
COPY --from=binaries /out/worker /usr/local/bin/worker
ENV WORKER_HEALTH_ADDR=0.0.0.0:8081 LOG_FORMAT=json
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["serve"]

FROM runtime AS operator
LABEL org.opencontainers.image.title="basalt-operator" \
      org.opencontainers.image.description="The AppDeployment operator"
COPY --from=binaries /out/operator /usr/local/bin/operator
ENV OPERATOR_HEALTH_ADDR=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/operator"]
CMD ["run"]

# The web UI: `npm ci` from the lockfile (its own layer), the typed client checked against
# openapi.json, the production build, served as static files by unprivileged nginx.
FROM ${NODE_IMAGE} AS frontend-build
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-fund --no-audit
COPY openapi.json /src/openapi.json
COPY frontend/ ./
ARG VITE_API_URL=http://localhost:8001
RUN npm run generate:check && npm run build

FROM ${STATIC_IMAGE} AS frontend
LABEL org.opencontainers.image.source="https://github.com/basalt-dev/basalt" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Basalt" \
      org.opencontainers.image.title="basalt-frontend" \
      org.opencontainers.image.description="Basalt's web UI (static files)"
COPY frontend/nginx.conf /etc/nginx/conf.d/default.conf
COPY --from=frontend-build /src/frontend/dist /usr/share/nginx/html
USER 101:101
EXPOSE 5173
