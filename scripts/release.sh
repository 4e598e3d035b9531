#!/usr/bin/env bash
# Builds the binary the image ships and the image's root filesystem, for one
# architecture, without emulation (docs/image.md):
#
#   scripts/release.sh [ARCH]      ARCH: amd64, arm64, armhf (also armv7,
#                                  arm/v7); default: this machine's
#
# This machine's architecture builds against its own packages
# (scripts/setup.sh); another one with Debian's cross compiler
# (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf) against a sysroot of
# Debian's packages for it (scripts/sysroot.sh). libmicrohttpd (without
# HTTPS) and cJSON are built from Debian's source packages.
#
# Leaves in build/release/ARCH:
#   usb-device-plugin   the binary, unstripped (for debugging)
#   rootfs/             what the image holds: the stripped binary, the shared
#                       libraries it loads and their loader (from the same
#                       Debian packages), usb.ids
# and checks the tree runs: chroot (this architecture) or qemu-user-static
# with the tree as its root (another one, when qemu is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(dpkg --print-architecture)
arch=${1:-$host}
case "$arch" in
amd64) triplet=x86_64-linux-gnu qemu=qemu-x86_64-static ;;
arm64 | aarch64) arch=arm64 triplet=aarch64-linux-gnu qemu=qemu-aarch64-static ;;
armhf | armv7 | arm/v7) arch=armhf triplet=arm-linux-gnueabihf qemu=qemu-arm-static ;;
*)
	echo "release: unknown architecture '$arch' (amd64, arm64, armhf)" >&2
	exit 2
	;;
esac
say() { printf 'release %s: %s\n' "$arch" "$*" >&2; }
die() {
	say "FAILED: $*"
	exit 1
}

top_dir=$PWD
out=build/release/$arch
deps=$PWD/$out/deps
mkdir -p "$out"

# The compiler and where the libraries come from.
if [ "$arch" = "$host" ]; then
	sysroot=""
	cc=gcc
	cxx=g++
	tool_prefix=""
	libdirs=("/usr/lib/$triplet" "/lib/$triplet")
	unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR # pkg-config's own path
	ldflags=""
else
	command -v "$triplet-gcc" >/dev/null && command -v "$triplet-g++" >/dev/null ||
		die "no $triplet-gcc/g++: apt-get install gcc-$triplet g++-$triplet (scripts/setup.sh --cross)"
	scripts/sysroot.sh "$arch"
	sysroot=$PWD/build/sysroot/$arch
	cc="$triplet-gcc --sysroot=$sysroot"
	cxx="$triplet-g++ --sysroot=$sysroot"
	tool_prefix="$triplet-"
	libdirs=("$sysroot/usr/lib/$triplet")
	export PKG_CONFIG_LIBDIR="$sysroot/usr/lib/$triplet/pkgconfig:$sysroot/usr/share/pkgconfig"
	export PKG_CONFIG_SYSROOT_DIR="$sysroot"
	# libstdc++.a: in the sysroot's GCC directory, which the cross
	# compiler does not search by itself.
	gccdir=$(ls -d "$sysroot/usr/lib/gcc/$triplet"/* | sort -V | tail -n 1)
	ldflags="-L$gccdir"
fi

# libmicrohttpd without HTTPS, cJSON: from Debian's source packages.
scripts/sysroot.sh --source
deps_id="$cc $(cat build/src/.packages) 1"
if [ ! -f "$deps/.built" ] || [ "$(cat "$deps/.built")" != "$deps_id" ]; then
	say "building libmicrohttpd without HTTPS and cJSON (static)"
	rm -rf "$deps" "$out/mhd"
	mkdir -p "$deps/lib" "$deps/include/cjson" "$out/mhd"
	dep_cflags="-O2 -g -ffunction-sections -fdata-sections"
	# Only what the plugin uses (src/http.c): a daemon with its own epoll
	# thread answering GETs. No TLS, authentication, POST parsing, upgrade.
	(cd "$out/mhd" && "$top_dir/build/src/libmicrohttpd/configure" -q \
		--build="$(gcc -dumpmachine)" --host="$triplet" --prefix="$deps" \
		CC="$cc" CFLAGS="$dep_cflags" \
		--disable-shared --enable-static --disable-https --without-gnutls \
		--disable-doc --disable-examples --disable-curl --disable-nls \
		--disable-postprocessor --disable-bauth --disable-dauth --disable-httpupgrade \
		>configure.log 2>&1) || {
		tail -30 "$out/mhd/configure.log" >&2
		die "libmicrohttpd: configure"
	}
	make -C "$out/mhd/src/microhttpd" -s -j"$(nproc)" install >"$out/mhd/make.log" 2>&1 || {
		tail -30 "$out/mhd/make.log" >&2
		die "libmicrohttpd: make"
	}
	make -C "$out/mhd/src/include" -s install >>"$out/mhd/make.log" 2>&1 || die "libmicrohttpd: headers"
	grep -q '^#define HTTPS_SUPPORT 1' "$out/mhd/MHD_config.h" && die "libmicrohttpd was configured with HTTPS"
	$cc $dep_cflags -c -o "$out/cJSON.o" build/src/cjson/cJSON.c
	rm -f "$deps/lib/libcjson.a"
	"${tool_prefix}ar" rcs "$deps/lib/libcjson.a" "$out/cJSON.o"
	cp build/src/cjson/cJSON.h "$deps/include/cjson/"
	echo "$deps_id" >"$deps/.built"
fi

say "building the binary"
make -s --no-print-directory -j"$(nproc)" RELEASE_DIR="$out" REL_DEPS="$deps" CC="$cc" CXX="$cxx" \
	LDFLAGS="$ldflags" "$out/usb-device-plugin"

# The root filesystem: the binary, stripped; each library it needs (NEEDED,
# recursively) as a regular file in /usr/lib/TRIPLET, the loader in
# /usr/lib or /usr/lib64 with /lib, /lib64 symlinks (Debian 12's merged
# /usr); usb.ids.
say "assembling $out/rootfs"
R=$out/rootfs
rm -rf "$R"
mkdir -p "$R/usr/bin" "$R/usr/lib/$triplet" "$R/usr/share/misc"
"${tool_prefix}strip" -o "$R/usr/bin/usb-device-plugin" "$out/usb-device-plugin"
chmod 0755 "$R/usr/bin/usb-device-plugin"
find_lib() {
	local d
	for d in "${libdirs[@]}"; do
		[ -e "$d/$1" ] && { readlink -f "$d/$1"; return 0; }
	done
	return 1
}
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
todo=$(needed "$R/usr/bin/usb-device-plugin")
while [ -n "$todo" ]; do
	next=""
	for lib in $todo; do
		[ -e "$R/usr/lib/$triplet/$lib" ] && continue
		f=$(find_lib "$lib") || die "library $lib not found in ${libdirs[*]}"
		cp "$f" "$R/usr/lib/$triplet/$lib"
		chmod 0644 "$R/usr/lib/$triplet/$lib"
		next="$next $(needed "$f")"
	done
	todo=$next
done
interp=$(readelf -l "$R/usr/bin/usb-device-plugin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
case "$interp" in
/lib/* | /lib64/*) ;;
*) die "unexpected program interpreter '$interp'" ;;
esac
# The loader itself next to the libraries (glibc names it in NEEDED too);
# its PT_INTERP path a symbolic link to it, as Debian has it.
loader=$(basename "$interp")
if [ ! -e "$R/usr/lib/$triplet/$loader" ]; then
	f=$(find_lib "$loader") || die "no loader $loader in ${libdirs[*]}"
	cp "$f" "$R/usr/lib/$triplet/$loader"
fi
chmod 0755 "$R/usr/lib/$triplet/$loader"
link="$R/usr/${interp#/}"
if [ "$link" != "$R/usr/lib/$triplet/$loader" ]; then
	mkdir -p "$(dirname "$link")"
	ln -s "$(realpath -m --relative-to="$(dirname "$link")" "$R/usr/lib/$triplet/$loader")" "$link"
fi
ln -s usr/lib "$R/lib"
top=${interp#/}
top=${top%%/*}
[ "$top" = lib ] || ln -s "usr/$top" "$R/$top"
cp "$(readlink -f /usr/share/misc/usb.ids)" "$R/usr/share/misc/usb.ids"
chmod 0644 "$R/usr/share/misc/usb.ids"

# The tree must run on its own.
want=$(cat VERSION)
if [ "$arch" = "$host" ]; then
	how="chroot"
	got=$(chroot "$R" /usr/bin/usb-device-plugin --version) || die "chroot $R: --version"
elif command -v "$qemu" >/dev/null; then
	how="$qemu -L $R"
	got=$("$qemu" -L "$R" "$R/usr/bin/usb-device-plugin" --version) || die "$how: --version"
else
	how=""
	say "not run: $qemu missing (apt-get install qemu-user-static)"
fi
if [ -n "$how" ]; then
	case "$got" in *"$want") ;; *) die "$how: --version printed '$got', expected $want" ;; esac
	say "runs ($how): $got"
fi
say "binary $(stat -c %s "$R/usr/bin/usb-device-plugin") bytes stripped; rootfs $(du -sb "$R" | cut -f1) bytes, $(find "$R" ! -type d | wc -l) files"
