# ferrolb: one image holding both binaries, statically linked against musl, on a
# distroless base (no shell, no package manager; CA certificates and a
# "nonroot" user only).
#
#   docker build -t ghcr.io/ferrolb/ferrolb:0.1.0 .
#
# deploy/ runs /usr/local/bin/ferrolb-controller (as uid 65532) and
# /usr/local/bin/ferrolb-speaker (as uid 0 with NET_RAW only, see deploy/speaker.yaml).
# On alpine the Rust host target is *-linux-musl, which links statically; the
# build works the same on amd64 and arm64 (docker buildx --platform ...).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-alpine AS build
# gcc (with binutils: strip, readelf) and the musl headers: ring (TLS) compiles C and assembly.
RUN apk add --no-cache musl-dev gcc binutils
WORKDIR /src
COPY . .
# The musl target links statically by default (no RUSTFLAGS: `+crt-static` set by hand
# would also apply to proc-macro crates, which must stay dynamic libraries).
RUN cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker \
 && mkdir -p /out \
 && cp target/release/ferrolb-controller target/release/ferrolb-speaker /out/ \
 && strip /out/ferrolb-controller /out/ferrolb-speaker \
 && for b in /out/*; do \
      if readelf -l "$b" | grep -q 'program interpreter'; then \
        echo "$b is dynamically linked; the distroless static base has no libc" >&2; exit 1; \
      fi; \
    done

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ferrolb" \
      org.opencontainers.image.description="LoadBalancer IPs for bare-metal Kubernetes: controller and layer-2 (ARP/NDP) speaker" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/ferrolb"
COPY --from=build /out/ferrolb-controller /usr/local/bin/ferrolb-controller
COPY --from=build /out/ferrolb-speaker /usr/local/bin/ferrolb-speaker
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ferrolb-controller"]
