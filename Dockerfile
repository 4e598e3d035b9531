# usb-device-plugin container image.
#
#   docker build -t usb-device-plugin .          (or: podman build ...)
#   docker build --build-arg BASE=debian:bookworm -t usb-device-plugin .
#
# Stage 1 builds bin/usb-device-plugin on Debian 12 with the same packages
# scripts/setup.sh installs on a developer's machine. Stage 2 is FROM scratch:
# the stripped binary, the shared libraries it loads (as ldd finds them, in
# Debian's layout), the dynamic loader and usb.ids. No shell, no /etc.
# See docs/image.md.

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src

# The package layer first: it stays cached while only the sources change.
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh && rm -rf /var/lib/apt/lists/*

COPY Makefile VERSION ./
COPY proto proto
COPY src src
# The version is the VERSION file's (the Makefile reads it). A VERSION
# build argument only labels the image, and must agree with the file.
ARG VERSION=
RUN if [ -n "$VERSION" ] && [ "$VERSION" != "$(cat VERSION)" ]; then \
        echo "build-arg VERSION=$VERSION but the VERSION file says $(cat VERSION)" >&2; exit 1; fi; \
    make -j"$(nproc)" bin/usb-device-plugin

# The runtime tree in /rootfs:
# - usr/bin/usb-device-plugin, stripped;
# - every library ldd names, and the loader (PT_INTERP), copied as regular
#   files into the real directory that holds them (/usr/lib/..., Debian 12
#   merges /lib into /usr/lib), with /lib and /lib64 recreated as the
#   same symlinks as in the build stage;
# - usr/share/misc/usb.ids, the file (Debian's package makes it a symlink).
# Then the tree must run on its own: chroot into it, no /etc, no /proc.
RUN set -eu; \
    R=/rootfs; \
    install -D -m 0755 -s bin/usb-device-plugin "$R/usr/bin/usb-device-plugin"; \
    interp=$(readelf -l bin/usb-device-plugin | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p'); \
    { echo "$interp"; ldd bin/usb-device-plugin | awk '$2 == "=>" && $3 ~ /^\// {print $3}'; } | \
    while read -r lib; do \
        dir=$(readlink -f "$(dirname "$lib")"); \
        mkdir -p "$R$dir"; \
        cp -L "$lib" "$R$dir/$(basename "$lib")"; \
    done; \
    for d in /lib /lib32 /lib64 /libx32; do \
        if [ -L "$d" ] && [ -e "$R$(readlink -f "$d")" ]; then ln -s "$(readlink "$d")" "$R$d"; fi; \
    done; \
    install -D -m 0644 "$(readlink -f /usr/share/misc/usb.ids)" "$R/usr/share/misc/usb.ids"; \
    test -e "$R$interp"; \
    echo "runtime tree:"; (cd "$R" && find . ! -type d | sort); du -sh "$R"; \
    chroot "$R" /usr/bin/usb-device-plugin --version; \
    chroot "$R" /usr/bin/usb-device-plugin --help >/dev/null

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
