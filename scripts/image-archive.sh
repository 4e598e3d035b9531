#!/usr/bin/env bash
# Writes the images "make image" built as OCI archives, for nodes that pull
# from no registry (make image-archive; docs/image.md):
#
#   build/image/NAME-VERSION.tar          every architecture (an OCI index):
#                                         one file for all nodes
#   build/image/NAME-VERSION-ARCH.tar     one architecture, smaller
#
# NAME is IMAGE's last path element (default usb-device-plugin). Layers are
# gzip-compressed, as a push would send them. On a node, import under the
# name the DaemonSet uses (the kubelet reads "usb-device-plugin:0.1.0" as
# docker.io/library/usb-device-plugin:0.1.0):
#
#   ctr -n k8s.io images import --index-name docker.io/library/usb-device-plugin:0.1.0 FILE
#   k3s ctr images import --index-name ... FILE          (k3s)
#   microk8s ctr images import --index-name ... FILE     (microk8s)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-usb-device-plugin}
VERSION=$(cat VERSION)
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-')
OUT=${OUT:-build/image}
name=${IMAGE##*/}
podman() { command podman --runtime runc "$@"; }
say() { printf 'image-archive: %s\n' "$*" >&2; }

command -v podman >/dev/null || { say "no podman: run make image first"; exit 1; }
podman manifest inspect "$IMAGE:$TAG" >/dev/null 2>&1 ||
	{ say "no manifest list $IMAGE:$TAG in podman's storage: run make image first"; exit 1; }
mkdir -p "$OUT"
files=()
all="$OUT/$name-$TAG.tar"
rm -f "$all"
podman manifest push -q --all --format oci "$IMAGE:$TAG" "oci-archive:$all:$IMAGE:$TAG"
files+=("$all")
for a in amd64 arm64 armhf; do
	podman image exists "$IMAGE:$TAG-$a" || continue
	f="$OUT/$name-$TAG-$a.tar"
	rm -f "$f"
	podman push -q --format oci "$IMAGE:$TAG-$a" "oci-archive:$f:$IMAGE:$TAG"
	files+=("$f")
done
for f in "${files[@]}"; do
	say "$f: $(stat -c %s "$f") bytes"
done
ref=$IMAGE:$TAG
case "$ref" in */*) ;; *) ref=docker.io/library/$ref ;; esac
say "on each node (as root), with the file for its architecture or the one for all:"
say "  ctr -n k8s.io images import --index-name $ref FILE"
say "  (k3s: k3s ctr images import ...; microk8s: microk8s ctr images import ...)"
