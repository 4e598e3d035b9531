"""Tests of the fake USB world itself (usbworld.py), seen through usbprobe.c
(libudev enumeration + udev monitor + libusb list and hotplug, like the
plugin): when a plugin test fails, these say whether the world was right."""

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from urllib.parse import unquote

import pytest

import usbworld as uw
from usbfixtures import usb_world  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.skipif(uw.available() is not None, reason=str(uw.available()))


def _build(out, sanitize):
    cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "libudev", "libusb-1.0"],
                            capture_output=True, text=True)
    if cflags.returncode != 0:
        pytest.skip("pkg-config libudev libusb-1.0: " + cflags.stderr.strip())
    cmd = ["gcc", "-O1", "-g", "-Wall", "-Werror", "-o", out, os.path.join(HERE, "usbprobe.c")]
    if sanitize:
        cmd[1:1] = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    subprocess.run(cmd + cflags.stdout.split(), check=True)
    return out


@pytest.fixture(scope="session")
def probe_bin(tmp_path_factory):
    """usbprobe: $UDP_USBPROBE if set (a Makefile-built one), else built here."""
    if os.environ.get("UDP_USBPROBE"):
        return os.environ["UDP_USBPROBE"]
    return _build(str(tmp_path_factory.mktemp("probe") / "usbprobe"), False)


@pytest.fixture(scope="session")
def probe_asan_bin(tmp_path_factory):
    return _build(str(tmp_path_factory.mktemp("probe-asan") / "usbprobe"), True)


def parse(line):
    """"KIND k=v ..." -> (KIND, {k: v}); "-" -> None, %XX decoded."""
    kind, *rest = line.split(" ")
    d = {}
    for tok in rest:
        if "=" in tok:
            k, v = tok.split("=", 1)
            d[k] = None if v == "-" else unquote(v)
    return kind, d


class Probe:
    """usbprobe running in a world; collects its output lines."""

    def __init__(self, binary, world, args=(), asan=False, valgrind=False):
        env = dict(os.environ)
        env.update(world.env(asan=asan, valgrind=valgrind))
        argv = [binary] + list(args)
        if valgrind:
            argv = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite"] + argv
        self.slow = 20 if valgrind else 1
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait(self, pred, timeout=5.0, what="a line"):
        deadline = time.monotonic() + timeout * self.slow
        with self.cond:
            while True:
                v = pred(list(self.lines))
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.thread.is_alive():
                    raise AssertionError("timed out waiting for %s; probe output:\n%s" %
                                         (what, "\n".join(self.lines[-60:])))
                self.cond.wait(min(left, 0.1))

    def ready(self):
        self.wait(lambda ls: any(x.startswith("READY") for x in ls), 10, "READY")
        return self

    def records(self, kind):
        with self.cond:
            return [parse(x)[1] for x in self.lines if x.startswith(kind + " ")]

    def events(self, src=None):
        return [e for e in self.records("EVENT") if src is None or e["src"] == src]

    def wait_event(self, timeout=5.0, **match):
        def pred(lines):
            for x in lines:
                if x.startswith("EVENT "):
                    e = parse(x)[1]
                    if all(e.get(k) == v for k, v in match.items()):
                        return e
            return None
        return self.wait(pred, timeout, "event %r" % match)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(10 * self.slow)
        self.thread.join(5)
        return rc

    def output(self):
        with self.cond:
            return "\n".join(self.lines)


def probe_once(binary, world, **kw):
    p = Probe(binary, world, ["--once"], **kw)
    assert p.proc.wait(60) == 0, p.output()
    p.thread.join(5)
    out = p.output()
    assert "ENUMERATED" in out and "LIBUSB-LISTED" in out, out
    return p


def devs_by_syspath(p):
    return {d["syspath"]: d for d in p.records("DEV")}


def libusb_set(p):
    return {(d["vid"], d["pid"], int(d["bus"]), int(d["addr"])) for d in p.records("LIBUSB")}


def node_str(n, kind="chr"):
    return "%s:%s:%s:%d:%d" % (n.subsystem, n.devnode, kind, n.major, n.minor)


def assert_dev_line(d, dev, bound=True):
    assert d is not None, dev
    assert d["vid"] == dev.vid and d["pid"] == dev.pid
    assert d["serial"] == dev.serial
    assert int(d["busnum"]) == dev.bus and int(d["devnum"]) == dev.devnum
    assert d["devpath"] == dev.devpath and d["sysname"] == dev.port
    assert d["node"] == "%s:chr:%d:%d" % ((dev.busnode,) + dev.busnode_rdev)
    assert d["bound"] == ("1" if bound else "0")
    assert d["driver"] == ("usb" if bound else None)
    assert d["ID_VENDOR_ID"] == "%04x" % dev.vid_n
    assert d["ID_SERIAL_SHORT"] == (dev.serial or None)
    assert d["ID_PATH"] == dev.id_path
    kids = set(filter(None, (d["children"] or "").split(",")))
    assert kids == {node_str(n) for n in dev.nodes}
    ifs = (d["interfaces"] or "").split(",")
    for (syspath, cls, drv) in dev.interfaces:
        assert "%s/%s/%s" % (os.path.basename(syspath), cls, drv or "-") in ifs


def catalogue_world(world):
    devs = [uw.ch340("1-1"), uw.cp210x("1-2"), uw.ft232r("1-3.1"), uw.black_magic_probe("1-4"),
            uw.uvc_camera("2-1"), uw.hid_board("1-5"), uw.bare("1-6")]
    world.present_at_start(*devs)
    return devs


# --------------------------------------------------------------------------


def test_enumeration_sees_every_catalogue_device(usb_world, probe_bin):
    devs = catalogue_world(usb_world)
    p = probe_once(probe_bin, usb_world)
    seen = devs_by_syspath(p)
    for dev in devs:
        assert_dev_line(seen.get(dev.syspath), dev)
    # root hubs usb1, usb2 and the hub that 1-3.1 sits behind, nothing else
    assert len(seen) == len(devs) + 3
    assert seen[devs[2].syspath]["syspath"].endswith("/usb1/1-3/1-3.1")
    lib = libusb_set(p)
    for dev in devs:
        assert (dev.vid, dev.pid, dev.bus, dev.devnum) in lib
    assert len(lib) == len(seen)
    # what the catalogue promises
    ch340, cp, ftdi, bmp, cam, hid, bare = devs
    assert ch340.serial is None and seen[ch340.syspath]["manufacturer"] is None
    assert [n.devnode for n in bmp.nodes] == ["/dev/ttyACM0", "/dev/ttyACM1"]
    assert {n.devnode for n in cam.nodes} == {"/dev/video0", "/dev/video1", "/dev/input/event0",
                                              "/dev/snd/controlC1", "/dev/snd/pcmC1D0c"}
    assert [n.devnode for n in hid.nodes] == ["/dev/hidraw0"] and bare.nodes == []
    assert ftdi.ttys() == ["/dev/ttyUSB2"]


def test_udev_props_off(probe_bin):
    with uw.World(udev_props=False) as w:
        dev = w.present_at_start(uw.ft232r("1-1"))
        d = devs_by_syspath(probe_once(probe_bin, w))[dev.syspath]
        assert d["serial"] == "A50285BI" and d["vid"] == "0403" and d["busnum"] == "1"
        assert d["ID_SERIAL_SHORT"] is None and d["ID_PATH"] is None
        assert d["BUSNUM"] == "001" and d["DRIVER"] == "usb"  # kernel properties stay


def seq(world, start):
    """What the world sent since world.sent[start]."""
    return list(world.sent[start:])


def udev_seq(p):
    """(action, syspath) of every udev monitor event the probe printed."""
    return [(e["action"], e["syspath"]) for e in p.events("udev")]


@pytest.mark.parametrize("make", sorted(uw.CATALOGUE), ids=str)
def test_plug_unplug_events(usb_world, probe_bin, make):
    usb_world.present_at_start(uw.cp210x("1-9"))
    p = Probe(probe_bin, usb_world).ready()
    dev = uw.CATALOGUE[make]("1-2")
    mark = len(usb_world.sent)
    usb_world.plug(dev)
    plugged = seq(usb_world, mark)
    p.wait_event(src="udev", action="bind", syspath=dev.syspath)
    arrived = p.wait_event(src="libusb", kind="ARRIVED")
    mark = len(usb_world.sent)
    usb_world.unplug(dev)
    unplugged = seq(usb_world, mark)
    p.wait_event(src="udev", action="remove", syspath=dev.syspath)
    left = p.wait_event(src="libusb", kind="LEFT")
    time.sleep(0.1)  # anything late (a duplicate) would show up now
    assert p.stop() == 0

    # the kernel's order, every uevent once, nothing else
    assert udev_seq(p) == plugged + unplugged
    assert plugged[0] == ("add", dev.syspath) and plugged[-1] == ("bind", dev.syspath)
    assert unplugged[-2:] == [("unbind", dev.syspath), ("remove", dev.syspath)]
    for sd in dev.tree.walk():
        assert plugged.count(("add", sd.syspath)) == 1
        assert unplugged.count(("remove", sd.syspath)) == 1
        if sd.driver:
            assert plugged.count(("bind", sd.syspath)) == 1
            assert unplugged.count(("unbind", sd.syspath)) == 1
        # a device's add comes before its children's, its remove after theirs
        for c in sd.children:
            assert plugged.index(("add", sd.syspath)) < plugged.index(("add", c.syspath))
            assert unplugged.index(("remove", sd.syspath)) > unplugged.index(("remove", c.syspath))
            if sd.driver:
                assert plugged.index(("bind", sd.syspath)) > plugged.index(("add", c.syspath))
    # libusb: one ARRIVED, one LEFT, the right device
    for e in (arrived, left):
        assert (e["vid"], e["pid"], int(e["bus"]), int(e["addr"])) == \
            (dev.vid, dev.pid, dev.bus, dev.devnum)
    assert len(p.events("libusb")) == 2
    # what the events carry
    ev = {(e["action"], e["syspath"]): e for e in p.events("udev")}
    add = ev[("add", dev.syspath)]
    assert add["devnode"] == dev.busnode and add["devtype"] == "usb_device"
    assert add["ID_VENDOR_ID"] == dev.vid and add["ID_SERIAL_SHORT"] == (dev.serial or None)
    assert ev[("bind", dev.syspath)]["driver"] == "usb"
    assert ev[("remove", dev.syspath)]["ID_VENDOR_ID"] == dev.vid  # properties survive
    for n in dev.nodes:
        e = ev[("add", n.syspath)]
        assert e["devnode"] == n.devnode
        assert e["stat"] == "%s:chr:%d:%d" % (n.devnode, n.major, n.minor)  # node before "add"
        assert ev[("remove", n.syspath)]["stat"] == n.devnode + ":ENOENT"  # gone before "remove"


def test_ch340_exact_sequence(usb_world, probe_bin):
    p = Probe(probe_bin, usb_world).ready()
    dev = usb_world.plug(uw.ch340("1-1.4"))  # behind a hub: the hub is plugged first
    u = dev.syspath
    i = u + "/1-1.4:1.0"
    port = i + "/ttyUSB0"
    tty = port + "/tty/ttyUSB0"
    hub = os.path.dirname(u)
    p.wait_event(src="udev", action="bind", syspath=u)
    usb_world.unplug(dev)
    p.wait_event(src="udev", action="remove", syspath=u)
    p.wait_event(src="libusb", kind="LEFT")
    assert p.stop() == 0
    assert udev_seq(p) == [
        ("add", hub), ("add", hub + "/1-1:1.0"), ("bind", hub + "/1-1:1.0"), ("bind", hub),
        ("add", u), ("add", i), ("add", port), ("add", tty), ("bind", port), ("bind", i),
        ("bind", u),
        ("remove", tty), ("unbind", port), ("remove", port), ("unbind", i), ("remove", i),
        ("unbind", u), ("remove", u)]
    assert [(e["kind"], e["vid"]) for e in p.events("libusb")] == [
        ("ARRIVED", "05e3"), ("ARRIVED", "1a86"), ("LEFT", "1a86")]


def test_burst_unplug_sends_what_unplug_sends(probe_bin):
    """unplug(burst=True): the same uevents in the same order as a plain
    unplug of the same devices, every node gone before its device's
    uevents go, the listeners' queues read between devices, and the world
    as clean afterwards (the same hub and dongles plug again)."""
    def hub_with_two(w):
        h = w.plug(uw.hub("1-1"))
        return h, [w.plug(uw.ft232r("1-1.1", serial="B1")), w.plug(uw.ch340("1-1.2"))]

    with uw.World() as a:
        hub, _ = hub_with_two(a)
        mark = len(a.sent)
        a.unplug(hub)
        plain = [(act, sp) for act, sp in a.sent[mark:]]
    with uw.World() as w:
        p = Probe(probe_bin, w).ready()
        hub, devs = hub_with_two(w)
        p.wait_event(src="udev", action="bind", syspath=devs[1].syspath)
        mark = len(w.sent)
        w.unplug(hub, burst=True)
        burst = list(w.sent[mark:])
        p.wait_event(src="udev", action="remove", syspath=hub.syspath)
        assert burst == plain
        assert len(w.burst_times) == 4  # 3 devices, then the end
        assert w.burst_times == sorted(w.burst_times)
        for d in devs + [hub]:
            assert not d.plugged and not os.path.exists(w.path(d.syspath))
            assert not os.path.lexists(w.path(d.busnode))
        ev = {(e["action"], e["syspath"]): e for e in p.events("udev")}
        for n in devs[0].nodes:
            assert ev[("remove", n.syspath)]["stat"] == n.devnode + ":ENOENT"
        hub_with_two(w)  # everything was given back
        assert p.stop() == 0


def test_present_at_start_is_bound_and_settle(usb_world, probe_bin):
    a = usb_world.present_at_start(uw.ft232r("1-1"))
    b = usb_world.plug(uw.black_magic_probe("1-2"), settle=False)
    seen = devs_by_syspath(probe_once(probe_bin, usb_world))
    assert_dev_line(seen[a.syspath], a, bound=True)
    assert_dev_line(seen[b.syspath], b, bound=False)  # interfaces bound, usb_device not yet
    p = Probe(probe_bin, usb_world).ready()
    usb_world.settle(b)
    e = p.wait_event(src="udev", action="bind", syspath=b.syspath)
    assert e["driver"] == "usb"
    assert p.stop() == 0
    assert udev_seq(p) == [("bind", b.syspath)]
    assert_dev_line(devs_by_syspath(probe_once(probe_bin, usb_world))[b.syspath], b)


def test_settle_false_holds_back_the_last_bind(usb_world, probe_bin):
    p = Probe(probe_bin, usb_world).ready()
    dev = uw.uvc_camera("1-1")
    mark = len(usb_world.sent)
    usb_world.plug(dev, settle=False)
    last_if = dev.tree.children[-1].syspath
    p.wait_event(src="udev", action="bind", syspath=last_if)
    p.wait_event(src="libusb", kind="ARRIVED")  # libusb does not wait for bind
    time.sleep(0.1)
    assert ("bind", dev.syspath) not in udev_seq(p)
    usb_world.settle(dev)
    p.wait_event(src="udev", action="bind", syspath=dev.syspath)
    assert p.stop() == 0
    assert udev_seq(p) == seq(usb_world, mark)


def test_late_child(usb_world, probe_bin):
    p = Probe(probe_bin, usb_world).ready()
    dev = usb_world.plug(uw.ch340("1-1", late=True))
    p.wait_event(src="udev", action="bind", syspath=dev.syspath)
    i = dev.syspath + "/1-1:1.0"
    assert udev_seq(p) == [("add", dev.syspath), ("add", i), ("bind", dev.syspath)]
    assert dev.nodes == []
    seen = devs_by_syspath(probe_once(probe_bin, usb_world))[dev.syspath]
    assert not seen["children"] and seen["bound"] == "1"
    assert seen["interfaces"] == "1-1:1.0/ff/-"
    nodes = usb_world.add_late_child(dev)
    assert [n.devnode for n in nodes] == ["/dev/ttyUSB0"] and dev.nodes == nodes
    p.wait_event(src="udev", action="bind", syspath=i)
    assert p.stop() == 0
    port = i + "/ttyUSB0"
    assert udev_seq(p)[3:] == [("add", port), ("add", port + "/tty/ttyUSB0"), ("bind", port),
                               ("bind", i)]
    assert_dev_line(devs_by_syspath(probe_once(probe_bin, usb_world))[dev.syspath], dev)
    # a child without a late driver: a second tty on a bound interface
    more = usb_world.add_late_child(dev, uw.usb_serial_tty("ch341-uart"), iface=0)
    assert [n.devnode for n in more] == ["/dev/ttyUSB1"]
    usb_world.unplug(dev)


@pytest.mark.parametrize("kind", uw.MALFORMED)
def test_malformed_present_at_start(usb_world, probe_bin, kind):
    good = usb_world.present_at_start(uw.ch340("1-1"))
    dev = usb_world.present_at_start(uw.malformed(kind, "1-2"))
    p = probe_once(probe_bin, usb_world)
    seen = devs_by_syspath(p)
    assert_dev_line(seen[good.syspath], good)
    d = seen[dev.syspath]
    lib = libusb_set(p)
    tty = dev.nodes[0] if dev.nodes else None
    if kind == "bad-vid":
        assert d["vid"] == "zzzz" and d["ID_VENDOR_ID"] == "zzzz"
        assert ("10c4", "ea60", 1, dev.devnum) in lib  # libusb reads the descriptors
    elif kind == "no-busnum":
        assert d["busnum"] is None and d["BUSNUM"] is None
        assert not any(x[:2] == ("10c4", "ea60") for x in lib)  # libusb skips it
    elif kind == "no-devnum":
        assert d["devnum"] is None and d["DEVNUM"] is None
    elif kind == "empty-serial":
        assert d["serial"] == "" and d["ID_SERIAL_SHORT"] is None
    elif kind == "node-dir":
        assert d["children"] == "tty:%s:dir:0:0" % tty.devnode
    elif kind == "node-block":
        assert d["children"] == node_str(tty, "blk")
    elif kind == "node-missing":
        assert d["children"] == "tty:%s:ENOENT" % tty.devnode
    elif kind == "node-rdev":
        assert d["children"] == "tty:%s:chr:188:250" % tty.devnode
    elif kind == "no-children":
        assert not d["children"] and d["bound"] == "1"
    else:
        raise AssertionError(kind)


def test_malformed_hotplug(usb_world, probe_bin):
    p = Probe(probe_bin, usb_world).ready()
    devs = [uw.malformed(k, "1-%d" % (n + 1)) for n, k in enumerate(uw.MALFORMED)]
    mark = len(usb_world.sent)
    for d in devs:
        usb_world.plug(d)
    for d in devs:
        usb_world.unplug(d)
    p.wait_event(src="udev", action="remove", syspath=devs[-1].syspath)
    assert p.stop() == 0, p.output()
    assert udev_seq(p) == seq(usb_world, mark)
    # libusb sees what it can parse: not the ones without busnum/devnum
    arrived = [e for e in p.events("libusb") if e["kind"] == "ARRIVED"]
    assert len(arrived) == len(devs) - 2


def test_replug_reuses_node_names_and_new_devnum(usb_world, probe_bin):
    p = Probe(probe_bin, usb_world).ready()
    dev = uw.ch340("1-1")
    nums = []
    for k in range(3):
        usb_world.plug(dev)
        assert dev.ttys() == ["/dev/ttyUSB0"]
        nums.append(dev.devnum)
        # libusb's own thread reads sysfs when it handles an "add": a device
        # already gone by then is skipped, so each cycle waits for the last
        p.wait(lambda ls: sum("kind=ARRIVED" in x for x in ls) == k + 1,
               what="ARRIVED #%d" % (k + 1))
        usb_world.unplug(dev)
        p.wait(lambda ls: sum("kind=LEFT" in x for x in ls) == k + 1, what="LEFT #%d" % (k + 1))
    assert nums == [2, 3, 4]  # the kernel hands out the next address
    assert [e["addr"] for e in p.events("libusb")] == ["2", "2", "3", "3", "4", "4"]
    # the same node name and bus number at another port
    moved = usb_world.plug(uw.ch340("1-3", devnum=2))
    assert moved.ttys() == ["/dev/ttyUSB0"] and moved.busnode == "/dev/bus/usb/001/002"
    p.wait(lambda ls: sum("kind=ARRIVED" in x for x in ls) == 4, what="4th ARRIVED")
    assert p.events("libusb")[-1]["addr"] == "2"
    assert p.stop() == 0
    d = devs_by_syspath(probe_once(probe_bin, usb_world))
    assert_dev_line(d[moved.syspath], moved)
    assert not [x for x in d if "/1-1" in x]


def test_burst_is_not_lost(usb_world, probe_bin):
    """More uevents than a listener's socket queue holds (10): the world
    waits for the reader instead of dropping or aborting."""
    p = Probe(probe_bin, usb_world).ready()
    devs = [uw.cp210x("1-%d" % (i + 1), serial="B%03d" % i) for i in range(30)]
    mark = len(usb_world.sent)
    for d in devs:
        usb_world.plug(d)
    for d in devs:
        usb_world.unplug(d)
    p.wait(lambda ls: sum("kind=LEFT" in x for x in ls) == 30, 20, "30 LEFT")
    assert p.stop() == 0
    assert udev_seq(p) == seq(usb_world, mark)
    assert len(p.events("libusb")) == 60


def test_tty_pty_scripted_io(probe_bin):
    with uw.World(tty_pty=True) as w:
        dev = w.present_at_start(uw.ft232r("1-1"))
        env = dict(os.environ)
        env.update(w.env())
        os.write(w.pty(dev.ttys()[0]), b"hello")
        r = subprocess.run(["head", "-c", "5", dev.ttys()[0]], env=env, capture_output=True,
                           timeout=10)
        assert r.stdout == b"hello"
        d = devs_by_syspath(probe_once(probe_bin, w))[dev.syspath]
        assert d["children"] == "tty:/dev/ttyUSB0:chr:188:0"


def test_probe_with_asan(usb_world, probe_asan_bin):
    """An ASan build lives in the world with libasan first in LD_PRELOAD."""
    usb_world.present_at_start(uw.ft232r("1-1"))
    p = Probe(probe_asan_bin, usb_world, asan=True).ready()
    dev = usb_world.plug(uw.black_magic_probe("1-2"))
    p.wait_event(src="libusb", kind="ARRIVED")
    usb_world.unplug(dev)
    p.wait_event(src="libusb", kind="LEFT")
    assert p.stop() == 0, p.output()
    assert not re.search("Sanitizer|runtime error", p.output()), p.output()
    assert len(p.records("DEV")) == 3  # + root hubs usb1, usb2


@pytest.mark.skipif(not shutil.which("valgrind"), reason="no valgrind")
def test_probe_under_valgrind(usb_world, probe_bin):
    usb_world.present_at_start(uw.ft232r("1-1"))
    p = Probe(probe_bin, usb_world, valgrind=True).ready()
    dev = usb_world.plug(uw.hid_board("1-2"))
    p.wait_event(src="libusb", kind="ARRIVED")
    usb_world.unplug(dev)
    p.wait_event(src="libusb", kind="LEFT")
    assert p.stop() == 0, p.output()
    assert len(p.records("DEV")) == 3  # + root hubs usb1, usb2


def test_thousand_devices(probe_bin):
    t0 = time.monotonic()
    with uw.World() as w:
        makers = [uw.ch340, uw.cp210x, uw.ft232r, uw.hid_board, uw.bare]
        for n in range(1000):
            w.present_at_start(makers[n % 5]("%d-%d" % (n // 120 + 1, n % 120 + 1),
                                              serial="S%04d" % n))
        built = time.monotonic() - t0
        p = probe_once(probe_bin, w)
        assert len(p.records("DEV")) == 1000 + 9  # + root hubs
        assert len(p.records("LIBUSB")) == 1009
    assert built < 30, "building 1000 devices took %.1fs" % built


def test_start_in_world_plumbing(usb_world):
    """usbfixtures.start_in_world runs the plugin binary in the world (with
    libasan first in LD_PRELOAD for an ASan build, under UDP_WRAP's
    valgrind otherwise): its --list dry run must see the device."""
    from conftest import BIN
    from usbfixtures import start_in_world
    if not os.path.exists(BIN):
        pytest.skip("no plugin binary at %s" % BIN)
    usb_world.present_at_start(uw.ch340("1-1"))
    p = start_in_world(usb_world, ["--list"])
    assert p.proc.wait(60) == 0, p.log()
    p.reader.join(5)
    p.check_clean()
    assert "1a86" in p.log() and "/dev/ttyUSB0" in p.log(), p.log()
