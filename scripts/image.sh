#!/usr/bin/env bash
# Builds the container images with podman and smoke-tests them (make image).
#
#   scripts/image.sh                      amd64, arm64 and arm/v7 (default)
#   ARCH="amd64 arm64" scripts/image.sh   only those (armhf = arm/v7)
#   IMAGE=example.org/usb-device-plugin scripts/image.sh
#   SMOKE=chroot scripts/image.sh         smoke test: auto (default), podman,
#                                         containerd or chroot only
#   MODE=dockerfile scripts/image.sh      this machine's architecture only,
#                                         with the Dockerfile, as
#                                         "docker build ." on another machine
#
# 1. installs podman and runc (later containerd) when missing;
# 2. for each architecture: scripts/release.sh ARCH builds the binary and
#    the root filesystem (a cross compiler for another architecture: no
#    emulation), then podman build --platform ... -f
#    scripts/rootfs.Containerfile tags it IMAGE:VERSION-ARCH;
# 3. makes IMAGE:VERSION a manifest list of those images (podman manifest:
#    an OCI index once pushed with make push);
#    MODE=dockerfile instead: a Debian base image ($BASE when local or
#    pullable, else localhost/debian:bookworm-slim, made once with
#    debootstrap from this machine's Debian mirror) and podman build . ->
#    IMAGE:VERSION, a single image;
# 4. runs this machine's architecture's image: podman run, else a private
#    containerd + ctr (which also starts the plugin as the DaemonSet does),
#    else chroot into the exported filesystem; the other architectures' trees
#    were run by scripts/release.sh under qemu-user-static (make test-cross
#    runs them against the kubelet stand-in);
# 5. prints the images' sizes.
# Safe to re-run. Temporary files and the private containerd go away on
# exit; the host's /var/lib/containerd and /run/containerd/containerd.sock
# are never used.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-usb-device-plugin}
BASE=${BASE:-debian:bookworm-slim}
LOCAL_BASE=localhost/debian:bookworm-slim
# The release, from the VERSION file, as the Makefile and the manifests.
VERSION=$(cat VERSION)
REVISION=$(git rev-parse HEAD 2>/dev/null || true)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
SMOKE=${SMOKE:-auto}
MODE=${MODE:-cross}
ARCHS=${ARCH:-amd64 arm64 armhf}
HOST_ARCH=$(dpkg --print-architecture)
case "$MODE" in cross | dockerfile) ;; *) echo "MODE: cross or dockerfile" >&2; exit 2 ;; esac
case "$SMOKE" in auto | podman | containerd | chroot) ;; *) echo "SMOKE: auto, podman, containerd or chroot" >&2; exit 2 ;; esac
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-')

say() { printf 'image: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

start=$(date +%s)
tmp=""
ctrd_pid=""
ctr=(ctr)
# containerd's shims put their sockets in /run/containerd/s whatever its
# state dir: the folders this run makes there go again at the end.
had_run=""; had_run_s=""
[ -d /run/containerd ] && had_run=1
[ -d /run/containerd/s ] && had_run_s=1
cleanup() {
	local rc=$?
	if [ -n "$ctrd_pid" ] && kill -0 "$ctrd_pid" 2>/dev/null; then
		# A task still running (a failure half-way) goes first: its
		# shim would outlive containerd.
		local t
		for t in $("${ctr[@]}" task ls -q 2>/dev/null); do
			"${ctr[@]}" task kill -s SIGKILL "$t" >/dev/null 2>&1 || true
			sleep 0.5
			"${ctr[@]}" task delete -f "$t" >/dev/null 2>&1 || true
			"${ctr[@]}" container delete "$t" >/dev/null 2>&1 || true
		done
		kill "$ctrd_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$ctrd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$ctrd_pid" 2>/dev/null || true
	fi
	[ -n "$had_run_s" ] || rmdir /run/containerd/s 2>/dev/null || true
	[ -n "$had_run" ] || rmdir /run/containerd 2>/dev/null || true
	if [ -n "$tmp" ] && [ -d "$tmp" ]; then
		# Whatever a container left mounted below it, deepest first.
		findmnt -rn -o TARGET | awk -v t="$tmp/" 'index($0, t) == 1' | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		rm -rf --one-file-system "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_updated=""
need() { # need PACKAGE... : apt-get install what dpkg does not have
	local missing=() p status
	for p in "$@"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

. scripts/apt-sources.sh # apt_sources (we are at the top of the checkout)

http_get() { # http_get PORT PATH: the whole answer of 127.0.0.1:PORT, CRs removed
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$2" >&3
		timeout 5 cat <&3 | tr -d '\r'
	)
}

# 1. podman, with runc: Debian's podman prefers crun, which refuses cgroup
# v1/v2 hybrid hosts ("cgroups in hybrid mode not supported").
need podman runc
command -v podman >/dev/null || die "podman is not installed"
podman() { command podman --runtime runc "$@"; }

# The name IMAGE:TAG is about to be given to a new image or manifest list:
# take it from whatever holds it now (the image it named stays, by ID or
# its other names).
release_name() {
	if podman manifest exists "$1"; then
		podman manifest rm "$1" >/dev/null
	elif podman image exists "$1"; then
		podman untag "$(podman image inspect --format '{{.Id}}' "$1")" "$1" 2>/dev/null || podman rmi "$1" >/dev/null
	fi
}
platform_of() {
	case "$1" in
	amd64) echo linux/amd64 ;;
	arm64) echo linux/arm64 ;;
	armhf) echo linux/arm/v7 ;;
	esac
}

refs=()
if [ "$MODE" = cross ]; then
	# 2. Per architecture: the tree, then the image.
	norm=()
	for a in $ARCHS; do
		case "$a" in
		amd64 | x86_64 | linux/amd64) a=amd64 ;;
		arm64 | aarch64 | linux/arm64) a=arm64 ;;
		armhf | armv7 | arm/v7 | linux/arm/v7) a=armhf ;;
		*) die "unknown architecture $a (amd64, arm64, armhf)" ;;
		esac
		norm+=("$a")
	done
	for a in "${norm[@]}"; do
		scripts/release.sh "$a" || die "scripts/release.sh $a"
		say "building $IMAGE:$TAG-$a ($(platform_of "$a"))"
		# --timestamp: the same tree gives the same image (and ID) again,
		# rather than a new one and a dangling old one.
		podman build -q --network=none --platform "$(platform_of "$a")" --timestamp "$epoch" \
			-f scripts/rootfs.Containerfile \
			--build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
			-t "$IMAGE:$TAG-$a" "build/release/$a/rootfs" >/dev/null || die "podman build ($a)"
		refs+=("$IMAGE:$TAG-$a")
	done
	# 3. One name for all of them: a manifest list.
	release_name "$IMAGE:$TAG"
	podman manifest create "$IMAGE:$TAG" >/dev/null || die "podman manifest create"
	for r in "${refs[@]}"; do
		podman manifest add "$IMAGE:$TAG" "containers-storage:$(podman image inspect --format '{{.Id}}' "$r")" >/dev/null ||
			die "podman manifest add $r"
	done
	say "manifest list $IMAGE:$TAG: ${norm[*]}"
	ref=""
	for a in "${norm[@]}"; do [ "$a" = "$HOST_ARCH" ] && ref="$IMAGE:$TAG-$a"; done
else
	# 2. The base image.
	base_arg=()
	if podman image exists "$BASE"; then
		say "base: $BASE (local storage: $(podman image inspect --format '{{.RepoTags}}' "$BASE"))"
	elif timeout 60 podman --runtime runc pull -q "$BASE" >/dev/null 2>&1; then
		say "base: $BASE (pulled)"
	elif podman image exists "$LOCAL_BASE"; then
		say "base: $BASE cannot be pulled; using $LOCAL_BASE (built earlier with debootstrap)"
		base_arg=(--build-arg "BASE=$LOCAL_BASE")
	else
		case "$BASE" in
		debian:bookworm-slim | debian:bookworm | docker.io/library/debian:bookworm*) ;;
		*) die "base image $BASE is not in local storage and cannot be pulled" ;;
		esac
		say "base: $BASE cannot be pulled (no registry); building $LOCAL_BASE with debootstrap"
		need debootstrap debian-archive-keyring
		sources=$(apt_sources | awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u)
		mirror=$(printf '%s\n' "$sources" | awk '$2 == "bookworm" { print $1; exit }')
		[ -n "$mirror" ] || die "no Debian bookworm mirror in /etc/apt/sources.list{,.d}"
		tmp=$(mktemp -d /tmp/usbdp-image.XXXXXX)
		root="$tmp/base"
		say "debootstrap --variant=minbase bookworm from $mirror"
		debootstrap --variant=minbase bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
			{ tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap"; }
		# apt in the base reads the same suites as this machine (main only).
		printf '%s\n' "$sources" | awk '{ print "deb", $1, $2, "main" }' >"$root/etc/apt/sources.list"
		rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
		tar --numeric-owner --xattrs -C "$root" -c . |
			podman import --change 'CMD ["/bin/bash"]' \
				--message "debootstrap --variant=minbase bookworm $mirror" - "$LOCAL_BASE" >/dev/null
		rm -rf --one-file-system "$root"
		say "base: $LOCAL_BASE built and kept in podman's storage"
		base_arg=(--build-arg "BASE=$LOCAL_BASE")
	fi

	# 3. Build.
	say "building $IMAGE:$TAG (version $VERSION) with the Dockerfile"
	release_name "$IMAGE:$TAG"
	podman build --network=host --pull=never "${base_arg[@]}" \
		--build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
		-t "$IMAGE:$TAG" . || die "podman build"
	refs=("$IMAGE:$TAG")
	ref="$IMAGE:$TAG"
fi

# 4. Smoke test: the image's entrypoint prints the version we built.
want="$VERSION"
check_version() { # check_version OUTPUT HOW
	local got
	got=$(printf '%s' "$1" | tr -d '\r' | tail -n 1)
	[ "$got" = "$want" ] || [ "$got" = "usb-device-plugin $want" ] ||
		die "$2: --version printed '$got', expected '$want'"
}
[ -d "$tmp" ] || tmp=$(mktemp -d /tmp/usbdp-image.XXXXXX)
verified=""
if [ -z "$ref" ]; then
	SMOKE=none
	verified="no image for this machine's architecture ($HOST_ARCH) to run here"
fi

if [ "$SMOKE" != auto ] && [ "$SMOKE" != podman ]; then
	:
elif out=$(timeout 60 podman --runtime runc run --rm "$ref" --version 2>"$tmp/podman-run.err"); then
	check_version "$out" "podman run"
	verified="podman run --rm $ref --version: $out"
else
	say "podman run does not work here: $(tail -n 1 "$tmp/podman-run.err")"
fi

if [ -z "$verified" ] && { [ "$SMOKE" = auto ] || [ "$SMOKE" = containerd ]; } &&
	need containerd 2>"$tmp/containerd-install.err"; then
	ns=usbdp-smoke
	sock="$tmp/containerd.sock"
	mkdir -p "$tmp/ctrd/root" "$tmp/ctrd/state" "$tmp/dp"
	cat >"$tmp/ctrd/config.toml" <<-EOF
		version = 2
		root = "$tmp/ctrd/root"
		state = "$tmp/ctrd/state"
		[grpc]
		  address = "$sock"
		[ttrpc]
		  address = "$sock.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.grpc.v1.cri"]
		  restrict_oom_score_adj = true
	EOF
	containerd --config "$tmp/ctrd/config.toml" --log-level warn >"$tmp/containerd.log" 2>&1 &
	ctrd_pid=$!
	ctr=(ctr --address "$sock" --namespace "$ns")
	for _ in $(seq 100); do
		"${ctr[@]}" version >/dev/null 2>&1 && break
		kill -0 "$ctrd_pid" 2>/dev/null || break
		sleep 0.2
	done
	if "${ctr[@]}" version >/dev/null 2>&1; then
		# As a node without a registry gets it (docs/image.md): make
		# image-archive's file with every architecture, imported under the
		# name the kubelet asks for; containerd unpacks this machine's.
		if [ "$MODE" = cross ]; then
			IMAGE="$IMAGE" scripts/image-archive.sh 2>"$tmp/archive.log" ||
				{ cat "$tmp/archive.log" >&2; die "scripts/image-archive.sh"; }
			archive="build/image/${IMAGE##*/}-$TAG.tar"
			ctr_ref=$IMAGE:$TAG
			case "$ctr_ref" in */*) ;; *) ctr_ref=docker.io/library/$ctr_ref ;; esac
		else
			podman save -q --format oci-archive -o "$tmp/image.tar" "$ref" >/dev/null
			archive="$tmp/image.tar"
			ctr_ref=$ref
		fi
		"${ctr[@]}" images import --snapshotter native --index-name "$ctr_ref" "$archive" >/dev/null
		cname="usbdp-smoke-$$"
		# FIFOs and runc's state in $tmp too; runc's default cgroup (/NAME),
		# not one below a namespace cgroup that would outlive the run.
		mkdir -p "$tmp/fifo" "$tmp/runc"
		run_opts=(--rm --snapshotter native --fifo-dir "$tmp/fifo" --runc-root "$tmp/runc" --cgroup "")
		if out=$(timeout 60 "${ctr[@]}" run "${run_opts[@]}" "$ctr_ref" "$cname" \
			/usr/bin/usb-device-plugin --version 2>"$tmp/ctr-run.err"); then
			check_version "$out" "ctr run"
			verified="containerd $("${ctr[@]}" version 2>/dev/null | awk '/Version:/ { v = $2 } END { print v }') + runc: ctr images import --index-name $ctr_ref $archive; ctr run $ctr_ref --version: $out"
			# And a start as manifests/usb-device-plugin.yaml runs it: host
			# network, read-only root, every capability dropped, the default
			# seccomp profile; the plugin directory (read-write), /dev, /sys
			# and /run/udev (read-only) from the host; config/default.yaml
			# where the ConfigMap goes. No kubelet here, and /healthz on a
			# free loopback port instead of :8080.
			port=""
			for _ in $(seq 20); do
				p=$((20000 + RANDOM % 10000))
				ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { port=$p; break; }
			done
			[ -n "$port" ] || die "no free port for /healthz"
			mkdir -p "$tmp/config"
			cp config/default.yaml "$tmp/config/config.yaml"
			mounts=(--mount "type=bind,src=$tmp/dp,dst=/var/lib/kubelet/device-plugins,options=rbind:rw"
				--mount "type=bind,src=$tmp/config,dst=/etc/usb-device-plugin,options=rbind:ro"
				--mount "type=bind,src=/dev,dst=/dev,options=rbind:ro"
				--mount "type=bind,src=/sys,dst=/sys,options=rbind:ro")
			[ -d /run/udev ] && mounts+=(--mount "type=bind,src=/run/udev,dst=/run/udev,options=rbind:ro")
			# ctr 1.6 takes no "ALL": its default set, one by one.
			nocaps=()
			for c in CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP \
				NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE; do
				nocaps+=(--cap-drop "CAP_$c")
			done
			"${ctr[@]}" run "${run_opts[@]}" --net-host --read-only "${nocaps[@]}" --seccomp "${mounts[@]}" \
				"$ctr_ref" "$cname-run" /usr/bin/usb-device-plugin \
				--config /etc/usb-device-plugin/config.yaml --listen "127.0.0.1:$port" \
				>"$tmp/plugin.log" 2>&1 &
			run_pid=$!
			started=""
			# The socket the plugin says it serves a resource on (per-process
			# names, src/resource.c).
			sock_of() {
				sed -n "s|.* serving resource=usb-device-plugin.dev/$1 socket=/var/lib/kubelet/device-plugins/\(usbdp-[^ /]*\.sock\)$|\1|p" \
					"$tmp/plugin.log" | tail -n 1
			}
			for _ in $(seq 50); do
				grep -qs 'waiting for kubelet' "$tmp/plugin.log" && grep -qs 'usb enumeration' "$tmp/plugin.log" &&
					s=$(sock_of serial) && [ -n "$s" ] && [ -S "$tmp/dp/$s" ] &&
					s=$(sock_of fuse) && [ -n "$s" ] && [ -S "$tmp/dp/$s" ] &&
					{ started=1; break; }
				kill -0 "$run_pid" 2>/dev/null || break
				sleep 0.2
			done
			healthz="" metrics=""
			if [ -n "$started" ]; then
				healthz=$(http_get "$port" /healthz) || true
				metrics=$(http_get "$port" /metrics) || true
			fi
			"${ctr[@]}" task kill -s SIGTERM "$cname-run" >/dev/null 2>&1 || true
			rc=0
			for _ in $(seq 50); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.2; done
			if kill -0 "$run_pid" 2>/dev/null; then
				"${ctr[@]}" task kill -s SIGKILL "$cname-run" >/dev/null 2>&1 || true
			fi
			wait "$run_pid" || rc=$?
			if [ -z "$started" ] || [ "$rc" -ne 0 ] || ! grep -q 'level=info stopped' "$tmp/plugin.log"; then
				sed 's/^/  plugin: /' "$tmp/plugin.log" >&2
				die "ctr run: the plugin did not start, serve its socket and stop on SIGTERM (exit $rc)"
			fi
			# No kubelet: /healthz says 503, not registered; /metrics lists the
			# resources (fuse: 10 when the host has /dev/fuse).
			if ! { printf '%s\n' "$healthz" | head -n 1 | grep -q ' 503' &&
				printf '%s\n' "$healthz" | grep -q 'not registered with the kubelet'; }; then
				die "ctr run: GET /healthz answered: $healthz"
			fi
			if ! { printf '%s\n' "$metrics" | head -n 1 | grep -q ' 200' &&
				printf '%s\n' "$metrics" | grep -q '^usbdp_devices{resource="usb-device-plugin.dev/serial"' &&
				{ [ ! -e /dev/fuse ] ||
					printf '%s\n' "$metrics" | grep -q '^usbdp_devices{resource="usb-device-plugin.dev/fuse",health="healthy"} 10$'; }; }; then
				die "ctr run: GET /metrics answered: $(printf '%s\n' "$metrics" | head -n 20)"
			fi
			[ -z "$(ls -A "$tmp/dp")" ] || die "ctr run: the plugin left $(ls "$tmp/dp") behind"
			verified="$verified; and started as the DaemonSet runs it (host network, read-only root, no capabilities, seccomp, config/default.yaml, host /dev /sys read-only): sockets for serial (USB) and fuse in the plugin directory, GET /healthz 503 (no kubelet), GET /metrics 200 with the devices, SIGTERM: exit 0, sockets removed"
			"${ctr[@]}" images rm --sync "$ctr_ref" >/dev/null 2>&1 || true
		else
			say "ctr run failed: $(tail -n 3 "$tmp/ctr-run.err" | tr '\n' ' ')"
		fi
	else
		say "containerd did not start: $(tail -n 3 "$tmp/containerd.log" | tr '\n' ' ')"
	fi
	kill "$ctrd_pid" 2>/dev/null || true
	wait "$ctrd_pid" 2>/dev/null || true
	ctrd_pid=""
fi

if [ -z "$verified" ] && { [ "$SMOKE" = auto ] || [ "$SMOKE" = chroot ]; }; then
	say "no container runtime works here; running the image's filesystem chrooted"
	cid=$(podman create "$ref")
	mkdir -p "$tmp/rootfs"
	podman export "$cid" | tar -C "$tmp/rootfs" -x
	podman rm "$cid" >/dev/null
	out=$(chroot "$tmp/rootfs" /usr/bin/usb-device-plugin --version) || die "chroot: --version"
	check_version "$out" "chroot"
	chroot "$tmp/rootfs" /usr/bin/usb-device-plugin --help >/dev/null || die "chroot: --help"
	verified="chroot into the exported image filesystem: --version: $out; --help: ok"
fi
[ -n "$verified" ] || die "smoke test ($SMOKE): nothing ran the image"
say "verified: $verified"

# 5. Size.
for r in "${refs[@]}"; do
	size=$(podman image inspect --format '{{.Size}}' "$r")
	say "$r: $(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$r"), $(awk -v s="$size" 'BEGIN { printf "%.1f MiB (%d bytes)", s / 1048576, s }') uncompressed"
done
[ "$MODE" = dockerfile ] || say "$IMAGE:$TAG: manifest list of ${refs[*]}; push it with make push REGISTRY=..., or make image-archive for ctr import (docs/image.md)"
say "done in $(($(date +%s) - start)) s"
