"""USB discovery end to end: the real binary inside a umockdev world
(usbworld.py: fake /sys, /dev and uevents for libudev and libusb), seen
through the kubelet stand-in."""

import json
import os

import pytest

from conftest import BIN, SLOW
from kubelet import wait_until
import usbworld as uw

pytestmark = pytest.mark.skipif(uw.available() is not None,
                                reason=str(uw.available()) + ": no fake USB world")


@pytest.fixture
def world():
    w = uw.World()
    yield w
    w.close()


@pytest.fixture
def start(world, run_plugin):
    """start(*devices, extra=[]) runs the plugin inside the world."""
    def go(*devices, extra=()):
        return run_plugin(*devices, extra=list(extra), env=world.env(asan=uw.uses_asan(BIN)))
    return go


def usbdev(name, *entries, count=None):
    g = {"usb": list(entries)}
    if count:
        g["count"] = count
    return {"name": name, "groups": [g]}


CH340 = {"vendor": "1a86", "product": "7523"}
CP210X = {"vendor": "10c4", "product": "ea60"}
FT232R = {"vendor": "0403", "product": "6001"}


def serial_groups():
    return {"name": "serial", "groups": [{"usb": [CH340]}, {"usb": [CP210X]}, {"usb": [FT232R]}]}


def nodes_of(resp):
    return sorted(d.host_path for d in resp.container_responses[0].devices)


def test_enumeration_at_start_gives_whole_devices(world, kubelet, start):
    a = uw.ch340(port="1-1")
    b = uw.ft232r(port="1-2")
    c = uw.cp210x(port="1-3")
    world.present_at_start(a, b, c)
    plugin = start(serial_groups())
    pl = kubelet.wait_plugin("example.com/serial")
    want = {"1a86-7523-port-1-1": "Healthy", "0403-6001-A50285BI": "Healthy",
            "10c4-ea60-0001": "Healthy"}
    pl.stream.wait(lambda d: d == want, what="three adapters, each its own device")
    for dev, did in ((a, "1a86-7523-port-1-1"), (b, "0403-6001-A50285BI")):
        resp = pl.allocate([did])
        assert nodes_of(resp) == sorted([dev.busnode] + [n.devnode for n in dev.nodes])
        env = resp.container_responses[0].envs
        assert env["USBDP_SERIAL_0_BUS"] == dev.busnode
        assert env["USBDP_SERIAL_0_TTY"] == dev.nodes[0].devnode
        assert env["USBDP_SERIAL_0_VENDOR"] == dev.vid and env["USBDP_SERIAL_0_PRODUCT"] == dev.pid
        assert env["USBDP_SERIAL_0_PORT"] == dev.port
    assert "USBDP_SERIAL_0_SERIAL" not in pl.allocate(["1a86-7523-port-1-1"]).container_responses[0].envs
    assert pl.allocate(["0403-6001-A50285BI"]).container_responses[0].envs[
        "USBDP_SERIAL_0_SERIAL"] == "A50285BI"
    plugin.wait_log(r"usb enumeration devices=\d+ ")
    plugin.wait_log(r'usb device settled port=1-1 vendor=1a86 product=7523 .*name="QinHeng')


def test_hotplug_unplug_replug_same_id(world, kubelet, start):
    plugin = start(usbdev("ch340", CH340), extra=["--grace-period", "500ms"])
    pl = kubelet.wait_plugin("example.com/ch340")
    pl.stream.wait(lambda d: d == {})
    dev = world.plug(uw.ch340(port="1-4"))
    did = "1a86-7523-port-1-4"
    pl.stream.wait(lambda d: d == {did: "Healthy"}, what="plugged CH340 healthy")
    assert nodes_of(pl.allocate([did])) == sorted([dev.busnode, dev.nodes[0].devnode])
    n = pl.stream.count()
    world.unplug(dev)
    pl.stream.wait(lambda d: d == {did: "Unhealthy"}, what="unplugged: unhealthy at once")
    assert pl.stream.count() == n + 1, "one update for the whole unplug"
    pl.stream.wait(lambda d: d == {}, timeout=5, what="dropped after the grace period")
    world.plug(uw.ch340(port="1-4"))
    pl.stream.wait(lambda d: d == {did: "Healthy"}, what="replugged: same ID")
    plugin.wait_log(r"usb device removed port=1-4")


def test_replug_within_grace_and_serial_anywhere(world, kubelet, start):
    start(usbdev("ftdi", FT232R))
    pl = kubelet.wait_plugin("example.com/ftdi")
    dev = world.plug(uw.ft232r(port="1-1"))
    did = "0403-6001-A50285BI"
    pl.stream.wait(lambda d: d == {did: "Healthy"})
    world.unplug(dev)
    pl.stream.wait(lambda d: d == {did: "Unhealthy"})
    moved = world.plug(uw.ft232r(port="1-3"))  # same serial, another port
    pl.stream.wait(lambda d: d == {did: "Healthy"}, what="same serial anywhere: same ID")
    assert pl.allocate([did]).container_responses[0].envs["USBDP_FTDI_0_PORT"] == moved.port


def test_settle_point_is_the_usb_device_bind(world, kubelet, start):
    start(usbdev("ch340", CH340), usbdev("ftdi", FT232R))
    pl = kubelet.wait_plugin("example.com/ch340")
    ftdi = kubelet.wait_plugin("example.com/ftdi")
    dev = world.plug(uw.ch340(port="1-1"), settle=False)
    # a second device, fully plugged after it: once it is listed, the
    # first one's events have been handled too
    world.plug(uw.ft232r(port="1-2"))
    ftdi.stream.wait(lambda d: len(d) == 1)
    assert pl.stream.latest() == {}, "listed before its usb_device was bound"
    world.settle(dev)
    pl.stream.wait(lambda d: d == {"1a86-7523-port-1-1": "Healthy"})


def test_late_child_updates_the_device(world, kubelet, start):
    start(usbdev("ch340", CH340))
    pl = kubelet.wait_plugin("example.com/ch340")
    dev = world.plug(uw.ch340(port="1-1", late=True))
    did = "1a86-7523-port-1-1"
    pl.stream.wait(lambda d: d == {did: "Healthy"})
    assert nodes_of(pl.allocate([did])) == [dev.busnode], "no tty yet: its driver is late"
    new = world.add_late_child(dev)
    want = sorted([dev.busnode, new[0].devnode])
    # IDs and health do not change, so the kubelet gets no new list: the
    # late tty shows in what Allocate hands out.
    wait_until(lambda: nodes_of(pl.allocate([did])) == want, 5, "the late tty allocated")
    assert pl.stream.latest() == {did: "Healthy"}


def test_cdc_acm_board_with_two_ttys_by_class(world, kubelet, start):
    dev = world.present_at_start(uw.black_magic_probe(port="1-2"))
    start(usbdev("acm", {"class": "cdc-acm"}))
    pl = kubelet.wait_plugin("example.com/acm")
    did = "1d50-6018-7BB180B4"
    pl.stream.wait(lambda d: d == {did: "Healthy"})
    c = pl.allocate([did]).container_responses[0]
    ttys = [n.devnode for n in dev.nodes if n.subsystem == "tty"]
    assert len(ttys) == 2
    assert c.envs["USBDP_ACM_0_TTY"] == ",".join(sorted(ttys))
    assert sorted(d.host_path for d in c.devices) == sorted([dev.busnode] + ttys)


def test_uvc_camera_brings_video_sound_and_input(world, kubelet, start):
    dev = world.present_at_start(uw.uvc_camera(port="1-1"))
    start(usbdev("camera", {"class": "video"}, count=2))
    pl = kubelet.wait_plugin("example.com/camera")
    ids = {"046d-0825-6E3D4D10-0": "Healthy", "046d-0825-6E3D4D10-1": "Healthy"}
    pl.stream.wait(lambda d: d == ids, what="count 2: two slots")
    c = pl.allocate(["046d-0825-6E3D4D10-0"]).container_responses[0]
    kinds = {n.subsystem for n in dev.nodes}
    assert {"video4linux", "sound", "input"} <= kinds
    assert sorted(d.host_path for d in c.devices) == sorted([dev.busnode] +
                                                            [n.devnode for n in dev.nodes])
    assert c.envs["USBDP_CAMERA_0_VIDEO"].count("/dev/video") == 2
    assert "USBDP_CAMERA_0_SOUND" in c.envs and "USBDP_CAMERA_0_INPUT" in c.envs


def test_hid_board_and_mount_path(world, kubelet, start):
    dev = world.present_at_start(uw.hid_board(port="1-1"))
    start(usbdev("hid", {"class": "hid", "mountPath": "/dev/board/"}))
    pl = kubelet.wait_plugin("example.com/hid")
    did = "16c0-0486-4815160"
    pl.stream.wait(lambda d: d == {did: "Healthy"})
    c = pl.allocate([did]).container_responses[0]
    hid = [n.devnode for n in dev.nodes if n.subsystem == "hidraw"][0]
    got = {d.host_path: d.container_path for d in c.devices}
    assert got[hid] == "/dev/board/" + os.path.basename(hid)
    assert got[dev.busnode] == dev.busnode, "the bus node keeps its path (libusb finds it)"
    assert c.envs["USBDP_HID_0_HIDRAW"] == "/dev/board/" + os.path.basename(hid)


def test_two_identical_devices_without_serial_told_apart_by_port(world, kubelet, start):
    world.present_at_start(uw.ch340(port="1-1.2"), uw.ch340(port="1-1.10"))
    # the specific resource first: a device is the first matching resource's
    start(usbdev("left", dict(CH340, port="1-1.2")), usbdev("rest", CH340))
    left = kubelet.wait_plugin("example.com/left")
    left.stream.wait(lambda d: d == {"1a86-7523-port-1-1.2": "Healthy"})
    rest = kubelet.wait_plugin("example.com/rest")
    rest.stream.wait(lambda d: d == {"1a86-7523-port-1-1.10": "Healthy"})


def test_clones_sharing_a_serial_at_start_named_in_port_order(world, kubelet, start):
    world.present_at_start(uw.cp210x(port="1-2", serial="0001"),
                           uw.cp210x(port="1-1", serial="0001"))
    start(usbdev("cp", CP210X))
    pl = kubelet.wait_plugin("example.com/cp")
    # the lowest port keeps the serial form, the other twin gets its port's
    pl.stream.wait(lambda d: d == {"10c4-ea60-0001": "Healthy",
                                   "10c4-ea60-port-1-2": "Healthy"})


def test_serial_glob_and_wildcards(world, kubelet, start):
    world.present_at_start(uw.ft232r(port="1-1", serial="A50285BI"),
                           uw.ft232r(port="1-2", serial="B1234"),
                           uw.cp210x(port="1-3", serial="A5XYZ"))
    start(usbdev("a5", {"vendor": "*", "serial": "A5*"}),
          usbdev("ftdi", {"vendor": "0403"}))
    a5 = kubelet.wait_plugin("example.com/a5")
    a5.stream.wait(lambda d: set(d) == {"0403-6001-A50285BI", "10c4-ea60-A5XYZ"})
    ftdi = kubelet.wait_plugin("example.com/ftdi")
    # A50285BI matches both: it is the first resource's (a5), never offered twice
    ftdi.stream.wait(lambda d: set(d) == {"0403-6001-B1234"})


def test_multi_entry_group_pairs_devices_by_port(world, kubelet, start):
    world.present_at_start(uw.ch340(port="1-4"), uw.cp210x(port="1-3", serial="S2"),
                           uw.ch340(port="1-2"), uw.cp210x(port="1-1", serial="S1"),
                           uw.ch340(port="1-5"))
    start(usbdev("pair", CH340, CP210X))
    pl = kubelet.wait_plugin("example.com/pair")
    pl.stream.wait(lambda d: d == {"1a86-7523-port-1-2+10c4-ea60-S1": "Healthy",
                                   "1a86-7523-port-1-4+10c4-ea60-S2": "Healthy"},
                   what="min(3, 2) = 2 sets, paired in port order")
    c = pl.allocate(["1a86-7523-port-1-2+10c4-ea60-S1"]).container_responses[0]
    assert c.envs["USBDP_PAIR_0_PORT"] == "1-2" and c.envs["USBDP_PAIR_0_DEV1_PORT"] == "1-1"


def test_storm_of_plugs_ends_exact_and_coalesced(world, kubelet, start):
    plugin = start(usbdev("ch340", CH340), extra=["--grace-period", "60s"])
    pl = kubelet.wait_plugin("example.com/ch340")
    pl.stream.wait(lambda d: d == {})
    before = pl.stream.count()
    devs = [world.plug(uw.ch340(port="2-%d" % (i + 1))) for i in range(60)]
    for d in devs[:40]:
        world.unplug(d)
    # 100 plugs and unplugs (some 600 uevents)
    want = {"1a86-7523-port-2-%d" % (i + 1): ("Unhealthy" if i < 40 else "Healthy")
            for i in range(60)}
    try:
        pl.stream.wait(lambda d: d == want, timeout=20, what="the exact final table")
    except AssertionError:
        open("/tmp/storm-plugin.log", "w").write(plugin.log())
        raise
    sent = pl.stream.count() - before
    assert sent < 100, "%d lists for 100 plug/unplug events: not coalesced" % sent


@pytest.mark.parametrize("kind", uw.MALFORMED)
def test_malformed_sysfs_is_survived(world, kubelet, start, kind):
    bad = uw.malformed(kind, port="1-1")
    world.present_at_start(bad)
    plugin = start(usbdev("any", {"vendor": "*", "class": "vendor"}),
                   extra=["--grace-period", "60s"])
    pl = kubelet.wait_plugin("example.com/any")
    world.plug(uw.ft232r(port="1-2", serial="GOOD"))  # hotplug keeps working
    pl.stream.wait(lambda d: d.get("0403-6001-GOOD") == "Healthy")
    devs = pl.stream.latest()
    if kind == "bad-vid":
        plugin.wait_log(r'port=1-1: idVendor "zzzz" is not hexadecimal')
        assert not any(k.startswith("10c4") for k in devs)
    if kind in ("node-dir", "node-block", "node-missing"):
        did = [k for k in devs if "NODE" in k][0]
        assert devs[did] == "Unhealthy", "a broken node makes its device unhealthy"
        plugin.wait_log(r"device unhealthy .*id=%s reason=" % did)
    if kind == "no-busnum":
        # the bus node still comes from DEVNAME
        assert devs.get("10c4-ea60-NOBUS") == "Healthy"
    assert plugin.proc.poll() is None


def test_list_prints_devices_nodes_and_matches(world, tmp_path):
    import subprocess
    dev = world.present_at_start(uw.ch340(port="1-3"))
    env = dict(os.environ, **world.env(asan=uw.uses_asan(BIN)))
    out = subprocess.run([BIN, "--list", "--domain", "example.com", "--device",
                          '{"name": "serial", "groups": [{"usb": [{"vendor": "1a86"}]}]}'],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "port 1-3  1a86:7523  QinHeng Electronics / CH340 serial converter" in out.stdout
    assert "node     %s" % dev.busnode in out.stdout
    assert "node     %s  (tty)" % dev.nodes[0].devnode in out.stdout
    assert "matches  example.com/serial  groups[0].usb[0]" in out.stdout
    out2 = subprocess.run([BIN, "list"], capture_output=True, text=True, env=env, timeout=30)
    assert out2.returncode == 0 and "port 1-3" in out2.stdout, out2.stderr


def test_libusb_and_udev_events_merge(world, kubelet, start):
    plugin = start(usbdev("ch340", CH340))
    pl = kubelet.wait_plugin("example.com/ch340")
    world.plug(uw.ch340(port="1-1"))
    pl.stream.wait(lambda d: d == {"1a86-7523-port-1-1": "Healthy"})
    plugin.wait_log(r"libusb hotplug event=arrived device=1-1")
    log = plugin.log()
    assert log.count("usb device settled port=1-1 ") == 1, "one device, not two"


def test_deaf_monitor_falls_back_to_dev_bus_usb(world, kubelet, start):
    # Some device already on bus 1, so that /dev/bus/usb/001 exists to watch
    # (umockdev redirects inotify on /dev/... paths, not on /dev itself).
    world.present_at_start(uw.bare(port="1-2"))
    plugin = start(usbdev("ch340", CH340))
    pl = kubelet.wait_plugin("example.com/ch340")
    pl.stream.wait(lambda d: d == {})
    world.plug(uw.ch340(port="1-1"), events=False)  # no uevent reaches anyone
    pl.stream.wait(lambda d: d == {"1a86-7523-port-1-1": "Healthy"}, timeout=5,
                   what="found through /dev/bus/usb")
    plugin.wait_log(r"events do not reach this process")


def test_device_without_serial_moved_to_another_port_is_another_device(world, kubelet, start):
    start(usbdev("ch340", CH340), extra=["--grace-period", "60s"])
    pl = kubelet.wait_plugin("example.com/ch340")
    dev = world.plug(uw.ch340(port="1-1"))
    pl.stream.wait(lambda d: d == {"1a86-7523-port-1-1": "Healthy"})
    world.unplug(dev)
    world.plug(uw.ch340(port="1-2"))
    # no serial: the port is its identity; the old port's ID waits out its grace
    pl.stream.wait(lambda d: d == {"1a86-7523-port-1-1": "Unhealthy",
                                   "1a86-7523-port-1-2": "Healthy"})
    world.plug(uw.ch340(port="1-1"))
    pl.stream.wait(lambda d: d == {"1a86-7523-port-1-1": "Healthy",
                                   "1a86-7523-port-1-2": "Healthy"},
                   what="another CH340 in the first port takes its ID back")


def test_nfd_feature_file_follows_plugs(world, kubelet, start, tmp_path):
    feat = tmp_path / "features.d" / "usb-device-plugin"
    feat.parent.mkdir()
    world.present_at_start(uw.ch340(port="1-1"))
    start(usbdev("ch340", CH340), usbdev("ftdi", FT232R),
          extra=["--nfd-features-file", str(feat), "--grace-period", "60s"])
    pl = kubelet.wait_plugin("example.com/ch340")
    pl.stream.wait(lambda d: len(d) == 1)

    def features():
        if not feat.exists():
            return None
        lines = [ln for ln in feat.read_text().splitlines() if not ln.startswith("#")]
        return dict(ln.split("=", 1) for ln in lines)
    wait_until(lambda: features() == {"usbdp.ch340": "1", "usbdp.usb-1a86-7523": "1",
                                      "usbdp.usb-1d6b-0002": "2"}, 5,
               "labels for the CH340 (and the root hubs' model)")
    ft = world.plug(uw.ft232r(port="1-2"))
    bare = world.plug(uw.bare(port="1-3"))  # matched by no group: a model label all the same
    wait_until(lambda: (features() or {}).get("usbdp.ftdi") == "1" and
               features().get("usbdp.usb-1209-0001") == "1", 5, "FTDI and bare labels")
    world.unplug(ft)
    world.unplug(bare)
    wait_until(lambda: "usbdp.ftdi" not in features() and
               "usbdp.usb-0403-6001" not in features(), 5, "labels gone after unplug")
    # written atomically: no temporary file left beside it
    assert sorted(os.listdir(feat.parent)) == ["usb-device-plugin"]


def test_templates_and_cdi_for_usb_devices(world, kubelet, start, tmp_path):
    cdi = tmp_path / "cdi"
    g = {"usb": [CH340], "env": {"SERIAL_PORT_{index}": "{tty}", "WHERE": "{port}"},
         "annotations": {"example.com/usb-{index}": "{vendor}:{product}@{port} {serial}"}}
    start({"name": "ch340", "groups": [g]}, extra=["--cdi", "--cdi-dir", str(cdi),
                                                  "--grace-period", "60s"])
    pl = kubelet.wait_plugin("example.com/ch340")
    a = world.plug(uw.ch340(port="1-1"))
    b = world.plug(uw.ch340(port="1-2"))
    ida, idb = "1a86-7523-port-1-1", "1a86-7523-port-1-2"
    pl.stream.wait(lambda d: d == {ida: "Healthy", idb: "Healthy"})
    c = pl.allocate([idb, ida]).container_responses[0]
    assert c.envs["SERIAL_PORT_0"] == b.nodes[0].devnode
    assert c.envs["SERIAL_PORT_1"] == a.nodes[0].devnode
    assert c.envs["WHERE"] == "1-2,1-1", "one key from two devices: both, in request order"
    assert c.annotations["example.com/usb-0"] == "1a86:7523@1-2 ", "no serial: empty"
    assert sorted(d.name for d in c.cdi_devices) == ["example.com/ch340=" + ida,
                                                     "example.com/ch340=" + idb]
    assert not c.devices
    spec_path = cdi / "example.com-ch340.json"

    def spec_nodes():
        with open(spec_path) as f:
            spec = json.load(f)
        return {d["name"]: sorted(n["hostPath"] for n in d["containerEdits"]["deviceNodes"])
                for d in spec["devices"]}
    wait_until(lambda: spec_nodes() == {
        ida: sorted([a.busnode, a.nodes[0].devnode]),
        idb: sorted([b.busnode, b.nodes[0].devnode])}, 5, "both adapters in the spec")
    world.unplug(a)
    pl.stream.wait(lambda d: d == {ida: "Unhealthy", idb: "Healthy"})
    wait_until(lambda: list(spec_nodes()) == [idb], 5, "the unplugged one left the spec")
    world.unplug(b)
    wait_until(lambda: not spec_path.exists(), 5,
               "no device left: no spec (CDI forbids an empty one)")
