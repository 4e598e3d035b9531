"""Drop-in without edits: each peer's own deployment, unchanged but for the
image, gives the same resources. The peers' public files are read at test
time from the shared peers-data directory (never copied into this
repository); tests that need them skip, saying so, where it is absent. The
real binary, the kubelet stand-in, a fake /dev mounted over /dev in a
mount namespace of the plugin's own."""

import json
import os
import shutil
import tempfile

import pytest
import yaml

from conftest import ROOT, SLOW, mount_ns_problem
from kubelet import wait_until


def peers_data():
    """The directory of the peers' verbatim files, or None."""
    for d in (os.environ.get("PEERS_DATA"), os.path.join(ROOT, "..", "shared", "peers-data"),
              os.path.join(ROOT, "..", "..", "shared", "peers-data")):
        if d and os.path.isfile(os.path.join(d, "SOURCES.md")):
            return os.path.abspath(d)
    return None


def peer_file(*parts):
    d = peers_data()
    if not d:
        pytest.skip("the peers' public files are not here (../shared/peers-data or "
                    "$PEERS_DATA): nothing to test against")
    path = os.path.join(d, *parts)
    if not os.path.isfile(path):
        pytest.skip("peers-data has no %s" % os.path.join(*parts))
    with open(path) as f:
        return f.read()


@pytest.fixture
def plugin_dir():
    """A short one: smarter-device-manager's long names make long socket
    names, and a unix socket path has at most 107 bytes (the kubelet's
    /var/lib/kubelet/device-plugins/ is short too)."""
    d = tempfile.mkdtemp(prefix="dp", dir="/tmp")
    yield d + "/"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fakedev(devdir):
    why = mount_ns_problem(devdir.path)
    if why:
        pytest.skip("cannot mount a fake /dev in a mount namespace: " + why)
    return devdir


def settings_env(plugin_dir, **more):
    """What the test world needs besides the peer's own arguments: the
    kubelet stand-in's directory and a free port, as environment variables
    so that the arguments stay exactly the peer's."""
    env = {"PLUGIN_DIRECTORY": plugin_dir, "LISTEN": "127.0.0.1:0", "LOG_LEVEL": "debug"}
    env.update(more)
    return env


def healthy(n):
    return lambda d: len(d) == n and set(d.values()) == {"Healthy"}


# ---- generic-device-plugin: its DaemonSet, only the image changed ----

def gdp_args():
    doc = yaml.safe_load(peer_file("generic-device-plugin", "generic-device-plugin.yaml"))
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    assert c["name"] == "generic-device-plugin" and "--device" in c["args"]
    return c["args"]


def gdp_world(fakedev):
    for name in ("ttyUSB0", "ttyACM0", "video0", "fuse", "snd/controlC0", "snd/pcmC0D0c",
                 "snd/pcmC0D0p", "snd/controlC1", "snd/pcmC1D0c", "snd/timer"):
        fakedev.add(name)


def test_gdp_daemonset_args_unchanged(fakedev, kubelet, plugin_dir, start_raw):
    gdp_world(fakedev)
    plugin = start_raw(gdp_args(), env=settings_env(plugin_dir), dev_root=fakedev.path)
    # no --domain in its DaemonSet: its own domain is kept, and said loudly
    plugin.wait_log(r"warn.*domain=squat\.ai: no --domain given and the devices come as "
                    r"generic-device-plugin's \(--device flags\)")
    want = {"serial": 2, "video": 1, "fuse": 10, "audio": 10, "capture": 2}
    for name, n in want.items():
        pl = kubelet.wait_plugin("squat.ai/" + name)
        pl.stream.wait(healthy(n), what="squat.ai/%s: %d Healthy" % (name, n))
    assert set(kubelet.plugins) == {"squat.ai/" + n for n in want}
    # the directory is handed over as generic-device-plugin hands it over
    audio = kubelet.plugins["squat.ai/audio"]
    ids = sorted(audio.stream.latest())
    c = audio.allocate(ids[:1]).container_responses[0]
    assert [(d.host_path, d.container_path, d.permissions) for d in c.devices] == \
        [("/dev/snd", "/dev/snd", "mrw")]
    assert c.envs["USBDP_AUDIO_0_DIR_NODES"] == ",".join(
        "/dev/snd/" + n for n in ("controlC0", "controlC1", "pcmC0D0c", "pcmC0D0p", "pcmC1D0c",
                                  "timer"))
    audio.prestart(ids[:1])
    # its capture groups: a card's nodes mounted where card 0's are
    cap = kubelet.plugins["squat.ai/capture"]
    got = []
    for i in sorted(cap.stream.latest()):
        c = cap.allocate([i]).container_responses[0]
        got.append(sorted((d.host_path, d.container_path) for d in c.devices))
    assert sorted(got) == [
        [("/dev/snd/controlC0", "/dev/snd/controlC0"), ("/dev/snd/pcmC0D0c", "/dev/snd/pcmC0D0c")],
        [("/dev/snd/controlC1", "/dev/snd/controlC0"), ("/dev/snd/pcmC1D0c", "/dev/snd/pcmC0D0c")],
    ]


def test_gdp_directory_health_follows_its_nodes(fakedev, kubelet, plugin_dir, start_raw):
    gdp_world(fakedev)
    start_raw(gdp_args(), env=settings_env(plugin_dir), dev_root=fakedev.path)
    audio = kubelet.wait_plugin("squat.ai/audio")
    audio.stream.wait(healthy(10))
    for name in ("snd/controlC0", "snd/pcmC0D0c", "snd/pcmC0D0p", "snd/controlC1",
                 "snd/pcmC1D0c", "snd/timer"):
        fakedev.remove(name)
    # the directory itself is watched: no other event is needed
    audio.stream.wait(lambda d: len(d) == 10 and set(d.values()) == {"Unhealthy"},
                      what="/dev/snd without a node: Unhealthy")
    fakedev.add("snd/controlC0")
    audio.stream.wait(healthy(10), what="a node below /dev/snd again: Healthy")


def test_directory_device_alone_follows_its_nodes(devdir, kubelet, run_plugin):
    # nothing else looks into the directory: the plugin must watch it itself
    devdir.add("snd/controlC0")
    snd = devdir.p("snd")
    run_plugin({"name": "audio", "groups": [{"count": 2, "paths": [{"path": snd}]}]})
    pl = kubelet.wait_plugin("example.com/audio")
    pl.stream.wait(healthy(2))
    devdir.remove("snd/controlC0")
    pl.stream.wait(lambda d: len(d) == 2 and set(d.values()) == {"Unhealthy"},
                   what="no node below it: Unhealthy")
    devdir.add("snd/pcmC0D0p")
    pl.stream.wait(healthy(2), what="a node below it again: Healthy")
    c = pl.allocate(sorted(pl.stream.latest())[:1]).container_responses[0]
    assert [(d.host_path, d.container_path) for d in c.devices] == [(snd, snd)]


def test_gdp_directory_with_cdi_is_expanded(fakedev, kubelet, plugin_dir, start_raw, tmp_path):
    gdp_world(fakedev)
    cdi_dir = str(tmp_path / "cdi")
    start_raw(gdp_args() + ["--cdi"],
              env=settings_env(plugin_dir, CDI_DIR=cdi_dir), dev_root=fakedev.path)
    audio = kubelet.wait_plugin("squat.ai/audio")
    audio.stream.wait(healthy(10))
    path = os.path.join(cdi_dir, "squat.ai-audio.json")
    wait_until(lambda: os.path.exists(path), 5, "the audio CDI spec")
    with open(path) as f:
        spec = json.load(f)
    nodes = spec["devices"][0]["containerEdits"]["deviceNodes"]
    assert [(n["path"], n["hostPath"]) for n in nodes] == [
        ("/dev/snd/" + n, "/dev/snd/" + n)
        for n in ("controlC0", "controlC1", "pcmC0D0c", "pcmC0D0p", "pcmC1D0c", "timer")]
    c = audio.allocate(sorted(audio.stream.latest())[:1]).container_responses[0]
    assert not c.devices and len(c.cdi_devices) == 1
    # a card plugged later: its nodes join the spec
    fakedev.add("snd/pcmC2D0p")

    def nodes_now():
        with open(path) as f:
            return [n["hostPath"] for n in
                    json.load(f)["devices"][0]["containerEdits"]["deviceNodes"]]
    wait_until(lambda: "/dev/snd/pcmC2D0p" in nodes_now(), 5, "the new node in the spec")


def test_gdp_old_schema_keeps_its_ids(devdir, kubelet, run_plugin):
    # generic-device-plugin's first schema named its devices <match>-<slot>:
    # a kubelet's checkpoint from then still names the same devices
    for n in ("ttyUSB0", "ttyUSB1", "ttyACM0"):
        devdir.add(n)
    plugin = run_plugin({"type": "serial", "count": 2,
                         "paths": [devdir.p("ttyUSB*"), devdir.p("ttyACM*")]})
    pl = kubelet.wait_plugin("example.com/serial")
    want = {"%s-%d" % (devdir.p(n), j): "Healthy"
            for n in ("ttyUSB0", "ttyUSB1", "ttyACM0") for j in range(2)}
    pl.stream.wait(lambda d: d == want, what="IDs <path>-<slot>")
    c = pl.allocate([devdir.p("ttyUSB1") + "-1"]).container_responses[0]
    assert [d.host_path for d in c.devices] == [devdir.p("ttyUSB1")]
    plugin.wait_log(r"deprecated device schema .*device IDs <path>-<slot> as before")


# ---- smarter-device-manager: its shipped conf.yaml files ----

def sdm_shipped(which):
    """Its image's conf.yaml, or the conf.yaml of one of its ConfigMaps."""
    if which == "conf.yaml":
        return peer_file("smarter-device-manager", "conf.yaml")
    doc = yaml.safe_load(peer_file("smarter-device-manager", which))
    return doc["data"]["conf.yaml"]


@pytest.fixture
def sdm(tmp_path, plugin_dir, start_raw, fakedev):
    """Runs the plugin as smarter-device-manager's DaemonSet would: the
    config where it mounts it is given here as --config (the test cannot
    write /root/config), no other flag."""
    def go(conf):
        path = tmp_path / "conf.yaml"
        path.write_text(conf)
        return start_raw(["--config", str(path)], env=settings_env(plugin_dir),
                         dev_root=fakedev.path)
    return go


RPI_DEV = ("snd/controlC0", "snd/pcmC0D0p", "snd/by-path/platform-bcm2835_audio",
           "gpiomem", "gpiochip0", "gpiochip1", "i2c-1", "rtc0", "video10", "video11",
           "video12", "vchiq", "vcsm-cma", "ttyAMA0", "ttyS0", "ttyUSB0", "mmcblk0",
           "mmcblk0p1", "input/event0", "fuse", "net/tun")


@pytest.mark.parametrize("which", ["conf.yaml", "smarter-device-manager-configmap-rpi.yaml"])
def test_sdm_shipped_conf_on_a_raspberry_pi(fakedev, kubelet, sdm, which):
    for name in RPI_DEV:
        fakedev.add(name)
    plugin = sdm(sdm_shipped(which))
    want = {"snd": 20, "gpiomem": 40, "gpiochip0": 20, "gpiochip1": 20, "i2c-1": 1,
            "rtc0": 20, "video10": 20, "video11": 20, "video12": 20, "vchiq": 20,
            "vcsm-cma": 20, "ttyUSB0": 1, "ttyS0": 1}
    for name, n in want.items():
        pl = kubelet.wait_plugin("smarter-devices/" + name)
        ids = {str(i): "Healthy" for i in range(n)}
        pl.stream.wait(lambda d, ids=ids: d == ids, what="%s with IDs 0..%d" % (name, n - 1))
    assert set(kubelet.plugins) == {"smarter-devices/" + n for n in want}
    if which == "conf.yaml":
        plugin.wait_log(r'"nvidia-gpu" skipped')


X86_DEV = ("snd/controlC0", "snd/pcmC0D0p", "snd/pcmC0D0c", "snd/seq", "snd/timer", "rtc0",
           "video0", "video1", "ttyS0", "ttyS1", "ttyS2", "ttyS3", "ttyUSB0", "ttyACM0",
           "i2c-0", "i2c-1", "hidraw0", "nvme0n1", "sda", "kvm", "fuse", "net/tun",
           "dri/card0", "dri/renderD128", "input/event0", "bus/usb/001/001")


@pytest.mark.parametrize("which", ["conf.yaml", "smarter-device-manager-configmap-xavier.yaml"])
def test_sdm_shipped_conf_on_an_x86_machine(fakedev, kubelet, sdm, which):
    for name in X86_DEV:
        fakedev.add(name)
    os.makedirs(fakedev.p("serial/by-path"))
    os.symlink("../../ttyUSB0",
               fakedev.p("serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"))
    sdm(sdm_shipped(which))
    want = {"snd": 20, "rtc0": 20, "video0": 20, "video1": 20, "ttyS0": 1, "ttyS1": 1,
            "ttyS2": 1, "ttyS3": 1, "ttyUSB0": 1, "ttyACM0": 1, "i2c-0": 1, "i2c-1": 1}
    for name, n in want.items():
        pl = kubelet.wait_plugin("smarter-devices/" + name)
        pl.stream.wait(healthy(n), what="%s: %d Healthy" % (name, n))
    assert set(kubelet.plugins) == {"smarter-devices/" + n for n in want}
    snd = kubelet.plugins["smarter-devices/snd"].allocate(["3"]).container_responses[0]
    assert sorted(d.host_path for d in snd.devices) == [
        "/dev/snd/controlC0", "/dev/snd/pcmC0D0c", "/dev/snd/pcmC0D0p", "/dev/snd/seq",
        "/dev/snd/timer"]


def test_sdm_names_with_dots_and_colons(fakedev, kubelet, sdm):
    fakedev.add("ttyUSB0")
    os.makedirs(fakedev.p("serial/by-path"))
    os.symlink("../../ttyUSB0",
               fakedev.p("serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"))
    fakedev.add("v4l/by-id/usb-cam.1")
    fakedev.add("v4l/by-id/usb-cam:1")  # both are v4l_by-id_usb-cam_1
    fakedev.add("x/-lead")              # _x_-lead would not do: maps to x_-lead, fine
    plugin = sdm("- devicematch: pci-0000\n  nummaxdevices: 2\n"
                 "- devicematch: usb-cam\n  nummaxdevices: 1\n"
                 "- devicematch: -lead$\n  nummaxdevices: 1\n")
    pl = kubelet.wait_plugin(
        "smarter-devices/serial_by-path_pci-0000_00_14_0-usb-0_1_1_0-port0")
    pl.stream.wait(healthy(2))
    c = pl.allocate(["1"]).container_responses[0]
    assert [d.host_path for d in c.devices] == [
        "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"]
    kubelet.wait_plugin("smarter-devices/v4l_by-id_usb-cam_1").stream.wait(healthy(1))
    kubelet.wait_plugin("smarter-devices/x_-lead").stream.wait(healthy(1))
    plugin.wait_log(r"devicematch file skipped file=/dev/v4l/by-id/usb-cam:1: its name "
                    r"collides with file=/dev/v4l/by-id/usb-cam\.1's after mapping .* "
                    r"smarter-devices/v4l_by-id_usb-cam_1")


# ---- the simple device plugin (simulator) ----

def test_simulator_own_variables(kubelet, plugin_dir, start_raw, tmp_path):
    os.chdir(str(tmp_path))  # no ./config.yaml to find
    env = settings_env(plugin_dir, RESOURCE_NAME="nvidia.com/gpu", NUMBER_DEVICES="3",
                       DEVICE_ID_PREFIX="gpu-device", ENV_PREFIX="GPU_DEVICE",
                       ANNOTATION_PREFIX="sim.example.com/gpu", PLUGIN_NAME="simple-device-plugin",
                       NAMESPACE="simple-device-plugin", NODE_NAME="worker-1")
    start_raw([], env=env)
    pl = kubelet.wait_plugin("nvidia.com/gpu")
    ids = ["gpu-device-worker-1-%d" % i for i in range(3)]
    pl.stream.wait(lambda d: d == {i: "Healthy" for i in ids})
    c = pl.allocate([ids[2], ids[0]]).container_responses[0]
    assert not c.devices and not c.mounts
    assert c.envs["GPU_DEVICE_" + ids[2]] == "/dev/" + ids[2]
    assert c.envs["GPU_DEVICE_" + ids[0]] == "/dev/" + ids[0]
    assert dict(c.annotations) == {"sim.example.com/gpu-" + ids[2]: "",
                                   "sim.example.com/gpu-" + ids[0]: ""}


def test_simulator_defaults(kubelet, plugin_dir, start_raw, tmp_path):
    os.chdir(str(tmp_path))
    start_raw([], env=settings_env(plugin_dir, NUMBER_DEVICES="2", NODE_NAME="n1"))
    pl = kubelet.wait_plugin("example.com/simple-device")
    pl.stream.wait(lambda d: d == {"simple-device-n1-0": "Healthy",
                                   "simple-device-n1-1": "Healthy"})
    c = pl.allocate(["simple-device-n1-1"]).container_responses[0]
    assert not c.annotations and not c.devices
    assert not [k for k in c.envs if not k.startswith("USBDP_")], "an empty prefix adds nothing"


# what its deploy step renders from its template with its defaults
SIM_RENDERED = """\
resourceName: example.com/simple-device
numberDevicesOnNode: 2
pluginName: simple-device-plugin
deviceIDPrefix: simple-device
annotationPrefix: 
envPrefix: 
deviceFilePrefix: 
"""


def test_simulator_rendered_config_file(kubelet, plugin_dir, start_raw, tmp_path):
    os.chdir(str(tmp_path))
    (tmp_path / "device_plugin_config.yaml").write_text(SIM_RENDERED)
    # its DaemonSet's argument, as it is
    start_raw(["--config=device_plugin_config.yaml"],
              env=settings_env(plugin_dir, NODE_NAME="node-a"))
    pl = kubelet.wait_plugin("example.com/simple-device")
    pl.stream.wait(lambda d: d == {"simple-device-node-a-0": "Healthy",
                                   "simple-device-node-a-1": "Healthy"})


def test_simulator_rendered_file_with_device_files(fakedev, kubelet, plugin_dir, start_raw,
                                                   tmp_path):
    conf = tmp_path / "device_plugin_config.yaml"
    conf.write_text(SIM_RENDERED.replace("numberDevicesOnNode: 2", "numberDevicesOnNode: 3")
                    .replace("deviceFilePrefix: ", "deviceFilePrefix: sim")
                    .replace("envPrefix: ", "envPrefix: SIM"))
    fakedev.add("sim-simple-device-n1-0")  # as its code names them
    fakedev.add("sim-1")                   # as its README names them
    p = start_raw(["--config=" + str(conf)], env=settings_env(plugin_dir, NODE_NAME="n1"),
                  dev_root=fakedev.path)
    p.wait_log(r"warn.*a device whose file /dev/sim-<id> \(or /dev/sim-<i>\) is missing is "
               r"listed Unhealthy")
    pl = kubelet.wait_plugin("example.com/simple-device")
    pl.stream.wait(lambda d: d == {"simple-device-n1-0": "Healthy",
                                   "simple-device-n1-1": "Healthy",
                                   "simple-device-n1-2": "Unhealthy"})
    c = pl.allocate(["simple-device-n1-0", "simple-device-n1-1"]).container_responses[0]
    assert [(d.host_path, d.container_path, d.permissions) for d in c.devices] == [
        ("/dev/sim-simple-device-n1-0", "/dev/sim-simple-device-n1-0", "rw"),
        ("/dev/sim-1", "/dev/sim-1", "rw")]
    assert c.envs["SIM_simple-device-n1-1"] == "/dev/simple-device-n1-1"
    fakedev.add("sim-simple-device-n1-2")
    pl.stream.wait(lambda d: d.get("simple-device-n1-2") == "Healthy",
                   what="its file made: Healthy")


@pytest.mark.parametrize("env,err", [
    ({"NUMBER_DEVICES": "many"},
     r"\$NUMBER_DEVICES: expected a number of devices from 1 to 10000, got \"many\""),
    ({"RESOURCE_NAME": "Example.com/x"},
     r"\$RESOURCE_NAME: \"Example\.com\" is not a valid DNS-1123 subdomain"),
    ({"RESOURCE_NAME": "example.com/x", "ENV_PREFIX": "1X"},
     r"virtual\.envPrefix: \"1X\" cannot start an environment variable name"),
])
def test_simulator_errors_name_the_variable(plugin_dir, start_raw, tmp_path, env, err):
    os.chdir(str(tmp_path))
    p = start_raw([], env=settings_env(plugin_dir, **env))
    p.wait_log(err)
    assert p.proc.wait(10 * SLOW) == 2, "a bad config is a usage error"


def test_simulator_file_unknown_key_refused(plugin_dir, start_raw, tmp_path):
    conf = tmp_path / "sim.yaml"
    conf.write_text(SIM_RENDERED + "numberDevice: 3\n")
    p = start_raw(["--config", str(conf)], env=settings_env(plugin_dir))
    p.wait_log(r"sim\.yaml:8: numberDevice: unknown key")
    assert p.proc.wait(10 * SLOW) == 2


def test_simulator_example_manifest(kubelet, plugin_dir, start_raw, tmp_path):
    # manifests/examples/simulator.yaml's environment, as the kubelet gives it
    with open(os.path.join(ROOT, "manifests", "examples", "simulator.yaml")) as f:
        ds = next(d for d in yaml.safe_load_all(f) if d["kind"] == "DaemonSet")
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    env["NODE_NAME"] = "node-b"
    os.chdir(str(tmp_path))
    start_raw(c.get("args", []), env=settings_env(plugin_dir, **env))
    pl = kubelet.wait_plugin("sim.example.com/fake-gpu")
    pl.stream.wait(lambda d: d == {"fake-gpu-node-b-%d" % i: "Healthy" for i in range(4)})
    r = pl.allocate(["fake-gpu-node-b-1", "fake-gpu-node-b-3"]).container_responses[0]
    assert r.envs["USBDP_FAKE_GPU_IDS"] == "fake-gpu-node-b-1,fake-gpu-node-b-3"
