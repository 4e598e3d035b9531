"""Files a user other than root put in reach of a glob (issue 12, item 3):
a planted link or file is never handed to a Pod -- not as a DeviceSpec, a
CDI device or a Mount -- and smarter-device-manager's discovery never looks
into /dev/shm or /dev/mqueue. Files are given uid 65534 with lchown: the
file system then is what it would be had that user made them."""

import json
import os
import shutil
import tempfile

import pytest

from conftest import sha1_id
from kubelet import wait_until
from test_peers import fakedev, sdm  # noqa: F401 (fixtures)

NOBODY = 65534
DOMAIN = "example.com"


@pytest.fixture
def tree(devdir):
    """A root-only directory holding a device no Pod may have (secret/disk),
    and an empty directory to share (pub) whose mode each test sets."""
    base = tempfile.mkdtemp(prefix="udp-tr-")
    os.chmod(base, 0o755)
    secret = os.path.join(base, "secret")
    os.mkdir(secret, 0o700)
    os.mknod(os.path.join(secret, "disk"), 0o600 | 0o060000, os.makedev(7, 0))
    pub = os.path.join(base, "pub")
    os.mkdir(pub)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _node(path, uid=0):
    os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))
    os.lchown(path, uid, uid)


def _plant(link, target):
    os.symlink(target, link)
    os.lchown(link, NOBODY, NOBODY)


def _device(name, *paths, kind=None):
    return json.dumps({"name": name, "groups": [{"paths": [
        dict({"path": p}, **({"type": kind} if kind else {})) for p in paths]}]})


def test_planted_link_in_a_sticky_directory_is_refused(tree, kubelet, run_plugin, tmp_path):
    """In a sticky world-writable directory (/tmp, /dev/shm), root's own
    device is offered; uid 65534's link to a root-only block device, and a
    hard link to it (anyone may make one), are refused and said once --
    neither in the list, nor in Allocate, nor in the CDI spec."""
    pub = os.path.join(tree, "pub")
    os.chmod(pub, 0o1777)
    _node(os.path.join(pub, "ttyX0"))
    _plant(os.path.join(pub, "ttyX1"), os.path.join(tree, "secret", "disk"))
    os.link(os.path.join(tree, "secret", "disk"), os.path.join(pub, "ttyX2"))
    cdi = str(tmp_path / "cdi")
    plugin = run_plugin(_device("x", os.path.join(pub, "ttyX*")),
                        extra=["--cdi", "--cdi-dir", cdi])
    pl = kubelet.wait_plugin(DOMAIN + "/x")
    good = sha1_id(0, os.path.join(pub, "ttyX0"))
    pl.stream.wait(lambda d: d == {good: "Healthy"}, what="root's device only")
    for name in ("ttyX1", "ttyX2"):
        plugin.wait_log(r"level=warn refusing a file that a user other than root could have "
                        r"put there path=\"%s\"" % os.path.join(pub, name))
    resp = pl.allocate([good]).container_responses[0]
    assert len(resp.cdi_devices) == 1, resp  # named by CDI, its spec says which files
    specs = "".join(open(os.path.join(cdi, f)).read() for f in os.listdir(cdi))
    assert "ttyX0" in specs and "ttyX1" not in specs and "ttyX2" not in specs, specs
    # a later scan (a new file) does not repeat the warning
    _node(os.path.join(pub, "ttyX3"))
    pl.stream.wait(lambda d: len(d) == 2, what="a new root device")
    assert plugin.log().count("path=\"%s\"" % os.path.join(pub, "ttyX1")) == 1


def test_directory_others_can_write_trusts_nothing(tree, kubelet, run_plugin):
    """Without the sticky bit anyone may rename root's files: nothing in a
    0777 directory is offered, root's node included."""
    pub = os.path.join(tree, "pub")
    os.chmod(pub, 0o777)
    _node(os.path.join(pub, "ttyX0"))
    plugin = run_plugin(_device("x", os.path.join(pub, "ttyX*")))
    pl = kubelet.wait_plugin(DOMAIN + "/x")
    plugin.wait_log(r"refusing a file .* path=\"%s\" why=\".*mode 0777" %
                    os.path.join(pub, "ttyX0"))
    pl.stream.wait(lambda d: d == {}, what="an empty list")


def test_wildcard_directory_through_a_planted_link(tree, kubelet, run_plugin):
    """A wildcard directory component does not follow uid 65534's link
    b0 -> a root directory of devices."""
    pub = os.path.join(tree, "pub")
    os.chmod(pub, 0o1777)
    real = os.path.join(tree, "real")
    os.mkdir(real, 0o755)
    _node(os.path.join(real, "ttyS9"))
    _plant(os.path.join(pub, "b0"), real)
    os.mkdir(os.path.join(pub, "b1"), 0o755)  # root's own directory: fine
    _node(os.path.join(pub, "b1", "ttyS9"))
    plugin = run_plugin(_device("x", os.path.join(pub, "*", "ttyS9")))
    pl = kubelet.wait_plugin(DOMAIN + "/x")
    pl.stream.wait(lambda d: d == {sha1_id(0, os.path.join(pub, "b1", "ttyS9")): "Healthy"},
                   what="only the device below root's own directory")
    plugin.wait_log(r"refusing a file .* path=\"%s\"" % os.path.join(pub, "b0", "ttyS9"))


def test_mount_group_does_not_bind_a_planted_link(tree, kubelet, run_plugin):
    """type: Mount binds a file into the container: a link uid 65534 made
    to a root-only file is not bound; root's own file is."""
    pub = os.path.join(tree, "pub")
    os.chmod(pub, 0o1777)
    mine = os.path.join(pub, "cfg0")
    with open(mine, "w") as f:
        f.write("root's\n")
    with open(os.path.join(tree, "secret", "shadow"), "w") as f:
        f.write("secret\n")
    _plant(os.path.join(pub, "cfg1"), os.path.join(tree, "secret", "shadow"))
    run_plugin(_device("cfg", os.path.join(pub, "cfg*"), kind="Mount"))
    pl = kubelet.wait_plugin(DOMAIN + "/cfg")
    good = sha1_id(0, mine)
    pl.stream.wait(lambda d: list(d) == [good], what="root's file only")
    resp = pl.allocate([good]).container_responses[0]
    assert [m.host_path for m in resp.mounts] == [mine]


def test_sdm_never_looks_into_dev_shm_or_mqueue(fakedev, kubelet, sdm):  # noqa: F811
    """smarter-device-manager's devicematch: 300 files uid 65534 made in
    /dev/shm (and one in /dev/mqueue, and in a world-writable directory
    of /dev) make no resource and do not use up the cap of derived
    resources: a ttyUSB plugged in later gets its own."""
    for name in ("shm", "mqueue", "pub"):
        os.mkdir(fakedev.p(name))
        os.chmod(fakedev.p(name), 0o1777 if name != "pub" else 0o777)
    for i in range(300):
        p = fakedev.p("shm/ttyUSB%d" % i)
        with open(p, "w"):
            pass
        os.lchown(p, NOBODY, NOBODY)
    _node(fakedev.p("mqueue/ttyUSB9"))
    _node(fakedev.p("pub/ttyUSB8"))
    plugin = sdm("- devicematch: ttyUSB[0-9]+$\n  nummaxdevices: 1\n"
                 "- devicematch: ^(shm|mqueue|pub)$\n  nummaxdevices: 1\n")
    fakedev.add("ttyUSB0")
    pl = kubelet.wait_plugin("smarter-devices/ttyUSB0")
    pl.stream.wait(lambda d: d == {"0": "Healthy"})
    names = {r.resource_name for r in kubelet.registrations}
    assert names == {"smarter-devices/ttyUSB0"}, names
    assert "shm" not in "".join(l for l in plugin.log().splitlines() if "resource added" in l)
