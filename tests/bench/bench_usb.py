"""make bench, USB part: faked uevent -> ListAndWatch update at the kubelet
stand-in (a lone plug and unplug; a hub with four dongles unplugged), and
start-up enumeration of 1,000 faked USB devices, inside a
umockdev world (tests/integration/usbworld.py). Prints `name: value`."""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kubelet import Kubelet  # noqa: E402
import usbworld as uw  # noqa: E402

BIN = os.environ.get("UDP_BIN", os.path.join(ROOT, "bin", "usb-device-plugin"))
DEV = '{"name": "ch340", "groups": [{"usb": [{"vendor": "1a86", "product": "7523"}]}]}'


def out(name, value):
    print("%s: %s" % (name, value), flush=True)


def start(world, pd, log):
    """The plugin in the world, its log going to the file log (a pipe
    nobody reads would fill and block it)."""
    env = dict(os.environ, **world.env(asan=uw.uses_asan(BIN)))
    return subprocess.Popen([BIN, "--plugin-directory", pd, "--log-level", "info",
                             "--domain", "example.com", "--listen", "127.0.0.1:0", "--device", DEV],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log, env=env)


def bench_latency(n=50):
    with uw.World() as world, tempfile.TemporaryDirectory() as tmp:
        pd = tmp + "/"
        k = Kubelet(pd).start()
        p = start(world, pd, open(os.path.join(tmp, "log"), "w"))
        try:
            pl = k.wait_plugin("example.com/ch340", timeout=10)
            s = pl.stream
            s.wait(lambda d: d == {})
            plug, unplug = [], []
            for i in range(n):
                dev = world.plug(uw.ch340(port="1-%d" % (i % 8 + 1)), settle=False)
                did = "1a86-7523-port-" + dev.port
                time.sleep(0.005)  # isolated events, as a hand plugs dongles
                t = time.monotonic()
                world.settle(dev)  # the usb_device's bind: the settle point
                s.wait(lambda d: d.get(did) == "Healthy")
                with s.cond:
                    plug.append(s.lists[-1][0] - t)
                time.sleep(0.005)
                t = time.monotonic()
                world.unplug(dev)  # its first uevent: the tty's remove
                s.wait(lambda d: d.get(did) == "Unhealthy")
                with s.cond:
                    unplug.append(s.lists[-1][0] - t)
            for name, xs in (("bind_uevent_to_listandwatch_healthy", plug),
                             ("unplug_first_uevent_to_listandwatch_unhealthy", unplug)):
                ms = [x * 1000 for x in xs]
                out(name + "_median_ms", "%.2f" % statistics.median(ms))
                out(name + "_max_ms", "%.2f" % max(ms))
            out("usb_latency_samples", n)
        finally:
            p.terminate()
            p.wait(10)
            k.stop()


def bench_hub(n=20, dongles=4):
    """A hub with four CH340s unplugged (World.unplug(burst=True): device by
    device, each one's uevents back to back, as the kernel's hub thread
    does): time from its first uevent to the list with all four Unhealthy,
    and how many lists that took (one: the burst coalesces)."""
    with uw.World() as world, tempfile.TemporaryDirectory() as tmp:
        pd = tmp + "/"
        k = Kubelet(pd).start()
        p = start(world, pd, open(os.path.join(tmp, "log"), "w"))
        try:
            s = k.wait_plugin("example.com/ch340", timeout=10).stream
            s.wait(lambda d: d == {})
            lat, lists, span = [], [], []
            for i in range(n):
                h = world.plug(uw.hub(port="1-%d" % (i % 4 + 1)))
                ids = []
                for j in range(dongles):
                    dev = world.plug(uw.ch340(port="%s.%d" % (h.port, j + 1)))
                    ids.append("1a86-7523-port-" + dev.port)
                s.wait(lambda d: all(d.get(x) == "Healthy" for x in ids))
                time.sleep(0.005)
                before = s.count()
                world.unplug(h, burst=True)
                span.append(world.burst_times[-1] - world.burst_times[0])
                s.wait(lambda d: all(d.get(x) == "Unhealthy" for x in ids))
                with s.cond:
                    lat.append(s.lists[-1][0] - world.burst_times[0])
                time.sleep(0.05)  # a late second list would show here
                lists.append(s.count() - before)
            ms = [x * 1000 for x in lat]
            out("hub_unplug_first_uevent_to_listandwatch_all_unhealthy_median_ms",
                "%.2f" % statistics.median(ms))
            out("hub_unplug_first_uevent_to_listandwatch_all_unhealthy_max_ms",
                "%.2f" % max(ms))
            out("hub_unplug_lists_per_unplug_max", max(lists))
            out("hub_unplug_burst_first_to_last_uevent_median_ms",
                "%.2f" % (statistics.median(span) * 1000))
            out("hub_unplug_samples", n)
        finally:
            p.terminate()
            p.wait(10)
            k.stop()


def bench_storm(devices=143):
    """A plug storm: 143 CH340s plugged back to back, 7 uevents each = 1,001
    events: time from the first to the kubelet holding the whole list, and
    how many lists it took."""
    with uw.World() as world, tempfile.TemporaryDirectory() as tmp:
        pd = tmp + "/"
        k = Kubelet(pd).start()
        p = start(world, pd, open(os.path.join(tmp, "log"), "w"))
        try:
            s = k.wait_plugin("example.com/ch340", timeout=10).stream
            s.wait(lambda d: d == {})
            before = s.count()
            n0 = len(world.sent)
            t = time.monotonic()
            for i in range(devices):
                bus, port = divmod(i, 100)
                world.plug(uw.ch340(port="%d-%d" % (bus + 1, port + 1)))
            s.wait(lambda d: len(d) == devices and all(h == "Healthy" for h in d.values()),
                   timeout=60)
            out("usb_storm_%d_uevents_to_settled_list_ms" % (len(world.sent) - n0),
                "%.0f" % ((time.monotonic() - t) * 1000))
            out("usb_storm_lists_sent", s.count() - before)
        finally:
            p.terminate()
            p.wait(10)
            k.stop()


def bench_enumeration(n=1000):
    with uw.World() as world, tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        devs = []
        for i in range(n):
            bus, port = divmod(i, 100)
            devs.append(uw.ch340(port="%d-%d" % (bus + 1, port + 1)))
        world.present_at_start(*devs)
        out("usb_world_build_s_%d_devices" % n, "%.1f" % (time.monotonic() - t))
        pd = tmp + "/"
        k = Kubelet(pd).start()
        logpath = os.path.join(tmp, "log")
        t = time.monotonic()
        p = start(world, pd, open(logpath, "w"))
        try:
            pl = k.wait_plugin("example.com/ch340", timeout=120)
            pl.stream.wait(lambda d: len(d) == n, timeout=120)
            out("usb_start_to_first_list_ms_%d_devices" % n,
                "%.0f" % ((time.monotonic() - t) * 1000))
            with open("/proc/%d/status" % p.pid) as f:
                rss = [ln.split()[1] for ln in f if ln.startswith("VmRSS:")][0]
            out("usb_rss_kib_%d_devices" % n, rss)
        finally:
            p.terminate()
            p.wait(30)
            k.stop()
        with open(logpath) as f:
            err = f.read()
        m = re.search(r"usb enumeration devices=(\d+) ms=([\d.]+)", err)
        if m:
            out("usb_enumeration_ms_%s_devices" % m.group(1), m.group(2))


def main():
    reason = uw.available()
    if reason is not None:
        print("usb benchmarks skipped: %s" % reason)
        return
    bench_latency()
    bench_hub()
    bench_storm()
    bench_enumeration()


if __name__ == "__main__":
    main()
