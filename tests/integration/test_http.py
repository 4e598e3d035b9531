"""--listen: /healthz and /metrics, parsed with the Prometheus client's own
text-format parser, and the endpoint's behaviour with bad clients."""

import socket
import time
import urllib.error
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SLOW, sha1_id
from kubelet import Kubelet, wait_until

RES = "example.com/serial"


def serial(devdir):
    return {"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]}


def get(port, path, timeout=5):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout * SLOW) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")


def metrics(port):
    status, body, ctype = get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(body):  # raises on malformed text
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_healthz_follows_registration(devdir, plugin_dir, run_plugin):
    devdir.add("ttyUSB0")
    plugin = run_plugin(serial(devdir))
    port = plugin.http_port()
    plugin.wait_log(r"serving resource=" + RES)
    status, body, _ = get(port, "/healthz")
    assert status == 503 and "example.com/serial: not registered with the kubelet" in body
    k = Kubelet(plugin_dir).start()
    try:
        k.wait_plugin(RES)
        wait_until(lambda: get(port, "/healthz")[0] == 200, 5, "/healthz 200")
        assert get(port, "/healthz")[1] == "ok\n"
        # kubelet restart: our socket is deleted; ready again once re-registered
        k.restart()
        k.wait_plugin(RES, after=1)
        wait_until(lambda: get(port, "/healthz")[0] == 200, 5, "/healthz 200 again")
    finally:
        k.stop()


def test_metrics_count_what_happens(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    plugin = run_plugin(serial(devdir), extra=["--grace-period", "60s"])
    port = plugin.http_port()
    pl = kubelet.wait_plugin(RES)
    id0 = sha1_id(0, devdir.p("ttyUSB0"))
    pl.stream.wait(lambda d: len(d) == 1)
    devdir.add("ttyUSB1")
    devdir.remove("ttyUSB0")
    pl.stream.wait(lambda d: len(d) == 2 and d[id0] == "Unhealthy")
    pl.allocate([sha1_id(0, devdir.p("ttyUSB1"))])
    with pytest.raises(grpc.RpcError):
        pl.allocate(["nope"])
    r = (("resource", RES),)
    # the kubelet has our Register before we have its answer: wait for ours
    wait_until(lambda: metrics(port).get(("usbdp_registered", r)) == 1, 5,
               "usbdp_registered 1")
    m = metrics(port)
    assert m[("usbdp_devices", (("health", "healthy"), ("resource", RES)))] == 1
    assert m[("usbdp_devices", (("health", "unhealthy"), ("resource", RES)))] == 1
    assert m[("usbdp_registered", r)] == 1
    assert m[("usbdp_registrations_total", r)] == 1
    assert m[("usbdp_listandwatch_streams", r)] == 1
    assert m[("usbdp_allocate_calls_total", r)] == 2
    assert m[("usbdp_allocate_errors_total", r)] == 1
    assert m[("usbdp_hotplug_events_total", (("action", "add"), ("source", "paths")))] >= 1
    assert m[("usbdp_hotplug_events_total", (("action", "remove"), ("source", "paths")))] >= 1
    assert m[("usbdp_event_to_stream_seconds_count", ())] >= 1
    assert m[("usbdp_event_to_stream_seconds_bucket", (("le", "+Inf"),))] == \
        m[("usbdp_event_to_stream_seconds_count", ())]
    assert any(k[0] == "usbdp_build_info" for k in m)
    assert m[("process_resident_memory_bytes", ())] > 1e6


def test_unknown_paths_and_methods(devdir, kubelet, run_plugin):
    plugin = run_plugin(serial(devdir))
    port = plugin.http_port()
    assert get(port, "/nope")[0] == 404
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % port, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_bad_clients_do_not_block_anyone(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    plugin = run_plugin(serial(devdir), extra=["--grace-period", "60s"])
    port = plugin.http_port()
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: len(d) == 1)
    socks = []
    try:
        # a partial request that never ends
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /metr")
        socks.append(s)
        # huge headers: answered with an error or closed, never a crash
        h = socket.create_connection(("127.0.0.1", port))
        try:
            h.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
            h.settimeout(5 * SLOW)
            answer = h.recv(100)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4") or \
                answer.startswith(b"HTTP/1.1 5")
        except (ConnectionResetError, BrokenPipeError):
            pass
        h.close()
        # 1,000 connections at once, most of them idle
        for _ in range(1000):
            try:
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                socks.append(c)
            except OSError:
                break
        # meanwhile: the device plugin's job goes on, and fresh clients are served
        t0 = time.monotonic()
        devdir.add("ttyUSB1")
        pl.stream.wait(lambda d: len(d) == 2, what="a device event while HTTP is flooded")
        assert time.monotonic() - t0 < 2 * SLOW
        assert pl.allocate([sha1_id(0, devdir.p("ttyUSB1"))]).container_responses
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: get(port, "/healthz", timeout=2)[0] == 200, 15,
               "/healthz answered again after the flood")
    assert plugin.proc.poll() is None
