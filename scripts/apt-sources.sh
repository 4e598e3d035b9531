# Sourced by scripts that fetch Debian packages themselves (sysroot.sh,
# image.sh). apt_sources prints "URI SUITE" for every enabled deb source
# of this machine, from both the one-line (.list) and the deb822
# (.sources) formats, so that what they fetch comes from the same mirrors
# apt uses here.
apt_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++; if ($i ~ /^\[/ || $i ~ /\]$/) i++;
			print $i, $(i + 1) }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no")
				for (u in uris) for (s in suites) print uris[u], suites[s];
				types = ""; enabled = ""; delete uris; delete suites }
			/^[ \t]*$/ { flush(); next }
			/^#/ { next }
			{ key = tolower($1); sub(/:$/, "", key); $1 = "" ; sub(/^ +/, "") }
			key == "types" { types = $0 }
			key == "enabled" { enabled = tolower($0) }
			key == "uris" { n = split($0, a, / +/); for (j = 1; j <= n; j++) uris[j] = a[j] }
			key == "suites" { n = split($0, a, / +/); for (j = 1; j <= n; j++) suites[j] = a[j] }
			END { flush() }' "$f"
	done
}
