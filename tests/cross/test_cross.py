"""The arm64 and armhf release binaries, run under qemu-user-static with
their own root filesystem (the image's tree: glibc, libudev, the loader from
Debian's packages for that architecture): they start, register with the
kubelet stand-in, list a path group, answer Allocate and stop cleanly on
SIGTERM. make test-cross."""

import os
import signal
import subprocess

from conftest import MACHINE, ROOT, SLOW, integration

sha1_id = integration.sha1_id

RES = "example.com/serial"


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", "%s is not an ELF file" % path
    return int.from_bytes(head[18:20], "little")


def test_runs_serves_allocates_and_stops(arch, cross, devdir, kubelet, plugin_dir, run_plugin):
    binary, rootfs = cross
    # Really that architecture's code, run by qemu (not the host's binary).
    assert elf_machine(binary) == MACHINE[arch]
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    plugin = run_plugin({"name": "serial",
                         "groups": [{"paths": [{"path": devdir.p("ttyUSB*"),
                                                "mountPath": "/dev/serial/"}]}]})
    pl = kubelet.wait_plugin(RES, timeout=10 * SLOW)
    assert pl.request.version == "v1beta1"
    id0, id1 = sha1_id(0, devdir.p("ttyUSB0")), sha1_id(0, devdir.p("ttyUSB1"))
    assert pl.stream.wait(lambda d: len(d) == 2, timeout=5 * SLOW) == {id0: "Healthy",
                                                                       id1: "Healthy"}

    # A device plugged in while it runs (inotify under qemu too).
    devdir.add("ttyUSB2")
    id2 = sha1_id(0, devdir.p("ttyUSB2"))
    pl.stream.wait(lambda d: id2 in d, timeout=5 * SLOW)

    resp = pl.allocate([id1, id2], timeout=5 * SLOW)
    (c,) = resp.container_responses
    assert [(d.host_path, d.container_path) for d in c.devices] == [
        (devdir.p("ttyUSB1"), "/dev/serial/ttyUSB1"), (devdir.p("ttyUSB2"), "/dev/serial/ttyUSB2")]
    assert c.envs["USBDP_SERIAL_IDS"] == id1 + "," + id2

    assert plugin.stop(signal.SIGTERM, timeout=10) == 0
    plugin.wait_log(r"level=info stopped")
    assert sorted(os.listdir(plugin_dir)) == ["kubelet.sock"], "its sockets removed"


def test_version_and_help(arch, cross):
    binary, rootfs = cross
    wrap = integration.WRAP
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    p = subprocess.run(wrap + [binary, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith(version)
    p = subprocess.run(wrap + [binary, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--plugin-directory" in p.stdout + p.stderr
