"""make bench, the shipped image's part: `name: value` lines.

- The RSS of the release binary (build/release/ARCH/rootfs, what the image
  runs; scripts/release.sh builds it) in bench.py's path scenario: 1, 100
  and 1,000 fake device nodes, the kubelet stand-in, RSS after start-up.
- For each image `make image` left in podman's storage (IMAGE:VERSION-ARCH):
  its size uncompressed (the layer, as podman counts it) and compressed (the
  gzip layer plus config a push uploads, from `podman save --compress`).

What is missing is said, with the command that makes it; nothing fails."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IMAGE = os.environ.get("IMAGE", "usb-device-plugin")
ARCHS = ("amd64", "arm64", "armhf")


def out(name, value, unit=""):
    print("%s: %s%s" % (name, value, (" " + unit) if unit else ""), flush=True)


def host_arch():
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def bench_rss():
    arch = host_arch()
    binary = os.path.join(ROOT, "build", "release", arch, "rootfs", "usr", "bin", "usb-device-plugin")
    if not os.path.exists(binary):
        out("release_binary", "none (scripts/release.sh or make image builds %s)" %
            os.path.relpath(binary, ROOT))
        return
    os.environ["UDP_BIN"] = binary
    sys.path.insert(0, HERE)
    import bench  # noqa: E402  (reads UDP_BIN when imported)
    out("release_binary", binary)
    out("release_binary_bytes", os.path.getsize(binary))
    bench.bench_startup()


def podman(*args):
    return subprocess.run(["podman", "--runtime", "runc"] + list(args), capture_output=True, text=True)


def bench_images():
    if not shutil.which("podman"):
        out("image", "none (no podman: make image installs it and builds the images)")
        return
    with open(os.path.join(ROOT, "VERSION")) as f:
        tag = "".join(c if c.isalnum() or c in "_.-" else "-" for c in f.read().strip())
    found = 0
    for arch in ARCHS:
        ref = "%s:%s-%s" % (IMAGE, tag, arch)
        p = podman("image", "inspect", "--format", "{{.Size}} {{.Os}}/{{.Architecture}}", ref)
        if p.returncode != 0:
            continue
        found += 1
        size, platform = p.stdout.split()
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "img")
            s = podman("save", "-q", "--compress", "--format", "docker-dir", "-o", d, ref)
            if s.returncode != 0:
                out("image_%s" % arch, "podman save failed: %s" % s.stderr.strip())
                continue
            with open(os.path.join(d, "manifest.json")) as f:
                m = json.load(f)
            compressed = m["config"]["size"] + sum(layer["size"] for layer in m["layers"])
        out("image_%s_platform" % arch, platform)
        out("image_%s_uncompressed_bytes" % arch, size,
            "(%.1f MiB)" % (int(size) / 1048576.0))
        out("image_%s_compressed_bytes" % arch, compressed,
            "(%.2f MB, what a push uploads)" % (compressed / 1e6))
    if not found:
        out("image", "none (make image builds %s:%s-{%s})" % (IMAGE, tag, ",".join(ARCHS)))


def main():
    bench_rss()
    bench_images()


if __name__ == "__main__":
    main()
