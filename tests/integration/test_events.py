"""Events in a watched directory: an event only the groups it can change
act on, and what it can change is still seen -- among many unrelated
entries, one level down a glob, after the kernel's queue overflowed.

That an unrelated name costs no directory re-read is not asserted here (it
could only be told by timing or syscall counts): make bench's
event_cpu_us_unmatched_name_1000_entries measures it."""

import os
import signal

from conftest import sha1_id

RES = "example.com/serial"


def serial(devdir):
    return {"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]}


def unrelated(devdir, n):
    for i in range(n):
        open(devdir.p("other%d" % i), "w").close()


def test_match_among_a_thousand_unrelated_entries(devdir, kubelet, run_plugin):
    unrelated(devdir, 1000)
    run_plugin(serial(devdir), extra=["--grace-period", "30s"])
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {})
    id0 = sha1_id(0, devdir.p("ttyUSB0"))
    devdir.add("ttyUSB0")
    pl.stream.wait(lambda d: d == {id0: "Healthy"}, what="ttyUSB0 among 1000 entries")
    devdir.remove("ttyUSB0")
    pl.stream.wait(lambda d: d == {id0: "Unhealthy"}, what="ttyUSB0 removed")
    devdir.add("ttyUSB0")
    pl.stream.wait(lambda d: d == {id0: "Healthy"}, what="ttyUSB0 back")


def test_unmatched_and_hidden_names_are_not_listed(devdir, kubelet, run_plugin):
    unrelated(devdir, 200)
    run_plugin({"name": "usb", "groups": [{"paths": [{"path": devdir.p("*USB*")}]}]})
    pl = kubelet.wait_plugin("example.com/usb")
    pl.stream.wait(lambda d: d == {})
    # made in this order: the last match is listed only after the others'
    # events were read, so their absence is not a race
    devdir.add("xUSB")
    os.mknod(devdir.p(".USBhidden"), 0o666 | 0o020000, os.makedev(1, 3))
    devdir.add("serial0")
    devdir.add("ttyUSB7")
    last = sha1_id(0, devdir.p("ttyUSB7"))
    devs = pl.stream.wait(lambda d: last in d, what="ttyUSB7")
    assert devs == {sha1_id(0, devdir.p("xUSB")): "Healthy", last: "Healthy"}


def test_event_one_level_down_a_glob(devdir, kubelet, run_plugin):
    os.makedirs(devdir.p("bus/usb/001"))
    devdir.add("bus/usb/001/001")
    run_plugin({"name": "usbfs", "groups": [{"paths": [{"path": devdir.p("bus/usb/*/*")}]}]})
    pl = kubelet.wait_plugin("example.com/usbfs")
    first = sha1_id(0, devdir.p("bus/usb/001/001"))
    pl.stream.wait(lambda d: d == {first: "Healthy"})
    unrelated(devdir, 100)  # beside bus: nothing any level can match
    # a new bus directory, then a node in it (maybe before it is watched)
    devdir.add("bus/usb/002/003")
    new = sha1_id(0, devdir.p("bus/usb/002/003"))
    pl.stream.wait(lambda d: d == {first: "Healthy", new: "Healthy"}, what="bus/usb/002/003")
    devdir.add("bus/usb/001/004")
    more = sha1_id(0, devdir.p("bus/usb/001/004"))
    pl.stream.wait(lambda d: len(d) == 3 and d[more] == "Healthy", what="bus/usb/001/004")


def test_queue_overflow_rescans_everything(devdir, kubelet, run_plugin):
    plugin = run_plugin(serial(devdir), extra=["--grace-period", "30s"])
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {})
    # Stopped, the plugin reads nothing: more events than the kernel queues
    # (fs.inotify.max_queued_events, 16384 by default) overflow it, and the
    # match made after that has no event of its own.
    with open("/proc/sys/fs/inotify/max_queued_events") as f:
        limit = int(f.read())
    mark = plugin.mark()
    os.kill(plugin.proc.pid, signal.SIGSTOP)
    try:
        for i in range(limit // 2 + 100):
            path = devdir.p("flood%d" % i)
            open(path, "w").close()
            os.unlink(path)
        devdir.add("ttyUSB5")
    finally:
        os.kill(plugin.proc.pid, signal.SIGCONT)
    plugin.wait_log(r"inotify queue overflow", start=mark)
    pl.stream.wait(lambda d: d == {sha1_id(0, devdir.p("ttyUSB5")): "Healthy"},
                   what="ttyUSB5 after the overflow")
