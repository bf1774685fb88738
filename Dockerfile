# Builds both binaries, then ships them in a small non-root runtime image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
# CA certificates, for https:// webhook forward targets.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/sora-legacy-shim --create-home shim
COPY --from=build /src/target/release/sora-legacy-shim /src/target/release/sora-sim /usr/local/bin/
COPY --from=build /src/mappings /etc/sora-legacy-shim/mappings
USER shim
WORKDIR /var/lib/sora-legacy-shim
EXPOSE 3000
ENTRYPOINT ["sora-legacy-shim"]
CMD ["run", "--listen", "0.0.0.0:3000", "--mappings", "/etc/sora-legacy-shim/mappings"]
