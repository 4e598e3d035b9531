#!/usr/bin/env bash
# A real single-node Kubernetes for `make e2e`, from Debian 12's packages only.
#
#   scripts/e2e/cluster.sh build   install packages, build the components and
#                                  the pause and busybox images (once)
#   scripts/e2e/cluster.sh up      build if needed, start the cluster, load the
#                                  images; prints the kubeconfig's path last
#   scripts/e2e/cluster.sh down    stop everything `up` started, unmount what
#                                  the kubelet mounted, remove the run state
#   scripts/e2e/cluster.sh status  is it up? (exit 0/1)
#   scripts/e2e/cluster.sh logs    the last lines of every daemon's log
#   scripts/e2e/cluster.sh restart-kubelet
#                                  stop the kubelet and start it again
#
# What it is made of (see docs/e2e.md):
# - kube-apiserver, kube-controller-manager, kube-scheduler and kubelet built
#   from Debian's `kubernetes` source package (1.20.2) with Debian's Go, in
#   GOPATH mode, once: the binaries and Go's build cache live in $E2E_CACHE
#   (default /var/cache/usbdp-e2e), outside the repository;
# - etcd from `etcd-server`, containerd + runc, the bridge and host-local CNI
#   plugins from `containernetworking-plugins`, kubectl from
#   `kubernetes-client` (extracted into the cache: /usr/bin/kubectl may
#   belong to another package);
# - a pause image and a busybox image built here (FROM scratch with podman:
#   no registry is reachable), and the plugin's image from `make image`.
#
# Every daemon is started here (no systemd), on loopback or this machine's
# own address, with its own state below $E2E_CACHE/run; logs go to
# $E2E_CACHE/run/log/*.log and are printed when something fails. The only
# paths outside $E2E_CACHE it touches: /var/lib/kubelet/device-plugins (the
# kubelet's device-plugin directory cannot be moved), an apt deb-src entry
# (/etc/apt/sources.list.d/usbdp-e2e-src.sources) for `apt-get source`, the
# bridge interface usbdp0, /run/containerd/s (containerd's shims put their
# sockets there whatever its state dir), the k8s.io cgroups runc makes, and
# the network namespaces containerd makes for Pods (/run/netns/cni-*, only
# those its sandboxes name; the directory stays). `down` removes them all
# (the deb-src entry stays).
#
# Environment:
#   E2E_CACHE      cache and run state (default /var/cache/usbdp-e2e)
#   E2E_IMAGE      the plugin image in podman's storage to load (default:
#                  the DaemonSet's image field, e.g. usb-device-plugin:0.1.0)
#   E2E_KEEP=1     `up` leaves a half-started cluster running on failure
#   E2E_NODE_IP    the node's address (default: this machine's first global
#                  IPv4 address, else 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE=${E2E_CACHE:-/var/cache/usbdp-e2e}
RUN=$CACHE/run
LOG=$RUN/log
BIN=$CACHE/bin
K8S_VERSION=v1.20.2
# Ports: the API server and etcd away from their defaults (another etcd or
# API server on the host keeps its own), the kubelet on its usual ones. `up`
# checks that all are free, and 8080 (the plugin's /healthz and /metrics).
APISERVER_PORT=16443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
KUBELET_PORT=10250
KUBELET_HEALTHZ_PORT=10248
# The Pod network: a bridge of our own, a /24 nothing else on the host uses.
BRIDGE=usbdp0
POD_SUBNET=10.244.77.0/24
SERVICE_CIDR=10.96.0.0/24
# Images the node needs, under the names the manifests use.
PAUSE_IMAGE=localhost/usbdp-e2e/pause:1
# busybox:1.36 as the kubelet resolves it; built under a local name in
# podman's storage, so that no fake docker.io image lands there.
BUSYBOX_IMAGE=docker.io/library/busybox:1.36
BUSYBOX_LOCAL=localhost/usbdp-e2e/busybox:1.36

# Ctrl-C or SIGTERM: exit through the EXIT trap (`up` tears down then).
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf 'e2e: %s\n' "$*" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: it starts a kubelet and containerd"

# ---------------------------------------------------------------- packages

apt_updated=""
apt_get() { # apt-get, waiting (3 min at most) while another apt holds the lock
	local i
	for i in $(seq 18); do
		if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=10 "$@"; then
			return 0
		fi
		[ "$i" -lt 18 ] || return 1
		say "apt-get $1 failed (lock held by another apt?); retrying"
		sleep 10
	done
}
need() { # need PACKAGE... : install those dpkg does not have
	local missing=() p status
	for p in "$@"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	if [ -z "$apt_updated" ]; then apt_get update -qq; apt_updated=1; fi
	apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

SRC_LIST=/etc/apt/sources.list.d/usbdp-e2e-src.sources
# Source packages of bookworm's main, from the mirror this machine's apt
# already uses for its binary packages.
enable_deb_src() {
	[ -f "$SRC_LIST" ] && return 0
	local mirror
	# One-line (deb URI bookworm ...) and deb822 (URIs:, Suites:) formats;
	# missing files are skipped (hence no pipefail here).
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^deb / && / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }
			/^URIs:/ { uri = $2 } /^Suites:/ && / bookworm( |$)/ && uri != "" { print uri; exit }') || true
	[ -n "$mirror" ] || die "no Debian bookworm mirror in /etc/apt/sources.list{,.d}"
	say "adding a deb-src entry for bookworm ($mirror) in $SRC_LIST"
	cat >"$SRC_LIST" <<-EOS
		# Added by usb-device-plugin's scripts/e2e/cluster.sh: Debian's kubernetes
		# source package for the end-to-end test cluster.
		Types: deb-src
		URIs: $mirror
		Suites: bookworm
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOS
	apt_updated=""
}

# ------------------------------------------------------------------- build

# kubectl from Debian's kubernetes-client, whoever owns /usr/bin/kubectl.
install_kubectl() {
	if [ -x "$BIN/kubectl" ]; then return 0; fi
	mkdir -p "$BIN"
	if dpkg-query -W -f='${db:Status-Status}' kubernetes-client 2>/dev/null | grep -qx installed; then
		ln -sf /usr/bin/kubectl "$BIN/kubectl"
		return 0
	fi
	local owner
	owner=$(dpkg -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
	if [ -z "$owner" ] && ! [ -e /usr/bin/kubectl ]; then
		need kubernetes-client
		ln -sf /usr/bin/kubectl "$BIN/kubectl"
		return 0
	fi
	say "/usr/bin/kubectl belongs to ${owner:-no package}: extracting Debian's kubernetes-client into $CACHE"
	local d
	d=$(mktemp -d "$CACHE/kubectl.XXXXXX")
	# As root into a folder of ours: no sandbox user (_apt could not write here).
	(cd "$d" && apt_get download -qq -o APT::Sandbox::User=root kubernetes-client) >/dev/null
	dpkg-deb -x "$d"/kubernetes-client_*.deb "$CACHE/kubernetes-client"
	rm -rf "$d"
	ln -sf "$CACHE/kubernetes-client/usr/bin/kubectl" "$BIN/kubectl"
}

K8S_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

# The four components from Debian's kubernetes source package. GOPATH mode
# (the tarball's vendor/ has every dependency; k8s.io/* point into staging/),
# CGO off as Debian's own build, the version stamped as upstream's
# hack/lib/version.sh does.
build_components() {
	local stamp="$BIN/.built-$K8S_VERSION" c
	if [ -f "$stamp" ]; then
		for c in "${K8S_COMPONENTS[@]}"; do [ -x "$BIN/$c" ] || rm -f "$stamp"; done
		[ -f "$stamp" ] && return 0
	fi
	local t0=$SECONDS
	mkdir -p "$CACHE/src" "$BIN"
	local src
	src=$(find "$CACHE/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
	if [ -z "$src" ]; then
		enable_deb_src
		if [ -z "$apt_updated" ]; then apt_get update -qq; apt_updated=1; fi
		say "apt-get source kubernetes"
		(cd "$CACHE/src" && apt_get source -qq -o APT::Sandbox::User=root kubernetes) >"$CACHE/src/apt-source.log" 2>&1 ||
			{ tail -20 "$CACHE/src/apt-source.log" >&2; die "apt-get source kubernetes"; }
		src=$(find "$CACHE/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
	fi
	[ -n "$src" ] && [ -f "$src/cmd/kubelet/kubelet.go" ] || die "no kubernetes source tree in $CACHE/src"
	case "$(basename "$src")" in
	*"${K8S_VERSION#v}"*) ;;
	*) say "warning: $(basename "$src") may not be Kubernetes $K8S_VERSION" ;;
	esac

	export GOPATH=$CACHE/gopath GOCACHE=$CACHE/gocache GO111MODULE=off CGO_ENABLED=0 GOFLAGS=
	mkdir -p "$GOPATH/src/k8s.io"
	ln -sfn "$src" "$GOPATH/src/k8s.io/kubernetes"
	local pkg=$GOPATH/src/k8s.io/kubernetes

	# kube-apiserver needs the OpenAPI definitions of every built-in type,
	# which the release tarball does not carry: generate them as upstream's
	# Makefile.generated_files does (its KUBE target), with the vendored
	# openapi-gen, over every package with a +k8s:openapi-gen= tag.
	local openapi=$pkg/pkg/generated/openapi/zz_generated.openapi.go
	if [ ! -s "$openapi" ]; then
		say "generating pkg/generated/openapi (openapi-gen)"
		(cd "$pkg" && go build -o "$CACHE/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen) ||
			die "building openapi-gen"
		local dirs
		# Upstream's selection: Go files in column-0-tagged packages,
		# staging/src/k8s.io/X named vendor/k8s.io/X, code-generator's and
		# sample-apiserver's examples left out.
		dirs=$(cd "$pkg" && find -H . \( -path ./_\* -o -path ./.\* -o -path ./vendor -o -path ./debian \) -prune -o \
			-type f -name '*.go' -print | xargs grep -l '^// *+k8s:openapi-gen=' |
			sed -e 's|^\./staging/src/|vendor/|' -e 's|/[^/]*$||' |
			grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
			LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
		[ -n "$dirs" ] || die "no +k8s:openapi-gen= packages found in $src"
		(cd "$pkg" && "$CACHE/openapi-gen" --logtostderr -v 0 \
			-i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
			-h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
			-r "$CACHE/openapi-violations.report") >"$CACHE/openapi-gen.log" 2>&1 ||
			{ tail -20 "$CACHE/openapi-gen.log" >&2; die "openapi-gen"; }
		[ -s "$openapi" ] || die "openapi-gen wrote no $openapi"
		# As upstream: the API rule violations found must be the known ones,
		# else the selection of packages differs from upstream's.
		LC_ALL=C sort "$CACHE/openapi-violations.report" |
			cmp -s - <(LC_ALL=C sort "$pkg/api/api-rules/violation_exceptions.list") ||
			say "warning: openapi-gen's API rule violations differ from api/api-rules/violation_exceptions.list"
	fi

	local v=k8s.io/kubernetes/vendor/k8s.io ldflags="-s -w" key val
	for kv in "gitVersion=$K8S_VERSION" gitMajor=1 gitMinor=20 gitTreeState=archive \
		"buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
		key=${kv%%=*} val=${kv#*=}
		ldflags="$ldflags -X $v/component-base/version.$key=$val -X $v/client-go/pkg/version.$key=$val"
	done
	say "building ${K8S_COMPONENTS[*]} from $(basename "$src") (first time: about 7 min on 2 cores)"
	local pkgs=()
	for c in "${K8S_COMPONENTS[@]}"; do pkgs+=("./cmd/$c"); done
	(cd "$pkg" && go build -tags selinux,notest -ldflags "$ldflags" -o "$BIN/" "${pkgs[@]}") \
		>"$CACHE/build.log" 2>&1 || { tail -30 "$CACHE/build.log" >&2; die "go build"; }
	"$BIN/kube-apiserver" --version | grep -q "$K8S_VERSION" || die "kube-apiserver --version: $("$BIN/kube-apiserver" --version)"
	touch "$stamp"
	say "built in $((SECONDS - t0)) s: $(cd "$BIN" && ls -m "${K8S_COMPONENTS[@]}")"
}

install_packages() {
	# golang-go: the build; etcd-server, containerd, runc, bridge/host-local
	# CNI plugins: the node; openssl: certificates; podman, gcc, libc6-dev,
	# busybox-static: the pause and busybox images; iproute2, util-linux:
	# teardown (ip link, findmnt, umount).
	need golang-go etcd-server containerd runc containernetworking-plugins openssl \
		podman gcc libc6-dev busybox-static iproute2 util-linux
	install_kubectl
}

cmd_build() {
	mkdir -p "$CACHE"
	install_packages
	build_components
	build_images
}

# ----------------------------------------------------------------- images

# Archives (OCI, for `ctr images import`) of the two images no registry can
# give us here, built once into $CACHE/images with podman (FROM scratch, so
# nothing is pulled and nothing runs during the build).
podman() { command podman --runtime runc "$@"; }

build_image_archive() { # NAME REF CONTEXT_DIR: $CACHE/images/NAME.tar from CONTEXT_DIR/Containerfile
	local name=$1 ref=$2 ctx=$3
	podman build -q --network=none --pull=never -t "$ref" -f "$ctx/Containerfile" "$ctx" >/dev/null ||
		die "podman build $ref"
	rm -f "$CACHE/images/$name.tar"
	podman save -q --format oci-archive -o "$CACHE/images/$name.tar.tmp" "$ref" >/dev/null || die "podman save $ref"
	mv "$CACHE/images/$name.tar.tmp" "$CACHE/images/$name.tar"
}

build_images() {
	mkdir -p "$CACHE/images"
	local ctx
	# The sandbox ("pause") image: scripts/e2e/pause.c, static.
	if [ ! -s "$CACHE/images/pause.tar" ] || [ scripts/e2e/pause.c -nt "$CACHE/images/pause.tar" ]; then
		say "building the pause image $PAUSE_IMAGE"
		ctx=$(mktemp -d "$CACHE/images/pause.XXXXXX")
		gcc -static -O2 -Wall -Wextra -Werror -o "$ctx/pause" scripts/e2e/pause.c || die "gcc pause.c"
		strip "$ctx/pause"
		printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$ctx/Containerfile"
		build_image_archive pause "$PAUSE_IMAGE" "$ctx"
		rm -rf "$ctx"
	fi
	# A shell for the test Pods and manifests/examples (busybox:1.36):
	# Debian's busybox-static and one symlink per applet.
	if [ ! -s "$CACHE/images/busybox.tar" ]; then
		say "building the test image $BUSYBOX_IMAGE from Debian's busybox-static"
		ctx=$(mktemp -d "$CACHE/images/busybox.XXXXXX")
		mkdir -p "$ctx/root/bin" "$ctx/root/tmp" "$ctx/root/etc"
		cp /bin/busybox "$ctx/root/bin/busybox"
		local a
		for a in $(/bin/busybox --list); do
			[ "$a" = busybox ] || ln -s busybox "$ctx/root/bin/$a"
		done
		printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ctx/root/etc/passwd"
		printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/root/etc/group"
		cat >"$ctx/Containerfile" <<-EOC
			FROM scratch
			COPY root/ /
			ENV PATH=/bin
			LABEL org.opencontainers.image.description="Debian's busybox-static $(dpkg-query -W -f='${Version}' busybox-static), for usb-device-plugin's e2e tests"
			CMD ["sh"]
		EOC
		build_image_archive busybox "$BUSYBOX_LOCAL" "$ctx"
		rm -rf "$ctx"
	fi
}

# The image the DaemonSet runs, under the name it asks for: a bare
# "usb-device-plugin:0.1.0" is docker.io/library/usb-device-plugin:0.1.0 to
# the kubelet. Saved again only when `make image` built a new one.
plugin_image() { # the DaemonSet's image field
	awk '/^kind: DaemonSet/ { ds = 1 } ds && $1 == "image:" { print $2; exit }' manifests/usb-device-plugin.yaml
}
full_ref() { # docker's normalisation of a bare image name
	local r=$1 first=${1%%/*}
	if [ "$first" = "$r" ]; then
		r=docker.io/library/$r
	elif ! { [[ $first == *.* ]] || [[ $first == *:* ]] || [ "$first" = localhost ]; }; then
		r=docker.io/$r
	fi
	[[ ${r##*/} == *:* ]] || [[ $r == *@* ]] || r=$r:latest
	printf '%s\n' "$r"
}
save_plugin_image() {
	local ref=${E2E_IMAGE:-$(plugin_image)} id
	[ -n "$ref" ] || die "no image field in manifests/usb-device-plugin.yaml's DaemonSet"
	id=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null) ||
		die "image $ref is not in podman's storage: run \`make image\` first"
	if [ "$(cat "$CACHE/images/plugin.id" 2>/dev/null)" != "$id" ] || [ ! -s "$CACHE/images/plugin.tar" ]; then
		say "saving $ref (${id:0:12}) for the node"
		podman save -q --format oci-archive -o "$CACHE/images/plugin.tar.tmp" "$ref" >/dev/null ||
			die "podman save $ref"
		mv "$CACHE/images/plugin.tar.tmp" "$CACHE/images/plugin.tar"
		printf '%s\n' "$id" >"$CACHE/images/plugin.id"
	fi
	PLUGIN_REF=$(full_ref "$(plugin_image)")
}

# --------------------------------------------------------------- cluster

NODE_NAME=$(hostname | tr 'A-Z' 'a-z')
CTRD_SOCK=$RUN/containerd/containerd.sock
ADMIN_KUBECONFIG=$RUN/pki/admin.kubeconfig
ctr_k8s() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }
kubectl_admin() { "$BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

node_ip() { # this machine's first global IPv4 address, as a real node's; else loopback
	if [ -n "${E2E_NODE_IP:-}" ]; then
		printf '%s\n' "$E2E_NODE_IP"
		return
	fi
	ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; found = 1; exit }
		END { if (!found) print "127.0.0.1" }'
}

wait_for() { # wait_for SECONDS WHAT COMMAND...: poll every 0.5 s until COMMAND succeeds
	local limit=$1 what=$2 t0=$SECONDS
	shift 2
	local n
	until "$@" >/dev/null 2>&1; do
		if [ $((SECONDS - t0)) -ge "$limit" ]; then
			die "$what: not within $limit s"
		fi
		# A daemon that exited will not come back: say so at once.
		for n in $(cat "$RUN/pid/order" 2>/dev/null); do
			[ -f "$RUN/pid/$n.pid" ] && ! alive "$n" && die "$what: $n exited (its log: $LOG/$n.log)"
		done
		sleep 0.5
	done
	say "$what ($((SECONDS - t0)) s)"
}

start_daemon() { # start_daemon NAME COMMAND...: in its own session, logs in $LOG/NAME.log
	local name=$1
	shift
	# setsid execs in place (the subshell is no group leader): $! is the
	# daemon itself. Its own session: no terminal signal reaches it.
	# fd 9 (the lock) stays with this script. A restarted daemon logs on
	# after its earlier run.
	setsid "$@" </dev/null >>"$LOG/$name.log" 2>&1 9>&- &
	printf '%s %s\n' "$!" "$(start_time "$!")" >"$RUN/pid/$name.pid"
	grep -qsx "$name" "$RUN/pid/order" || printf '%s\n' "$name" >>"$RUN/pid/order"
}

start_time() { # start_time PID: when it started (clock ticks after boot), empty if gone
	# The field after the parenthesised command name, which may hold spaces.
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	set -- $stat
	printf '%s\n' "${20}"
}

daemon_pid() { # daemon_pid NAME: its PID, if that process is still the one we started
	local pid started
	[ -f "$RUN/pid/$1.pid" ] && read -r pid started <"$RUN/pid/$1.pid" || return 1
	[ -n "$pid" ] && [ -n "$started" ] && [ "$(start_time "$pid")" = "$started" ] && printf '%s\n' "$pid"
}

alive() { # alive NAME: the daemon recorded as NAME runs
	daemon_pid "$1" >/dev/null
}

# Certificates: one CA; the API server's serving certificate; client
# certificates for the admin (system:masters), the controller manager, the
# scheduler, the kubelet (system:node:NAME, so that the Node authorizer and
# NodeRestriction apply) and the API server's client to the kubelet; the
# service account key pair. ECDSA P-256, valid a week.
make_certs() {
	local pki=$RUN/pki ip=$1
	mkdir -p "$pki"
	(
		cd "$pki"
		key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
		key ca
		openssl req -x509 -new -key ca.key -subj "/CN=usbdp-e2e-ca" -days 7 -out ca.crt \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
		cert() { # NAME SUBJECT EXTENSIONS
			key "$1"
			openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
			printf '%b' "$3" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
				-extfile "$1.ext" -out "$1.crt" 2>/dev/null
			rm -f "$1.csr" "$1.ext"
		}
		client='keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
		cert apiserver "/CN=kube-apiserver" \
			"keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:$ip,IP:${SERVICE_CIDR%.0/*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
		cert admin "/O=system:masters/CN=usbdp-e2e-admin" "$client"
		cert controller-manager "/CN=system:kube-controller-manager" "$client"
		cert scheduler "/CN=system:kube-scheduler" "$client"
		cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
		cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
		key sa
		openssl pkey -in sa.key -pubout -out sa.pub
		for who in admin controller-manager scheduler kubelet; do
			cat >"$who.kubeconfig" <<-EOK
				apiVersion: v1
				kind: Config
				clusters:
				- name: usbdp-e2e
				  cluster:
				    server: https://127.0.0.1:$APISERVER_PORT
				    certificate-authority: $pki/ca.crt
				users:
				- name: $who
				  user:
				    client-certificate: $pki/$who.crt
				    client-key: $pki/$who.key
				contexts:
				- name: usbdp-e2e
				  context: {cluster: usbdp-e2e, user: $who}
				current-context: usbdp-e2e
			EOK
		done
	) >"$LOG/certs.log" 2>&1 || { cat "$LOG/certs.log" >&2; die "certificates"; }
}

write_containerd_config() {
	mkdir -p "$RUN/containerd/root" "$RUN/containerd/state" "$RUN/cni/net.d" "$RUN/cni/ipam" "$RUN/runc"
	cat >"$RUN/containerd/config.toml" <<-EOF
		# The node's containerd: its own state, socket and CNI configuration;
		# never the host's /var/lib/containerd or /run/containerd/containerd.sock.
		version = 2
		root = "$RUN/containerd/root"
		state = "$RUN/containerd/state"
		[grpc]
		  address = "$CTRD_SOCK"
		[ttrpc]
		  address = "$CTRD_SOCK.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$PAUSE_IMAGE"
		  # Root lacks CAP_SYS_RESOURCE here: runc may only raise oom_score_adj.
		  restrict_oom_score_adj = true
		  stream_server_address = "127.0.0.1"
		  stream_server_port = "0"
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		        Root = "$RUN/runc"
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    # Debian's containernetworking-plugins; our own conf dir, as
		    # /etc/cni/net.d may hold podman's network.
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$RUN/cni/net.d"
	EOF
	# The Pod network: a bridge with host-local addresses, no masquerading
	# and no default route (Pods reach the node, nothing beyond it).
	cat >"$RUN/cni/net.d/10-usbdp-e2e.conflist" <<-EOF
		{
		  "cniVersion": "0.4.0",
		  "name": "usbdp-e2e",
		  "plugins": [
		    {
		      "type": "bridge",
		      "bridge": "$BRIDGE",
		      "isGateway": true,
		      "ipMasq": false,
		      "hairpinMode": true,
		      "ipam": {
		        "type": "host-local",
		        "ranges": [[{"subnet": "$POD_SUBNET"}]],
		        "dataDir": "$RUN/cni/ipam"
		      }
		    }
		  ]
		}
	EOF
}

print_logs() {
	local f
	for f in "$LOG"/*.log; do
		[ -s "$f" ] || continue
		printf '\n===== %s (last 40 lines) =====\n' "$f" >&2
		tail -n 40 "$f" >&2
	done
}

# The kubelet: cgroupfs with no QoS cgroups and no node allocatable
# enforcement (cgroup v1, no systemd), no eviction thresholds and no image
# garbage collection (the images cannot be pulled again), and
# --oom-score-adj=0 (no CAP_SYS_RESOURCE). Its root is ours; the
# device-plugin directory stays /var/lib/kubelet/device-plugins.
start_kubelet() {
	local pki=$RUN/pki ip
	ip=$(cat "$RUN/node-ip")
	mkdir -p "$RUN/kubelet" "$RUN/kubelet-plugins"
	start_daemon kubelet "$BIN/kubelet" \
		--kubeconfig="$pki/kubelet.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$ip" \
		--address="$ip" --port="$KUBELET_PORT" --healthz-port="$KUBELET_HEALTHZ_PORT" --read-only-port=0 \
		--client-ca-file="$pki/ca.crt" --anonymous-auth=false --authorization-mode=AlwaysAllow \
		--root-dir="$RUN/kubelet" --cert-dir="$RUN/kubelet/pki" --volume-plugin-dir="$RUN/kubelet-plugins" \
		--container-runtime=remote --container-runtime-endpoint="unix://$CTRD_SOCK" \
		--pod-infra-container-image="$PAUSE_IMAGE" \
		--cgroup-driver=cgroupfs --cgroups-per-qos=false --enforce-node-allocatable= \
		--fail-swap-on=false --eviction-hard= --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
		--make-iptables-util-chains=false --oom-score-adj=0 --cluster-domain=cluster.local \
		--rotate-certificates=false --v=2
}

cmd_up() {
	local t0=$SECONDS
	mkdir -p "$CACHE"
	exec 9>"$CACHE/lock"
	flock -n 9 || die "another cluster.sh up/down holds $CACHE/lock"
	if [ -f "$RUN/pid/order" ]; then
		local n
		for n in $(cat "$RUN/pid/order"); do
			alive "$n" && die "a cluster is already running ($n): $0 down first"
		done
		say "cleaning up after an earlier run that did not tear down"
		teardown
	fi
	# The kubelet's device-plugin directory cannot be moved: refuse to start
	# a second kubelet on a node that has one.
	local dp=/var/lib/kubelet/device-plugins
	if [ -S "$dp/kubelet.sock" ] && ss -Hxl 2>/dev/null | grep -qF " $dp/kubelet.sock "; then
		die "another kubelet serves $dp/kubelet.sock"
	fi
	local port
	for port in 8080 "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT"; do
		if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
			[ "$port" = 8080 ] && die "port 8080 is taken: the DaemonSet's plugin listens there (hostNetwork)"
			die "port $port, which the cluster uses, is taken: $(ss -Hltnp "sport = :$port" | head -n 1)"
		fi
	done

	install_packages
	build_components
	build_images
	save_plugin_image
	local ip
	ip=$(node_ip)

	# From here on, a failure tears down what was started.
	trap 'rc=$?; if [ $rc -ne 0 ]; then print_logs; [ -n "${E2E_KEEP:-}" ] || teardown; fi' EXIT
	rm -rf "$RUN"
	mkdir -p "$RUN/pid" "$LOG"
	[ -d /var/lib/kubelet ] || touch "$CACHE/created-var-lib-kubelet"
	# containerd makes these whatever its state dir (its shims' sockets):
	# removed again at teardown if they are new and empty. (/run/netns, where
	# Pods' network namespaces go, is shared with podman and any CNI user:
	# the namespaces go, the directory stays.)
	local d
	for d in /run/containerd /run/containerd/s; do
		[ -d "$d" ] || printf '%s\n' "$d" >>"$CACHE/created-run-dirs"
	done
	mkdir -p "$dp"
	make_certs "$ip"
	write_containerd_config
	local pki=$RUN/pki

	start_daemon etcd etcd --name usbdp-e2e --data-dir "$RUN/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "usbdp-e2e=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new
	start_daemon containerd containerd --config "$RUN/containerd/config.toml" --log-level warn

	# --insecure-port=0: 1.20 would serve plain HTTP on 127.0.0.1:8080, the
	# plugin's port.
	start_daemon kube-apiserver "$BIN/kube-apiserver" \
		--insecure-port=0 --secure-port="$APISERVER_PORT" --bind-address=127.0.0.1 --advertise-address="$ip" \
		--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
		--client-ca-file="$pki/ca.crt" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--allow-privileged=true \
		--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$pki/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types=InternalIP,Hostname \
		--profiling=false
	wait_for 30 "containerd is up" ctr --address "$CTRD_SOCK" version
	# The images, into the namespace the kubelet's containers live in.
	local img
	for img in pause:"$PAUSE_IMAGE" busybox:"$BUSYBOX_IMAGE" plugin:"$PLUGIN_REF"; do
		ctr_k8s images import --index-name "${img#*:}" "$CACHE/images/${img%%:*}.tar" >>"$LOG/images.log" 2>&1 ||
			die "ctr images import ${img#*:}"
	done
	say "images loaded: $PAUSE_IMAGE $BUSYBOX_IMAGE $PLUGIN_REF"
	wait_for 60 "kube-apiserver is ready" kubectl_admin get --raw /readyz

	start_daemon kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig="$pki/controller-manager.kubeconfig" --port=0 --secure-port=0 --leader-elect=false \
		--use-service-account-credentials=true \
		--service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
		--cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
	start_daemon kube-scheduler "$BIN/kube-scheduler" \
		--kubeconfig="$pki/scheduler.kubeconfig" --port=0 --secure-port=0 --leader-elect=false

	printf '%s\n' "$ip" >"$RUN/node-ip"
	start_kubelet
	wait_for 60 "node $NODE_NAME is Ready" kubectl_admin wait --timeout=2s --for=condition=Ready "node/$NODE_NAME"
	wait_for 60 "service account default/default exists" kubectl_admin -n default get serviceaccount default
	trap - EXIT
	say "cluster up in $((SECONDS - t0)) s; logs in $LOG"
	printf 'KUBECONFIG=%s\n' "$ADMIN_KUBECONFIG"
}

# Stops what `up` started, newest first; removes the containers (so that
# their shims exit and their network namespaces go) while containerd still
# runs; unmounts what the kubelet and containerd mounted below $RUN.
stop_daemon() { # stop_daemon NAME [SECONDS]
	local pid i
	if pid=$(daemon_pid "$1"); then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq $((${2:-10} * 10))); do
			alive "$1" || break
			sleep 0.1
		done
		alive "$1" && kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$RUN/pid/$1.pid"
}

remove_containers() {
	alive containerd || return 0
	local c netns=() ns i tasks
	tasks=$(ctr_k8s tasks list 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" { print $1 }')
	for c in $(ctr_k8s containers list -q 2>/dev/null); do
		# A sandbox's network namespace (/var/run/netns/cni-...), to unmount.
		ns=$(ctr_k8s containers info "$c" 2>/dev/null | grep -o '"/var/run/netns/cni-[^"]*"' | tr -d '"') || true
		[ -n "$ns" ] && netns+=("$ns")
	done
	# SIGTERM first, so that a plugin removes its sockets as on any node;
	# SIGKILL for what is still running 2 s later (sleep as PID 1 ignores
	# SIGTERM).
	for c in $tasks; do ctr_k8s tasks kill -s SIGTERM "$c" >/dev/null 2>&1 || true; done
	local deadline=$((SECONDS + 2))
	while [ $SECONDS -lt $deadline ]; do
		ctr_k8s tasks list 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" { found = 1 } END { exit !found }' || break
		sleep 0.1
	done
	for c in $(ctr_k8s tasks list 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" { print $1 }'); do
		ctr_k8s tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
	done
	for c in $(ctr_k8s containers list -q 2>/dev/null); do
		for i in $(seq 20); do
			ctr_k8s tasks delete "$c" >/dev/null 2>&1 && break
			ctr_k8s tasks list -q 2>/dev/null | grep -qx "$c" || break
			sleep 0.1
		done
		ctr_k8s containers delete "$c" >/dev/null 2>&1 || true
	done
	for ns in "${netns[@]}"; do
		umount "$ns" 2>/dev/null || true
		rm -f "$ns"
	done
}

teardown() {
	[ -d "$RUN" ] || return 0
	local n p
	stop_daemon kubelet 10
	remove_containers
	# The rest at once (nothing depends on the others any more): SIGTERM to
	# all, then each is waited for (SIGKILL after 10 s).
	for n in $(cat "$RUN/pid/order" 2>/dev/null); do
		p=$(daemon_pid "$n") && kill -TERM "$p" 2>/dev/null || true
	done
	for n in $(tac "$RUN/pid/order" 2>/dev/null); do stop_daemon "$n" 10; done
	# Shims of this containerd still alive (their containers were killed,
	# yet a shim outlives a containerd that died first): found by the socket
	# address on their command line, stopped by their PID.
	for p in $(ps -eo pid=,args= | awk -v a=" -address $CTRD_SOCK " \
		'index($0, "containerd-shim") && index($0 " ", a) { print $1 }'); do
		kill -KILL "$p" 2>/dev/null || true
	done
	# The kubelet bind-mounts its root onto itself, and Pods' volumes and
	# containerd's snapshots are mounted below $RUN: deepest first.
	findmnt -rn -o TARGET | awk -v t="$RUN/" 'index($0, t) == 1' | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
	if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
	# The fixed device-plugin directory as the kubelet leaves it for its
	# next start: its socket, checkpoint and DEPRECATION note; the sockets
	# of plugins that did not remove theirs (the kubelet would delete them
	# when it starts).
	local dp=/var/lib/kubelet/device-plugins
	rm -f "$dp/kubelet.sock" "$dp/kubelet_internal_checkpoint" "$dp/DEPRECATION"
	find "$dp" -maxdepth 1 -type s -delete 2>/dev/null || true
	if [ -f "$CACHE/created-var-lib-kubelet" ]; then
		rmdir "$dp" /var/lib/kubelet 2>/dev/null || true
		rm -f "$CACHE/created-var-lib-kubelet"
	fi
	if [ -f "$CACHE/created-run-dirs" ]; then
		for p in $(sort -ru "$CACHE/created-run-dirs"); do rmdir "$p" 2>/dev/null || true; done
		rm -f "$CACHE/created-run-dirs"
	fi
	# Empty cgroups runc left for the k8s.io namespace.
	for p in /sys/fs/cgroup/*/k8s.io; do [ -d "$p" ] && rmdir "$p" 2>/dev/null || true; done
	rm -rf --one-file-system "$RUN" 2>/dev/null || rm -rf "$RUN"
}

cmd_down() {
	local t0=$SECONDS
	mkdir -p "$CACHE"
	exec 9>"$CACHE/lock"
	flock -w 60 9 || die "another cluster.sh up/down holds $CACHE/lock"
	teardown
	say "down in $((SECONDS - t0)) s"
}

cmd_status() {
	local n ok=0
	[ -f "$RUN/pid/order" ] || { say "not running"; return 1; }
	for n in $(cat "$RUN/pid/order"); do
		if alive "$n"; then say "$n: running (pid $(daemon_pid "$n"))"; else say "$n: not running"; ok=1; fi
	done
	[ $ok -eq 0 ] && printf 'KUBECONFIG=%s\n' "$ADMIN_KUBECONFIG"
	return $ok
}

# The kubelet stopped (SIGTERM) and started again with the same flags, as
# an upgrade or a crash would: the plugins must register again by themselves.
cmd_restart_kubelet() {
	alive kubelet || die "the kubelet is not running"
	local t0=$SECONDS
	stop_daemon kubelet 10
	say "kubelet stopped"
	start_kubelet
	wait_for 30 "kubelet healthz" bash -c "exec 3<>/dev/tcp/127.0.0.1/$KUBELET_HEALTHZ_PORT &&
		printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && grep -q '^ok' <&3"
	say "kubelet restarted in $((SECONDS - t0)) s"
}

case "${1:-}" in
build) cmd_build ;;
images)
	install_packages
	build_images
	;;
up) cmd_up ;;
restart-kubelet) cmd_restart_kubelet ;;
down) cmd_down ;;
status) cmd_status ;;
logs) print_logs ;;
*) die "usage: $0 build|up|down|status|logs|restart-kubelet" ;;
esac
