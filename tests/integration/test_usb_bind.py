"""The bind of a usb_device is its settle point. The plugin lists it from
what the uevents of its children already told (nodes, interface classes)
and walks its children in sysfs right after the list is out, so a child
whose uevent was lost still reaches the Pods, and a walk that finds what
the events said sends the kubelet nothing new."""

import pytest

from kubelet import wait_until
from test_usb import start, world  # noqa: F401 (fixtures)
import usbworld as uw

pytestmark = pytest.mark.skipif(uw.available() is not None,
                                reason=str(uw.available()) + ": no fake USB world")


CH340 = {"vendor": "1a86", "product": "7523"}


def nodes_of(resp):
    return sorted(d.host_path for d in resp.container_responses[0].devices)


def test_child_whose_uevent_was_lost_is_found_after_the_bind(world, kubelet, start):
    plugin = start({"name": "ch340", "groups": [{"usb": [CH340]}]})
    pl = kubelet.wait_plugin("example.com/ch340")
    pl.stream.wait(lambda d: d == {})
    dev = world.plug(uw.ch340(port="1-1", late=True), settle=False)
    # both sources have read the device (no tty yet) before the tty comes
    plugin.wait_log(r"uevent action=add subsystem=usb devtype=usb_interface "
                    r"syspath=\S*/1-1:1\.0$")
    plugin.wait_log(r"libusb hotplug event=arrived device=1-1$")
    with world.losing(lambda sp, action: "/tty/" in sp and action == "add"):
        world.add_late_child(dev)
    assert [a for a, sp in world.lost] == ["add"], "the tty's add was not sent"
    world.settle(dev)
    did = "1a86-7523-port-1-1"
    pl.stream.wait(lambda d: d == {did: "Healthy"})
    # the walk after the bind finds the tty no uevent told of; published
    # right after it says so
    plugin.wait_log(r"usb device port=1-1: sysfs differs from what its uevents told")
    want = sorted([dev.busnode, dev.nodes[0].devnode])
    wait_until(lambda: nodes_of(pl.allocate([did])) == want, 5, "the unannounced tty allocated")


def test_interface_class_comes_from_its_uevent(world, kubelet, start):
    """A group matching by interface class lists a board plugged while the
    plugin runs, with every node of it."""
    start({"name": "acm", "groups": [{"usb": [{"class": "cdc-acm"}]}]})
    pl = kubelet.wait_plugin("example.com/acm")
    pl.stream.wait(lambda d: d == {})
    dev = world.plug(uw.black_magic_probe(port="1-2"))
    did = "1d50-6018-7BB180B4"
    pl.stream.wait(lambda d: d == {did: "Healthy"})
    ttys = sorted(n.devnode for n in dev.nodes if n.subsystem == "tty")
    assert len(ttys) == 2
    assert nodes_of(pl.allocate([did])) == sorted([dev.busnode] + ttys)


def test_walk_after_the_bind_sends_no_second_list(world, kubelet, start):
    plugin = start({"name": "ch340", "groups": [{"usb": [CH340]}]})
    pl = kubelet.wait_plugin("example.com/ch340")
    pl.stream.wait(lambda d: d == {})
    before = pl.stream.count()
    a = world.plug(uw.ch340(port="1-1"))
    ida = "1a86-7523-port-1-1"
    pl.stream.wait(lambda d: d == {ida: "Healthy"})
    # a second device: its list comes after the first one's walk (1 ms
    # after its bind), which had nothing new to say
    b = world.plug(uw.ch340(port="1-2"))
    idb = "1a86-7523-port-1-2"
    pl.stream.wait(lambda d: d == {ida: "Healthy", idb: "Healthy"})
    wait_until(lambda: nodes_of(pl.allocate([idb])) == sorted([b.busnode, b.nodes[0].devnode]),
               5, "the second device whole")
    assert pl.stream.count() - before == 2, "one list per bind"
    assert nodes_of(pl.allocate([ida])) == sorted([a.busnode, a.nodes[0].devnode])
    with plugin.cond:
        assert not [ln for ln in plugin.lines if "sysfs differs" in ln], \
            "the walk found what the uevents told"
