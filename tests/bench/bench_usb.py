"""make bench, USB part: faked uevent -> ListAndWatch update at the kubelet
stand-in (a lone plug and unplug; a hub with four dongles unplugged), the
plugin's own usbdp_event_to_stream_seconds for bind uevents (read from
/metrics), and start-up with 1,000 faked USB devices against a plain
libudev enumeration of the same world (tests/bench/usbenum_plain.c),
inside a umockdev world (tests/integration/usbworld.py). Prints
`name: value`."""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

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


def http_port(logpath, timeout=10):
    """The port of the plugin's /metrics, from its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(logpath) as f:
            m = re.search(r"serving /healthz and /metrics .* port=(\d+)", f.read())
        if m:
            return int(m.group(1))
        time.sleep(0.01)
    raise AssertionError("no /metrics port in the log")


HIST = "usbdp_event_to_stream_seconds"


def histogram(port):
    """{le (float, inf for +Inf): cumulative count} and (sum, count) of
    usbdp_event_to_stream_seconds."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    buckets, total = {}, [0.0, 0]
    for line in text.splitlines():
        m = re.match(HIST + r'_bucket\{le="([^"]+)"\} (\d+)$', line)
        if m:
            buckets[float(m.group(1))] = int(m.group(2))
        elif line.startswith(HIST + "_sum "):
            total[0] = float(line.split()[1])
        elif line.startswith(HIST + "_count "):
            total[1] = int(line.split()[1])
    return buckets, tuple(total)


def hist_delta(after, before):
    return ({le: c - before[0].get(le, 0) for le, c in after[0].items()},
            (after[1][0] - before[1][0], after[1][1] - before[1][1]))


def hist_add(acc, d):
    for le, c in d[0].items():
        acc[0][le] = acc[0].get(le, 0) + c
    acc[1][0] += d[1][0]
    acc[1][1] += d[1][1]


def quantile(buckets, q):
    """(upper bound of the bucket holding quantile q, the value linearly
    interpolated inside it, as Prometheus's histogram_quantile does), in
    seconds, from cumulative counts."""
    les = sorted(buckets)
    total = buckets[les[-1]]
    rank = q * total
    lo, below = 0.0, 0
    for le in les:
        if buckets[le] >= rank:
            if le == float("inf"):
                return le, lo
            inside = buckets[le] - below
            frac = (rank - below) / inside if inside else 1.0
            return le, lo + (le - lo) * frac
        lo, below = le, buckets[le]
    return les[-1], lo


def wait_count(port, count, timeout=5):
    """/metrics once its histogram holds count observations (the plugin
    observes right after handing the list over, so the stand-in can see the
    list a moment before)."""
    deadline = time.monotonic() + timeout
    while True:
        h = histogram(port)
        if h[1][1] >= count or time.monotonic() > deadline:
            return h
        time.sleep(0.001)


def bench_latency(n=50):
    """A lone CH340 plugged, then unplugged, n times: at the kubelet
    stand-in (from the uevent sent to the list received), and in the plugin
    (usbdp_event_to_stream_seconds: from the uevent's arrival in the
    process to the list handed to the streams) for the bind and for the
    unplug separately."""
    with uw.World() as world, tempfile.TemporaryDirectory() as tmp:
        pd = tmp + "/"
        k = Kubelet(pd).start()
        logpath = os.path.join(tmp, "log")
        p = start(world, pd, open(logpath, "w"))
        try:
            pl = k.wait_plugin("example.com/ch340", timeout=10)
            port = http_port(logpath)
            s = pl.stream
            s.wait(lambda d: d == {})
            plug, unplug = [], []
            hbind, hunplug = [{}, [0.0, 0]], [{}, [0.0, 0]]
            for i in range(n):
                dev = world.plug(uw.ch340(port="1-%d" % (i % 8 + 1)), settle=False)
                did = "1a86-7523-port-" + dev.port
                time.sleep(0.005)  # isolated events, as a hand plugs dongles
                h0 = histogram(port)
                t = time.monotonic()
                world.settle(dev)  # the usb_device's bind: the settle point
                s.wait(lambda d: d.get(did) == "Healthy")
                with s.cond:
                    plug.append(s.lists[-1][0] - t)
                hist_add(hbind, hist_delta(wait_count(port, h0[1][1] + 1), h0))
                time.sleep(0.005)
                h0 = histogram(port)
                t = time.monotonic()
                world.unplug(dev)  # its first uevent: the tty's remove
                s.wait(lambda d: d.get(did) == "Unhealthy")
                with s.cond:
                    unplug.append(s.lists[-1][0] - t)
                hist_add(hunplug, hist_delta(wait_count(port, h0[1][1] + 1), h0))
            for name, xs in (("bind_uevent_to_listandwatch_healthy", plug),
                             ("unplug_first_uevent_to_listandwatch_unhealthy", unplug)):
                ms = [x * 1000 for x in xs]
                out(name + "_median_ms", "%.2f" % statistics.median(ms))
                out(name + "_max_ms", "%.2f" % max(ms))
            out("usb_latency_samples", n)
            for name, h in (("bind", hbind), ("unplug", hunplug)):
                pre = "usbdp_event_to_stream_%s_" % name
                for q in (0.5, 0.9):
                    le, v = quantile(h[0], q)
                    out(pre + "p%d_ms" % (q * 100), "%.3f (bucket le=%g ms)" % (v * 1000,
                                                                                 le * 1000))
                if h[1][1]:
                    out(pre + "mean_ms", "%.3f" % (h[1][0] / h[1][1] * 1000))
                out(pre + "samples", h[1][1])
            le, v = quantile(hbind[0], 0.5)
            out("usbdp_event_to_stream_bind_p50_target_ms",
                "1 (%s)" % ("met: p50 bucket le=%g ms" % (le * 1000) if le <= 0.001
                            else "NOT met"))
            out("usbdp_event_to_stream_unplug_note",
                "includes the %d ms removal hold (HOLD_QUIET_US in src/usb.c)" % 10)
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


def build_plain(tmp):
    """Compiles tests/bench/usbenum_plain.c; its path, or None (no compiler
    or no libudev headers)."""
    exe = os.path.join(tmp, "usbenum_plain")
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libudev"], check=True,
                               capture_output=True, text=True).stdout.split()
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", exe,
                        os.path.join(HERE, "usbenum_plain.c")] + flags, check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("plain libudev enumerator not built: %s" % e)
        return None
    return exe


def start_once(world, tmp, n, i):
    """The plugin started in world: (seconds from its start to the kubelet
    stand-in holding the complete first list, its enumeration ms from its
    log, RSS KiB)."""
    pd = os.path.join(tmp, "pd%d" % i) + "/"
    os.mkdir(pd)
    k = Kubelet(pd).start()
    logpath = os.path.join(tmp, "log%d" % i)
    t = time.monotonic()
    p = start(world, pd, open(logpath, "w"))
    try:
        pl = k.wait_plugin("example.com/ch340", timeout=120)
        pl.stream.wait(lambda d: len(d) == n, timeout=120)
        took = time.monotonic() - t
        with open("/proc/%d/status" % p.pid) as f:
            rss = [ln.split()[1] for ln in f if ln.startswith("VmRSS:")][0]
    finally:
        p.terminate()
        p.wait(30)
        k.stop()
    with open(logpath) as f:
        m = re.search(r"usb enumeration devices=(\d+) ms=([\d.]+)", f.read())
    return took, float(m.group(2)) if m else float("nan"), rss


def bench_enumeration(n=1000, runs=3):
    """Start-up with n CH340s plugged: the plugin, from its start to the
    kubelet stand-in holding the complete first ListAndWatch list, against
    a plain libudev enumeration of the same world (usbenum_plain.c, as a
    process: from its start to its exit); runs of each, interleaved,
    medians."""
    with uw.World() as world, tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        devs = []
        for i in range(n):
            bus, port = divmod(i, 100)
            devs.append(uw.ch340(port="%d-%d" % (bus + 1, port + 1)))
        world.present_at_start(*devs)
        out("usb_world_build_s_%d_devices" % n, "%.1f" % (time.monotonic() - t))
        plain_exe = build_plain(tmp)
        env = dict(os.environ, **world.env())
        plain, plain_in, plugin, enum_ms, rss = [], [], [], [], []
        for i in range(runs):
            if plain_exe:
                t = time.monotonic()
                r = subprocess.run([plain_exe], env=env, check=True, capture_output=True,
                                   text=True)
                plain.append(time.monotonic() - t)
                plain_in.append(float(re.search(r"seconds=([\d.]+)", r.stdout).group(1)))
            took, ms, kib = start_once(world, tmp, n, i)
            plugin.append(took)
            enum_ms.append(ms)
            rss.append(int(kib))
        out("usb_start_to_first_list_ms_%d_devices" % n,
            "%.0f (median of %d: %s)" % (statistics.median(plugin) * 1000, runs,
                                         " ".join("%.0f" % (x * 1000) for x in plugin)))
        out("usb_enumeration_ms_%d_devices" % n, "%.1f" % statistics.median(enum_ms))
        out("usb_rss_kib_%d_devices" % n, "%d" % statistics.median(rss))
        if plain:
            out("usb_plain_libudev_enumeration_ms_%d_devices" % n,
                "%.0f (median of %d: %s; in process %.0f)" % (
                    statistics.median(plain) * 1000, runs,
                    " ".join("%.0f" % (x * 1000) for x in plain),
                    statistics.median(plain_in) * 1000))
            ratio = statistics.median(plugin) / statistics.median(plain)
            out("usb_start_to_first_list_over_plain_libudev", "%.2f (target <= 1.3: %s)" % (
                ratio, "met" if ratio <= 1.3 else "NOT met"))


def main():
    reason = uw.available()
    if reason is not None:
        print("usb benchmarks skipped: %s" % reason)
        return
    only = set(sys.argv[1:])  # e.g. "latency enumeration": just those
    for name, fn in (("latency", bench_latency), ("hub", bench_hub), ("storm", bench_storm),
                     ("enumeration", bench_enumeration)):
        if not only or name in only:
            fn()


if __name__ == "__main__":
    main()
