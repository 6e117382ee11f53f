# parley in a container: `docker build -t parley .` then
#   docker run -p 8080:8080 -v parley-data:/data -e PARLEY_PUBLIC_URL=https://chat-widget.example.com -e PARLEY_ALLOWED_ORIGINS=https://www.example.com parley
# See docs/deploy.md.

# --- build -----------------------------------------------------------------------------------
# The toolchain version matches rust-toolchain.toml.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY rust-toolchain.toml Cargo.toml Cargo.lock build.rs ./
COPY crates ./crates
COPY src ./src
COPY migrations ./migrations
COPY assets ./assets
# Cargo.toml names the test target, so its folder must exist (node_modules is ignored).
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin parley \
    && cp target/release/parley /usr/local/bin/parley \
    && mkdir /data

# --- run -------------------------------------------------------------------------------------
# glibc and libgcc only: TLS is rustls with built-in roots, SQLite is compiled in.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/parley /usr/local/bin/parley
ENV PARLEY_LISTEN=0.0.0.0:8080 \
    PARLEY_DATA_DIR=/data \
    PARLEY_LOG_FORMAT=json
# An empty /data owned by the nonroot user (65532): a new volume mounted there takes it over.
COPY --from=build --chown=65532:65532 /data /data
VOLUME ["/data"]
EXPOSE 8080
USER nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/parley", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/parley"]
CMD ["serve"]
