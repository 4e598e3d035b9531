"""make bench: figures for the plugin, printed as `name: value` lines.

Runs the release binary (bin/usb-device-plugin) against a directory of
fake device nodes and the kubelet stand-in (Python grpcio), so latencies
include the stand-in's own gRPC stack: they are upper bounds of what a
kubelet (Go) sees."""

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kubelet import Kubelet  # noqa: E402

BIN = os.environ.get("UDP_BIN", os.path.join(ROOT, "bin", "usb-device-plugin"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "60"))


def out(name, value, unit=""):
    print("%s: %s%s" % (name, value, (" " + unit) if unit else ""), flush=True)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def mknod(path):
    os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))


def proc_stats(pid):
    """(utime+stime ticks, voluntary+involuntary context switches of every
    thread, RSS kB)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    switches = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return ticks, switches, rss


def smaps(pid, field):
    """A field of /proc/PID/smaps_rollup in kB: Pss counts shared library
    pages once per process sharing them; Anonymous is the plugin's own."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


class Run:
    def __init__(self, n_files, log_level="warn"):
        self.tmp = tempfile.TemporaryDirectory()
        self.dev = os.path.join(self.tmp.name, "dev")
        self.pd = os.path.join(self.tmp.name, "pd") + "/"
        os.makedirs(self.dev)
        os.makedirs(self.pd)
        for i in range(n_files):
            mknod(os.path.join(self.dev, "tty%d" % i))
        self.kubelet = Kubelet(self.pd).start()
        dev = '{"name": "serial", "groups": [{"paths": [{"path": "%s/tty*"}]}]}' % self.dev
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([BIN, "--plugin-directory", self.pd, "--log-level", log_level,
                                      "--domain", "example.com", "--listen", "127.0.0.1:0", "--device", dev],
                                     stdin=subprocess.DEVNULL)
        self.plugin = self.kubelet.wait_plugin("example.com/serial", timeout=30)
        self.plugin.stream.wait(lambda d: len(d) == n_files, timeout=30)
        self.n = n_files
        self.ready_s = time.monotonic() - self.t0

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.kubelet.stop()
        self.tmp.cleanup()


def bench_startup():
    for n in (1, 100, 1000):
        r = Run(n)
        try:
            time.sleep(0.5)  # let gRPC's threads settle before reading RSS
            out("startup_to_first_list_ms_%d_devices" % n, "%.1f" % (r.ready_s * 1000))
            out("rss_kib_%d_devices" % n, proc_stats(r.proc.pid)[2])
            out("pss_kib_%d_devices" % n, smaps(r.proc.pid, "Pss"))
            out("anon_kib_%d_devices" % n, smaps(r.proc.pid, "Anonymous"))
        finally:
            r.close()


def bench_event_cost(n_files=1000, n_events=300):
    """The CPU the plugin spends on one inotify event in a watched directory
    of n_files entries that all match the glob (tty*): (a) a name no glob
    matches, (b) a matching name (a device node created, then removed).
    CPU from /proc/<pid>/stat (utime+stime) over n_events events, each
    alone (rescans are rate-limited to one per 2 ms); median of 3 rounds."""
    r = Run(n_files, log_level="error")  # not a line per device gone
    hz = os.sysconf("SC_CLK_TCK")
    try:
        time.sleep(0.5)

        def per_event(make):
            rounds = []
            for k in range(3):
                before = proc_stats(r.proc.pid)[0]
                for i in range(n_events):
                    make(k, i)
                    time.sleep(0.005)
                time.sleep(0.3)
                rounds.append((proc_stats(r.proc.pid)[0] - before) * 1e6 / hz / n_events)
            return statistics.median(rounds)

        def unrelated(k, i):
            path = os.path.join(r.dev, "other%d" % (i // 2))
            if i % 2 == 0:
                open(path, "w").close()
            else:
                os.unlink(path)

        def matching(k, i):
            path = os.path.join(r.dev, "ttyEXTRA%d" % (i // 2))
            if i % 2 == 0:
                mknod(path)
            else:
                os.unlink(path)

        out("event_cpu_us_unmatched_name_%d_entries" % n_files, "%.0f" % per_event(unrelated))
        out("event_cpu_us_matching_name_%d_entries" % n_files, "%.0f" % per_event(matching))
    finally:
        r.close()


def bench_allocate(r):
    ids = sorted(r.plugin.stream.latest())
    for i in range(100):  # warm-up
        r.plugin.allocate([ids[i % len(ids)]])
    lat = []
    t_all = time.monotonic()
    for i in range(2000):
        t = time.monotonic()
        r.plugin.allocate([ids[i % len(ids)]])
        lat.append((time.monotonic() - t) * 1e6)
    total = time.monotonic() - t_all
    out("allocate_roundtrip_p50_us", "%.0f" % pct(lat, 50))
    out("allocate_roundtrip_p99_us", "%.0f" % pct(lat, 99))
    out("allocate_per_s_sequential", "%.0f" % (2000 / total))


def bench_event_to_update(r):
    s = r.plugin.stream
    lat = []
    for i in range(100):
        name = os.path.join(r.dev, "ttyNEW%d" % i)
        n = s.count()
        time.sleep(0.01)  # isolated events: a burst is rate-limited on purpose
        t = time.monotonic()
        mknod(name)
        s.wait(lambda d: len(d) == 11 + i, timeout=5)
        with s.cond:
            got = s.lists[-1][0]
        lat.append((got - t) * 1e6)
        assert s.count() > n
    out("file_created_to_listandwatch_median_us", "%.0f" % statistics.median(lat))
    out("file_created_to_listandwatch_p99_us", "%.0f" % pct(lat, 99))


def bench_storm(n=1000):
    """n device files created in one burst: time until the kubelet has the
    whole list, and how many lists it took."""
    r = Run(0)
    try:
        s = r.plugin.stream
        before = s.count()
        t = time.monotonic()
        for i in range(n):
            mknod(os.path.join(r.dev, "tty%d" % i))
        s.wait(lambda d: len(d) == n, timeout=60)
        out("storm_%d_files_to_settled_list_ms" % n, "%.1f" % ((time.monotonic() - t) * 1000))
        out("storm_%d_files_lists_sent" % n, s.count() - before)
    finally:
        r.close()


def bench_concurrent_allocate(r, threads=8, calls=250):
    import threading
    ids = sorted(r.plugin.stream.latest())
    errors = []

    def worker(k):
        import grpc
        for i in range(calls):
            try:
                r.plugin.allocate([ids[(k + i) % len(ids)]])
            except grpc.RpcError as e:
                errors.append(e)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t = time.monotonic()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    total = time.monotonic() - t
    out("allocate_per_s_%d_threads" % threads, "%.0f" % (threads * calls / total))
    out("allocate_errors_concurrent", len(errors))


def bench_idle(r):
    time.sleep(1)
    t0, c0, _ = proc_stats(r.proc.pid)
    time.sleep(IDLE_S)
    t1, c1, rss = proc_stats(r.proc.pid)
    hz = os.sysconf("SC_CLK_TCK")
    out("idle_seconds", "%.0f" % IDLE_S)
    out("idle_cpu_ticks", t1 - t0, "(1 tick = %d ms)" % (1000 // hz))
    out("idle_context_switches_per_s", "%.2f" % ((c1 - c0) / IDLE_S))
    out("idle_rss_kib", rss)


SDM_CONF = "".join("- devicematch: %s\n  nummaxdevices: %d\n" % e for e in (
    ("^snd$", 20), ("^gpiomem$", 40), ("^gpiochip[0-9]*$", 20), ("^hci[0-9]*$", 1),
    ("^i2c-[0-9]*$", 1), ("^rtc0$", 20), ("^video[0-9]*$", 20), ("^vchiq$", 20),
    ("^vcsm.*$", 20), ("^ttyUSB[0-9]*$", 1), ("^ttyACM[0-9]*$", 1), ("^ttyS[0-9]*$", 1)))


def bench_devicematch(n_dirs=60, per_dir=25):
    """smarter-device-manager's config (its default list) over a fake /dev
    the size of a busy node's (n_dirs directories of per_dir entries, 32
    ttyS), mounted over /dev in the plugin's mount namespace: the time from
    a new ttyUSB file to its new resource's first list, and the CPU the
    plugin spends on an event in an unrelated directory (every event
    rescans /dev: the price of following hotplug)."""
    # on tmpfs, as /dev (devtmpfs) is: a disk file system's directories
    # cost several times more to read
    tmpdev = tempfile.TemporaryDirectory(dir="/dev/shm")
    tmp = tempfile.TemporaryDirectory()
    dev = os.path.join(tmpdev.name, "dev")
    pd = os.path.join(tmp.name, "pd") + "/"
    os.makedirs(pd)
    for d in range(n_dirs):
        os.makedirs(os.path.join(dev, "dir%d" % d))
        for i in range(per_dir):
            mknod(os.path.join(dev, "dir%d" % d, "n%d" % i))
    for i in range(32):
        mknod(os.path.join(dev, "ttyS%d" % i))
    for name, minor in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)):
        os.mknod(os.path.join(dev, name), 0o666 | 0o020000, os.makedev(1, minor))
    conf = os.path.join(tmp.name, "conf.yaml")
    with open(conf, "w") as f:
        f.write(SDM_CONF)
    k = Kubelet(pd).start()
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount --bind "$0" /dev && exec "$@"', dev, BIN, "--config", conf,
         "--plugin-directory", pd, "--log-level", "warn", "--listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL)
    try:
        k.wait_plugin("smarter-devices/ttyS31", timeout=30)
        out("devicematch_dev_entries", n_dirs * (per_dir + 1) + 36)
        lat = []
        for i in range(30):
            time.sleep(0.01)
            t = time.monotonic()
            mknod(os.path.join(dev, "ttyUSB%d" % i))
            pl = k.wait_plugin("smarter-devices/ttyUSB%d" % i, timeout=10)
            pl.stream.wait(lambda d: len(d) == 1, timeout=10)
            with pl.stream.cond:
                got = pl.stream.lists[0][0]
            lat.append((got - t) * 1e6)
        out("devicematch_new_file_to_new_resource_listed_median_us",
            "%.0f" % statistics.median(lat))
        out("devicematch_new_file_to_new_resource_listed_p99_us", "%.0f" % pct(lat, 99))
        time.sleep(0.5)
        before = proc_stats(proc.pid)[0]
        n = 300
        for i in range(n):
            mknod(os.path.join(dev, "dir%d" % (i % n_dirs), "x%d" % i))
            time.sleep(0.005)  # one rescan each: rescans are rate-limited to one per 2 ms
        time.sleep(0.5)
        ticks = proc_stats(proc.pid)[0] - before
        hz = os.sysconf("SC_CLK_TCK")
        out("devicematch_unrelated_event_cpu_us", "%.0f" % (ticks * 1e6 / hz / n))
        out("devicematch_rss_kib", proc_stats(proc.pid)[2])
    finally:
        proc.terminate()
        proc.wait(10)
        k.stop()
        tmp.cleanup()
        tmpdev.cleanup()


def main():
    if not os.path.exists(BIN):
        sys.exit("no %s: run make first" % BIN)
    out("binary", BIN)
    bench_startup()
    bench_storm()
    bench_devicematch()
    bench_event_cost()
    r = Run(10)
    try:
        bench_allocate(r)
        bench_concurrent_allocate(r)
        bench_event_to_update(r)
        bench_idle(r)
    finally:
        r.close()


if __name__ == "__main__":
    main()
