"""--evict-after: the real binary, a kubelet stand-in (device plugin API and
PodResources API) and an API server stand-in on 127.0.0.1 with TLS from a
throwaway CA. A device gone longer than the deadline has exactly its Pods
evicted, with Events and a metric; one that comes back in time has none;
API server failures are retried with backoff and logged once; a hanging
API server never slows the plugin's gRPC answers."""

import os
import re
import threading
import time

import pytest

from conftest import SLOW, metric_value, sha1_id
from kubeworld import ApiServer, PodResources

RES = "example.com/serial"
NODE = "node-a"


@pytest.fixture
def world(tmp_path):
    api = ApiServer(str(tmp_path))
    podres = PodResources(str(tmp_path / "pod-resources.sock"))
    yield api, podres
    podres.stop()
    api.stop()


def serial(devdir):
    return {"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]}


def start(run_plugin, devdir, world, after="1s"):
    api, podres = world
    return run_plugin(serial(devdir), extra=[
        "--evict-after", after, "--pod-resources-socket", podres.path,
        "--service-account-dir", api.sa_dir], env=dict(api.env(), NODE_NAME=NODE))


def metric(plugin, result):
    v = metric_value(plugin.http_port(),
                     'usbdp_evictions_total{resource="%s",result="%s"}' % (RES, result), timeout=5)
    return int(v) if v is not None else 0


def ids(devdir, *names):
    return [sha1_id(0, devdir.p(n)) for n in names]


def test_gone_device_evicts_exactly_its_pods(devdir, kubelet, run_plugin, world):
    api, podres = world
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    id0, id1 = ids(devdir, "ttyUSB0", "ttyUSB1")
    # two Pods hold ttyUSB0 (one in each namespace), one holds ttyUSB1, one
    # holds a device of another resource with the same ID
    podres.hold("default", "reader-a", RES, id0)
    podres.hold("team", "reader-b", RES, id0)
    podres.hold("default", "reader-c", RES, id1)
    podres.hold("default", "other", "example.com/other", id0)
    for ns, name, uid in (("default", "reader-a", "uid-a"), ("team", "reader-b", "uid-b"),
                          ("default", "reader-c", "uid-c"), ("default", "other", "uid-o")):
        api.add_pod(ns, name, uid, NODE)
    plugin = start(run_plugin, devdir, world)
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy", id1: "Healthy"})

    mark = plugin.mark()
    devdir.remove("ttyUSB0")
    pl.stream.wait(lambda d: d.get(id0) == "Unhealthy", what="ttyUSB0 unhealthy")
    t_unhealthy = time.monotonic()
    plugin.wait_log(r"evict: device unhealthy resource=%s device=%s" % (RES, id0), start=mark)
    api.wait(lambda: len(api.evictions()) == 2, 10, "two evictions")
    events = lambda: [r.body for r in api.of("POST", "event")]
    api.wait(lambda: len(events()) == 4, 10, "an Event on each Pod and two on the Node")
    plugin.wait_log(r"evict: pod=team/reader-b .* evicted attempts=1", start=mark)

    assert sorted(api.evictions()) == [("default", "reader-a"), ("team", "reader-b")]
    for r in api.of("POST", "eviction"):
        ns, name = r.body["metadata"]["namespace"], r.body["metadata"]["name"]
        assert r.path == "/api/v1/namespaces/%s/pods/%s/eviction" % (ns, name)
        assert r.body["apiVersion"] == "policy/v1" and r.body["kind"] == "Eviction"
        assert r.body["deleteOptions"]["preconditions"]["uid"] == api_uid(name)
        assert r.auth == "Bearer " + ApiServer.TOKEN
    first = min(r.t for r in api.of("POST", "eviction"))
    # the deadline is 1 s after the device turned Unhealthy
    assert first - t_unhealthy >= 0.9, "evicted before the deadline"
    print("\neviction POST %.3fs after the device was listed Unhealthy (deadline 1s)" %
          (first - t_unhealthy))

    pod_events = [e for e in events() if e["involvedObject"]["kind"] == "Pod"]
    node_events = [e for e in events() if e["involvedObject"]["kind"] == "Node"]
    assert sorted((e["metadata"]["namespace"], e["involvedObject"]["name"],
                   e["involvedObject"]["uid"]) for e in pod_events) == [
        ("default", "reader-a", "uid-a"), ("team", "reader-b", "uid-b")]
    for e in pod_events + node_events:
        assert e["type"] == "Warning" and e["reason"] == "DeviceGone"
        assert id0 in e["message"] and RES in e["message"]
        assert e["source"] == {"component": "usb-device-plugin", "host": NODE}
    assert [e["involvedObject"]["name"] for e in node_events] == [NODE, NODE]
    assert {e["metadata"]["namespace"] for e in node_events} == {"default"}

    assert metric(plugin, "evicted") == 2
    assert metric(plugin, "failed") == 0
    log = plugin.log()
    assert re.search(r"evict: device gone past the deadline resource=%s device=%s .*"
                     r"pods=default/reader-a,team/reader-b" % (RES, id0), log)
    assert "reader-c" not in log.split("device gone past the deadline")[1]
    assert ("default", "reader-c") in api.pods, "a Pod of a healthy device was evicted"
    m = re.search(r"evict: pod=default/reader-a .* evicted attempts=1 after_deadline=([\d.]+)s",
                  log)
    print("eviction done %ss after the deadline (GET pod, POST eviction, 2 Events)" % m.group(1))


def api_uid(name):
    return {"reader-a": "uid-a", "reader-b": "uid-b"}[name]


def test_device_back_before_deadline_cancels(devdir, kubelet, run_plugin, world):
    api, podres = world
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    id0, id1 = ids(devdir, "ttyUSB0", "ttyUSB1")
    podres.hold("default", "keeps", RES, id0)
    podres.hold("default", "goes", RES, id1)
    api.add_pod("default", "keeps", "uid-k", NODE)
    api.add_pod("default", "goes", "uid-g", NODE)
    plugin = start(run_plugin, devdir, world, after="2s")
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy", id1: "Healthy"})

    devdir.remove("ttyUSB0")
    pl.stream.wait(lambda d: d.get(id0) == "Unhealthy", what="ttyUSB0 unhealthy")
    devdir.add("ttyUSB0")
    pl.stream.wait(lambda d: d.get(id0) == "Healthy", what="ttyUSB0 back")
    plugin.wait_log(r"evict: device back resource=%s device=%s .*: no eviction" % (RES, id0))
    # ttyUSB1 goes after ttyUSB0 came back: its deadline is later than
    # ttyUSB0's would have been, so when it has passed, ttyUSB0's has too
    devdir.remove("ttyUSB1")
    api.wait(lambda: len(api.evictions()) == 1, 10, "the eviction of ttyUSB1's Pod")
    plugin.wait_log(r"evict: pod=default/goes .* evicted")
    assert api.evictions() == [("default", "goes")]
    assert ("default", "keeps") in api.pods
    assert not re.search(r"device gone past the deadline resource=%s device=%s" % (RES, id0),
                         plugin.log())
    assert metric(plugin, "evicted") == 1


def test_api_errors_are_retried_with_backoff(devdir, kubelet, run_plugin, world):
    api, podres = world
    devdir.add("ttyUSB0")
    (id0,) = ids(devdir, "ttyUSB0")
    podres.hold("default", "guarded", RES, id0)
    api.add_pod("default", "guarded", "uid-g", NODE)
    # a PodDisruptionBudget says no (429), then the server fails (500), then yes
    api.plan[("POST", "eviction")] = [429, 500]
    plugin = start(run_plugin, devdir, world)
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy"})
    devdir.remove("ttyUSB0")
    api.wait(lambda: len(api.of("POST", "eviction")) == 3, 15, "three eviction attempts")
    plugin.wait_log(r"evict: pod=default/guarded .* evicted attempts=3")
    t = [r.t for r in api.of("POST", "eviction")]
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, "no backoff between attempts: %r" % gaps
    assert gaps[1] > gaps[0], "the backoff does not grow: %r" % gaps
    log = plugin.log()
    # one warning for the retried step; the retries after it at debug level
    loud = re.findall(r"level=(?:info|warn|error) evict: .*failed.*pod=default/guarded", log)
    assert len(loud) == 1, "not one warning for the retried eviction:\n" + log
    assert len(re.findall(r"level=debug evict: .*failed again.*pod=default/guarded", log)) == 1
    assert metric(plugin, "evicted") == 1
    assert len(api.of("POST", "event")) == 2


def test_refused_eviction_is_counted_and_not_retried(devdir, kubelet, run_plugin, world):
    api, podres = world
    devdir.add("ttyUSB0")
    (id0,) = ids(devdir, "ttyUSB0")
    podres.hold("default", "forbidden", RES, id0)
    podres.hold("default", "vanished", RES, id0)  # the API server does not know it
    api.add_pod("default", "forbidden", "uid-f", NODE)
    api.plan[("POST", "eviction")] = [403]
    plugin = start(run_plugin, devdir, world)
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy"})
    devdir.remove("ttyUSB0")
    plugin.wait_log(r"evict: pod=default/forbidden .* eviction refused: status=403", timeout=10)
    plugin.wait_log(r"evict: pod=default/vanished .* already gone", timeout=10)
    assert len(api.of("POST", "eviction")) == 1
    assert metric(plugin, "failed") == 1 and metric(plugin, "gone") == 1
    assert metric(plugin, "evicted") == 0


def test_old_api_server_gets_policy_v1beta1(devdir, kubelet, run_plugin, world):
    api, podres = world
    api.eviction_versions = ("policy/v1beta1",)  # Kubernetes before 1.22
    devdir.add("ttyUSB0")
    (id0,) = ids(devdir, "ttyUSB0")
    podres.hold("default", "old", RES, id0)
    api.add_pod("default", "old", "uid-o", NODE)
    plugin = start(run_plugin, devdir, world)
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy"})
    devdir.remove("ttyUSB0")
    plugin.wait_log(r"evict: pod=default/old .* evicted", timeout=10)
    assert [r.body["apiVersion"] for r in api.of("POST", "eviction")] == [
        "policy/v1", "policy/v1beta1"]


def test_hanging_api_server_does_not_slow_the_plugin(devdir, kubelet, run_plugin, world):
    """The API server holds the first request past the client's 10 s
    timeout: meanwhile ListAndWatch and Allocate answer as fast as ever;
    then the request is retried and the Pod evicted."""
    api, podres = world
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    id0, id1 = ids(devdir, "ttyUSB0", "ttyUSB1")
    podres.hold("default", "stuck", RES, id0)
    api.add_pod("default", "stuck", "uid-s", NODE)
    release = threading.Event()
    api.hang = ("GET", "pod", release)
    plugin = start(run_plugin, devdir, world)
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy", id1: "Healthy"})
    devdir.remove("ttyUSB0")
    api.wait(lambda: len(api.of("GET", "pod")) == 1, 10, "the GET of the Pod (that hangs)")

    # while the worker waits on the API server: the loop and the gRPC side
    lat = []
    for i in range(20):
        t0 = time.monotonic()
        pl.allocate([id1])
        lat.append(time.monotonic() - t0)
    devdir.add("ttyUSB2")
    t0 = time.monotonic()
    (id2,) = ids(devdir, "ttyUSB2")
    pl.stream.wait(lambda d: d.get(id2) == "Healthy", what="ttyUSB2 listed")
    added = time.monotonic() - t0
    lat.sort()
    print("\nwhile the API server hangs: Allocate median %.1f ms max %.1f ms; "
          "mknod -> ListAndWatch %.1f ms" % (lat[10] * 1e3, lat[-1] * 1e3, added * 1e3))
    assert lat[-1] < 0.1 * SLOW and added < 0.2 * SLOW

    # the client gives up after its 10 s timeout and tries again
    api.wait(lambda: len(api.of("GET", "pod")) == 2, 20, "the GET retried after the timeout")
    api.hang = None
    release.set()
    plugin.wait_log(r"evict: pod=default/stuck .* evicted attempts=2", timeout=10)
    assert re.search(r"evict: getting the Pod failed .*pod=default/stuck .*timed out",
                     plugin.log())


def test_without_api_server_env_the_plugin_refuses_to_start(devdir, start_raw, plugin_dir):
    devdir.add("ttyUSB0")
    env = {"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""}
    p = start_raw(["--plugin-directory", plugin_dir, "--listen", "127.0.0.1:0",
                   "--device", '{"name": "serial", "groups": [{"paths": [{"path": "%s"}]}]}' %
                   devdir.p("ttyUSB*"), "--evict-after", "1m"], env=env)
    assert p.proc.wait(10 * SLOW) == 1
    assert re.search(r"--evict-after cannot work: .*KUBERNETES_SERVICE_HOST", p.log())


def test_stop_while_the_api_server_hangs_is_prompt(devdir, kubelet, run_plugin, world):
    """SIGTERM while a request to the API server hangs: the request is
    aborted, the plugin exits 0 within a couple of seconds, not after the
    client's 10 s timeout."""
    api, podres = world
    devdir.add("ttyUSB0")
    (id0,) = ids(devdir, "ttyUSB0")
    podres.hold("default", "stuck", RES, id0)
    api.add_pod("default", "stuck", "uid-s", NODE)
    api.hang = ("GET", "pod", threading.Event())
    plugin = start(run_plugin, devdir, world)
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy"})
    devdir.remove("ttyUSB0")
    api.wait(lambda: len(api.of("GET", "pod")) == 1, 10, "the GET of the Pod (that hangs)")
    t0 = time.monotonic()
    assert plugin.stop() == 0
    took = time.monotonic() - t0
    print("\nstop with a request hanging: %.2fs" % took)
    assert took < 3 * SLOW
    assert api.evictions() == []


def test_kubelet_pod_resources_down_is_retried(devdir, kubelet, run_plugin, world):
    """No PodResources socket at the deadline (a kubelet restarting): the
    List is retried with backoff, one warning, and the Pod is evicted once
    the kubelet answers."""
    api, podres = world
    podres.stop()
    if os.path.exists(podres.path):
        os.unlink(podres.path)
    devdir.add("ttyUSB0")
    (id0,) = ids(devdir, "ttyUSB0")
    api.add_pod("default", "late", "uid-l", NODE)
    plugin = start(run_plugin, devdir, world)
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {id0: "Healthy"})
    devdir.remove("ttyUSB0")
    plugin.wait_log(r"level=warn evict: PodResources List failed resource=%s device=%s" %
                    (RES, id0), timeout=10)
    back = PodResources(podres.path)
    try:
        back.hold("default", "late", RES, id0)
        plugin.wait_log(r"evict: pod=default/late .* evicted", timeout=20)
    finally:
        back.stop()
    assert api.evictions() == [("default", "late")]
    assert len(re.findall(r"level=warn evict: PodResources List failed", plugin.log())) == 1
