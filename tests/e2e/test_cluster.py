"""The shipped manifests on a real cluster, checked the way an operator
would: kubectl, the node's status, Pods asking for devices.

The tests run in file order and share the cluster: the device nodes made by
the first ones are the ones later tests allocate, unplug and count. Every
wait is a poll with a deadline; figures (mknod to allocatable, to Running,
...) are printed at the end of the session."""

import datetime
import glob
import os
import re
import subprocess
import time
import urllib.request

import pytest
import yaml

from conftest import (DOMAIN, DS, NAMESPACE, ROOT, STATUS_CYCLE, TEST_NS, container_state,
                      expected_devices, figure, pod_ready, shipped_config, wait_until)

TTYUSB = f"{DOMAIN}/ttyusb"
TTYACM = f"{DOMAIN}/ttyacm"
# Made on the node with mknod: majors of the cdc-acm and usb-serial ttys,
# minors and names far above what a real adapter gets first.
ACM_MAJOR, USB_MAJOR = 166, 188
ACM = ["/dev/ttyACM90", "/dev/ttyACM91"]
USB = ["/dev/ttyUSB90", "/dev/ttyUSB91"]


def minor(path):
    return int(re.search(r"(\d+)$", path).group(1))


def env_name(resource):
    return "USBDP_" + re.sub(r"[^A-Za-z0-9]", "_", resource.split("/")[-1]).upper()


def device_pod(name, resource, node_labels):
    """A Pod asking for one `resource`, printing what it was given (the
    plugin's USBDP_<NAME>_* variables and the node's file), then sleeping.
    Scheduled by the scheduler (nodeSelector, not nodeName) so that
    'Insufficient' is the scheduler's own verdict."""
    env = env_name(resource)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": TEST_NS},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node_labels["kubernetes.io/hostname"]},
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": "busybox:1.36",
                "command": ["sh", "-c",
                            f'echo "ids=${env}_IDS files=${env}_0"; ls -ln ${env}_0; exec sleep 2147483647'],
                "resources": {"limits": {resource: 1}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def running(k, name, ns=TEST_NS):
    pod = k.pod(name, ns)
    phase = pod["status"].get("phase")
    if phase in ("Failed", "Succeeded"):
        raise AssertionError(f"Pod {ns}/{name} ended: {phase}: {pod['status']}")
    return pod if phase == "Running" else None


def wait_logs(k, name, pattern, timeout=30, ns=TEST_NS):
    def got():
        out = k.logs(name, ns)
        return out if re.search(pattern, out) else None
    return wait_until(f"Pod {ns}/{name}'s log matching {pattern!r}", got, timeout)


def node_labels(cluster):
    return cluster.kube.node(cluster.node)["metadata"]["labels"]


def plugin_log_time(k, node, pattern):
    """The time (epoch seconds, from its UTC ts=) of the plugin's last log
    line matching pattern, or None."""
    pods = [p for p in k.plugin_pods(node) if pod_ready(p)]
    if len(pods) != 1:
        return None
    stamps = re.findall(rf"^ts=(\S+) {pattern}", k.logs(pods[0]["metadata"]["name"], NAMESPACE), re.M)
    if not stamps:
        return None
    return datetime.datetime.strptime(stamps[-1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def healthz():
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---------------------------------------------------------------- deployment

def test_plugin_pod_ready(deployed):
    """kubectl apply -f manifests/usb-device-plugin.yaml: the DaemonSet's Pod
    on the node is Ready (its readiness probe, /healthz, passes: registered
    with the kubelet) and has not restarted."""
    k = deployed.kube
    pods = wait_until(f"a Ready {DS} Pod on node {deployed.node}",
                      lambda: [p for p in k.plugin_pods(deployed.node) if pod_ready(p)], 90)
    assert len(pods) == 1, f"expected one {DS} Pod on {deployed.node}, got {[p['metadata']['name'] for p in pods]}"
    _, restarts = container_state(pods[0])
    assert restarts == 0, f"{pods[0]['metadata']['name']} restarted {restarts} times: {pods[0]['status']}"
    if deployed.host_access:
        status, body = healthz()
        assert status == 200, f"GET 127.0.0.1:8080/healthz (hostNetwork) answered {status}: {body}"
    logs = k.logs(pods[0]["metadata"]["name"], NAMESPACE)
    for dev in shipped_config()["devices"]:
        assert f"registered with kubelet resource={DOMAIN}/{dev['name']}" in logs, \
            f"the plugin's log does not say {DOMAIN}/{dev['name']} registered:\n{logs}"


def test_kustomize_path_is_the_same(deployed):
    """kubectl apply -k manifests/ (the README's other way) describes the very
    objects apply -f made: kubectl reports every one unchanged."""
    out = deployed.kube.out("apply", "-k", os.path.join(ROOT, "manifests"))
    lines = [l for l in out.splitlines() if l.strip()]
    assert lines and all(l.endswith(" unchanged") for l in lines), \
        f"kubectl apply -k manifests/ changed what apply -f made:\n{out}"
    assert len(lines) == 3, f"expected ServiceAccount, ConfigMap, DaemonSet:\n{out}"


@pytest.fixture(scope="module")
def base_devices(deployed, devnodes):
    """Two ttyACM and one ttyUSB node in the node's /dev (host access only)."""
    if not deployed.host_access:
        return
    # Real adapters on the node would take part in the counts below.
    real = glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*")
    if real:
        pytest.skip(f"this node has ttyUSB/ttyACM devices of its own ({', '.join(real)}): "
                    "the device counts would not be the test's")
    devnodes.add(ACM[0], ACM_MAJOR, minor(ACM[0]))
    devnodes.add(ACM[1], ACM_MAJOR, minor(ACM[1]))
    devnodes.add(USB[0], USB_MAJOR, minor(USB[0]))
    # The fuse example's device, if this node lacks it (it is there whenever
    # the fuse module is loaded).
    if not os.path.exists("/dev/fuse"):
        devnodes.add("/dev/fuse", 10, 229)


def test_capacity_and_allocatable(deployed, base_devices):
    """kubectl get node: every resource of the shipped ConfigMap is in the
    node's capacity and allocatable, with as many devices as the node's /dev
    has matches (times `count`); serial (USB) is 0 without USB hardware."""
    k = deployed.kube
    names = [f"{DOMAIN}/{d['name']}" for d in shipped_config()["devices"]]
    exp = expected_devices(deployed.host_access)
    if exp is None:
        cap, alloc = k.wait_resources(deployed.node, f"the shipped resources {names}",
                                      lambda cap, alloc: all(n in cap for n in names), STATUS_CYCLE + 20)
        for n in names:
            assert alloc.get(n) == cap[n], f"{n}: allocatable {alloc.get(n)} != capacity {cap[n]}"
        return
    assert exp[TTYACM] >= 2 and exp[TTYUSB] >= 1, f"the device nodes made are not what the config matches: {exp}"
    k.wait_resources(deployed.node, f"capacity and allocatable (each) {exp}",
                     lambda cap, alloc: all(cap.get(n) == alloc.get(n) == exp[n] for n in names),
                     STATUS_CYCLE + 20)


# ---------------------------------------------------------------- allocation

@pytest.fixture(scope="module")
def first_pod(deployed, base_devices):
    """A Pod asking for one ttyusb, i.e. the only ttyUSB node there is (on a
    cluster whose node /dev is out of reach: one fuse, if it has /dev/fuse)."""
    k = deployed.kube
    resource = TTYUSB
    if not deployed.host_access:
        resource = f"{DOMAIN}/fuse"
        if k.resources(deployed.node)[1].get(resource, 0) < 1:
            pytest.skip(f"no host access to make a ttyUSB node, and no {resource} on node {deployed.node}")
    k.apply(device_pod("dev-1", resource, node_labels(deployed)))
    t0 = time.monotonic()
    pod = wait_until(f"Pod dev-1 (one {resource}) Running", lambda: running(k, "dev-1"), 60)
    figure(f"Pod with a {resource.split('/')[1]} device: created -> Running", time.monotonic() - t0)
    return resource


def test_pod_gets_its_device(deployed, first_pod):
    """The Pod is scheduled, runs and sees its device node: the plugin's
    variables name it and it is the node's character device."""
    k = deployed.kube
    out = wait_logs(k, "dev-1", r"ids=\S+ files=/dev/")
    path = re.search(r"files=(\S+)", out).group(1)
    if first_pod == TTYUSB:
        assert path == USB[0], f"dev-1 got {path}, not {USB[0]} (the only ttyUSB node):\n{out}"
        major, mnr = USB_MAJOR, minor(path)
    else:
        assert path == "/dev/fuse", f"dev-1 got {path}, not /dev/fuse:\n{out}"
        major, mnr = 10, 229
    assert re.search(rf"^c\S+\s+\d+\s+\d+\s+\d+\s+{major},\s*{mnr}\s.*{re.escape(path)}$", out, re.M), \
        f"dev-1 does not see {path} as character device {major},{mnr}:\n{out}"


def test_second_pod_waits_for_a_new_device(deployed, first_pod, devnodes):
    """A second Pod asking for a ttyusb stays Pending (the scheduler:
    Insufficient) while the only one is taken; a new ttyUSB node made with
    mknod is allocatable within a status cycle and the Pod then runs."""
    deployed.need_host("making a ttyUSB node")
    k = deployed.kube
    _, alloc = k.resources(deployed.node)
    assert alloc.get(TTYUSB) == 1, f"expected exactly one ttyusb before the second Pod, node says {alloc}"
    k.apply(device_pod("dev-2", TTYUSB, node_labels(deployed)))

    def unschedulable():
        pod = k.pod("dev-2")
        for c in pod["status"].get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c
        assert pod["status"].get("phase") == "Pending", f"dev-2 is not Pending: {pod['status']}"
        return None

    cond = wait_until("dev-2 reported unschedulable by the scheduler", unschedulable, 30)
    assert f"Insufficient {TTYUSB}" in cond.get("message", ""), f"dev-2 unschedulable for another reason: {cond}"
    assert k.pod("dev-2")["status"]["phase"] == "Pending"

    t0 = devnodes.add(USB[1], USB_MAJOR, minor(USB[1]))
    k.wait_resources(deployed.node, f"allocatable {TTYUSB} 2 after mknod {USB[1]}",
                     lambda cap, alloc: alloc.get(TTYUSB) == 2, STATUS_CYCLE + 10, interval=0.1)
    t1 = time.monotonic()
    wait_until("dev-2 Running after the new device", lambda: running(k, "dev-2"), STATUS_CYCLE + 60, interval=0.1)
    t2 = time.monotonic()
    seen = plugin_log_time(k, deployed.node, rf"level=info device added resource={re.escape(TTYUSB)} .*path={USB[1]} ")
    if seen:
        figure(f"mknod {USB[1]} -> the plugin's 'device added' log line (1 ms resolution)",
               max(0.0, seen - devnodes.when))
    figure(f"mknod {USB[1]} -> node allocatable {TTYUSB} +1", t1 - t0)
    figure(f"mknod {USB[1]} -> the waiting Pod Running", t2 - t0)
    out = wait_logs(k, "dev-2", r"files=/dev/")
    assert f"files={USB[1]}" in out, f"dev-2 should have got the new {USB[1]}:\n{out}"


def test_unplug_lowers_allocatable_then_capacity(deployed, devnodes):
    """Removing a device node (the one dev-2 holds): allocatable drops within
    a status cycle (the device is Unhealthy), capacity only after the
    plugin's grace period (it is dropped); dev-1 and dev-2 keep running."""
    deployed.need_host("removing a device node")
    k = deployed.kube
    if USB[1] not in devnodes.made:
        pytest.skip("needs the second ttyUSB node of the previous test")
    before = {n: container_state(running(k, n) or k.pod(n)) for n in ("dev-1", "dev-2")}
    cap0, alloc0 = k.resources(deployed.node)
    assert (cap0.get(TTYUSB), alloc0.get(TTYUSB)) == (2, 2), f"before unplug: {cap0}, {alloc0}"
    grace = shipped_config().get("grace-period", "30s")
    grace_s = float(grace.rstrip("s")) if re.fullmatch(r"\d+s", str(grace)) else 30.0

    t0 = devnodes.remove(USB[1])
    cap1, alloc1 = k.wait_resources(deployed.node, f"allocatable {TTYUSB} 1 after rm {USB[1]}",
                                    lambda cap, alloc: alloc.get(TTYUSB) == 1, STATUS_CYCLE + 10, interval=0.1)
    t1 = time.monotonic()
    assert cap1.get(TTYUSB) == 2, \
        f"capacity dropped with allocatable ({cap1}), before the {grace_s:.0f} s grace period"
    k.wait_resources(deployed.node, f"capacity {TTYUSB} 1 after the grace period",
                     lambda cap, alloc: cap.get(TTYUSB) == 1, grace_s + STATUS_CYCLE + 15)
    t2 = time.monotonic()
    assert t2 - t0 >= grace_s - 1, f"capacity dropped after {t2 - t0:.1f} s, before the {grace_s:.0f} s grace period"
    seen = plugin_log_time(k, deployed.node, rf"level=info device gone resource={re.escape(TTYUSB)} .*path={USB[1]} ")
    if seen:
        figure(f"rm {USB[1]} -> the plugin's 'device gone' log line (1 ms resolution)",
               max(0.0, seen - devnodes.when))
    figure(f"rm {USB[1]} -> allocatable -1", t1 - t0)
    figure(f"rm {USB[1]} -> capacity -1 (grace period {grace_s:.0f} s)", t2 - t0)
    for n, state in before.items():
        now = running(k, n)
        assert now, f"{n} is no longer Running after the unplug"
        assert container_state(now) == state, f"{n}'s container changed: {state} -> {container_state(now)}"


# ---------------------------------------------------------------- restarts

def test_rollout_restart_keeps_capacity_and_pods(deployed):
    """kubectl rollout restart of the DaemonSet: a new plugin Pod, Ready; the
    node's capacity never drops meanwhile and allocatable is back to what it
    was; the Pods holding devices keep running untouched."""
    k = deployed.kube
    old = [p["metadata"]["name"] for p in k.plugin_pods(deployed.node)]
    cap0, alloc0 = k.resources(deployed.node)
    holders = {p["metadata"]["name"]: container_state(p)
               for p in k.json("-n", TEST_NS, "get", "pods")["items"] if p["status"].get("phase") == "Running"}
    t0 = time.monotonic()
    k.out("-n", NAMESPACE, "rollout", "restart", f"daemonset/{DS}")
    status = subprocess.Popen([k.kubectl, "--kubeconfig", k.kubeconfig, "-n", NAMESPACE, "rollout", "status",
                               f"daemonset/{DS}", "--timeout=180s"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    dips = []
    try:
        while status.poll() is None:
            cap, alloc = k.resources(deployed.node)
            assert all(cap.get(n, 0) >= v for n, v in cap0.items()), \
                f"capacity dropped during the rollout: {cap0} -> {cap}"
            if alloc != alloc0:
                dips.append((time.monotonic(), {n: v for n, v in alloc.items() if v != alloc0.get(n)}))
            time.sleep(0.2)
    finally:
        if status.poll() is None:
            status.kill()
    out = status.communicate()[0]
    assert status.returncode == 0, f"rollout status: {out}"
    new = wait_until("the new plugin Pod Ready",
                     lambda: [p for p in k.plugin_pods(deployed.node)
                              if pod_ready(p) and p["metadata"]["name"] not in old], 60)
    t1 = time.monotonic()
    figure("rollout restart -> new plugin Pod Ready", t1 - t0)
    k.wait_resources(deployed.node, f"capacity {cap0} and allocatable {alloc0} back after the rollout",
                     lambda cap, alloc: (cap, alloc) == (cap0, alloc0), STATUS_CYCLE + 20)
    if dips:
        low = {}
        for _, d in dips:
            for n, v in d.items():
                low[n] = min(v, low.get(n, v))
        figure(f"rollout restart: allocatable lower ({low}) for", dips[-1][0] - dips[0][0])
    for n, state in holders.items():
        now = running(k, n)
        assert now and container_state(now) == state, f"{n} changed during the rollout: {state} -> {now and container_state(now)}"
    assert len(new) == 1


def test_kubelet_restart_reregisters(deployed, devnodes):
    """The kubelet stopped and started again: the plugin (not restarted)
    registers every resource again, capacity and allocatable come back, the
    running Pods stay, and a new Pod gets a device."""
    k = deployed.kube
    plugin = [p for p in k.plugin_pods(deployed.node) if pod_ready(p)]
    assert len(plugin) == 1
    pname = plugin[0]["metadata"]["name"]
    pstate = container_state(plugin[0])
    cap0, alloc0 = k.resources(deployed.node)
    holders = {p["metadata"]["name"]: container_state(p)
               for p in k.json("-n", TEST_NS, "get", "pods")["items"] if p["status"].get("phase") == "Running"}
    regs0 = k.logs(pname, NAMESPACE).count("registered with kubelet resource=")
    t0 = time.monotonic()
    deployed.restart_kubelet()
    n_res = len(shipped_config()["devices"])
    wait_until(f"{pname} registered its {n_res} resources again",
               lambda: k.logs(pname, NAMESPACE).count("registered with kubelet resource=") >= regs0 + n_res, 60)
    t1 = time.monotonic()
    figure("kubelet restarted -> every resource registered again", t1 - t0)
    if deployed.host_access:
        # The plugin's part: from the new kubelet.sock (its ctime) to the
        # plugin's last "registered" line (its log's UTC timestamps).
        sock = os.stat("/var/lib/kubelet/device-plugins/kubelet.sock").st_ctime
        stamps = re.findall(r"^ts=(\S+) level=info registered with kubelet", k.logs(pname, NAMESPACE), re.M)
        last = datetime.datetime.strptime(stamps[-1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        figure("kubelet restart: new kubelet.sock -> the plugin's last resource registered", last - sock)
    k.wait_resources(deployed.node, f"capacity {cap0} and allocatable {alloc0} after the kubelet restart",
                     lambda cap, alloc: (cap, alloc) == (cap0, alloc0), STATUS_CYCLE + 30)
    now = k.json("-n", NAMESPACE, "get", "pod", pname)
    assert container_state(now) == pstate, f"the plugin's container changed: {pstate} -> {container_state(now)}"
    for n, state in holders.items():
        p = running(k, n)
        assert p and container_state(p) == state, f"{n} changed across the kubelet restart"
    # A device allocated by the re-registered plugin.
    k.apply(device_pod("dev-3", TTYACM, node_labels(deployed)))
    wait_until("dev-3 (one ttyacm) Running after the kubelet restart", lambda: running(k, "dev-3"), 60)
    out = wait_logs(k, "dev-3", r"files=/dev/ttyACM")
    figure("kubelet restarted -> a new device Pod Running", time.monotonic() - t0)
    assert re.search(rf"^c.*{ACM_MAJOR},\s*\d+\s.*/dev/ttyACM\d+$", out, re.M), out


# ---------------------------------------------------------------- examples

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "manifests", "examples", "*.yaml")))
# What each example prints once it has its device.
EXAMPLE_LOGS = {
    "fuse.yaml": r"got /dev/fuse \(device \S+\)",
    "simulator.yaml": r"got fake-gpu-\S+,fake-gpu-\S+",
    "serial-reader.yaml": r"got \S+: /dev/tty",
    "camera.yaml": r"video: /dev/video",
}
WHY_NOT = {
    f"{DOMAIN}/serial": "a USB-serial adapter (a USB device: mknod cannot make one)",
    f"{DOMAIN}/camera": "a camera entry in the ConfigMap and a UVC camera (a USB device)",
}


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example(deployed, path):
    """manifests/examples/X.yaml applied unchanged: its Pods run and print
    the device they were given. Skipped when the node lacks the device."""
    k = deployed.kube
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    pods = [d for d in docs if d["kind"] == "Pod"]
    provided = {}
    for d in docs:
        if d["kind"] == "DaemonSet":
            env = {e["name"]: e.get("value") for c in d["spec"]["template"]["spec"]["containers"]
                   for e in c.get("env", [])}
            if env.get("USBDP_VIRTUAL_RESOURCE"):
                provided[f"{env.get('DOMAIN', DOMAIN)}/{env['USBDP_VIRTUAL_RESOURCE']}"] = \
                    int(env.get("USBDP_VIRTUAL_COUNT", "1"))
            elif env.get("RESOURCE_NAME"):  # the simple device plugin's variables
                provided[env["RESOURCE_NAME"]] = int(env.get("NUMBER_DEVICES") or "2")
    cap, _ = k.resources(deployed.node)
    for p in pods:
        for c in p["spec"]["containers"]:
            for r, n in c.get("resources", {}).get("limits", {}).items():
                if "/" in r and r not in provided and cap.get(r, 0) < int(n):
                    pytest.skip(f"needs {r}: {WHY_NOT.get(r, 'a device this node does not have')}")
    # What an earlier run may have left (its Pods hold devices) goes first.
    k.run("delete", "-f", path, "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=150)
    k.out("apply", "-f", path)
    try:
        for r, n in provided.items():
            k.wait_resources(deployed.node, f"allocatable {r} {n}",
                             lambda cap, alloc: alloc.get(r) == n, STATUS_CYCLE + 60)
        for p in pods:
            name, ns = p["metadata"]["name"], p["metadata"].get("namespace", "default")
            t0 = time.monotonic()
            wait_until(f"example Pod {ns}/{name} Running", lambda: running(k, name, ns), STATUS_CYCLE + 60)
            figure(f"example {os.path.basename(path)}: Pod {name} Running", time.monotonic() - t0)
            pattern = EXAMPLE_LOGS.get(os.path.basename(path), r".")
            wait_logs(k, name, pattern, ns=ns)
    finally:
        k.run("delete", "-f", path, "--wait=false", check=False)
