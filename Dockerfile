# ferrolb: one image holding both binaries, linked against glibc, on a distroless
# base (glibc, libgcc, CA certificates and a "nonroot" user; no shell, no package
# manager).
#
#   docker build -t ghcr.io/ferrolb/ferrolb:0.1.0 .
#
# deploy/ runs /usr/local/bin/ferrolb-controller (as uid 65532) and
# /usr/local/bin/ferrolb-speaker (as uid 0 with NET_RAW only, see deploy/speaker.yaml).
#
# Why glibc and not a static musl build: both binaries set glibc's malloc up for a
# long-lived process and hand freed memory back (process/src/malloc.rs), and every
# figure in BENCHMARKS.md is of this build. musl's allocator has none of those
# settings; measured, the musl controller used less memory but more CPU in a burst of
# creates and missed the latency target (BENCHMARKS.md, "Controller"). The builder and the base are
# the same Debian release (12, glibc 2.36), so the binaries find the glibc they were
# linked against; the build works the same on amd64 and arm64 (docker buildx
# --platform ...).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# ring (TLS) compiles C and assembly: the slim image has gcc. The check refuses a
# binary that needs a shared library the distroless base lacks (it has glibc's libc,
# libm and the loader, and libgcc_s).
RUN cargo build --release --locked -p ferrolb-controller -p ferrolb-speaker \
 && mkdir -p /out \
 && cp target/release/ferrolb-controller target/release/ferrolb-speaker /out/ \
 && strip /out/ferrolb-controller /out/ferrolb-speaker \
 && for b in /out/*; do \
      extra=$(ldd "$b" | awk '{print $1}' | grep -vE '^(linux-vdso|libc|libm|libgcc_s|/lib64/ld-linux-x86-64|/lib/ld-linux-aarch64)[.]so' || true); \
      if [ -n "$extra" ]; then \
        echo "$b needs libraries the distroless base does not have: $extra" >&2; exit 1; \
      fi; \
    done

FROM gcr.io/distroless/cc-debian12:nonroot
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
