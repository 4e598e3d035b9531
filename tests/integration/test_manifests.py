"""manifests/: every YAML document parses (duplicate keys refused), the
DaemonSet asks for exactly the privileges and mounts it claims, the ConfigMap
is config/default.yaml and the real plugin accepts and serves it, the
examples ask for resources the config defines, the variants move only the
plugin directory's hostPath, and the kustomization and README name every
file."""

import copy
import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

from conftest import BIN, ROOT, SLOW, WRAP, http_get
from kubelet import Kubelet, wait_until

MANIFESTS = os.path.join(ROOT, "manifests")
MAIN = os.path.join(MANIFESTS, "usb-device-plugin.yaml")
DEFAULT_CONFIG = os.path.join(ROOT, "config", "default.yaml")
DOMAIN = "usb-device-plugin.dev"
NAME = "usb-device-plugin"
NAMESPACE = "kube-system"
PLUGIN_DIR = "/var/lib/kubelet/device-plugins"

KNOWN_KINDS = {
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Pod"),
    ("apps/v1", "DaemonSet"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
    ("kustomize.config.k8s.io/v1alpha1", "Component"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
}

VARIANTS = {
    "variants/microk8s.yaml": "/var/snap/microk8s/common/var/lib/kubelet/device-plugins",
    "variants/k3s-old.yaml": "/var/lib/rancher/k3s/agent/kubelet/device-plugins",
}
# The eviction component (--evict-after): a directory of its own, listed in
# kustomization.yaml's components, whose files its own kustomization names.
EVICT = "variants/evict"
EVICT_FILES = [EVICT + "/kustomization.yaml", EVICT + "/rbac.yaml", EVICT + "/daemonset.yaml"]
EXAMPLES = ["examples/serial-reader.yaml", "examples/camera.yaml", "examples/fuse.yaml"]
REQUIRED = (["usb-device-plugin.yaml", "podmonitor.yaml", "kustomization.yaml"] +
            list(VARIANTS) + EXAMPLES + EVICT_FILES)


# ---- a YAML loader that refuses duplicate keys ----

class StrictLoader(yaml.SafeLoader):
    """SafeLoader, but a mapping with the same key twice is an error (PyYAML
    keeps the last one silently; the API server would too)."""


def _strict_mapping(loader, node):
    loader.flatten_mapping(node)
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "in the mapping starting", node.start_mark,
                "duplicate key %r (first on line %d)" % (key, seen[key]), key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=StrictLoader) if d is not None]


def rel(path):
    return os.path.relpath(path, MANIFESTS)


def yaml_files():
    out = []
    for d, _, files in os.walk(MANIFESTS):
        out += [rel(os.path.join(d, f)) for f in files if f.endswith((".yaml", ".yml"))]
    return sorted(out)


def main_objects():
    return {d["kind"]: d for d in load_all(MAIN)}


def daemonset():
    return main_objects()["DaemonSet"]


def pod_spec():
    return daemonset()["spec"]["template"]["spec"]


def container():
    cs = pod_spec()["containers"]
    assert len(cs) == 1, "one container expected, got %r" % [c["name"] for c in cs]
    return cs[0]


def configmap_text():
    return main_objects()["ConfigMap"]["data"]["config.yaml"]


def default_config_text():
    with open(DEFAULT_CONFIG, encoding="utf-8") as f:
        return f.read()


def plugin_env():
    e = dict(os.environ)
    for k in ("DOMAIN", "LISTEN", "LOG_LEVEL", "PLUGIN_DIRECTORY", "GRACE_PERIOD"):
        e.pop(k, None)
    return e


def run_bin(args, timeout=60):
    assert os.path.exists(BIN), "no plugin binary at %s: build it (make)" % BIN
    return subprocess.run(WRAP + [BIN] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=plugin_env(), timeout=timeout * SLOW)


def plugin_default(flag):
    """A flag's default as the plugin's --help states it."""
    r = run_bin(["--help"])
    assert r.returncode == 0, r.stderr
    m = re.search(r"^\s+--%s \S+.*?Default:\s*(\S+)" % re.escape(flag), r.stdout,
                  re.M | re.S)
    assert m, "no default for --%s in --help:\n%s" % (flag, r.stdout)
    return m.group(1)


def container_port(port):
    """A probe's port (a number or a port name) as a number."""
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in container().get("ports", [])}
    assert port in ports, "port name %r is not one of the container's ports %r" % (port, ports)
    return ports[port]


# ---- every file ----

def test_required_files_exist():
    missing = [f for f in REQUIRED + ["README.md"]
               if not os.path.isfile(os.path.join(MANIFESTS, f))]
    assert not missing, "missing under manifests/: %r" % missing


def test_strict_loader_refuses_duplicate_keys():
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'b'"):
        list(yaml.load_all("a: 1\n---\nx:\n  b: 1\n  c: 2\n  b: 3\n", Loader=StrictLoader))
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'k'"):
        yaml.load("[{k: 1, k: 2}]", Loader=StrictLoader)
    assert yaml.load("a: {b: [1, {c: 2}]}", Loader=StrictLoader) == {"a": {"b": [1, {"c": 2}]}}


@pytest.mark.parametrize("name", yaml_files())
def test_every_document_parses_and_has_a_known_kind(name):
    docs = load_all(os.path.join(MANIFESTS, name))
    assert docs, "%s: no YAML document" % name
    for i, d in enumerate(docs):
        assert isinstance(d, dict), "%s: document %d is not a mapping" % (name, i)
        kind = (d.get("apiVersion"), d.get("kind"))
        assert kind in KNOWN_KINDS, "%s: document %d: unknown kind %r" % (name, i, kind)
        if d["kind"] not in ("Kustomization", "Component"):
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), \
                "%s: bad metadata.name %r" % (name, d["metadata"].get("name"))


# ---- usb-device-plugin.yaml ----

def test_main_file_holds_serviceaccount_configmap_daemonset():
    docs = load_all(MAIN)
    assert [d["kind"] for d in docs] == ["ServiceAccount", "ConfigMap", "DaemonSet"]
    for d in docs:
        assert d["metadata"]["name"] == NAME, d["metadata"]
        assert d["metadata"]["namespace"] == NAMESPACE, d["metadata"]
        assert d["metadata"]["labels"]["app.kubernetes.io/name"] == NAME, d["metadata"]


def test_service_account_has_no_token():
    objs = main_objects()
    assert objs["ServiceAccount"]["automountServiceAccountToken"] is False
    spec = pod_spec()
    assert spec["serviceAccountName"] == objs["ServiceAccount"]["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is False


def test_configmap_is_default_config_verbatim():
    text = configmap_text()
    want = default_config_text()
    # parsed data first (the brief's contract), then every byte, comments too
    assert yaml.load(text, Loader=StrictLoader) == yaml.load(want, Loader=StrictLoader)
    assert text == want, (
        "the ConfigMap's config.yaml differs from config/default.yaml; regenerate it with\n"
        "  sed 's/^./    &/' config/default.yaml  (under `config.yaml: |`)")


def test_plugin_accepts_configmap_config(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(configmap_text())
    r = run_bin(["--config", str(cfg), "--list"])
    assert r.returncode == 0, "--list refused the ConfigMap's config:\n" + r.stdout + r.stderr
    assert re.match(r"\d+ USB devices? \(events: ", r.stdout), r.stdout
    # the same check refuses a broken copy (so the one above can fail)
    cfg.write_text(configmap_text().replace("    groups:", "    grups:", 1))
    r = run_bin(["--config", str(cfg), "--list"])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "grups" in r.stderr, r.stderr


def test_daemonset_runs_the_config_from_the_configmap():
    c = container()
    assert "command" not in c, "the image's entrypoint (/usr/bin/usb-device-plugin) runs"
    assert re.fullmatch(r"usb-device-plugin:[0-9A-Za-z._-]+", c["image"]), c["image"]
    assert c["args"] == ["--config", "/etc/usb-device-plugin/config.yaml"], c["args"]
    assert "env" not in c and "envFrom" not in c, "settings come from the ConfigMap only"
    vols = {v["name"]: v for v in pod_spec()["volumes"]}
    mounts = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/usb-device-plugin"]
    assert len(mounts) == 1, c["volumeMounts"]
    m = mounts[0]
    assert m.get("readOnly") is True and "subPath" not in m, m  # subPath would freeze edits
    assert vols[m["name"]] == {"name": m["name"], "configMap": {"name": NAME}}
    assert "config.yaml" in main_objects()["ConfigMap"]["data"]


def test_container_security_context_exactly():
    assert container()["securityContext"] == {
        "privileged": False,
        "runAsUser": 0,
        "runAsGroup": 0,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_pod_security_context_and_host_namespaces():
    spec = pod_spec()
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    for k in ("hostPID", "hostIPC", "shareProcessNamespace", "initContainers",
              "ephemeralContainers", "runtimeClassName"):
        assert k not in spec, "unexpected %s" % k


def test_host_paths_exactly_the_four_with_their_modes():
    spec = pod_spec()
    host = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
    assert {h["path"]: h["type"] for h in host.values()} == {
        PLUGIN_DIR: "Directory",
        "/dev": "Directory",
        "/sys": "Directory",
        "/run/udev": "DirectoryOrCreate",
    }
    others = [v for v in spec["volumes"] if "hostPath" not in v]
    assert [sorted(v) for v in others] == [["configMap", "name"]], others
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    for name, h in host.items():
        m = mounts[name]
        # the plugin sees the host's paths where the host has them: the paths
        # it hands the kubelet are host paths
        assert m["mountPath"] == h["path"], m
        assert "subPath" not in m and "mountPropagation" not in m, m
        want_ro = h["path"] != PLUGIN_DIR
        assert m.get("readOnly", False) is want_ro, "%s: readOnly should be %s" % (
            h["path"], want_ro)
    assert len(mounts) == len(container()["volumeMounts"]), "a volume mounted twice"
    assert set(mounts) == {v["name"] for v in spec["volumes"]}


def test_plugin_directory_is_the_plugins_default():
    assert plugin_default("plugin-directory").rstrip("/") == PLUGIN_DIR
    assert not any(a.startswith("--plugin-directory") for a in container()["args"])
    assert "plugin-directory" not in yaml.safe_load(configmap_text())


def test_termination_message_not_in_read_only_dev():
    c = container()
    # the default, /dev/termination-log, cannot be created in the host's /dev
    # mounted read-only: the runtime would fail to start the container
    assert c["terminationMessagePath"] == "/tmp/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_scheduling_and_updates():
    ds = daemonset()
    spec = pod_spec()
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["terminationGracePeriodSeconds"] == 10
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1}}
    sel = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert sel == {"app.kubernetes.io/name": NAME}
    assert all(labels.get(k) == v for k, v in sel.items()), (sel, labels)


def test_resources_exactly():
    assert container()["resources"] == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"memory": "64Mi"},  # no CPU limit, on purpose
    }


def test_probes_on_healthz_at_the_listen_default():
    c = container()
    listen = plugin_default("listen")
    assert listen == ":8080", listen
    port = int(listen.rsplit(":", 1)[1])
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    # nothing moves --listen away from the port the probes use
    assert "listen" not in yaml.safe_load(configmap_text())
    assert not any(a.startswith("--listen") for a in c["args"])
    ready, live = c["readinessProbe"], c["livenessProbe"]
    for p in (ready, live):
        assert set(p) - {"periodSeconds", "timeoutSeconds", "failureThreshold",
                         "successThreshold", "initialDelaySeconds"} == {"httpGet"}, p
        assert p["httpGet"]["path"] == "/healthz", p
        assert container_port(p["httpGet"]["port"]) == port, p
        assert set(p["httpGet"]) == {"path", "port"}, p  # http, pod IP = node IP
    # /healthz is 503 while the plugin is not registered: liveness gives the
    # kubelet a minute before restarting the plugin, readiness reacts fast
    assert live["periodSeconds"] * live["failureThreshold"] >= 60, live
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 10, ready
    assert "startupProbe" not in c


def test_prometheus_annotations_name_the_metrics_port():
    ann = daemonset()["spec"]["template"]["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "true",
                   "prometheus.io/port": str(container_port("metrics")),
                   "prometheus.io/path": "/metrics"}


def test_podmonitor_selects_the_pods_metrics_port():
    (pm,) = load_all(os.path.join(MANIFESTS, "podmonitor.yaml"))
    assert (pm["apiVersion"], pm["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert pm["metadata"]["namespace"] == NAMESPACE
    labels = daemonset()["spec"]["template"]["metadata"]["labels"]
    sel = pm["spec"]["selector"]["matchLabels"]
    assert sel and all(labels.get(k) == v for k, v in sel.items()), (sel, labels)
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["port"] == "metrics" and ep["path"] == "/metrics", ep
    container_port(ep["port"])  # a port the container declares


# ---- what the DaemonSet runs, run here against the kubelet stand-in ----

def camera_entry():
    """The config entry camera.yaml tells the reader to add."""
    with open(os.path.join(MANIFESTS, "examples/camera.yaml"), encoding="utf-8") as f:
        lines = [ln for ln in f if re.match(r"#\s+- \{name: camera,", ln)]
    assert len(lines) == 1, "camera.yaml should show one `- {name: camera, ...}` entry"
    (entry,) = yaml.load(lines[0].lstrip("#"), Loader=StrictLoader)
    return entry


def test_camera_entry_is_a_usb_video_class_group():
    assert camera_entry() == {"name": "camera", "groups": [{"usb": [{"class": "video"}]}]}
    names = [d["name"] for d in yaml.safe_load(configmap_text())["devices"]]
    assert "camera" not in names, "the default config has a camera now: update camera.yaml"


def example_resources():
    out = {}
    for ex in EXAMPLES:
        (pod,) = load_all(os.path.join(MANIFESTS, ex))
        for c in pod["spec"]["containers"]:
            for r in c.get("resources", {}).get("limits", {}):
                if "/" in r:
                    out.setdefault(ex, []).append(r)
    return out


def test_daemonset_config_serves_what_the_examples_ask(tmp_path, plugin_dir, start_raw):
    """The DaemonSet's args on the ConfigMap's config plus the camera entry:
    the plugin registers one resource per devices[] entry, in the default
    domain, among them every resource an example asks for; /healthz (the
    probes) goes 200 once registered, and back within far less than the
    liveness window after a kubelet restart."""
    cfg = yaml.safe_load(configmap_text())
    cfg["devices"].append(camera_entry())
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = [str(path) if a == "/etc/usb-device-plugin/config.yaml" else a
            for a in container()["args"]]
    plugin = start_raw(args + ["--plugin-directory", plugin_dir, "--listen", "127.0.0.1:0"])
    port = plugin.http_port()
    want = {"%s/%s" % (DOMAIN, d["name"]) for d in cfg["devices"]}
    for r in want:
        plugin.wait_log(r"serving resource=%s " % re.escape(r))
    status, body = http_get(port, "/healthz")
    assert status == 503 and "not registered" in body, (status, body)
    k = Kubelet(plugin_dir).start()
    try:
        for r in want:
            k.wait_plugin(r, timeout=5)
        assert {r.resource_name for r in k.registrations} == want
        for ex, res in example_resources().items():
            assert set(res) <= want, "%s asks for %r; the plugin serves %r" % (ex, res, want)
        wait_until(lambda: http_get(port, "/healthz")[0] == 200, 5, "/healthz 200")
        live = container()["livenessProbe"]
        t = time.monotonic()
        k.restart()
        for r in want:
            k.wait_plugin(r, timeout=5, after=1)
        wait_until(lambda: http_get(port, "/healthz")[0] == 200, 5, "/healthz 200 again")
        # at most one liveness probe can land in the gap
        assert time.monotonic() - t < live["periodSeconds"] * SLOW
    finally:
        k.stop()


# ---- examples ----

def env_prefix(resource):
    return "USBDP_" + resource.split("/", 1)[1].upper().replace("-", "_") + "_"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_pod_asks_for_a_configured_resource(name):
    docs = load_all(os.path.join(MANIFESTS, name))
    assert [d["kind"] for d in docs] == ["Pod"], name
    (pod,) = docs
    defined = {d["name"] for d in yaml.safe_load(configmap_text())["devices"]}
    defined.add(camera_entry()["name"])
    (c,) = pod["spec"]["containers"]
    limits = c["resources"]["limits"]
    ours = [r for r in limits if r.startswith(DOMAIN + "/")]
    assert len(ours) == 1, limits
    (res,) = ours
    assert [r for r in limits if "/" in r] == [res], "a resource of another domain: %r" % limits
    assert limits[res] == 1, limits
    req = c["resources"].get("requests", {})
    assert res not in req or req[res] == limits[res], "extended resources: requests = limits"
    assert res.split("/", 1)[1] in defined, "%s: %s is not in the config" % (name, res)
    # the environment variables it uses are those of the resource it asks for
    script = " ".join(c.get("command", []) + c.get("args", []))
    used = set(re.findall(r"USBDP_[A-Z0-9_]+", script))
    assert used, "%s: uses no USBDP_ variable" % name
    bad = [v for v in used if not v.startswith(env_prefix(res))]
    assert not bad, "%s: %r are not %s's variables" % (name, bad, res)


def test_serial_reader_reads_the_tty_it_was_given():
    (pod,) = load_all(os.path.join(MANIFESTS, "examples/serial-reader.yaml"))
    (c,) = pod["spec"]["containers"]
    script = c["command"][-1]
    assert c["resources"]["limits"] == {DOMAIN + "/serial": 1}
    assert 'tty="${USBDP_SERIAL_0_TTY%%,*}"' in script, script
    assert re.search(r'stty -F "\$tty" 115200 raw', script), script
    assert re.search(r'cat "\$tty"', script), script


def test_only_the_fuse_example_adds_a_capability():
    for ex in EXAMPLES:
        (pod,) = load_all(os.path.join(MANIFESTS, ex))
        for c in pod["spec"]["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("privileged") is not True, ex
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], ex
            add = sc.get("capabilities", {}).get("add", [])
            if ex == "examples/fuse.yaml":
                assert add == ["SYS_ADMIN"], add
                # the API server refuses allowPrivilegeEscalation: false with
                # CAP_SYS_ADMIN (which implies it)
                assert "allowPrivilegeEscalation" not in sc, sc
                assert c["resources"]["limits"] == {DOMAIN + "/fuse": 1}
            else:
                assert add == [], "%s adds %r" % (ex, add)
                assert sc.get("allowPrivilegeEscalation") is False, ex
        assert pod["spec"].get("hostNetwork") is not True, ex
        assert not any("hostPath" in v for v in pod["spec"].get("volumes", [])), ex


# ---- variants ----

def strategic_merge(base, patch):
    """The part of a strategic merge patch the variants use: maps merge key by
    key, lists of maps with a name merge by name, anything else replaces."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = strategic_merge(base[k], v) if k in base else v
        return out
    if (isinstance(base, list) and isinstance(patch, list) and
            all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = list(base)
        for p in patch:
            i = [x["name"] for x in out].index(p["name"]) if p["name"] in \
                [x["name"] for x in out] else None
            if i is None:
                out.append(p)
            else:
                out[i] = strategic_merge(out[i], p)
        return out
    return patch


def test_strategic_merge_helper():
    base = {"a": {"b": 1, "c": [{"name": "x", "v": 1, "w": 2}]}}
    assert strategic_merge(base, {"a": {"c": [{"name": "x", "v": 3}]}}) == \
        {"a": {"b": 1, "c": [{"name": "x", "v": 3, "w": 2}]}}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_patches_only_the_plugin_directory_host_path(name):
    docs = load_all(os.path.join(MANIFESTS, name))
    assert len(docs) == 1, name
    (patch,) = docs
    ds = daemonset()
    plugin_vol = [v["name"] for v in pod_spec()["volumes"]
                  if v.get("hostPath", {}).get("path") == PLUGIN_DIR]
    assert len(plugin_vol) == 1
    assert patch == {
        "apiVersion": ds["apiVersion"],
        "kind": "DaemonSet",
        "metadata": {"name": ds["metadata"]["name"], "namespace": ds["metadata"]["namespace"]},
        "spec": {"template": {"spec": {"volumes": [
            {"name": plugin_vol[0], "hostPath": {"path": VARIANTS[name]}}]}}},
    }
    merged = strategic_merge(ds, patch)
    # the result differs from the DaemonSet in that one path and nowhere else
    expect = copy.deepcopy(ds)
    for v in expect["spec"]["template"]["spec"]["volumes"]:
        if v["name"] == plugin_vol[0]:
            v["hostPath"]["path"] = VARIANTS[name]
            assert v["hostPath"]["type"] == "Directory"
    assert merged == expect
    assert merged != ds
    # the container still sees the directory where the plugin looks by default
    m = [m for m in container()["volumeMounts"] if m["name"] == plugin_vol[0]]
    assert m[0]["mountPath"] == PLUGIN_DIR


# ---- kustomization and README ----

def kustomization_text():
    with open(os.path.join(MANIFESTS, "kustomization.yaml"), encoding="utf-8") as f:
        return f.read()


def test_kustomization_installs_the_main_file():
    (k,) = load_all(os.path.join(MANIFESTS, "kustomization.yaml"))
    assert k["resources"] == ["usb-device-plugin.yaml"], k["resources"]
    assert set(k) == {"apiVersion", "kind", "resources", "images"}, sorted(k)
    image = container()["image"]
    name, tag = image.rsplit(":", 1)
    assert k["images"] == [{"name": name, "newTag": tag}], (k["images"], image)


def test_kustomization_lists_every_file():
    text = kustomization_text()
    files = [f for f in yaml_files() if f != "kustomization.yaml" and
             not f.startswith(("examples/", EVICT + "/"))]
    assert re.search(r"^#\s+- %s$" % re.escape(EVICT), text, re.M), \
        "kustomization.yaml does not offer the %s component" % EVICT
    for f in files:
        assert re.search(r"^\s*#?\s*-\s+(path:\s+)?%s\s*$" % re.escape(f), text, re.M), \
            "kustomization.yaml does not list %s" % f
    listed = re.findall(r"^\s*#?\s*-\s+(?:path:\s+)?(\S+\.ya?ml)\s*$", text, re.M)
    assert sorted(listed) == sorted(files), (listed, files)
    for f in listed:
        assert os.path.isfile(os.path.join(MANIFESTS, f)), "kustomization.yaml: no %s" % f


def test_kustomization_optional_lines_uncommented_are_valid():
    """The commented-out choices, switched on, make a kustomization that
    installs the PodMonitor and patches with a variant."""
    on = re.sub(r"^(\s*)# (- podmonitor\.yaml|patches:|  - path: variants/\S+|components:|"
                r"  - %s)$" % re.escape(EVICT), r"\1\2", kustomization_text(), flags=re.M)
    k = yaml.load(on, Loader=StrictLoader)
    assert k["components"] == [EVICT], k
    assert k["resources"] == ["usb-device-plugin.yaml", "podmonitor.yaml"], k["resources"]
    assert sorted(p["path"] for p in k["patches"]) == sorted(VARIANTS), k["patches"]


def test_manifests_readme_names_every_file():
    with open(os.path.join(MANIFESTS, "README.md"), encoding="utf-8") as f:
        text = f.read()
    missing = [f for f in yaml_files() if "`%s`" % f not in text]
    assert not missing, "manifests/README.md does not describe %r" % missing


def kustomize(directory):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed: kustomize builds not checked (the checks "
                    "above read the same files)")
    r = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(r.stdout)}


def test_kubectl_kustomize_builds_the_main_file():
    built = kustomize(MANIFESTS)
    want = {(d["kind"], d["metadata"]["name"]): d for d in load_all(MAIN)}
    assert built == want


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_kubectl_kustomize_with_variant(tmp_path, name):
    copy_dir = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, str(copy_dir))
    on = re.sub(r"^# (patches:)$|^#   (- path: %s)$" % re.escape(name),
                lambda m: m.group(1) or "  " + m.group(2), kustomization_text(), flags=re.M)
    (copy_dir / "kustomization.yaml").write_text(on)
    built = kustomize(copy_dir)
    ds = built[("DaemonSet", NAME)]
    vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    want = copy.deepcopy({v["name"]: v for v in pod_spec()["volumes"]})
    want["device-plugins"]["hostPath"] = {"path": VARIANTS[name], "type": "Directory"}
    assert vols == want
    base = daemonset()
    ds["spec"]["template"]["spec"]["volumes"] = base["spec"]["template"]["spec"]["volumes"]
    assert ds == base, "the variant changed more than the plugin directory's hostPath"


# ---- the eviction component (variants/evict) ----

EVICT_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
]


def evict_docs(name):
    return load_all(os.path.join(MANIFESTS, EVICT, name))


def test_evict_component_names_its_files():
    (k,) = evict_docs("kustomization.yaml")
    assert k == {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
                 "resources": ["rbac.yaml"], "patches": [{"path": "daemonset.yaml"}]}


def test_evict_rbac_is_exactly_what_eviction_needs():
    docs = evict_docs("rbac.yaml")
    assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding"]
    role, binding = docs
    assert role["rules"] == EVICT_RULES, role["rules"]
    assert set(role) == {"apiVersion", "kind", "metadata", "rules"}, "aggregation or more"
    sa = main_objects()["ServiceAccount"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]


def test_evict_patch_adds_only_token_env_and_pod_resources():
    (patch,) = evict_docs("daemonset.yaml")
    ds = daemonset()
    assert patch["metadata"] == {"name": ds["metadata"]["name"],
                                 "namespace": ds["metadata"]["namespace"]}
    merged = strategic_merge(ds, patch)
    expect = copy.deepcopy(ds)
    spec = expect["spec"]["template"]["spec"]
    spec["automountServiceAccountToken"] = True
    c = spec["containers"][0]
    assert "env" not in c, "the base container has env now: update this test"
    c["env"] = [{"name": "EVICT_AFTER", "value": "5m"},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    c["volumeMounts"].append({"name": "pod-resources",
                              "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True})
    spec["volumes"].append({"name": "pod-resources", "hostPath": {
        "path": "/var/lib/kubelet/pod-resources", "type": "Directory"}})
    assert merged == expect
    # the ServiceAccount still mounts no token into anything else
    assert main_objects()["ServiceAccount"]["automountServiceAccountToken"] is False


def test_evict_patch_values_are_what_the_plugin_reads():
    """EVICT_AFTER is a setting the plugin parses, its default socket is
    in the mounted directory, and without an API server in the environment
    the plugin refuses to start (not silently without eviction)."""
    (patch,) = evict_docs("daemonset.yaml")
    env = {e["name"]: e.get("value") for e in
           patch["spec"]["template"]["spec"]["containers"][0]["env"]}
    help_text = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    assert "/var/lib/kubelet/pod-resources/kubelet.sock" in help_text
    e = plugin_env()
    e.update(EVICT_AFTER=env["EVICT_AFTER"], KUBERNETES_SERVICE_HOST="", LOG_LEVEL="info")
    r = subprocess.run(WRAP + [BIN, "--listen", "127.0.0.1:0", "--plugin-directory", "/nonexistent/",
                               "--device", '{"name": "x", "groups": [{"paths": [{"path": '
                               '"/dev/null"}]}]}'],
                       capture_output=True, text=True, env=e, timeout=60 * SLOW)
    assert r.returncode == 1, r.stderr
    assert "--evict-after cannot work" in r.stderr and "KUBERNETES_SERVICE_HOST" in r.stderr


def test_kubectl_kustomize_with_evict_component(tmp_path):
    copy_dir = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, str(copy_dir))
    on = re.sub(r"^# (components:)$|^#   (- %s)$" % re.escape(EVICT),
                lambda m: m.group(1) or "  " + m.group(2), kustomization_text(), flags=re.M)
    assert on != kustomization_text()
    (copy_dir / "kustomization.yaml").write_text(on)
    built = kustomize(copy_dir)
    role = built[("ClusterRole", "usb-device-plugin-evict")]
    assert role["rules"] == EVICT_RULES
    assert ("ClusterRoleBinding", "usb-device-plugin-evict") in built
    (patch,) = evict_docs("daemonset.yaml")

    def by_name(ds):  # kustomize puts added list items first: order aside
        ds = copy.deepcopy(ds)
        spec = ds["spec"]["template"]["spec"]
        spec["volumes"].sort(key=lambda v: v["name"])
        spec["containers"][0]["volumeMounts"].sort(key=lambda v: v["name"])
        return ds
    assert by_name(built[("DaemonSet", NAME)]) == by_name(strategic_merge(daemonset(), patch))
    main = {(d["kind"], d["metadata"]["name"]): d for d in load_all(MAIN)}
    assert set(built) - set(main) == {("ClusterRole", "usb-device-plugin-evict"),
                                      ("ClusterRoleBinding", "usb-device-plugin-evict")}
