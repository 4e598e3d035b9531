"""Fixtures: a fake device directory, a kubelet stand-in, and the real
plugin binary run as a child process with its log captured."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from kubelet import SLOW, Kubelet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("UDP_BIN", os.path.join(ROOT, "bin", "usb-device-plugin"))
WRAP = os.environ.get("UDP_WRAP", "").split()


class DevDir:
    """A directory of fake device nodes: real character devices (mknod), so
    the plugin's type checks run as on a node."""

    def __init__(self, path):
        self.path = path

    def p(self, name):
        return os.path.join(self.path, name)

    def add(self, name, major=1, minor=3):
        path = self.p(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # made under a hidden name and renamed: appears whole, as devtmpfs
        # nodes do, and no glob matches the temporary name
        tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
        os.mknod(tmp, 0o666 | 0o020000, os.makedev(major, minor))
        os.rename(tmp, path)
        return path

    def remove(self, name):
        os.unlink(self.p(name))


@pytest.fixture
def devdir(tmp_path):
    d = tmp_path / "dev"
    d.mkdir()
    probe = d / "probe"
    try:
        os.mknod(str(probe), 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root (CAP_MKNOD): cannot fake device nodes here")
    probe.unlink()
    return DevDir(str(d))


@pytest.fixture
def plugin_dir():
    # Short, as on a node: a unix socket path holds at most 107 bytes and
    # pytest's own temporary paths are long.
    d = tempfile.mkdtemp(prefix="udp-dp-")
    yield d + "/"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kubelet(plugin_dir):
    k = Kubelet(plugin_dir).start()
    yield k
    k.stop()


def _die_with_parent():
    """In the child: SIGKILL when the test process dies, so that a crashed
    test run leaves no plugin behind."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def fake_dev_root(path):
    """Gives a directory the few device nodes every process expects in /dev
    (null, zero, random, urandom), so that it can stand in for /dev."""
    for name, minor in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)):
        p = os.path.join(path, name)
        if not os.path.exists(p):
            os.mknod(p, 0o666 | 0o020000, os.makedev(1, minor))
            os.chmod(p, 0o666)


_MOUNT_NS = {}


def mount_ns_problem(path):
    """None when a directory can be mounted over /dev in a new mount
    namespace here (root with CAP_SYS_ADMIN), else why not."""
    if "r" not in _MOUNT_NS:
        try:
            p = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh",
                                "-c", 'mount --bind "$0" /dev', path],
                               capture_output=True, text=True, timeout=10)
            _MOUNT_NS["r"] = None if p.returncode == 0 else (p.stderr.strip() or "failed")
        except (OSError, subprocess.TimeoutExpired) as e:
            _MOUNT_NS["r"] = str(e)
    return _MOUNT_NS["r"]


class PluginProcess:
    def __init__(self, args, env=None, dev_root=None, prefix=()):
        """dev_root: run the plugin in a mount namespace of its own where
        that directory is mounted over /dev (the world faked, not the
        plugin: it looks at /dev as on a node)."""
        self.args = [BIN] + args
        self.lines = []
        self.cond = threading.Condition()
        e = dict(os.environ)
        for k in ("DOMAIN", "LISTEN", "LOG_LEVEL", "PLUGIN_DIRECTORY"):
            e.pop(k, None)
        e.update(env or {})
        ns = []
        if dev_root:
            fake_dev_root(dev_root)
            ns = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                  'mount --bind "$0" /dev && exec "$@"', dev_root]
        # prefix: a command the plugin runs under (e.g. setpriv, as another user)
        self.proc = subprocess.Popen(ns + list(prefix) + WRAP + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=e, text=True, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def log(self):
        with self.cond:
            return "\n".join(self.lines)

    def wait_log(self, pattern, timeout=5.0, start=0):
        """Waits for a log line matching the regex; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.lines)):
                    raise AssertionError("no log line matching %r within %.1fs; log:\n%s" %
                                         (pattern, timeout * SLOW, "\n".join(self.lines[-40:])))
                self.cond.wait(min(left, 0.1))

    def http_port(self):
        """The port the plugin's /healthz and /metrics are on (from its log)."""
        return int(self.wait_log(r"serving /healthz and /metrics .* port=(\d+)").group(1))

    def mark(self):
        with self.cond:
            return len(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("plugin did not stop within %.1fs of %s; log:\n%s" %
                                 (timeout * SLOW, sig, self.log()[-4000:]))
        self.reader.join(5)
        return rc

    def check_clean(self):
        """Sanitizer and valgrind reports fail the test."""
        log = self.log()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                    "UndefinedBehaviorSanitizer", "Invalid read", "Invalid write",
                    "definitely lost: [1-9]", "ERROR SUMMARY: [1-9]"):
            assert not re.search(bad, log), "sanitizer/valgrind report:\n" + log[-6000:]


@pytest.fixture
def start_raw():
    """start_raw(args, env=None) runs the plugin with exactly these flags.
    Every plugin started is stopped with SIGTERM at the end and must exit
    0 with a clean sanitizer/valgrind log."""
    started = []

    def start(args, env=None, dev_root=None, prefix=()):
        p = PluginProcess(list(args), env=env, dev_root=dev_root, prefix=prefix)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            rc = p.stop()
            assert rc == 0, "plugin exited %r; log:\n%s" % (rc, p.log()[-4000:])
        p.check_clean()


@pytest.fixture
def run_plugin(plugin_dir, start_raw):
    """run_plugin(*device_json, extra=[...]) starts the plugin with the
    tests' usual flags (see start_raw for the end of its life)."""
    def start(*devices, extra=(), env=None, plugin_directory=None, dev_root=None):
        # port 0: each plugin its own free port (logged), tests run side by side
        args = ["--plugin-directory", plugin_directory or plugin_dir, "--log-level", "debug",
                "--domain", "example.com", "--listen", "127.0.0.1:0"]
        for d in devices:
            args += ["--device", d if isinstance(d, str) else json.dumps(d)]
        return start_raw(args + list(extra), env=env, dev_root=dev_root)

    return start


def http_get(port, path, timeout=5 * SLOW):
    """(status, body) of GET path on the plugin's --listen port, whatever
    the status."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric_value(port, line_start, timeout=5 * SLOW):
    """The value of the /metrics line that starts with line_start (a name,
    or a name with its labels as the plugin prints them), None if none."""
    status, body = http_get(port, "/metrics", timeout)
    assert status == 200, (status, body)
    for line in body.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


def sha1_id(slot, *paths):
    """generic-device-plugin's device ID: sha1 of the slot number then the paths."""
    import hashlib
    h = hashlib.sha1(str(slot).encode())
    for p in paths:
        h.update(p.encode())
    return h.hexdigest()
