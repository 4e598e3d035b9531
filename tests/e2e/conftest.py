"""End-to-end fixtures: a real Kubernetes cluster, the shipped manifests
applied with kubectl, and device nodes made with mknod on the node.

Without KUBECONFIG the session brings up scripts/e2e/cluster.sh's
single-node cluster on this machine (and tears it down at the end); the
node is this machine, so the tests may make and remove device nodes in its
/dev. With KUBECONFIG the tests use that cluster (kind, k3s, a real one)
as they find it; what needs the node's /dev (mknod, the kubelet's restart)
is skipped, unless E2E_HOST_ACCESS=1 says that this machine is the node
(and E2E_NODE names it when the cluster has several nodes).

Environment: KUBECONFIG, KUBECTL (default: the cluster script's kubectl
1.20, else `kubectl`), E2E_CACHE (the cluster script's cache),
E2E_HOST_ACCESS, E2E_NODE.
"""

import fcntl
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER_SH = os.path.join(ROOT, "scripts", "e2e", "cluster.sh")
CACHE = os.environ.get("E2E_CACHE", "/var/cache/usbdp-e2e")
MANIFEST = os.path.join(ROOT, "manifests", "usb-device-plugin.yaml")
NAMESPACE = "kube-system"
DS = "usb-device-plugin"
TEST_NS = "usbdp-e2e"
# The kubelet posts the node's status every 10 s (its default
# --node-status-update-frequency): what the API shows of a device change
# lags by up to that much, plus the scheduler's and the runtime's time.
STATUS_CYCLE = 10.0

# Figures the tests measured, printed at the end of the session.
FIGURES = []


def figure(name, seconds):
    FIGURES.append((name, seconds))


def pytest_report_header(config):
    if os.environ.get("KUBECONFIG"):
        return [f"e2e cluster: KUBECONFIG={os.environ['KUBECONFIG']} (host access: "
                f"{'yes' if os.environ.get('E2E_HOST_ACCESS') == '1' else 'no'})"]
    return [f"e2e cluster: self-built by scripts/e2e/cluster.sh (cache {CACHE})"]


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("e2e figures")
        for name, seconds in FIGURES:
            terminalreporter.write_line(f"{name}: {seconds:.2f} s")


class Seen:
    """A false answer that says what was seen instead, for wait_until's
    failure message."""

    def __init__(self, value):
        self.value = value

    def __bool__(self):
        return False

    def __repr__(self):
        return repr(self.value)


def wait_until(what, fn, timeout, interval=0.2):
    """Poll fn() until it returns something true; return that. On timeout,
    fail with what was expected and the last thing fn returned (a false
    value, e.g. Seen(...)) or the kubectl error it raised."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except subprocess.CalledProcessError as e:
            last = f"{e.cmd[1:]}: exit {e.returncode}: {(e.stderr or '').strip()}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last seen: {last!r})")
        time.sleep(interval)


class Kube:
    """kubectl against one cluster."""

    def __init__(self, kubectl, kubeconfig):
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig

    def run(self, *args, stdin=None, check=True, timeout=120):
        cmd = [self.kubectl, "--kubeconfig", self.kubeconfig, *args]
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, cmd, p.stdout, p.stderr)
        return p

    def out(self, *args, **kw):
        return self.run(*args, **kw).stdout

    def json(self, *args):
        return json.loads(self.out(*args, "-o", "json"))

    def apply(self, obj):
        return self.out("apply", "-f", "-", stdin=json.dumps(obj))

    def node(self, name):
        return self.json("get", "node", name)

    def resources(self, node):
        """(capacity, allocatable) of the node, extended resources only."""
        st = self.node(node)["status"]

        def ext(d):
            return {k: int(v) for k, v in d.items() if "/" in k and not k.startswith("hugepages")}

        return ext(st.get("capacity", {})), ext(st.get("allocatable", {}))

    def wait_resources(self, node, what, pred, timeout, interval=0.2):
        """Poll the node's (capacity, allocatable) until pred(cap, alloc)."""
        def check():
            cap, alloc = self.resources(node)
            return (cap, alloc) if pred(cap, alloc) else Seen({"capacity": cap, "allocatable": alloc})
        return wait_until(f"node {node}: {what}", check, timeout, interval)

    def pod(self, name, ns=TEST_NS):
        return self.json("-n", ns, "get", "pod", name)

    def logs(self, name, ns=TEST_NS):
        return self.out("-n", ns, "logs", name)

    def plugin_pods(self, node):
        pods = self.json("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={DS}")["items"]
        return [p for p in pods if p["spec"].get("nodeName") == node]


def pod_ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def container_state(pod):
    """(containerID, restartCount) of a Pod's first container."""
    cs = pod["status"].get("containerStatuses") or [{}]
    return cs[0].get("containerID"), cs[0].get("restartCount")


class Cluster:
    def __init__(self, kube, node, host_access, self_built):
        self.kube = kube
        self.node = node
        self.host_access = host_access
        self.self_built = self_built

    def need_host(self, what):
        if not self.host_access:
            pytest.skip(f"{what} needs this machine to be the node (the self-built cluster, or E2E_HOST_ACCESS=1)")

    def restart_kubelet(self):
        if not self.self_built:
            pytest.skip("restarting the kubelet: only the self-built cluster's (cluster.sh restart-kubelet)")
        subprocess.run([CLUSTER_SH, "restart-kubelet"], check=True, timeout=120)


def _on_sigterm(signum, frame):
    # As Ctrl-C: pytest then runs the fixtures' teardown (cluster.sh down).
    raise KeyboardInterrupt(f"signal {signum}")


def _up():
    """cluster.sh up; returns the kubeconfig it prints last. A cluster a
    killed session left running goes first (this session holds the lock, so
    no other session uses it)."""
    subprocess.run([CLUSTER_SH, "down"], stdout=subprocess.DEVNULL, timeout=300)
    p = subprocess.run([CLUSTER_SH, "up"], stdout=subprocess.PIPE, text=True, timeout=3600)
    if p.returncode != 0:
        pytest.exit(f"scripts/e2e/cluster.sh up failed (exit {p.returncode}); its log is above", returncode=1)
    lines = [l for l in p.stdout.splitlines() if l.startswith("KUBECONFIG=")]
    assert lines, f"cluster.sh up printed no KUBECONFIG= line: {p.stdout!r}"
    return lines[-1].split("=", 1)[1]


@pytest.fixture(scope="session")
def cluster():
    kubeconfig = os.environ.get("KUBECONFIG")
    lock = None
    if kubeconfig:
        self_built = False
        host_access = os.environ.get("E2E_HOST_ACCESS") == "1"
        kubectl = os.environ.get("KUBECTL", "kubectl")
    else:
        # One e2e session at a time on a machine: the kubelet's plugin
        # directory and port 8080 cannot be shared.
        os.makedirs(CACHE, exist_ok=True)
        lock = open(os.path.join(CACHE, "session.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.exit(f"another e2e session holds {CACHE}/session.lock", returncode=1)
        self_built = True
        host_access = True
        signal.signal(signal.SIGTERM, _on_sigterm)
        kubeconfig = _up()
        kubectl = os.environ.get("KUBECTL", os.path.join(CACHE, "bin", "kubectl"))
    try:
        kube = Kube(kubectl, kubeconfig)
        node = os.environ.get("E2E_NODE")
        if not node:
            nodes = kube.json("get", "nodes")["items"]
            ready = [n["metadata"]["name"] for n in nodes if any(
                c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))]
            assert ready, "no Ready node in the cluster"
            if host_access and len(ready) > 1:
                pytest.exit("several nodes: set E2E_NODE to the one this machine is", returncode=1)
            node = ready[0]
        yield Cluster(kube, node, host_access, self_built)
    finally:
        if self_built:
            if os.environ.get("E2E_KEEP"):
                print(f"\nE2E_KEEP: the cluster stays up; KUBECONFIG={kubeconfig}; "
                      f"{CLUSTER_SH} down stops it", file=sys.stderr)
            else:
                subprocess.run([CLUSTER_SH, "down"], timeout=300)
        if lock:
            lock.close()


def shipped_config():
    """The ConfigMap's config.yaml from manifests/usb-device-plugin.yaml."""
    with open(MANIFEST) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "ConfigMap":
                return yaml.safe_load(doc["data"]["config.yaml"])
    raise AssertionError(f"{MANIFEST} has no ConfigMap")


DOMAIN = "usb-device-plugin.dev"


def expected_devices(host_access):
    """{resource: count} the shipped config offers on this node, for what can
    be computed from the host's /dev: entries whose groups are single path
    globs (one device per match, `count` containers each). USB groups count
    0 here: USB devices need the kernel's USB stack (sysfs), which mknod
    cannot fake, and this machine has none. Without host access, None."""
    if not host_access:
        return None
    exp = {}
    for dev in shipped_config()["devices"]:
        n = 0
        for g in dev["groups"]:
            if "usb" in g:
                if glob.glob("/sys/bus/usb/devices/*"):
                    return None  # real USB here: the expectation would need libusb
                continue
            paths = g.get("paths", [])
            assert len(paths) == 1, f"e2e: teach expected_devices() groups of several paths ({dev['name']})"
            n += len(glob.glob(paths[0]["path"])) * int(g.get("count", 1))
        exp[f"{DOMAIN}/{dev['name']}"] = n
    return exp


class DevNodes:
    """Character device nodes made in the node's real /dev (devtmpfs), as a
    driver would when hardware appears; removed again at the end."""

    def __init__(self):
        self.made = []
        self.when = None  # wall-clock time of the last add or remove

    def add(self, path, major, minor):
        # Made under a hidden name, renamed into place: the node appears
        # whole, as devtmpfs nodes do, and no glob matches it half-made.
        assert not os.path.exists(path), f"{path} exists already on this node"
        tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".e2e")
        os.mknod(tmp, 0o660 | 0o020000, os.makedev(major, minor))
        os.rename(tmp, path)
        self.made.append(path)
        self.when = time.time()
        return time.monotonic()

    def remove(self, path):
        os.unlink(path)
        self.made.remove(path)
        self.when = time.time()
        return time.monotonic()

    def cleanup(self):
        for p in list(self.made):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        self.made.clear()


@pytest.fixture(scope="session")
def devnodes(cluster):
    d = DevNodes()
    yield d
    d.cleanup()


@pytest.fixture(scope="session")
def deployed(cluster):
    """The plugin deployed as the README says: kubectl apply -f
    manifests/usb-device-plugin.yaml, the file unchanged; Ready."""
    k = cluster.kube
    k.out("apply", "-f", MANIFEST)
    k.run("-n", NAMESPACE, "rollout", "status", f"daemonset/{DS}", "--timeout=120s", timeout=150)
    # A namespace left by an earlier run on the same cluster goes first:
    # its Pods hold devices.
    if k.run("get", "namespace", TEST_NS, check=False).returncode == 0:
        k.run("delete", "namespace", TEST_NS, "--wait=false")
        wait_until(f"namespace {TEST_NS} of an earlier run deleted",
                   lambda: k.run("get", "namespace", TEST_NS, check=False).returncode != 0, 180, interval=1)
    k.out("create", "namespace", TEST_NS)
    wait_until(f"service account {TEST_NS}/default",
               lambda: k.run("-n", TEST_NS, "get", "serviceaccount", "default", check=False).returncode == 0, 60)
    yield cluster
    if not cluster.self_built:
        k.run("delete", "namespace", TEST_NS, "--wait=false", check=False)
