#!/usr/bin/env bash
# Debian 12 packages for the release build (scripts/release.sh), fetched with
# a private apt:
#
#   scripts/sysroot.sh ARCH        a sysroot for ARCH (amd64, arm64, armhf):
#                                  the -dev packages the release binary links
#                                  against and the runtime files the image
#                                  takes (glibc, libudev), unpacked into
#                                  build/sysroot/ARCH
#   scripts/sysroot.sh --source    the source packages built into the binary
#                                  (cjson, curl), unpacked into
#                                  build/src/PACKAGE
#
# apt runs with a private state (package lists, status, cache under
# build/sysroot/.apt-*): nothing changes in this machine's dpkg database, no
# "dpkg --add-architecture", no deb-src line needed in /etc/apt, no lock
# shared with other apt runs. The packages come from the Debian mirror in
# this machine's apt sources and are checked against debian-archive-keyring,
# as apt always does. Nothing runs from them (no maintainer scripts):
# dpkg-deb -x and dpkg-source -x only. Safe to re-run: what is up to date
# is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:?usage: scripts/sysroot.sh ARCH|--source}
if [ "$arch" = --source ]; then
	# Built from source, for the reasons the Makefile gives ("release").
	pkgs=(cjson curl)
	root=build/src
	state=build/sysroot/.apt-source
	type="deb-src"
	apt_arch=$(dpkg --print-architecture)
else
	# What the release binary links against (Makefile, "release"), plus
	# libstdc++'s static archive; libudev and glibc also go into the image.
	pkgs=(libc6-dev libstdc++-12-dev libgrpc-dev libprotobuf-c-dev libyaml-dev libudev-dev
		libusb-1.0-0-dev zlib1g-dev libssl-dev libre2-dev)
	root=build/sysroot/$arch
	state=build/sysroot/.apt-$arch
	type=deb
	apt_arch=$arch
fi
stamp="$root/.packages"
want="$arch ${pkgs[*]}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi

say() { printf 'sysroot: %s\n' "$*" >&2; }

. scripts/apt-sources.sh # apt_sources (we are at the top of the checkout)

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { say "no $keyring: apt-get install debian-archive-keyring"; exit 1; }
mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/etc/preferences.d"
apt_sources | awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u |
	awk -v t="$type" -v k="$keyring" -v a="$apt_arch" '{ print t, "[arch=" a " signed-by=" k "]", $1, $2, "main" }' \
		>"$state/etc/sources.list"
[ -s "$state/etc/sources.list" ] || { say "no Debian bookworm mirror in /etc/apt/sources.list{,.d}"; exit 1; }
: >"$state/status"

apt_opts=(-o "APT::Architecture=$apt_arch" -o "APT::Architectures::=$apt_arch"
	-o "Dir::State=$PWD/$state" -o "Dir::State::Lists=$PWD/$state/lists"
	-o "Dir::State::status=$PWD/$state/status"
	-o "Dir::Cache=$PWD/$state" -o "Dir::Cache::Archives=$PWD/$state/archives"
	-o "Dir::Etc::SourceList=$PWD/$state/etc/sources.list" -o "Dir::Etc::SourceParts=-"
	-o "Dir::Etc::Preferences=-" -o "Dir::Etc::PreferencesParts=$PWD/$state/etc/preferences.d"
	-o "APT::Install-Recommends=false" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=true")

say "apt-get update ($type $apt_arch, private state in $state)"
# A mirror caught mid-sync gives a file of the wrong size: try again, then
# go on with the indexes that did arrive (apt keeps using them; the missing
# suite's newer versions are then not seen, which the log says).
for try in 1 2 3; do
	apt-get -qq "${apt_opts[@]}" -o Acquire::Retries=2 update 2>"$state/update.err" && break
	if [ "$try" -eq 3 ]; then
		grep -E '^(E|W):' "$state/update.err" | sed 's/^/sysroot: apt: /' >&2 || true
		ls "$state"/lists/*_bookworm_main_*_{Packages,Sources}* >/dev/null 2>&1 ||
			{ say "apt-get update failed: no package index for bookworm"; exit 1; }
		say "WARNING: some indexes failed to download; using the others"
		break
	fi
	sleep $((try * 5))
done
if [ "$type" = deb-src ]; then
	say "downloading the source packages ${pkgs[*]}"
	mkdir -p "$root/dl"
	(cd "$root/dl" && apt-get -qq "${apt_opts[@]}" source --download-only "${pkgs[@]}" >/dev/null)
	for p in "${pkgs[@]}"; do
		dsc=$(ls "$root/dl/${p}"_*.dsc | sort -V | tail -n 1)
		rm -rf "${root:?}/$p"
		# The .dsc files were checked against the signed Sources index by
		# apt; their uploaders' keys are not in this machine's keyring.
		dpkg-source -q -x "$dsc" "$root/$p" >/dev/null 2>"$state/dpkg-source.err" ||
			{ cat "$state/dpkg-source.err" >&2; exit 1; }
		say "$root/$p: $(basename "$dsc" .dsc)"
	done
	echo "$want" >"$stamp"
	exit 0
fi

say "downloading ${pkgs[*]} and their dependencies"
apt-get -qq -y "${apt_opts[@]}" install --download-only "${pkgs[@]}" >/dev/null

rm -rf "${root:?}"
mkdir -p "$root"
n=0
for deb in "$state"/archives/*_"$arch".deb "$state"/archives/*_all.deb; do
	[ -e "$deb" ] || continue
	dpkg-deb -x "$deb" "$root"
	n=$((n + 1))
done
# Debian 12 merges /lib into /usr/lib on installation (usrmerge); packages
# still ship some files in /lib. Do the same here, so every library is in
# one place.
if [ -d "$root/lib" ] && [ ! -L "$root/lib" ]; then
	mkdir -p "$root/usr/lib"
	cp -a "$root/lib/." "$root/usr/lib/"
	rm -rf "${root:?}/lib"
	ln -s usr/lib "$root/lib"
fi
# Symbolic links to absolute paths would point into this machine's /:
# make them relative to the sysroot.
find "$root" -type l -lname '/*' | while read -r l; do
	t=$(readlink "$l")
	ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$root$t")" "$l"
done
echo "$want" >"$stamp"
say "$root: $n packages, $(du -sh "$root" | cut -f1)"
