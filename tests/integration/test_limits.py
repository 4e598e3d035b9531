"""Size limits (issue 12, item 10; README "Limits"): a config over them is
refused with a clear message, at start and on reload; a glob that matches
more than foreseen lists the devices that fit, says so, and never sends a
list the kubelet's 4 MiB gRPC limit refuses."""

import json
import os
import signal

import grpc
import pytest

from conftest import http_get, metric_value, sha1_id
from kubelet import SLOW, api, wait_until

DOMAIN = "example.com"
MAX_RESOURCES = 256
MAX_DEVICES = 10000
MAX_LIST_BYTES = 4000000  # below the kubelet's 4 MiB (4,194,304)


def _write(path, devices):
    with open(path, "w") as f:
        json.dump({"devices": devices}, f)


def _one(name, path):
    return {"name": name, "groups": [{"paths": [{"path": path}]}]}


def _start(start_raw, plugin_dir, config, *extra):
    return start_raw(["--config", config, "--plugin-directory", plugin_dir, "--log-level",
                      "debug", "--domain", DOMAIN, "--listen", "127.0.0.1:0"] + list(extra))


def _refused(plugin):
    rc = plugin.proc.wait(10 * SLOW)
    assert rc == 2, "exit status %r; log:\n%s" % (rc, plugin.log()[-3000:])
    return plugin.log()


def test_too_many_resources_refused_at_start(devdir, plugin_dir, start_raw, tmp_path):
    """Before: 10,000 resources were all served (393 MiB); now the one
    over 256 is named and the plugin does not start."""
    cfg = str(tmp_path / "config.json")
    _write(cfg, [_one("r%d" % i, devdir.p("x%d" % i)) for i in range(MAX_RESOURCES + 1)])
    log = _refused(_start(start_raw, plugin_dir, cfg))
    assert ("devices[256].name: \"r256\" is resource number 257: at most 256 may be "
            "configured") in log


def test_exactly_the_most_resources_load(devdir, plugin_dir, start_raw, tmp_path):
    """The limit itself is allowed: --list reads the config and exits 0."""
    cfg = str(tmp_path / "config.json")
    _write(cfg, [_one("r%d" % i, devdir.p("x%d" % i)) for i in range(MAX_RESOURCES)])
    plugin = _start(start_raw, plugin_dir, cfg, "--list")
    assert plugin.proc.wait(10 * SLOW) == 0, plugin.log()[-3000:]


@pytest.mark.parametrize("groups,least", [
    # a virtual group's instances all exist: 200 of them, each 100 times
    ([{"virtual": {"count": 200}, "count": 100}], 20000),
    # each path group offers its file count times once it matches
    ([{"paths": [{"path": "/dev/a"}], "count": 6000},
      {"paths": [{"path": "/dev/b*"}], "count": 6000}], 12000),
])
def test_too_many_devices_refused_at_start(plugin_dir, start_raw, tmp_path, groups, least):
    cfg = str(tmp_path / "config.json")
    _write(cfg, [{"name": "big", "groups": groups}])
    log = _refused(_start(start_raw, plugin_dir, cfg))
    assert ("devices[0].groups: resource \"big\" offers at least %d devices" % least) in log
    assert "more than the 10000 a resource may list" in log


def test_reload_over_the_limit_keeps_the_running_config(devdir, kubelet, plugin_dir,
                                                        start_raw, tmp_path):
    devdir.add("tty0")
    cfg = str(tmp_path / "config.json")
    _write(cfg, [_one("r0", devdir.p("tty0"))])
    plugin = _start(start_raw, plugin_dir, cfg)
    p = kubelet.wait_plugin(DOMAIN + "/r0")
    s = p.stream  # the stand-in opens it on Register, as the kubelet does
    s.wait(lambda d: len(d) == 1)
    _write(cfg, [_one("r%d" % i, devdir.p("tty0")) for i in range(MAX_RESOURCES + 1)])
    mark = plugin.mark()
    plugin.proc.send_signal(signal.SIGHUP)
    plugin.wait_log(r"reload refused: .*is resource number 257: at most 256 may be "
                    r"configured.*keeping the running configuration", start=mark)
    assert DOMAIN + "/r1" not in "\n".join(plugin.lines[mark:])
    assert kubelet.count(DOMAIN + "/r0") == 1 and s.ended is None
    assert s.latest() == {sha1_id(0, devdir.p("tty0")): "Healthy"}


def test_glob_over_the_device_limit_lists_the_first(devdir, kubelet, plugin_dir, start_raw,
                                                    tmp_path):
    """The issue's case: 10 files, count 10000 -- 100,000 IDs, a 5.3 MB
    list the kubelet refused. Now the first 10,000 in table order (the
    first file's slots) are listed and the rest is said, once."""
    files = ["ttyX%d" % i for i in range(10)]
    for f in files:
        devdir.add(f)
    cfg = str(tmp_path / "config.json")
    _write(cfg, [{"name": "big", "groups": [{"paths": [{"path": devdir.p("ttyX*")}],
                                              "count": MAX_DEVICES}]}])
    plugin = _start(start_raw, plugin_dir, cfg, "--grace-period", "0s")
    port = plugin.http_port()
    p = kubelet.wait_plugin(DOMAIN + "/big")
    s = p.stream  # the stand-in opens it on Register, as the kubelet does
    devs = s.wait(lambda d: len(d) == MAX_DEVICES, timeout=20)
    assert s.ended is None
    first = devdir.p("ttyX0")
    assert set(devs) == {sha1_id(j, first) for j in range(MAX_DEVICES)}
    plugin.wait_log(r"resource over its limits resource=example.com/big listed=10000 "
                    r"withheld=90000 max_devices=10000 max_list_bytes=4000000")
    assert metric_value(port, 'usbdp_devices_withheld{resource="example.com/big"}') == 90000
    # ready (once registered): the devices that fit are served
    status, body = wait_until(lambda: (lambda r: r[0] == 200 and r)(http_get(port, "/healthz")),
                              5, "/healthz 200")
    assert "over limit: example.com/big: 90000 devices not listed\n" in body
    # a withheld device is not the kubelet's to hand out
    withheld = sha1_id(0, devdir.p("ttyX1"))
    with pytest.raises(grpc.RpcError) as e:
        p.allocate([withheld])
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert plugin.log().count("resource over its limits") == 1
    # back under: said once, and gone from /metrics and /healthz
    mark = plugin.mark()
    for f in files[1:]:
        devdir.remove(f)
    plugin.wait_log(r"resource back under its limits resource=example.com/big "
                    r"listed=10000", start=mark, timeout=10)
    assert metric_value(port, 'usbdp_devices_withheld{resource="example.com/big"}') == 0
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert set(s.latest()) == {sha1_id(j, first) for j in range(MAX_DEVICES)}


def test_long_ids_stay_under_the_kubelets_message_limit(devdir, kubelet, plugin_dir,
                                                         start_raw, tmp_path):
    """IDs of the old schema are <path>-<slot>: one long path with count
    10000 made a list of some 5.8 MB, which the kubelet's 4 MiB receive
    limit refused (RESOURCE_EXHAUSTED: the resource had no devices at
    all). Now the list is cut below 4,000,000 bytes, first slots first."""
    long_path = os.path.join("a" * 250, "b" * 250, "ttyL")
    dev = devdir.add(long_path)
    cfg = str(tmp_path / "config.json")
    _write(cfg, [{"type": "long", "count": MAX_DEVICES, "paths": [dev]}])
    plugin = _start(start_raw, plugin_dir, cfg)
    p = kubelet.wait_plugin(DOMAIN + "/long")
    s = p.stream  # the stand-in opens it on Register, as the kubelet does
    devs = s.wait(lambda d: d is not None and len(d) > 0, timeout=20)
    assert s.ended is None, "the stand-in could not take the list: %r" % s.ended
    n = len(devs)
    assert 0 < n < MAX_DEVICES
    assert set(devs) == {"%s-%d" % (dev, j) for j in range(n)}
    # the limit counts every device at its longest ("Unhealthy"), so that a
    # health change never changes which devices fit
    worst = api.ListAndWatchResponse(devices=[api.Device(ID=i, health="Unhealthy")
                                              for i in devs]).ByteSize()
    assert worst <= MAX_LIST_BYTES
    more = api.Device(ID="%s-%d" % (dev, n), health="Unhealthy")
    assert worst + api.ListAndWatchResponse(devices=[more]).ByteSize() > MAX_LIST_BYTES
    plugin.wait_log(r"resource over its limits resource=example.com/long listed=%d "
                    r"withheld=%d" % (n, MAX_DEVICES - n))
