#!/usr/bin/env bash
# Installs the Debian 12 packages that building, running and testing need.
# Idempotent: asks dpkg first and calls apt-get only for what is missing.
#   scripts/setup.sh           build + run packages
#   scripts/setup.sh --test    also the test tools
#   scripts/setup.sh --release also what the image's release build needs
#                              (scripts/release.sh, scripts/sysroot.sh)
#   scripts/setup.sh --cross   also the cross compilers for arm64 and armhf
#                              and qemu-user-static (make test-cross)
# Flags combine.
set -euo pipefail

build_pkgs=(gcc g++ make pkg-config libc6-dev
	libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
	libcjson-dev libyaml-dev libudev-dev libusb-1.0-0-dev usb.ids libmicrohttpd-dev
	libre2-dev libcurl4-openssl-dev)
test_pkgs=(python3 python3-grpcio python3-protobuf protobuf-compiler
	umockdev libumockdev-dev gir1.2-umockdev-1.0 python3-gi
	python3-pytest valgrind python3-prometheus-client python3-yaml
	clang libclang-rt-14-dev)

# dpkg-source unpacks Debian's source packages; libstdc++.a for the static link.
release_pkgs=(dpkg-dev debian-archive-keyring binutils libstdc++-12-dev)
cross_pkgs=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-aarch64-linux-gnu
	g++-arm-linux-gnueabihf qemu-user-static)

want=("${build_pkgs[@]}")
for flag in "$@"; do
	case "$flag" in
	--test) want+=("${test_pkgs[@]}") ;;
	--release) want+=("${release_pkgs[@]}") ;;
	--cross) want+=("${release_pkgs[@]}" "${cross_pkgs[@]}") ;;
	*)
		echo "setup: unknown flag $flag (--test, --release, --cross)" >&2
		exit 2
		;;
	esac
done

missing=()
for p in "${want[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
