#!/usr/bin/env bash
# Pushes the manifest list "make image" built, with every architecture's
# image, to a registry (make push REGISTRY=...; docs/image.md):
#
#   REGISTRY=registry.example/team scripts/push.sh
#       -> registry.example/team/usb-device-plugin:VERSION (an OCI index)
#   TLS_VERIFY=false REGISTRY=localhost:5000 scripts/push.sh   (plain HTTP)
#
# Log in first if the registry wants it (podman login REGISTRY). Then point
# the DaemonSet at that name: manifests/kustomization.yaml, images: newName.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-usb-device-plugin}
REGISTRY=${REGISTRY:?"usage: make push REGISTRY=registry.example/team"}
VERSION=$(cat VERSION)
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-')
dest="${REGISTRY%/}/${IMAGE##*/}:$TAG"
say() { printf 'push: %s\n' "$*" >&2; }
podman() { command podman --runtime runc "$@"; }

command -v podman >/dev/null || { say "no podman: run make image first"; exit 1; }
podman manifest inspect "$IMAGE:$TAG" >/dev/null 2>&1 ||
	{ say "no manifest list $IMAGE:$TAG in podman's storage: run make image first"; exit 1; }
tls=()
[ -n "${TLS_VERIFY:-}" ] && tls=(--tls-verify="$TLS_VERIFY")
say "$IMAGE:$TAG -> docker://$dest"
podman manifest push --all --format oci "${tls[@]}" "$IMAGE:$TAG" "docker://$dest"
say "pushed; set it in manifests/kustomization.yaml (images: newName: ${dest%:*}, newTag: $TAG)"
