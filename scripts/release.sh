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
# Debian's packages for it (scripts/sysroot.sh). cJSON and libcurl (HTTPS
# only, OpenSSL) are built from Debian's source packages.
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

# Relative relocations packed (DT_RELR, glibc 2.36; binutils 2.40 does it
# for x86 only): OpenSSL's and gRPC's tables of pointers need tens of
# thousands, which as RELA entries cost 0.6 MB of file, read at each start.
[ "$arch" = amd64 ] && ldflags="$ldflags -Wl,-z,pack-relative-relocs"

# cJSON: from Debian's source package.
scripts/sysroot.sh --source
deps_id="$cc $(cat build/src/.packages) 1"
if [ ! -f "$deps/.built" ] || [ "$(cat "$deps/.built")" != "$deps_id" ]; then
	say "building cJSON (static)"
	rm -rf "$deps"
	mkdir -p "$deps/lib" "$deps/include/cjson"
	dep_cflags="-O2 -g -ffunction-sections -fdata-sections"
	$cc $dep_cflags -c -o "$out/cJSON.o" build/src/cjson/cJSON.c
	rm -f "$deps/lib/libcjson.a"
	"${tool_prefix}ar" rcs "$deps/lib/libcjson.a" "$out/cJSON.o"
	cp build/src/cjson/cJSON.h "$deps/include/cjson/"
	echo "$deps_id" >"$deps/.built"
fi

# libcurl for the eviction's HTTPS requests to the API server (src/kubeapi.c):
# from Debian's source package too. Debian's libcurl.a needs the static
# archives of everything libcurl4-openssl-dev was built with (GSSAPI/krb5,
# LDAP, RTMP, SSH, HTTP/2, brotli, zstd, PSL, IDN), several of which Debian
# does not ship. This one speaks HTTP/1.1 over TLS only, with OpenSSL's
# libssl.a/libcrypto.a of libssl-dev (this machine's or the sysroot's); no
# CA bundle or path compiled in (the plugin names the service account's CA
# file), no openssl.cnf read at start-up (the image has none). Debian's
# build-system patches (Makefile.am, configure.ac) do not apply: configure
# and Makefile.in are upstream's and automake does not run (maintainer mode
# off); its source patches (the security fixes) do.
curl_id="$cc $(cat build/src/.packages) 1"
if [ ! -f "$deps/.curl-built" ] || [ "$(cat "$deps/.curl-built")" != "$curl_id" ]; then
	say "building libcurl, HTTPS only (static, OpenSSL)"
	rm -rf "$out/curl"
	mkdir -p "$out/curl"
	if [ -n "$sysroot" ]; then ssl_prefix=$sysroot/usr; else ssl_prefix=/usr; fi
	(cd "$out/curl" && "$top_dir/build/src/curl/configure" -q \
		--build="$(gcc -dumpmachine)" --host="$triplet" --prefix="$deps" \
		CC="$cc" CFLAGS="-O2 -g -ffunction-sections -fdata-sections" \
		LDFLAGS="-L${libdirs[0]}" \
		--disable-shared --enable-static --disable-dependency-tracking \
		--with-openssl="$ssl_prefix" --disable-openssl-auto-load-config \
		--without-ca-bundle --without-ca-path --without-ca-fallback \
		--disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp \
		--disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
		--disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-websockets \
		--disable-manual --disable-libcurl-option --disable-verbose --disable-ntlm \
		--disable-ntlm-wb --disable-crypto-auth --disable-tls-srp --disable-alt-svc \
		--disable-hsts --disable-doh --disable-cookies --disable-mime --disable-netrc \
		--disable-headers-api --disable-get-easy-options --disable-progress-meter \
		--disable-unix-sockets --without-zlib --without-brotli --without-zstd \
		--without-libpsl --without-libidn2 --without-nghttp2 --without-ngtcp2 \
		--without-nghttp3 --without-quiche --without-msh3 --without-librtmp \
		--without-libssh2 --without-libssh --without-wolfssh --without-gssapi \
		--without-hyper --without-libgsasl \
		>configure.log 2>&1) || {
		tail -30 "$out/curl/configure.log" >&2
		die "libcurl: configure"
	}
	grep -q '^#define USE_OPENSSL 1' "$out/curl/lib/curl_config.h" || die "libcurl was configured without OpenSSL"
	make -C "$out/curl/lib" -s -j"$(nproc)" install >"$out/curl/make.log" 2>&1 || {
		tail -30 "$out/curl/make.log" >&2
		die "libcurl: make"
	}
	make -C "$out/curl/include" -s install >>"$out/curl/make.log" 2>&1 || die "libcurl: headers"
	echo "$curl_id" >"$deps/.curl-built"
fi

say "building the binary"
rm -f "$out/usb-device-plugin" # linked again: the link flags are not make's prerequisites
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
