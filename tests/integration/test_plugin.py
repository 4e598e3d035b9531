"""The real binary against a directory of fake device nodes and the kubelet
stand-in: registration, ListAndWatch, Allocate, and the kubelet lifecycle."""

import os
import signal
import socket
import time

import grpc
import pytest

from conftest import SLOW, sha1_id
from kubelet import Kubelet

RES = "example.com/serial"


def serial(devdir, count=1, **path_extra):
    p = {"path": devdir.p("ttyUSB*")}
    p.update(path_extra)
    return {"name": "serial", "groups": [{"paths": [p], "count": count}]}


def test_registers_and_lists_devices(devdir, kubelet, plugin_dir, run_plugin):
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    run_plugin(serial(devdir))
    pl = kubelet.wait_plugin(RES)
    req = pl.request
    assert req.version == "v1beta1"
    assert req.resource_name == RES
    assert "/" not in req.endpoint and os.path.exists(os.path.join(plugin_dir, req.endpoint))
    assert req.options.pre_start_required and req.options.get_preferred_allocation_available
    devs = pl.stream.wait(lambda d: len(d) == 2)
    # generic-device-plugin's IDs, so that the kubelet's checkpoint survives a switch
    assert devs == {sha1_id(0, devdir.p("ttyUSB0")): "Healthy",
                    sha1_id(0, devdir.p("ttyUSB1")): "Healthy"}
    opts = pl.options()
    assert opts.pre_start_required and opts.get_preferred_allocation_available


def test_count_gives_slots(devdir, kubelet, run_plugin):
    fuse = devdir.add("fuse", 10, 229)
    run_plugin({"name": "fuse", "groups": [{"paths": [{"path": fuse}], "count": 3}]})
    pl = kubelet.wait_plugin("example.com/fuse")
    devs = pl.stream.wait(lambda d: len(d) == 3)
    assert set(devs) == {sha1_id(j, fuse) for j in range(3)}


def test_node_add_and_remove_follow_files(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    plugin = run_plugin(serial(devdir), extra=["--grace-period", "400ms"])
    pl = kubelet.wait_plugin(RES)
    id0, id1 = sha1_id(0, devdir.p("ttyUSB0")), sha1_id(0, devdir.p("ttyUSB1"))
    pl.stream.wait(lambda d: d == {id0: "Healthy"})
    devdir.add("ttyUSB1")
    pl.stream.wait(lambda d: d == {id0: "Healthy", id1: "Healthy"}, what="ttyUSB1 added")
    n_before = pl.stream.count()
    devdir.remove("ttyUSB0")
    # Unhealthy first: the kubelet stops handing it out but still knows it ...
    pl.stream.wait(lambda d: d == {id0: "Unhealthy", id1: "Healthy"}, what="ttyUSB0 unhealthy")
    # ... then dropped after the grace period.
    pl.stream.wait(lambda d: d == {id1: "Healthy"}, timeout=5, what="ttyUSB0 dropped")
    assert pl.stream.count() == n_before + 2
    plugin.wait_log(r"device dropped .*id=" + id0)


def test_file_back_within_grace_keeps_id(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    run_plugin(serial(devdir), extra=["--grace-period", "30s"])
    pl = kubelet.wait_plugin(RES)
    id0 = sha1_id(0, devdir.p("ttyUSB0"))
    pl.stream.wait(lambda d: d == {id0: "Healthy"})
    devdir.remove("ttyUSB0")
    pl.stream.wait(lambda d: d == {id0: "Unhealthy"})
    devdir.add("ttyUSB0")
    pl.stream.wait(lambda d: d == {id0: "Healthy"}, what="same ID healthy again")


def test_allocate_contents(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    run_plugin(serial(devdir, mountPath="/dev/serial/", permissions="rw"))
    pl = kubelet.wait_plugin(RES)
    id0, id1 = sha1_id(0, devdir.p("ttyUSB0")), sha1_id(0, devdir.p("ttyUSB1"))
    pl.stream.wait(lambda d: len(d) == 2)
    resp = pl.allocate([id1, id0], [id0])
    assert len(resp.container_responses) == 2
    c0, c1 = resp.container_responses
    assert [(d.host_path, d.container_path, d.permissions) for d in c0.devices] == [
        (devdir.p("ttyUSB1"), "/dev/serial/ttyUSB1", "rw"),
        (devdir.p("ttyUSB0"), "/dev/serial/ttyUSB0", "rw")]
    assert not c0.mounts
    assert dict(c0.envs) == {"USBDP_SERIAL_0": "/dev/serial/ttyUSB1", "USBDP_SERIAL_0_ID": id1,
                             "USBDP_SERIAL_1": "/dev/serial/ttyUSB0", "USBDP_SERIAL_1_ID": id0,
                             "USBDP_SERIAL_IDS": id1 + "," + id0}
    assert [d.host_path for d in c1.devices] == [devdir.p("ttyUSB0")]
    assert c1.envs["USBDP_SERIAL_IDS"] == id0


def test_allocate_group_with_mounts_and_defaults(devdir, tmp_path, kubelet, run_plugin):
    snd = devdir.add("snd/controlC0")
    pcm = devdir.add("snd/pcmC0D0c")
    sockdir = tmp_path / "run"
    sockdir.mkdir()
    (sockdir / "app.sock").write_text("")
    run_plugin({"name": "capture", "groups": [{"paths": [
        {"path": pcm},
        {"path": snd, "mountPath": "/dev/snd/controlC9", "permissions": "r"},
        {"path": str(sockdir / "*.sock"), "type": "Mount", "readOnly": True,
         "mountPath": "/run/app/"}]}]})
    pl = kubelet.wait_plugin("example.com/capture")
    did = sha1_id(0, pcm, snd, str(sockdir / "app.sock"))
    pl.stream.wait(lambda d: d == {did: "Healthy"})
    c = pl.allocate([did]).container_responses[0]
    assert [(d.host_path, d.container_path, d.permissions) for d in c.devices] == [
        (pcm, pcm, "mrw"), (snd, "/dev/snd/controlC9", "r")]
    assert [(m.host_path, m.container_path, m.read_only) for m in c.mounts] == [
        (str(sockdir / "app.sock"), "/run/app/app.sock", True)]
    assert c.envs["USBDP_CAPTURE_0"] == ",".join([pcm, "/dev/snd/controlC9", "/run/app/app.sock"])


def test_allocate_refuses_unknown_and_unhealthy_and_keeps_serving(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    devdir.add("ttyUSB1")
    run_plugin(serial(devdir), extra=["--grace-period", "60s"])
    pl = kubelet.wait_plugin(RES)
    id0, id1 = sha1_id(0, devdir.p("ttyUSB0")), sha1_id(0, devdir.p("ttyUSB1"))
    pl.stream.wait(lambda d: len(d) == 2)
    with pytest.raises(grpc.RpcError) as e:
        pl.allocate([id0, "no-such-device"])
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-device" in e.value.details()
    devdir.remove("ttyUSB1")
    pl.stream.wait(lambda d: d.get(id1) == "Unhealthy")
    with pytest.raises(grpc.RpcError) as e:
        pl.allocate([id1])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert id1 in e.value.details() and "unhealthy" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        pl.allocate()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # still serving
    assert pl.allocate([id0]).container_responses[0].devices[0].host_path == devdir.p("ttyUSB0")


def test_malformed_and_unknown_calls_get_errors(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    run_plugin(serial(devdir))
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: len(d) == 1)
    raw = pl.channel.unary_unary("/v1beta1.DevicePlugin/Allocate")
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\xff\xff\xff\xff", timeout=5)  # not a protobuf message
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    other = pl.channel.unary_unary("/v1beta1.DevicePlugin/NoSuchMethod")
    with pytest.raises(grpc.RpcError) as e:
        other(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert pl.allocate([sha1_id(0, devdir.p("ttyUSB0"))]).container_responses


def test_preferred_allocation_spreads_over_instances_then_slots(devdir, kubelet, run_plugin):
    for i in range(3):
        devdir.add("ttyUSB%d" % i)
    run_plugin(serial(devdir, count=2))
    pl = kubelet.wait_plugin(RES)
    devs = pl.stream.wait(lambda d: len(d) == 6)
    inst = {sha1_id(j, devdir.p("ttyUSB%d" % i)): i for i in range(3) for j in range(2)}
    assert set(devs) == set(inst)
    ids = sorted(devs)
    got = pl.preferred(ids, [], 3).container_responses[0].deviceIDs
    assert sorted(inst[i] for i in got) == [0, 1, 2], "three distinct devices"
    got = pl.preferred(ids, [], 5).container_responses[0].deviceIDs
    assert len(set(got)) == 5 and sorted(inst[i] for i in got).count(2) <= 2
    must = [i for i in ids if inst[i] == 1][:1]
    got = pl.preferred(ids, must, 2).container_responses[0].deviceIDs
    assert got[0] == must[0] and inst[got[1]] != 1
    # with one slot of device 0 taken, device 0 is the least available
    taken = [i for i in ids if inst[i] == 0][0]
    avail = [i for i in ids if i != taken]
    got = pl.preferred(avail, [], 4).container_responses[0].deviceIDs
    assert sorted(inst[i] for i in got).count(0) == 1


def test_prestart_checks_nodes_again(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    run_plugin(serial(devdir), extra=["--grace-period", "60s"])
    pl = kubelet.wait_plugin(RES)
    id0 = sha1_id(0, devdir.p("ttyUSB0"))
    pl.stream.wait(lambda d: len(d) == 1)
    pl.prestart([id0])
    # Make the node vanish in a way the plugin cannot see before the call:
    # unlinked and recreated as a regular file within one instant.
    os.unlink(devdir.p("ttyUSB0"))
    with open(devdir.p("ttyUSB0"), "w"):
        pass
    with pytest.raises(grpc.RpcError) as e:
        pl.prestart([id0])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not a character or block device" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        pl.prestart(["nope"])
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_two_concurrent_streams_both_follow(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    run_plugin(serial(devdir))
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: len(d) == 1)
    second = pl.open_stream()
    try:
        second.wait(lambda d: len(d) == 1, what="first list on the second stream")
        devdir.add("ttyUSB1")
        for s in (pl.stream, second):
            s.wait(lambda d: len(d) == 2, what="ttyUSB1 on every stream")
    finally:
        second.cancel()


def test_burst_of_files_coalesces(devdir, kubelet, run_plugin):
    run_plugin(serial(devdir))
    pl = kubelet.wait_plugin(RES)
    pl.stream.wait(lambda d: d == {})
    before = pl.stream.count()
    for i in range(60):
        devdir.add("ttyUSB%d" % i)
    pl.stream.wait(lambda d: len(d) == 60, what="all 60 devices")
    sent = pl.stream.count() - before
    assert sent < 30, "60 file events gave %d lists; expected them coalesced" % sent
    for i in range(60):
        devdir.remove("ttyUSB%d" % i)
    pl.stream.wait(lambda d: all(h == "Unhealthy" for h in d.values()) and len(d) == 60)


def test_directory_created_later_is_followed(devdir, kubelet, run_plugin):
    run_plugin({"name": "snd", "groups": [{"paths": [{"path": devdir.p("snd/*")}]}]})
    pl = kubelet.wait_plugin("example.com/snd")
    pl.stream.wait(lambda d: d == {})
    devdir.add("snd/controlC0")  # creates the directory, then the node
    pl.stream.wait(lambda d: d == {sha1_id(0, devdir.p("snd/controlC0")): "Healthy"})


def test_multi_path_group_pairs_matches(devdir, kubelet, run_plugin):
    for i in range(3):
        devdir.add("video%d" % i)
    devdir.add("hidraw0")
    dev = {"name": "cam", "groups": [{"paths": [
        {"path": devdir.p("video*")}, {"path": devdir.p("hidraw*"), "limit": 2},
        {"path": devdir.p("missing*"), "optional": True}]}]}
    run_plugin(dev)
    pl = kubelet.wait_plugin("example.com/cam")
    want = {sha1_id(0, devdir.p("video%d" % i), devdir.p("hidraw0")): "Healthy" for i in range(2)}
    pl.stream.wait(lambda d: d == want, what="min(3, 1*2) = 2 pairs")


def test_old_schema_is_accepted_with_a_warning(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    devdir.add("ttyACM0")
    plugin = run_plugin({"type": "serial", "count": 2,
                         "paths": [devdir.p("ttyUSB*"), devdir.p("ttyACM*")]})
    pl = kubelet.wait_plugin(RES)
    # the IDs its versions of that schema gave: <match>-<slot>
    want = {"%s-%d" % (devdir.p(n), j): "Healthy" for n in ("ttyUSB0", "ttyACM0") for j in (0, 1)}
    pl.stream.wait(lambda d: d == want)
    plugin.wait_log(r"level=warn .*deprecated")


def test_waits_for_kubelet_then_registers(devdir, plugin_dir, run_plugin):
    devdir.add("ttyUSB0")
    plugin = run_plugin(serial(devdir))
    plugin.wait_log(r"waiting for kubelet socket")
    plugin.wait_log(r"serving resource=" + RES)
    k = Kubelet(plugin_dir).start()
    try:
        pl = k.wait_plugin(RES, timeout=2)
        pl.stream.wait(lambda d: len(d) == 1)
    finally:
        k.stop()


def test_kubelet_restart_reregisters_with_same_ids(devdir, kubelet, plugin_dir, run_plugin):
    devdir.add("ttyUSB0")
    devdir.add("fuse", 10, 229)
    run_plugin(serial(devdir), {"name": "fuse", "groups": [
        {"paths": [{"path": devdir.p("fuse")}], "count": 2}]})
    first = {}
    for res in (RES, "example.com/fuse"):
        first[res] = kubelet.wait_plugin(res).stream.wait(lambda d: len(d) >= 1)
    for round_ in range(3):
        t0 = time.monotonic()
        kubelet.restart()
        for res in (RES, "example.com/fuse"):
            pl = kubelet.wait_plugin(res, timeout=2, after=round_ + 1)
            devs = pl.stream.wait(lambda d: len(d) >= 1)
            assert devs == first[res], "same IDs after a kubelet restart"
            assert os.path.exists(os.path.join(plugin_dir, pl.endpoint))
        assert time.monotonic() - t0 < 1.0, "re-registered within a second"


def test_registration_failure_is_retried(devdir, plugin_dir, run_plugin):
    devdir.add("ttyUSB0")
    k = Kubelet(plugin_dir, reject={RES: grpc.StatusCode.INVALID_ARGUMENT}).start()
    try:
        plugin = run_plugin(serial(devdir))
        plugin.wait_log(r"registration failed resource=%s .*retry_ms=500" % RES)
        plugin.wait_log(r"registration failed resource=%s .*retry_ms=1000" % RES, timeout=3)
        k.reject = None
        pl = k.wait_plugin(RES, timeout=5)
        pl.stream.wait(lambda d: len(d) == 1)
        assert plugin.proc.poll() is None
    finally:
        k.stop()


def test_sigterm_and_sigint_stop_cleanly(devdir, kubelet, plugin_dir, run_plugin):
    devdir.add("ttyUSB0")
    for sig in (signal.SIGTERM, signal.SIGINT):
        plugin = run_plugin(serial(devdir))
        pl = kubelet.wait_plugin(RES, after=kubelet.count(RES))
        assert os.path.exists(os.path.join(plugin_dir, pl.endpoint))
        assert plugin.stop(sig) == 0
        assert sorted(os.listdir(plugin_dir)) == ["kubelet.sock"], "our sockets removed"
        plugin.check_clean()
        plugin.wait_log(r"level=info stopped")


def test_stale_socket_of_a_killed_run_is_removed(devdir, kubelet, plugin_dir, run_plugin):
    devdir.add("ttyUSB0")
    stale = os.path.join(plugin_dir, "usbdp-serial.0.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()  # a socket file nobody listens on: a killed plugin's
    plugin = run_plugin(serial(devdir))
    kubelet.wait_plugin(RES)
    plugin.wait_log(r"removing stale socket path=" + stale)


def test_version_and_help(run_plugin):
    import subprocess
    from conftest import BIN
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.strip()
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for flag in ("--device", "--config", "--domain", "--listen", "--log-level",
                 "--plugin-directory", "--version"):
        assert flag in out.stdout


@pytest.mark.parametrize("args,needle", [
    (["--device", '{"name": "Bad", "groups": [{"paths": [{"path": "/dev/x"}]}]}'],
     "--device #1: name"),
    (["--device", '{"name": "x", "groups": [{"paths": [{"path": "/dev/x"}]}]}',
      "--device", '{"name": "y", "groups": [{"usb": [{"vendor": "zz"}]}]}'],
     "--device #2: groups[0].usb[0].vendor"),
    (["--device", "{not json"], "--device #1"),
    (["--log-level", "loud", "--device",
      '{"name": "x", "groups": [{"paths": [{"path": "/dev/x"}]}]}'], "--log-level"),
    (["--no-such-flag"], "--no-such-flag"),
])
def test_bad_input_is_refused_at_start(args, needle):
    import subprocess
    from conftest import BIN
    out = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr, out.stderr


def test_node_offered_by_two_resources_is_warned_about_once(devdir, kubelet, run_plugin):
    devdir.add("ttyUSB0")
    plugin = run_plugin(serial(devdir), {"name": "any-tty", "groups": [
        {"paths": [{"path": devdir.p("tty*")}]}]})
    kubelet.wait_plugin(RES).stream.wait(lambda d: len(d) == 1)
    plugin.wait_log(r"level=warn node offered by two resources node=%s "
                    r"resources=example.com/serial,example.com/any-tty" % devdir.p("ttyUSB0"))
    devdir.add("ttyUSB1")
    plugin.wait_log(r"node offered by two resources node=%s" % devdir.p("ttyUSB1"))
    assert plugin.log().count("node=%s " % devdir.p("ttyUSB0")) == 1


def test_udev_rules_for_usb_entries_and_the_shipped_file():
    import subprocess
    from conftest import BIN, ROOT
    dev = ('{"name": "dongle", "groups": [{"usb": [{"vendor": "0403", "product": "6001", '
           '"serial": "A5*"}, {"class": "cdc-acm", "port": "1-1.*"}, '
           '{"vendor": "1a86", "serial": "bad\\"quote"}]}]}')
    out = subprocess.run([BIN, "--udev-rules", "--device", dev], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln and not ln.startswith("#")]
    tail = ', TAG+="usb-device-plugin", GROUP="plugdev", MODE="0660"'
    assert lines == [
        'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0403", '
        'ATTR{idProduct}=="6001", ATTR{serial}=="A5*"' + tail,
        'SUBSYSTEM!="usb", SUBSYSTEMS=="usb", ATTRS{idVendor}=="0403", '
        'ATTRS{idProduct}=="6001", ATTRS{serial}=="A5*"' + tail,
        'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", KERNEL=="1-1.*", '
        'ATTR{bDeviceClass}=="02"' + tail,
        'SUBSYSTEM!="usb", SUBSYSTEMS=="usb", KERNELS=="1-1.*", '
        'ATTRS{bInterfaceClass}=="02"' + tail]
    assert "# not written: a quote" in out.stdout
    shipped = subprocess.run([BIN, "--udev-rules", "--config",
                              os.path.join(ROOT, "config", "default.yaml")],
                             capture_output=True, text=True, timeout=10)
    with open(os.path.join(ROOT, "udev-rules", "70-usb-device-plugin.rules")) as f:
        assert f.read() == shipped.stdout, \
            "udev-rules/70-usb-device-plugin.rules is stale: regenerate it (see its README)"
