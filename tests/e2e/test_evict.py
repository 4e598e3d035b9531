"""--evict-after on a real cluster: a Deployment's Pod holding a device is
evicted once the device has been gone for EVICT_AFTER, with DeviceGone Events
on the Pod and on the Node; its replacement waits (Pending) until a device
exists again, then runs.

The eviction variant is the kustomize Component manifests/variants/evict/,
built here with kubectl 1.20 (whose kustomize has no Components): its
rbac.yaml applied as it is, its daemonset.yaml merged into the shipped
DaemonSet (strategic merge: lists by their merge keys) with EVICT_AFTER
short, and the result applied. The shipped DaemonSet is applied again at
the end (kubectl's three-way merge takes the additions out) and the RBAC
objects deleted, so that whatever runs later sees the shipped manifests.

Independent of test_cluster.py's order: it makes its own ttyUSB nodes
(/dev/ttyUSB92, ...), as many as it takes for the scheduler to see exactly
one free ttyusb on the node (Pods of earlier tests hold some, and a Pod
whose device is gone still counts)."""

import copy
import datetime
import glob
import os
import re
import time
import urllib.parse

import pytest
import yaml

from conftest import (CACHE, DOMAIN, DS, MANIFEST, NAMESPACE, ROOT, STATUS_CYCLE, TEST_NS, Seen, figure, pod_ready,
                      wait_until)

EVICT_DIR = os.path.join(ROOT, "manifests", "variants", "evict")
EVICT_AFTER = 20.0
TTYUSB = f"{DOMAIN}/ttyusb"
USB_MAJOR = 188
DEPLOY = "evict-me"


def minor(path):
    return int(re.search(r"(\d+)$", path).group(1))

# scripts/e2e/cluster.sh's kubelet --root-dir ($E2E_CACHE/run/kubelet).
KUBELET_ROOT = os.path.join(CACHE, "run", "kubelet")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def shipped_daemonset():
    return next(d for d in load(MANIFEST) if d["kind"] == "DaemonSet")


# What the Component's patch touches: lists of objects merged by these keys
# (Kubernetes' patchMergeKey for containers, env, volumeMounts, volumes).
MERGE_KEYS = {"containers": "name", "env": "name", "volumeMounts": "mountPath", "volumes": "name"}


def merge(base, patch, key=None):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out = [copy.deepcopy(b) for b in base]
        for p in patch:
            i = next((i for i, b in enumerate(out) if b.get(mk) == p.get(mk)), None)
            if i is None:
                out.append(copy.deepcopy(p))
            else:
                out[i] = merge(out[i], p)
        return out
    return copy.deepcopy(patch)


def evict_daemonset(apiserver, pod_resources):
    """The shipped DaemonSet with the Component's patch, EVICT_AFTER short.
    apiserver: (host, port) the plugin is to use instead of the kubernetes
    Service, or None; pod_resources: the kubelet's pod-resources directory
    on the node when it is not the default one, or None."""
    patch = load(os.path.join(EVICT_DIR, "daemonset.yaml"))[0]
    comp = load(os.path.join(EVICT_DIR, "kustomization.yaml"))[0]
    assert comp.get("kind") == "Component" and comp.get("patches") == [{"path": "daemonset.yaml"}] \
        and comp.get("resources") == ["rbac.yaml"], \
        f"manifests/variants/evict/kustomization.yaml changed: teach test_evict.py to build it: {comp}"
    env = patch["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert "EVICT_AFTER" in names, f"the Component sets no EVICT_AFTER: {names}"
    for e in env:
        if e["name"] == "EVICT_AFTER":
            e["value"] = f"{EVICT_AFTER:.0f}s"
    if apiserver:
        # The self-built cluster runs no kube-proxy: the kubernetes
        # Service's ClusterIP (what the kubelet puts in
        # $KUBERNETES_SERVICE_HOST) leads nowhere. The plugin is on the host
        # network, where the API server listens (its certificate names
        # 127.0.0.1); variables in the container's env win over the
        # kubelet's.
        env += [{"name": "KUBERNETES_SERVICE_HOST", "value": apiserver[0]},
                {"name": "KUBERNETES_SERVICE_PORT", "value": str(apiserver[1])}]
    if pod_resources:
        # A kubelet --root-dir other than /var/lib/kubelet (the self-built
        # cluster's): its PodResources socket is below it.
        vols = [v for v in patch["spec"]["template"]["spec"]["volumes"] if v["name"] == "pod-resources"]
        assert len(vols) == 1, f"the Component's volumes changed: {patch['spec']['template']['spec']['volumes']}"
        vols[0]["hostPath"]["path"] = pod_resources
    return merge(shipped_daemonset(), patch)


def apiserver_of(k):
    """(host, port) of the API server kubectl talks to."""
    cfg = yaml.safe_load(open(k.kubeconfig))
    u = urllib.parse.urlsplit(cfg["clusters"][0]["cluster"]["server"])
    return u.hostname, u.port or 443


def plugin_pod(k, node):
    pods = [p for p in k.plugin_pods(node) if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]
    return pods[0]["metadata"]["name"] if len(pods) == 1 else None


def plugin_log(k, node):
    name = plugin_pod(k, node)
    return k.logs(name, NAMESPACE) if name else ""


def log_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def rollout(k, node, what):
    k.run("-n", NAMESPACE, "rollout", "status", f"daemonset/{DS}", "--timeout=150s", timeout=180)
    return wait_until(f"{what}: one Ready plugin Pod on {node}", lambda: plugin_pod(k, node), 60)


@pytest.fixture(scope="module")
def evicting(deployed):
    """The plugin deployed with the evict Component; the shipped DaemonSet
    back (and the RBAC objects gone) afterwards."""
    deployed.need_host("removing the device node a Pod holds")
    k = deployed.kube
    rbac = os.path.join(EVICT_DIR, "rbac.yaml")
    try:
        k.out("apply", "-f", rbac)
        if deployed.self_built:
            sock = os.path.join(KUBELET_ROOT, "pod-resources", "kubelet.sock")
            assert os.path.exists(sock), f"the self-built cluster's kubelet has no {sock}"
            ds = evict_daemonset(apiserver_of(k), os.path.dirname(sock))
        else:
            ds = evict_daemonset(None, None)
        k.apply(ds)
        pod = rollout(k, deployed.node, "with the evict Component")
        line = wait_until(f"{pod} logs that eviction is on",
                          lambda: re.search(r"^.*evict: on after=.*$", k.logs(pod, NAMESPACE), re.M), 30)
        assert f"after={EVICT_AFTER:.1f}s" in line.group(0), f"EVICT_AFTER not taken: {line.group(0)}"
        yield deployed
    finally:
        k.run("-n", TEST_NS, "delete", "deployment", DEPLOY, "--ignore-not-found", "--wait=false", check=False)
        k.out("apply", "-f", MANIFEST)
        k.run("delete", "-f", rbac, "--ignore-not-found", check=False)
        rollout(k, deployed.node, "the shipped DaemonSet applied again")
        tmpl = k.json("-n", NAMESPACE, "get", "daemonset", DS)["spec"]["template"]["spec"]
        env = [e["name"] for c in tmpl["containers"] for e in c.get("env", [])]
        assert not env and not tmpl.get("automountServiceAccountToken"), \
            f"the shipped DaemonSet is not back: env {env}, automountServiceAccountToken " \
            f"{tmpl.get('automountServiceAccountToken')}"


def deployment(node):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOY, "namespace": TEST_NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": DEPLOY}},
            "template": {
                "metadata": {"labels": {"app": DEPLOY}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "c",
                        "image": "busybox:1.36",
                        "command": ["sh", "-c", 'echo "files=$USBDP_TTYUSB_0"; exec sleep 2147483647'],
                        "resources": {"limits": {TTYUSB: 1}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    }


def ttyusb_requests(k, node):
    """What the scheduler counts as taken: the ttyusb limits of the node's
    live Pods (a Pod whose device is gone still counts)."""
    used = 0
    for p in k.json("get", "pods", "--all-namespaces", "--field-selector", f"spec.nodeName={node}")["items"]:
        if p["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        for c in p["spec"]["containers"]:
            used += int(c.get("resources", {}).get("limits", {}).get(TTYUSB, 0))
    return used


def make_one_free(k, node, devnodes):
    """Makes ttyUSB nodes until the scheduler sees exactly one free ttyusb
    on the node (Pods of earlier tests may hold some, or count for ones
    that are gone); returns the paths made."""
    present = glob.glob("/dev/ttyUSB*")
    wait_until(f"allocatable {TTYUSB} = the {len(present)} /dev/ttyUSB* nodes present",
               lambda: k.resources(node)[1].get(TTYUSB, 0) == len(present) or Seen(k.resources(node)),
               STATUS_CYCLE + 20)
    need = ttyusb_requests(k, node) + 1 - len(present)
    if need < 1:
        pytest.skip(f"{node} has free {TTYUSB} devices of its own ({present}): the replacement would not wait")
    made = [f"/dev/ttyUSB{92 + i}" for i in range(need)]
    for path in made:
        devnodes.add(path, USB_MAJOR, minor(path))
    want = len(present) + need
    k.wait_resources(node, f"allocatable {TTYUSB} {want} after mknod {made}",
                     lambda cap, alloc: alloc.get(TTYUSB) == want, STATUS_CYCLE + 20)
    free = want - ttyusb_requests(k, node)
    assert free == 1, f"expected one free {TTYUSB} for the scheduler on {node}, got {free}"
    return made


def deploy_pods(k):
    return k.json("-n", TEST_NS, "get", "pods", "-l", f"app={DEPLOY}")["items"]


def events(k, ns, kind, name):
    sel = f"involvedObject.kind={kind},involvedObject.name={name},reason=DeviceGone"
    return k.json("-n", ns, "get", "events", "--field-selector", sel)["items"]


def test_gone_device_evicts_and_replacement_waits(evicting, devnodes):
    """rm of the device node a Deployment's Pod holds: EVICT_AFTER later the
    Pod is evicted (Events on the Pod and the Node say why); the ReplicaSet's
    replacement stays Pending (Insufficient) until mknod makes the device
    again, and then runs."""
    k, node = evicting.kube, evicting.node
    hostname = k.node(node)["metadata"]["labels"]["kubernetes.io/hostname"]
    made = make_one_free(k, node, devnodes)

    k.apply(deployment(hostname))

    def one_running():
        pods = [p for p in deploy_pods(k) if p["status"].get("phase") == "Running"]
        return pods[0] if len(pods) == 1 else None

    old = wait_until(f"Deployment {DEPLOY}'s Pod Running", one_running, 60)
    old_name, old_uid = old["metadata"]["name"], old["metadata"]["uid"]
    out = wait_until(f"{old_name} prints its device", lambda: re.search(r"files=(\S+)", k.logs(old_name)), 30)
    device = out.group(1)
    assert device in made, f"{old_name} got {device}, not one of the free ones made: {made}"

    t_rm = devnodes.remove(device)
    wall_rm = devnodes.when

    def evicted():
        try:
            p = k.pod(old_name)
        except Exception:
            return "deleted"
        if p["metadata"]["uid"] != old_uid:
            return "deleted"
        if p["metadata"].get("deletionTimestamp"):
            return "terminating"
        if p["status"].get("phase") == "Failed":
            return f"failed: {p['status'].get('reason')}"
        return None

    try:
        how = wait_until(f"{old_name} evicted within EVICT_AFTER ({EVICT_AFTER:.0f} s) + 30 s of rm {device}",
                         evicted, EVICT_AFTER + 30, interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}\nthe plugin's evict log lines:\n"
                             + "\n".join(l for l in plugin_log(k, node).splitlines() if "evict" in l)) from None
    t_ev = time.monotonic()
    assert t_ev - t_rm >= EVICT_AFTER - 1, \
        f"{old_name} {how} {t_ev - t_rm:.1f} s after rm, before EVICT_AFTER ({EVICT_AFTER:.0f} s)"
    figure(f"rm {device} -> Pod evicted ({how}; EVICT_AFTER {EVICT_AFTER:.0f} s)", t_ev - t_rm)
    figure("deadline (rm + EVICT_AFTER) -> Pod evicted", t_ev - t_rm - EVICT_AFTER)

    log = plugin_log(k, node)
    done = re.search(rf"^ts=(\S+) level=info evict: pod={TEST_NS}/{old_name} resource={re.escape(TTYUSB)} "
                     r"device=\S+ evicted attempts=(\d+) after_deadline=([\d.]+)s", log, re.M)
    assert done, "the plugin does not log the eviction:\n" + \
        "\n".join(l for l in log.splitlines() if "evict" in l)
    figure("deadline -> evicted (the plugin's after_deadline=)", float(done.group(3)))
    print("the plugin's evict log lines:\n" + "\n".join(l for l in log.splitlines() if "evict" in l))
    server = k.json("version")["serverVersion"]
    if (int(server["major"]), int(re.match(r"\d+", server["minor"]).group(0))) < (1, 22):
        # policy/v1 Eviction came with 1.22: the plugin must have switched.
        assert "using policy/v1beta1" in log, \
            f"API server {server['gitVersion']} has no policy/v1 Eviction, yet the plugin does not log " \
            "the switch to policy/v1beta1:\n" + "\n".join(l for l in log.splitlines() if "evict" in l)
    figure(f"rm {device} -> the plugin's 'evicted' log line", log_time(done.group(1)) - wall_rm)

    pod_ev = wait_until(f"a DeviceGone Event on Pod {TEST_NS}/{old_name}",
                        lambda: events(k, TEST_NS, "Pod", old_name), 20)
    assert pod_ev[0]["type"] == "Warning" and pod_ev[0]["involvedObject"].get("uid") == old_uid \
        and TTYUSB in pod_ev[0].get("message", ""), f"the Pod's Event: {pod_ev[0]}"
    node_ev = wait_until(f"a DeviceGone Event on Node {node} naming {old_name}",
                         lambda: [e for e in events(k, "default", "Node", node)
                                  if f"{TEST_NS}/{old_name}" in e.get("message", "")], 20)
    assert node_ev[0]["type"] == "Warning", f"the Node's Event: {node_ev[0]}"

    def replacement():
        pods = [p for p in deploy_pods(k) if p["metadata"]["uid"] != old_uid]
        return pods[0] if len(pods) == 1 else None

    new = wait_until(f"Deployment {DEPLOY}'s replacement Pod", replacement, 30)
    new_name = new["metadata"]["name"]

    def unschedulable():
        p = k.pod(new_name)
        assert p["status"].get("phase") == "Pending", f"the replacement {new_name} is not Pending: {p['status']}"
        c = [c for c in p["status"].get("conditions", []) if c["type"] == "PodScheduled" and c["status"] == "False"]
        return c[0] if c else None

    cond = wait_until(f"{new_name} reported unschedulable", unschedulable, 30)
    assert f"Insufficient {TTYUSB}" in cond.get("message", ""), f"{new_name} unschedulable for another reason: {cond}"
    # It stays so for a whole status cycle (bounded observation, polled).
    until = time.monotonic() + STATUS_CYCLE
    while time.monotonic() < until:
        p = k.pod(new_name)
        assert p["status"].get("phase") == "Pending" and not p["spec"].get("nodeName"), \
            f"the replacement {new_name} was scheduled with no device on the node: {p['status']}"
        time.sleep(0.5)

    t_mk = devnodes.add(device, USB_MAJOR, minor(device))

    def new_running():
        p = k.pod(new_name)
        assert p["status"].get("phase") not in ("Failed", "Succeeded"), f"{new_name} ended: {p['status']}"
        return p if p["status"].get("phase") == "Running" else None

    wait_until(f"the replacement {new_name} Running after mknod {device}", new_running, STATUS_CYCLE + 60, interval=0.1)
    figure(f"mknod {device} again -> the replacement Pod Running", time.monotonic() - t_mk)
    out = wait_until(f"{new_name} prints its device", lambda: re.search(r"files=(\S+)", k.logs(new_name)), 30)
    assert out.group(1) in made, f"{new_name} got {out.group(1)}, not one of {made}"

    k.out("-n", TEST_NS, "delete", "deployment", DEPLOY, "--wait=false")
    wait_until(f"Deployment {DEPLOY}'s Pods gone", lambda: not deploy_pods(k), 60)
    for path in made:
        devnodes.remove(path)
