# usb-device-plugin container image, for the architecture of the machine that
# builds it (make image builds amd64, arm64 and arm/v7 without this file, by
# cross-compiling: docs/image.md).
#
#   docker build -t usb-device-plugin .          (or: podman build ...)
#   docker build --build-arg BASE=debian:bookworm -t usb-device-plugin .
#
# Stage 1 runs scripts/release.sh on Debian 12 with the packages
# scripts/setup.sh --release installs: the release binary (static except
# glibc and libudev; cJSON from Debian's source package, fetched by apt
# during the build) and its root filesystem. Stage 2 is
# FROM scratch with that tree (the stripped binary, libudev, glibc's libc,
# libm and loader, usb.ids). No shell, no /etc. See docs/image.md.

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src

# The package layer first: it stays cached while only the sources change.
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --release && rm -rf /var/lib/apt/lists/*
# Debian's source package of cJSON (a private apt state,
# no deb-src line needed): cached while the sources change.
COPY scripts/sysroot.sh scripts/apt-sources.sh scripts/
RUN scripts/sysroot.sh --source

COPY Makefile VERSION ./
COPY scripts/release.sh scripts/release.sh
COPY proto proto
COPY src src
# The version is the VERSION file's (the Makefile reads it). A VERSION
# build argument only labels the image, and must agree with the file.
ARG VERSION=
RUN if [ -n "$VERSION" ] && [ "$VERSION" != "$(cat VERSION)" ]; then \
        echo "build-arg VERSION=$VERSION but the VERSION file says $(cat VERSION)" >&2; exit 1; fi; \
    scripts/release.sh && \
    cp -a "build/release/$(dpkg --print-architecture)/rootfs" /rootfs

FROM scratch
COPY --from=build /rootfs/ /

ARG VERSION=
ARG REVISION=
LABEL org.opencontainers.image.title="usb-device-plugin" \
      org.opencontainers.image.description="Kubernetes device plugin for USB devices and host device files, written in C" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="scratch"

ENTRYPOINT ["/usr/bin/usb-device-plugin"]
