"""A hostile or unlucky node (issue 12): the plugin keeps doing its job when
a kernel limit stands in its way, and says so."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import DevDir, http_get, metric_value
from kubelet import Kubelet, wait_until

NOBODY = 65534
DOMAIN = "example.com"

# Holds every inotify instance the user may have (the per-user limit,
# fs.inotify.max_user_instances, is shared by all of that user's processes).
_HOLDER = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while True:
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        break
    fds.append(fd)
print(len(fds), ctypes.get_errno(), flush=True)
sys.stdin.read()
"""


def _as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@pytest.fixture
def no_inotify_for_nobody():
    """Every inotify instance uid 65534 may have, held by another process."""
    try:
        p = subprocess.Popen([sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, preexec_fn=_as_nobody)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip("cannot run a process as uid %d: %s" % (NOBODY, e))
    held, err = (int(x) for x in p.stdout.readline().split())
    assert err == 24, "the holder stopped on errno %d, not EMFILE" % err
    yield held
    p.stdin.close()
    p.wait(10)


def _health(port):
    return http_get(port, "/healthz", timeout=5)


def _metric(port, name):
    return metric_value(port, name, timeout=5)


@pytest.fixture
def open_devdir(devdir):
    """A device directory uid 65534 can reach (pytest's own is root's)."""
    d = tempfile.mkdtemp(prefix="udp-hd-")
    os.chmod(d, 0o755)
    yield DevDir(d)
    shutil.rmtree(d, ignore_errors=True)


def test_without_inotify_it_polls_says_so_and_keeps_up(open_devdir, plugin_dir, kubelet,
                                                       start_raw, no_inotify_for_nobody):
    """With no inotify instance to be had (uid 65534's are all held
    elsewhere), the plugin says so at level error, shows it on /healthz
    (still 200: it works, a restart would not help) and /metrics, finds a
    new device file within the fallback's second, and registers again after
    a kubelet restart it can only see by polling."""
    devdir = open_devdir
    os.chmod(plugin_dir, 0o777)
    os.chmod(kubelet.sock, 0o666)  # a kubelet of uid 65534's reach
    devdir.add("ttyUSB0")
    cfg = os.path.join(os.path.dirname(devdir.p("x")), "config.json")
    with open(cfg, "w") as f:  # an explicit file: the default lookup reads /root
        json.dump({"devices": [{"name": "serial",
                                "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]}]}, f)
    os.chmod(cfg, 0o644)
    # LeakSanitizer cannot stop the world as an unprivileged user here.
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
    plugin = start_raw(["--plugin-directory", plugin_dir, "--domain", DOMAIN,
                        "--listen", "127.0.0.1:0", "--log-level", "debug", "--config", cfg],
                       env=env, prefix=["setpriv", "--reuid=%d" % NOBODY,
                                        "--regid=%d" % NOBODY, "--clear-groups"])
    plugin.wait_log(r"level=error no inotify instance: the per-user limit "
                    r"fs.inotify.max_user_instances is reached")
    port = plugin.http_port()
    pl = kubelet.wait_plugin(DOMAIN + "/serial")
    pl.stream.wait(lambda d: len(d) == 1)
    wait_until(lambda: _health(port)[0] == 200, 5, "/healthz 200 once registered")
    # polling took the kubelet that was there for what it is, not a restart
    assert kubelet.count(DOMAIN + "/serial") == 1, "registered again without a restart"
    status, body = _health(port)
    assert status == 200 and "degraded: no inotify instance" in body, (status, body)
    assert _metric(port, "usbdp_degraded") == 1
    devdir.add("ttyUSB1")
    pl.stream.wait(lambda d: len(d) == 2, timeout=3, what="the new file, found by polling")
    # said once, not at every poll
    assert len([l for l in plugin.log().splitlines() if "cannot watch" in l]) == 0
    count = kubelet.count(DOMAIN + "/serial")
    mask = os.umask(0)  # the new kubelet.sock too
    try:
        kubelet.restart()
    finally:
        os.umask(mask)
    kubelet.wait_plugin(DOMAIN + "/serial", after=count, timeout=5).stream.wait(
        lambda d: len(d) == 2, what="the list after a restart seen by polling")


def test_read_only_plugin_directory_is_said_once(devdir, plugin_dir, kubelet, start_raw):
    """A plugin directory on a read-only mount: the plugin says what is
    wrong (not gRPC's "Cannot assign requested address"), once, and keeps
    retrying with backoff; /healthz names the resource as not serving."""
    from conftest import mount_ns_problem
    problem = mount_ns_problem(os.path.dirname(devdir.p("x")))
    if problem:
        pytest.skip("no mount namespace here: %s" % problem)
    devdir.add("ttyUSB0")
    dev = json.dumps({"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]})
    ro = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
          'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"',
          plugin_dir]
    plugin = start_raw(["--plugin-directory", plugin_dir, "--domain", DOMAIN, "--log-level",
                        "debug", "--listen", "127.0.0.1:0", "--device", dev], prefix=ro)
    port = plugin.http_port()
    plugin.wait_log(r'level=error cannot serve resource=%s/serial .*err="Read-only file system"'
                    % DOMAIN)
    wait_until(lambda: _health(port)[0] == 503 and "serial: not serving" in _health(port)[1], 5,
               "/healthz 503 naming the resource")
    # it keeps trying (1 s, then 2 s: two retries within ~3 s), said once
    first = plugin.wait_log(r"level=debug cannot serve resource=%s/serial" % DOMAIN, timeout=5)
    assert first
    mark = plugin.mark()
    plugin.wait_log(r"level=debug cannot serve resource=%s/serial" % DOMAIN, timeout=5,
                    start=mark)
    errors = [l for l in plugin.log().splitlines()
              if "level=error cannot serve resource" in l]
    assert len(errors) == 1, errors


def test_many_resources_offering_one_file_warn_once(devdir, plugin_dir, kubelet, start_raw,
                                                    tmp_path):
    """Item 9: N resources offering one file cost one warning, not N^2/2
    (300 gave 44,850 lines), and all of them are served."""
    devdir.add("shared0")
    n = 60
    cfg = str(tmp_path / "config.json")
    with open(cfg, "w") as f:
        json.dump({"devices": [{"name": "r%d" % i,
                                "groups": [{"paths": [{"path": devdir.p("shared0")}]}]}
                               for i in range(n)]}, f)
    plugin = start_raw(["--config", cfg, "--plugin-directory", plugin_dir, "--domain", DOMAIN,
                        "--listen", "127.0.0.1:0"])
    for i in range(n):
        kubelet.wait_plugin("%s/r%d" % (DOMAIN, i))
    plugin.wait_log(r"node offered by two resources node=%s" % devdir.p("shared0"))
    warnings = [l for l in plugin.log().splitlines() if "node offered by two resources" in l]
    assert len(warnings) == 1, "%d warnings" % len(warnings)


def test_untrusted_strings_cannot_forge_log_lines(devdir, run_plugin, kubelet):
    """Item 13: a device ID from the kubelet with a newline is logged
    escaped, on its own line, never as a line of its own."""
    import grpc
    devdir.add("ttyUSB0")
    plugin = run_plugin({"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]})
    pl = kubelet.wait_plugin("example.com/serial")
    with pytest.raises(grpc.RpcError):
        pl.allocate(["x\nts=forged level=error pwned"])
    plugin.wait_log(r"x\\x0ats=forged level=error pwned")
    assert not any(l.startswith("ts=forged") for l in plugin.log().splitlines())


def test_cdi_spec_that_cannot_be_written_holds_the_list_back(devdir, plugin_dir, kubelet,
                                                               start_raw, tmp_path):
    """Item 6: while the CDI directory cannot be written, no device is
    advertised (Allocate would name CDI devices in no spec) and /healthz
    says why; once it can, the spec is written and the devices listed."""
    devdir.add("ttyUSB0")
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the CDI directory's parent should be")
    cdi = blocker / "cdi"
    dev = json.dumps({"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]})
    plugin = start_raw(["--plugin-directory", plugin_dir, "--domain", DOMAIN, "--listen",
                        "127.0.0.1:0", "--cdi", "--cdi-dir", str(cdi), "--device", dev])
    port = plugin.http_port()
    plugin.wait_log(r"level=error cannot write the CDI spec resource=%s/serial" % DOMAIN)
    pl = kubelet.wait_plugin(DOMAIN + "/serial")
    wait_until(lambda: _health(port)[0] == 503 and
               "serial: its CDI spec cannot be written" in _health(port)[1], 5,
               "/healthz 503 saying the CDI spec cannot be written")
    assert all(len(lst) == 0 for _, lst in pl.stream.lists), "a device advertised without spec"
    blocker.unlink()
    pl.stream.wait(lambda d: len(d) == 1, timeout=5, what="listed once its spec is written")
    assert (cdi / ("%s-serial.json" % DOMAIN)).exists()
    wait_until(lambda: _health(port)[0] == 200, 5, "/healthz 200 again")


def test_start_cleans_what_a_killed_run_left(devdir, plugin_dir, kubelet, start_raw, tmp_path):
    """Item 16: after SIGKILL, a resource removed from the config keeps
    neither socket nor CDI spec at the next start, a partial hidden CDI
    temporary file goes, and the NFD labels go on a clean stop."""
    import signal
    devdir.add("ttyUSB0")
    devdir.add("ttyACM0")
    cdi = tmp_path / "cdi"
    nfd = tmp_path / "features.d" / "usbdp"
    res = lambda name, glob: json.dumps(
        {"name": name, "groups": [{"paths": [{"path": devdir.p(glob)}]}]})
    common = ["--plugin-directory", plugin_dir, "--domain", DOMAIN, "--listen", "127.0.0.1:0",
              "--cdi", "--cdi-dir", str(cdi), "--nfd-features-file", str(nfd)]
    first = start_raw(common + ["--device", res("serial", "ttyUSB*"),
                                "--device", res("acm", "ttyACM*")])
    kubelet.wait_plugin(DOMAIN + "/acm").stream.wait(lambda d: len(d) == 1)
    wait_until(lambda: (cdi / ("%s-acm.json" % DOMAIN)).exists(), 5, "acm's spec")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(30)
    partial = cdi / (".%s-serial.json.Ab12Cd" % DOMAIN)
    partial.write_text("{\"cdiVers")
    other = cdi / "other.example-thing.json"
    other.write_text("{}")  # another vendor's: not ours to touch
    second = start_raw(common + ["--device", res("serial", "ttyUSB*")])
    kubelet.wait_plugin(DOMAIN + "/serial", after=kubelet.count(DOMAIN + "/serial"))
    second.wait_log(r"CDI file removed: no such resource path=%s/%s-acm.json" % (cdi, DOMAIN))
    assert not partial.exists() and other.exists()
    socks = [n for n in os.listdir(plugin_dir) if n.startswith("usbdp-")]
    assert len(socks) == 1, socks
    wait_until(lambda: nfd.exists(), 5, "the NFD file written")
    assert second.stop() == 0
    assert not nfd.exists(), "NFD labels left after a clean stop"


def test_a_fifo_as_config_is_refused_not_waited_on(devdir, plugin_dir, kubelet, start_raw,
                                                   tmp_path):
    """Item 7: a FIFO as the config file hung the start without a word, and
    on SIGHUP froze the event loop while /healthz said 200. Now: refused at
    once at start; refused by a reload, which keeps the running config and
    a loop that still follows devices and stops on SIGTERM."""
    import signal
    import subprocess
    from conftest import BIN, WRAP
    fifo = str(tmp_path / "config.yaml")
    os.mkfifo(fifo)
    p = subprocess.run(WRAP + [BIN, "--config", fifo, "--plugin-directory", plugin_dir],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not a regular file" in p.stderr, (p.returncode, p.stderr)
    os.unlink(fifo)
    devdir.add("ttyUSB0")
    with open(fifo, "w") as f:
        json.dump({"devices": [{"name": "serial",
                                "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]}]}, f)
    plugin = start_raw(["--config", fifo, "--plugin-directory", plugin_dir, "--domain", DOMAIN,
                        "--listen", "127.0.0.1:0"])
    pl = kubelet.wait_plugin(DOMAIN + "/serial")
    pl.stream.wait(lambda d: len(d) == 1)
    os.unlink(fifo)
    os.mkfifo(fifo)
    mark = plugin.mark()
    plugin.proc.send_signal(signal.SIGHUP)
    plugin.wait_log(r"level=error reload refused: .*not a regular file", start=mark)
    devdir.add("ttyUSB1")
    pl.stream.wait(lambda d: len(d) == 2, what="the loop still follows devices")
