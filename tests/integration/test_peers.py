"""Coming from the other plugins: smarter-device-manager's config files,
virtual devices (the simulator), Allocate decorations (env and annotation
templates) and CDI spec files -- the real binary, the kubelet stand-in, a
faked /dev."""

import json
import os
import threading

import pytest

from conftest import SLOW, mount_ns_problem
from kubelet import wait_until


# ---- smarter-device-manager ----

SDM_CONF = """\
- devicematch: ^snd$
  nummaxdevices: 20
- devicematch: ^gpiomem$
  nummaxdevices: 40
- devicematch: ^i2c-[0-9]*$
  nummaxdevices: 1
- devicematch: ^video[0-9]*$
  nummaxdevices: 20
- devicematch: ^ttyUSB[0-9]*$
  nummaxdevices: 1
- devicematch: ^net/tun$
  nummaxdevices: 3
- devicematch: nvidia-gpu
  nummaxdevices: 10
"""


@pytest.fixture
def fakedev(devdir):
    """The fake /dev the plugin sees (mounted over /dev in its namespace)."""
    why = mount_ns_problem(devdir.path)
    if why:
        pytest.skip("cannot mount a fake /dev in a mount namespace: " + why)
    return devdir


@pytest.fixture
def sdm(tmp_path, plugin_dir, start_raw, fakedev):
    """sdm(conf, extra=[]) runs the plugin on a smarter-device-manager
    config with the fake /dev mounted over /dev."""
    def go(conf=SDM_CONF, extra=(), fmt=None, env=None):
        path = tmp_path / "conf.yaml"
        path.write_text(conf)
        args = ["--config", str(path), "--plugin-directory", plugin_dir,
                "--listen", "127.0.0.1:0", "--log-level", "debug"] + list(extra)
        if fmt:
            args += ["--config-format", fmt]
        return start_raw(args, dev_root=fakedev.path, env=env)
    return go


# smarter-device-manager's own default conf.yaml (its entries, as shipped)
SDM_DEFAULT = "".join("- devicematch: %s\n  nummaxdevices: %d\n" % e for e in (
    ("^snd$", 20), ("^gpiomem$", 40), ("^gpiochip[0-9]*$", 20), ("^hci[0-9]*$", 1),
    ("^i2c-[0-9]*$", 1), ("^rtc0$", 20), ("^video[0-9]*$", 20), ("^vchiq$", 20),
    ("^vcsm.*$", 20), ("^ttyUSB[0-9]*$", 1), ("^ttyACM[0-9]*$", 1), ("^ttyTHS[0-9]*$", 1),
    ("^ttyS[0-9]*$", 1), ("nvidia-gpu", 10)))


def test_sdm_default_config_on_a_raspberry_pi_dev(fakedev, kubelet, sdm):
    for name in ("snd/controlC0", "snd/pcmC0D0p", "gpiomem", "gpiochip0", "gpiochip1",
                 "i2c-1", "rtc0", "video10", "video11", "vchiq", "vcsm-cma", "ttyUSB0",
                 "ttyACM0", "ttyS0", "net/tun", "mmcblk0", "input/event0"):
        fakedev.add(name)
    plugin = sdm(SDM_DEFAULT)
    want = {"snd": 20, "gpiomem": 40, "gpiochip0": 20, "gpiochip1": 20, "i2c-1": 1,
            "rtc0": 20, "video10": 20, "video11": 20, "vchiq": 20, "vcsm-cma": 20,
            "ttyUSB0": 1, "ttyACM0": 1, "ttyS0": 1}
    for name, n in want.items():
        pl = kubelet.wait_plugin("smarter-devices/" + name)
        ids = {str(i): "Healthy" for i in range(n)}
        pl.stream.wait(lambda d, ids=ids: d == ids, what="%s with IDs 0..%d" % (name, n - 1))
    assert set(kubelet.plugins) == {"smarter-devices/" + n for n in want}, \
        "exactly its resources: nothing for net/tun, mmcblk0, input/event0"
    plugin.wait_log(r'"nvidia-gpu" skipped')


def test_sdm_resource_names_counts_and_allocations(fakedev, kubelet, sdm):
    for name in ("ttyUSB0", "ttyUSB1", "gpiomem", "i2c-1", "video0", "net/tun",
                 "snd/controlC0", "snd/pcmC0D0p", "ttyS0"):
        fakedev.add(name)
    sdm()
    want = {"smarter-devices/ttyUSB0": 1, "smarter-devices/ttyUSB1": 1,
            "smarter-devices/gpiomem": 40, "smarter-devices/i2c-1": 1,
            "smarter-devices/video0": 20, "smarter-devices/net_tun": 3,
            "smarter-devices/snd": 20}
    for res, n in want.items():
        pl = kubelet.wait_plugin(res)
        ids = {str(i): "Healthy" for i in range(n)}
        pl.stream.wait(lambda d, ids=ids: d == ids, what="%s with IDs 0..%d" % (res, n - 1))
    assert set(kubelet.plugins) == set(want), "exactly its resources, nothing for ttyS0"
    # one device file per resource, whatever IDs are asked for
    tun = kubelet.plugins["smarter-devices/net_tun"].allocate(["0", "2"])
    c = tun.container_responses[0]
    assert [(d.host_path, d.container_path, d.permissions) for d in c.devices] == \
        [("/dev/net/tun", "/dev/net/tun", "rw")]
    # a directory: every device file below it
    snd = kubelet.plugins["smarter-devices/snd"].allocate(["7"]).container_responses[0]
    assert sorted(d.host_path for d in snd.devices) == ["/dev/snd/controlC0",
                                                         "/dev/snd/pcmC0D0p"]


def test_sdm_follows_files_that_come_and_go(fakedev, kubelet, sdm):
    fakedev.add("ttyUSB0")
    plugin = sdm(extra=["--grace-period", "300ms"])
    pl0 = kubelet.wait_plugin("smarter-devices/ttyUSB0")
    pl0.stream.wait(lambda d: d == {"0": "Healthy"})
    # unlike smarter-device-manager, a file that appears later is offered
    fakedev.add("ttyUSB1")
    pl1 = kubelet.wait_plugin("smarter-devices/ttyUSB1")
    pl1.stream.wait(lambda d: d == {"0": "Healthy"}, what="a new resource for ttyUSB1")
    fakedev.add("snd/controlC0")  # a new directory, then a file in it
    snd = kubelet.wait_plugin("smarter-devices/snd")
    snd.stream.wait(lambda d: len(d) == 20)
    fakedev.add("snd/pcmC0D0p")
    wait_until(lambda: len(snd.allocate(["0"]).container_responses[0].devices) == 2,
               5, "the new file below /dev/snd in the allocation")
    fakedev.remove("ttyUSB0")
    pl0.stream.wait(lambda d: d == {"0": "Unhealthy"}, what="unplugged: unhealthy")
    pl0.stream.wait(lambda d: d == {}, what="then gone after the grace period")
    fakedev.add("ttyUSB0")
    pl0.stream.wait(lambda d: d == {"0": "Healthy"}, what="back under the same resource")
    plugin.wait_log(r"resource added for a matching file resource=smarter-devices/ttyUSB1")


@pytest.mark.parametrize("conf,err", [
    ("- devicematch: ^tty[0-9\n  nummaxdevices: 1\n",
     r"conf\.yaml:1: \[0\]\.devicematch: invalid regular expression \"\^tty\[0-9\""),
    ("- devicematch: ^ttyUSB\\d{1,2000}$\n  nummaxdevices: 1\n",
     r"conf\.yaml:1: \[0\]\.devicematch: invalid regular expression .*: invalid repetition size"),
    ("- devicematch: ^a$\n  nummaxdevices: 1\n- devicematch: ^b$\n",
     r"conf\.yaml:3: \[1\]\.nummaxdevices: required key is missing"),
    ("- devicematch: ^a$\n  nummaxdevices: 0\n",
     r"conf\.yaml:2: \[0\]\.nummaxdevices: must be at least 1"),
    ("- deviceMatch: ^a$\n  nummaxdevices: 1\n",
     r"conf\.yaml:1: \[0\]\.deviceMatch: unknown key \(did you mean \"devicematch\"\?\)"),
])
def test_sdm_bad_config_refused_with_line(fakedev, sdm, conf, err):
    p = sdm(conf)
    p.wait_log(err)
    assert p.proc.wait(10 * SLOW) == 2, "a bad config is a usage error"


def test_sdm_go_regexp_syntax(fakedev, kubelet, sdm):
    # smarter-device-manager compiles devicematch with Go's regexp: \d, (?i)
    for name in ("ttyUSB0", "ttyS0", "gpiomem"):
        fakedev.add(name)
    sdm("- devicematch: ^ttyUSB\\d+$\n  nummaxdevices: 1\n"
        "- devicematch: (?i)^GPIOMEM$\n  nummaxdevices: 2\n")
    kubelet.wait_plugin("smarter-devices/ttyUSB0").stream.wait(lambda d: len(d) == 1)
    kubelet.wait_plugin("smarter-devices/gpiomem").stream.wait(lambda d: len(d) == 2)
    assert set(kubelet.plugins) == {"smarter-devices/ttyUSB0", "smarter-devices/gpiomem"}


def test_sdm_format_flag_and_names_it_cannot_register(fakedev, kubelet, sdm):
    fakedev.add("by-id/usb:odd")  # ':' becomes '_', as smarter-device-manager maps it
    fakedev.add("by-id/odd.")     # by-id_odd_ ends in '_': the kubelet would refuse it
    fakedev.add("ttyUSB0")
    plugin = sdm("- devicematch: ^by-id/\n  nummaxdevices: 2\n"
                 "- devicematch: ^ttyUSB0$\n  nummaxdevices: 2\n",
                 fmt="smarter-device-manager")
    kubelet.wait_plugin("smarter-devices/ttyUSB0").stream.wait(lambda d: len(d) == 2)
    kubelet.wait_plugin("smarter-devices/by-id_usb_odd").stream.wait(lambda d: len(d) == 2)
    plugin.wait_log(r'devicematch file skipped file=/dev/by-id/odd\. .*name=by-id_odd_: the '
                    r'kubelet refuses it')
    assert sorted(kubelet.plugins) == ["smarter-devices/by-id_usb_odd",
                                       "smarter-devices/ttyUSB0"]


# ---- virtual devices ----

def virtual(name="sim", count=3, **extra):
    v = {"count": count, "idPrefix": "sim"}
    v.update(extra)
    return {"name": name, "groups": [{"virtual": v}]}


def test_virtual_devices_list_and_allocate_without_files(kubelet, run_plugin):
    # the prefixes mean what the simple device plugin's mean
    run_plugin(virtual(envPrefix="SIM_DEVICE", annotationPrefix="sim.example.com/dev"),
               env={"NODE_NAME": "Worker-7"})
    pl = kubelet.wait_plugin("example.com/sim")
    ids = ["sim-worker-7-0", "sim-worker-7-1", "sim-worker-7-2"]
    pl.stream.wait(lambda d: d == {i: "Healthy" for i in ids})
    c = pl.allocate([ids[2], ids[0]]).container_responses[0]
    assert not c.devices and not c.mounts and not c.cdi_devices
    assert c.envs["SIM_DEVICE_" + ids[2]] == "/dev/" + ids[2]
    assert c.envs["SIM_DEVICE_" + ids[0]] == "/dev/" + ids[0]
    assert c.envs["USBDP_SIM_IDS"] == ids[2] + "," + ids[0]
    assert dict(c.annotations) == {"sim.example.com/dev-" + ids[2]: "",
                                   "sim.example.com/dev-" + ids[0]: ""}
    pl.prestart(ids)  # nothing to check, nothing to fail


def test_virtual_device_file_prefix_maps_a_file(devdir, kubelet, run_plugin):
    # an absolute prefix is taken as it is; device i is <prefix>-<ID>
    devdir.add("sim-sim-n1-0")
    run_plugin(virtual(count=2, deviceFilePrefix=devdir.p("sim")), env={"NODE_NAME": "n1"})
    pl = kubelet.wait_plugin("example.com/sim")
    pl.stream.wait(lambda d: d == {"sim-n1-0": "Healthy", "sim-n1-1": "Unhealthy"},
                   what="sim-sim-n1-1 has no file yet")
    devdir.add("sim-1")  # or <prefix>-<i>, as the simulator's README has it
    pl.stream.wait(lambda d: d == {"sim-n1-0": "Healthy", "sim-n1-1": "Healthy"})
    c = pl.allocate(["sim-n1-1"]).container_responses[0]
    assert [d.host_path for d in c.devices] == [devdir.p("sim-1")]


def test_simulator_from_environment_alone(kubelet, plugin_dir, start_raw, tmp_path):
    env = {"USBDP_VIRTUAL_RESOURCE": "fake-gpu", "USBDP_VIRTUAL_COUNT": "4",
           "USBDP_VIRTUAL_ID_PREFIX": "gpu", "USBDP_VIRTUAL_ENV_PREFIX": "FAKE_GPU",
           "USBDP_VIRTUAL_ANNOTATION_PREFIX": "fake.example.com/gpu",
           "DOMAIN": "sim.example.com", "PLUGIN_DIRECTORY": plugin_dir,
           "NODE_NAME": "node-a", "LISTEN": "127.0.0.1:0"}
    os.chdir(str(tmp_path))  # no ./config.yaml to find
    start_raw([], env=env)
    pl = kubelet.wait_plugin("sim.example.com/fake-gpu")
    pl.stream.wait(lambda d: d == {"gpu-node-a-%d" % i: "Healthy" for i in range(4)})
    c = pl.allocate(["gpu-node-a-3"]).container_responses[0]
    assert c.envs["FAKE_GPU_gpu-node-a-3"] == "/dev/gpu-node-a-3"
    assert c.annotations["fake.example.com/gpu-gpu-node-a-3"] == ""


def test_simulator_environment_errors_are_named(plugin_dir, start_raw):
    p = start_raw(["--plugin-directory", plugin_dir, "--listen", "127.0.0.1:0"],
                  env={"USBDP_VIRTUAL_RESOURCE": "x", "USBDP_VIRTUAL_COUNT": "many"})
    p.wait_log(r"\$USBDP_VIRTUAL_\*: groups\[0\]\.virtual\.count: expected an integer")
    assert p.proc.wait(10 * SLOW) == 2, "a bad config is a usage error"


# ---- env and annotation templates ----

def test_templates_expand_for_path_instances(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    run_plugin({"name": "serial", "groups": [{
        "paths": [{"path": devdir.p("ttyUSB*"), "mountPath": "/dev/port/"}],
        "count": 2,
        "env": {"PORT_{index}": "{container}", "HOST_{index}": "{host[0]}",
                "WHO": "{resource}:{id}:{slot}"},
        "annotations": {"example.com/ports": "{hosts}", "{{literal}}": "x"}}]})
    pl = kubelet.wait_plugin("example.com/serial")
    devs = pl.stream.wait(lambda d: len(d) == 4)
    # the two slots of ttyUSB1: IDs are gdp's sha1 of slot + path
    from conftest import sha1_id
    a, b = sha1_id(0, devdir.p("ttyUSB1")), sha1_id(1, devdir.p("ttyUSB0"))
    assert a in devs and b in devs
    c = pl.allocate([a, b]).container_responses[0]
    assert c.envs["PORT_0"] == "/dev/port/ttyUSB1" and c.envs["PORT_1"] == "/dev/port/ttyUSB0"
    assert c.envs["HOST_0"] == devdir.p("ttyUSB1") and c.envs["HOST_1"] == devdir.p("ttyUSB0")
    # one key, two devices: both values, in request order
    assert c.envs["WHO"] == "serial:%s:0,serial:%s:1" % (a, b)
    assert c.annotations["example.com/ports"] == devdir.p("ttyUSB1") + "," + devdir.p("ttyUSB0")
    assert c.annotations["{literal}"] == "x"
    assert c.envs["USBDP_SERIAL_0_ID"] == a, "the default env vars stay"


@pytest.mark.parametrize("group,err", [
    ({"env": {"A": "{vendr}"}},
     r'groups\[0\]\.env\.A: value "\{vendr\}": unknown placeholder "\{vendr\}"'),
    ({"env": {"A": "{tty}"}},
     r'groups\[0\]\.env\.A: value "\{tty\}": placeholder "\{tty\}" .*only known for usb'),
    ({"annotations": {"a/{index": "x"}}, r'groups\[0\]\.annotations\.a/\{index: key .*unterminated'),
    ({"env": {"1ABC": "x"}}, r"groups\[0\]\.env\.1ABC: not a valid environment variable name"),
    ({"env": {"A": ["x"]}}, r"groups\[0\]\.env\.A: expected a string, got a list"),
])
def test_bad_templates_refused_at_start(devdir, run_plugin, group, err):
    g = {"paths": [{"path": devdir.p("x")}]}
    g.update(group)
    p = run_plugin({"name": "d", "groups": [g]})
    p.wait_log(r"--device #1: " + err)
    assert p.proc.wait(10 * SLOW) == 2, "a bad config is a usage error"


# ---- CDI ----

def read_spec(path):
    with open(path) as f:
        return json.load(f)


def test_cdi_spec_follows_hotplug_and_allocate_names_it(devdir, kubelet, run_plugin, tmp_path):
    cdi = tmp_path / "cdi"
    devdir.add("ttyUSB0")
    run_plugin({"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]},
               {"name": "data", "groups": [{"paths": [
                   {"path": str(tmp_path / "data"), "type": "Mount", "readOnly": True}]}]},
               extra=["--cdi", "--cdi-dir", str(cdi)])
    (tmp_path / "data").mkdir()
    pl = kubelet.wait_plugin("example.com/serial")
    devs = pl.stream.wait(lambda d: len(d) == 1)
    spec_path = cdi / "example.com-serial.json"
    spec = read_spec(spec_path)
    (id0,) = devs
    assert spec["cdiVersion"] == "0.5.0" and spec["kind"] == "example.com/serial"
    assert spec["devices"] == [{"name": id0, "containerEdits": {"deviceNodes": [
        {"path": devdir.p("ttyUSB0"), "hostPath": devdir.p("ttyUSB0"), "permissions": "mrw"}]}}]
    c = pl.allocate([id0]).container_responses[0]
    assert [d.name for d in c.cdi_devices] == ["example.com/serial=" + id0]
    assert not c.devices, "CDI names instead of DeviceSpecs"
    assert c.envs["USBDP_SERIAL_0"] == devdir.p("ttyUSB0")
    devdir.add("ttyUSB1")
    devs = pl.stream.wait(lambda d: len(d) == 2)
    wait_until(lambda: len(read_spec(spec_path)["devices"]) == 2, 5,
               "the spec lists the new device")
    assert {d["name"] for d in read_spec(spec_path)["devices"]} == set(devs)
    devdir.remove("ttyUSB0")
    pl.stream.wait(lambda d: "Unhealthy" in d.values())
    wait_until(lambda: len(read_spec(spec_path)["devices"]) == 1, 5,
               "an unplugged device leaves the spec")
    # bind mounts as CDI mounts
    data = read_spec(cdi / "example.com-data.json")
    assert data["devices"][0]["containerEdits"]["mounts"][0]["hostPath"] == str(tmp_path / "data")
    assert "ro" in data["devices"][0]["containerEdits"]["mounts"][0]["options"]


def test_cdi_spec_written_atomically_under_a_storm(devdir, kubelet, run_plugin, tmp_path):
    cdi = tmp_path / "cdi"
    run_plugin({"name": "serial", "groups": [{"paths": [{"path": devdir.p("ttyUSB*")}]}]},
               extra=["--cdi", "--cdi-dir", str(cdi)])
    pl = kubelet.wait_plugin("example.com/serial")
    spec_path = cdi / "example.com-serial.json"
    stop = threading.Event()
    seen = {"reads": 0, "bad": [], "stray": set()}

    def reader():
        while not stop.is_set():
            for name in os.listdir(str(cdi)) if cdi.exists() else []:
                if name.endswith(".json") and name != "example.com-serial.json":
                    seen["stray"].add(name)
            try:
                with open(spec_path) as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            seen["reads"] += 1
            try:
                json.loads(text)
            except ValueError as e:
                seen["bad"].append("%s: %r" % (e, text[:200]))
    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(60):
            devdir.add("ttyUSB%d" % i)
        pl.stream.wait(lambda d: len(d) == 60, timeout=10)
        wait_until(lambda: spec_path.exists() and
                   len(read_spec(spec_path)["devices"]) == 60, 10, "60 devices in the spec")
        for i in range(60):
            devdir.remove("ttyUSB%d" % i)
        wait_until(lambda: not spec_path.exists() or
                   len(read_spec(spec_path)["devices"]) == 0, 10, "none left in the spec")
    finally:
        stop.set()
        t.join()
    assert seen["reads"] > 0
    assert not seen["bad"], "a reader saw a partial spec: %s" % seen["bad"][:3]
    assert not seen["stray"], "temporary files a CDI registry would read: %s" % seen["stray"]


def test_sdm_reload_follows_the_edited_entries(fakedev, kubelet, sdm, tmp_path):
    import signal
    fakedev.add("ttyUSB0")
    fakedev.add("net/tun")
    plugin = sdm("- devicematch: ^ttyUSB[0-9]*$\n  nummaxdevices: 1\n"
                 "- devicematch: ^net/tun$\n  nummaxdevices: 3\n")
    tty = kubelet.wait_plugin("smarter-devices/ttyUSB0")
    tty.stream.wait(lambda d: d == {"0": "Healthy"})
    tun = kubelet.wait_plugin("smarter-devices/net_tun")
    tun.stream.wait(lambda d: len(d) == 3)
    (tmp_path / "conf.yaml").write_text("- devicematch: ^net/tun$\n  nummaxdevices: 5\n"
                                        "- devicematch: ^gpiomem$\n  nummaxdevices: 4\n")
    fakedev.add("gpiomem")
    plugin.proc.send_signal(signal.SIGHUP)
    # matched by the file's name (net/tun), not the resource's (net_tun)
    tun.stream.wait(lambda d: len(d) == 5,
                    what="nummaxdevices 5 after the reload, same socket and stream")
    kubelet.wait_plugin("smarter-devices/gpiomem").stream.wait(lambda d: len(d) == 4)
    plugin.wait_log(r"resource removed by reload resource=smarter-devices/ttyUSB0")
    assert kubelet.count("smarter-devices/net_tun") == 1, "kept its registration"


def test_sdm_runaway_expression_is_capped(fakedev, plugin_dir, sdm):
    for i in range(300):
        fakedev.add("f%03d" % i)
    p = sdm("- devicematch: ^f[0-9]+$\n  nummaxdevices: 1\n")
    p.wait_log(r"devicematch file skipped file=/dev/f256 .*already 256 resources", timeout=20)
    socks = lambda: [n for n in os.listdir(plugin_dir) if n.endswith(".sock")]
    wait_until(lambda: len(socks()) == 256, 20, "256 sockets served")
    p.wait_log(r"serving resource=smarter-devices/f255 ")
    assert "serving resource=smarter-devices/f256 " not in p.log()


def test_sdm_cap_counts_configured_resources_too(fakedev, plugin_dir, sdm):
    """One limit on resources in all: with a configured (virtual) resource
    beside them, 255 files get one each and the 256th is skipped."""
    for i in range(260):
        fakedev.add("f%03d" % i)
    p = sdm("- devicematch: ^f[0-9]+$\n  nummaxdevices: 1\n",
            env={"USBDP_VIRTUAL_RESOURCE": "fake", "USBDP_VIRTUAL_COUNT": "1"})
    p.wait_log(r"devicematch file skipped file=/dev/f255 .*already 256 resources, configured "
               r"and for matching files", timeout=20)
    socks = lambda: [n for n in os.listdir(plugin_dir) if n.endswith(".sock")]
    wait_until(lambda: len(socks()) == 256, 20, "256 sockets served")
    p.wait_log(r"serving resource=smarter-devices/f254 ")
    assert "serving resource=smarter-devices/f255 " not in p.log()
