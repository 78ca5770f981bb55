# pgusers container image.
#   docker build -t pgusers .
#   docker run -p 8080:8080 -e PGUSERS_CONNECTION_STRING=... -e PGUSERS_USERSPACE=... pgusers
# See docker-compose.yml for a complete example with PostgreSQL.
#
# Both base images are pinned to exact versions: the builder to the Rust release the project is
# built and tested with, the runtime to the Debian point release of that builder's base
# (bookworm, glibc 2.36). Raise them together, deliberately.

# ---- build ---------------------------------------------------------------------------------
FROM rust:1.95.0-bookworm AS builder
WORKDIR /build

# The release profile keeps line-level debug info for local profiling (Cargo.toml); the image
# needs none of it: 13 MB instead of 94 MB. Set before both builds so they share one profile.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols

# Dependency layer: build every dependency against placeholder sources, so that changing
# src/ does not rebuild the dependencies (this layer is cached until Cargo.toml/Cargo.lock
# change).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The crate itself. Sources copied from the context keep their old modification times,
# which cargo could take for "already built": touch the roots to force a rebuild.
COPY src ./src
COPY migrations ./migrations
COPY openapi ./openapi
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin pgusers \
    && cp target/release/pgusers /usr/local/bin/pgusers

# ---- runtime -------------------------------------------------------------------------------
FROM debian:12.11-slim

LABEL org.opencontainers.image.title="pgusers" \
      org.opencontainers.image.description="User-authentication and session daemon on PostgreSQL, with forward auth for reverse proxies" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="the pgusers developers" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.11-slim"

# Only CA certificates (TLS to PostgreSQL); versions come from the pinned bookworm base.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pgusers \
    && useradd --system --uid 10001 --gid pgusers --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin pgusers

COPY --from=builder /usr/local/bin/pgusers /usr/local/bin/pgusers

USER 10001:10001
# Inside a container the daemon must listen on all interfaces to be reachable.
ENV PGUSERS_LISTEN=0.0.0.0:8080
EXPOSE 8080

# Exec form, no shell in the loop: the subcommand GETs /healthz and exits 0 or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/pgusers", "healthcheck"]

# SIGTERM (docker stop) triggers the graceful shutdown.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pgusers"]
CMD ["serve"]
