"""A fake USB world for the plugin, built with umockdev (0.17.16 on Debian 12).

The test process (plain /usr/bin/python3 running pytest: NO launcher, no
LD_PRELOAD) owns a UMockdev.Testbed: a temporary directory holding a fake
/sys, /dev and the sockets through which uevents reach the processes living
in it. Those processes (the plugin, tests/integration/usbprobe.c) are started
with World.env(): LD_PRELOAD=libumockdev-preload.so.0 + UMOCKDEV_DIR, so
that their libudev (enumeration, udev monitor) and their libusb-1.0 (device
list, hotplug; Debian's libusb uses libudev) see this world instead of the
machine's.

    w = World()
    cam = w.present_at_start(uvc_camera("1-2"))     # before the process starts
    p = subprocess.Popen([...], env=dict(os.environ, **w.env()))
    ftdi = w.plug(ft232r("1-1.4"))                   # add/bind uevents, in order
    ftdi.syspath, ftdi.busnode, ftdi.ttys(), ftdi.nodes, ftdi.port
    w.unplug(ftdi); w.close()

Why no launcher for the test process: umockdev_testbed_uevent() looks the
device up with libudev *in the calling process*, so it only works when the
caller runs under the preload (umockdev-wrapper / umockdev-run); in a plain
process it prints "uevent_sender_send: No such device" and sends nothing.
Preloading pytest would leak LD_PRELOAD into every child of every test (and
an ASan-built plugin aborts when its runtime is not first in the library
list). So this module sends the uevents itself (World.uevent): byte for byte
the message umockdev's uevent_sender builds (checked against it under
umockdev-wrapper): a libudev netlink message, "libudev" header with the
MurmurHash2 subsystem/devtype hashes the receivers' socket filters test,
then ACTION, DEVPATH, SUBSYSTEM, SEQNUM and the device's sysfs `uevent`
file, to every listener socket the preload made ($UMOCKDEV_DIR/event<fd>).
Unlike umockdev's sender it waits (send_timeout) instead of aborting the
test process when a listener's queue is full (an AF_UNIX datagram queue
holds net.unix.max_dgram_qlen = 10 messages). The World also works if the
test process does run under umockdev-wrapper; umockdev-run is refused.

umockdev 0.17.16 facts this module works around or exposes:
- add_from_string()/remove_device() emit no uevents in a process that is not
  preloaded; every event here is sent explicitly, once (no duplicate "add").
  remove_device() never emits one; "remove" is sent before removing.
- A tty node made from an "N:" line is a PTY whose master fd the testbed
  keeps for ever: adding the same node name again (ttyUSB0 after a replug)
  aborts the process (assertion !dev_fd.contains). remove_device() also
  leaves /sys/dev/char/MAJ:MIN behind (it reads "dev" with its newline), and
  the next device with that number at another place aborts umockdev
  ("failed to symlink ... File exists"). World makes the /dev nodes itself
  and removes those links.
- stat() in the world turns every non-directory under the testbed's /dev
  into a character device (a block device if the file has the sticky bit),
  st_rdev from $UMOCKDEV_DIR/dev/.node/<name> (umockdev writes it from the
  "dev" attribute + DEVNAME). A node that stat()s as a regular file cannot
  be expressed: node_kind offers "dir", "block", "missing", and node_rdev a
  wrong st_rdev.
- Path redirection is by symbol interposition: stat/lstat/fstatat/statx,
  open/openat/fopen, access, readlink(at), realpath, opendir (+ readdir),
  inotify_add_watch are redirected; glob(), scandir() and nftw() are NOT
  (glibc calls its internals) and see the real /dev. A /dev path is
  redirected only if it exists in the testbed at that moment, else the real
  one is used (an inotify watch on /dev/serial/by-id set before the first
  serial device lands on the host's); World creates /dev at once.
- inotify on testbed /dev directories works: IN_CREATE / IN_DELETE arrive
  for nodes and links World makes and removes.
- At most 50 emulated /dev files may be open at once in a process in the
  world: the 51st open() aborts it ("libumockdev-preload fd_map_add():
  overflow"). Each open also talks to the testbed's ioctl thread in the test
  process.
- realpath() of a PTY-backed node (or of a link to one) overflows the
  caller's buffer ("stack smashing detected"): the preload strips the
  testbed prefix from "/dev/pts/N". Hence tty nodes are plain files unless
  World(tty_pty=True); on files tcgetattr() fails with ENOTTY.
- udev_device_get_driver() on an enumerated device reads the `driver`
  symlink in sysfs (DRIVER= in the uevent file only becomes an ordinary
  property); on a monitor event it comes from DRIVER= in the message, else
  from the symlink at the time the receiver looks (a slow receiver sees the
  "add" of an interface already bound, as on a real machine). World keeps
  both in step: bound devices have the symlink and DRIVER= in their uevent.
- There is no udev database: /run/udev is not redirected. udev's properties
  (ID_*, DEVLINKS) are written into the sysfs uevent file, where libudev
  reads them as properties on enumeration and where the sender copies them
  into events. udev_device_get_is_initialized() is 0 for enumerated devices
  (1 for monitor events), so udev_enumerate_add_match_is_initialized()
  finds nothing. World(udev_props=False) leaves ID_* out (like a host whose
  /run/udev is not readable, where only kernel properties exist).
- Every netlink uevent socket in the world gets the same udev-format
  messages: a monitor on the "kernel" group cannot be told apart from one
  on "udev" (both get ID_* properties, nodes and links already made).

Layout: one xHCI controller per bus (bus 1 at 0000:00:14.0, bus 2 at
0000:00:15.0, ...), root hubs usb1 and usb2 from the start (1d6b:0002,
devnum 1, /dev/bus/usb/00B/001), devices at their real sysfs place: port
"1-1.4" is .../usb1/1-1/1-1.4 below an external hub 1-1 (05e3:0610) that
World plugs in first (silently for present_at_start). devnum: the next free
address per bus (a replug gets a new one, as from the kernel) unless given.

Event order (the kernel's): plug = for each sysfs device, depth first:
"add" (its node already in /dev), then its children, then "bind" if it has
a driver; so each interface's "bind" follows its children and the
usb_device's "bind" comes last, e.g. for a CH340:
  add usb_device, add interface, add usb-serial port, add tty,
  bind usb-serial port, bind interface, bind usb_device
and for a CDC-ACM pair: add if0, add tty ttyACM0, bind if0, add if1, bind if1.
unplug = depth first, children in order: each device's children go first,
then its "unbind" (if bound) and "remove" (its node already gone):
  remove tty, unbind port, remove port, unbind interface, remove interface,
  unbind usb_device, remove usb_device.
World.sent lists every (action, syspath) sent, in order.
"""

import contextlib
import fcntl
import glob
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import tty as _tty
import warnings

PRELOAD = "libumockdev-preload.so.0"


def pci_slot(bus):
    """Each bus has its own xHCI controller: bus 1 at 0000:00:14.0, bus 2 at
    0000:00:15.0, ... (so that ID_PATH and by-path links differ per bus)."""
    return "0000:00:%02x.0" % (0x13 + bus)


def pci_syspath(bus):
    return "/sys/devices/pci0000:00/" + pci_slot(bus)

# Node majors: fixed by the kernel except hidraw (dynamic; 242 is typical).
MAJOR_USB = 189
MAJOR_TTYUSB = 188
MAJOR_TTYACM = 166
MAJOR_V4L = 81
MAJOR_SND = 116
MAJOR_INPUT = 13
MAJOR_HIDRAW = 242


def available():
    """None if umockdev can be used here, else the reason why not."""
    try:
        _umockdev()
    except (ImportError, ValueError) as e:
        return "umockdev GObject introspection not importable (%s); install umockdev " \
               "libumockdev-dev gir1.2-umockdev-1.0 python3-gi and run Debian's " \
               "/usr/bin/python3" % e
    return None


def _umockdev():
    import gi
    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev
    return UMockdev


# --------------------------------------------------------------------------
# uevent messages (what udevd multicasts on netlink group "udev")

def murmur2(data, seed=0):
    """MurmurHash2, 32 bit, as libudev uses it for its socket filter."""
    m = 0x5BD1E995
    n = len(data)
    h = (seed ^ n) & 0xFFFFFFFF
    i = 0
    while n - i >= 4:
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
        i += 4
    rest = n - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def udev_message(action, devpath, subsystem, devtype, seqnum, uevent_text):
    """The bytes of one libudev monitor message. devpath: without /sys."""
    props = b"".join(s.encode() + b"\0" for s in (
        "ACTION=" + action, "DEVPATH=" + devpath, "SUBSYSTEM=" + subsystem,
        "SEQNUM=%d" % seqnum))
    props += b"".join(line.encode() + b"\0" for line in uevent_text.split("\n") if line)
    header = (b"libudev\0" + struct.pack(">I", 0xFEEDCAFE) +
              struct.pack("=III", 40, 40, len(props)) +
              struct.pack(">II", murmur2(subsystem.encode()),
                          murmur2(devtype.encode()) if devtype else 0) +
              struct.pack("=II", 0, 0))
    msg = header + props
    if len(msg) > 8192:  # libudev's receive buffer; longer ones are dropped
        raise ValueError("uevent for %s too long (%d bytes)" % (devpath, len(msg)))
    return msg


# --------------------------------------------------------------------------
# the model: sysfs devices

class SysDev:
    """One sysfs device. name: path below the parent's syspath (may contain
    glue directories, e.g. "tty/ttyUSB0"). kprops: kernel uevent properties
    other than the derived ones (DEVTYPE, DRIVER, MAJOR, MINOR, DEVNAME);
    uprops: udev (database) properties. attrs: text attributes (stored with a
    trailing newline, as sysfs does; None = absent). node: name below /dev."""

    def __init__(self, name, subsystem, devtype=None, driver=None, kprops=(), uprops=(),
                 attrs=None, bin_attrs=None, node=None, majmin=None, node_kind="file",
                 links=()):
        self.name = name
        self.subsystem = subsystem
        self.devtype = devtype
        self.driver = driver
        self.kprops = list(kprops)
        self.uprops = list(uprops)
        self.attrs = dict(attrs or {})
        self.bin_attrs = dict(bin_attrs or {})
        self.node = node
        self.majmin = majmin
        self.node_kind = node_kind
        self.node_rdev = None  # what stat() reports, if not majmin
        self.links = list(links)
        self.children = []
        self.parent = None
        self.syspath = None
        self.bound = False
        self.created = False
        self.allocs = []  # (prefix, index) to give back on removal
        self.pty_master = None
        self.deferred = []  # child builders run by World.add_late_child
        self.late_driver = None  # driver bound by World.add_late_child

    def add(self, *children):
        for c in children:
            c.parent = self
            self.children.append(c)
        return self

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    @property
    def devnode(self):
        return "/dev/" + self.node if self.node else None

    def __repr__(self):
        return "<SysDev %s %s>" % (self.subsystem, self.syspath or self.name)


class Node:
    """A device node the plugin should report: devnode ("/dev/ttyUSB0"),
    subsystem, major, minor (what sysfs says), kind (how it was made),
    syspath, links (by-id/by-path symlinks, full paths)."""

    def __init__(self, sd):
        self.devnode = sd.devnode
        self.subsystem = sd.subsystem
        self.major, self.minor = sd.majmin
        self.kind = sd.node_kind
        self.syspath = sd.syspath
        self.links = ["/dev/" + link for link in sd.links]

    def __repr__(self):
        return "<Node %s %s %d:%d>" % (self.devnode, self.subsystem, self.major, self.minor)


class Iface:
    """An interface of a device's (only) configuration."""

    def __init__(self, cls, sub=0, proto=0, driver=None, endpoints=(), children=(), late=False,
                 name=None):
        self.cls, self.sub, self.proto = cls, sub, proto
        self.driver = driver
        self.endpoints = list(endpoints)  # (address, bmAttributes, wMaxPacketSize, bInterval)
        self.children = list(children)  # builders: f(world, device, iface_sysdev) -> [SysDev]
        self.late = late  # driver and children only on World.add_late_child
        self.name = name  # iInterface string


def _clean(s):
    """udev's replace_whitespace + replace_chars, as in ID_VENDOR/ID_MODEL."""
    s = re.sub(r"\s+", "_", s.strip())
    return re.sub(r"[^0-9A-Za-z#+\-.:=@_]", "_", s)


def _enc(s):
    return s.replace("\\", "\\x5c").replace(" ", "\\x20")


class Device:
    """A USB device (the usb_device and everything below it).

    Identity, valid while plugged (and kept after unplug): port ("1-1.4"),
    bus, devnum, syspath, busnode ("/dev/bus/usb/001/005"), nodes (list of
    Node, the children's device nodes in creation order), interfaces (list
    of (syspath, class, driver)), vid, pid (lowercase hex strings as in
    sysfs), serial (None = no serial attribute), id_path."""

    def __init__(self, name, vid, pid, bcd=0x0100, dev_class=(0, 0, 0), manufacturer=None,
                 product=None, serial=None, speed="12", bcd_usb=0x0200, max_power=100,
                 interfaces=(), port="1-1", devnum=None, vendor_db=None, model_db=None,
                 node_kind=None, node_rdev=None):
        self.name = name
        self.vid_n, self.pid_n, self.bcd = vid, pid, bcd
        self.dev_class = dev_class
        self.manufacturer, self.product, self.serial = manufacturer, product, serial
        self.speed, self.bcd_usb, self.max_power = speed, bcd_usb, max_power
        self.iface_specs = list(interfaces)
        self.port = port
        m = re.match(r"^(\d+)-(\d+(?:\.\d+)*)$", port)
        if not m:
            raise ValueError("port path %r: want e.g. 1-1 or 1-1.4" % port)
        self.bus = int(m.group(1))
        self.want_devnum = devnum
        self.devnum = devnum
        self.vendor_db, self.model_db = vendor_db, model_db
        self.node_kind, self.node_rdev = node_kind, node_rdev
        self.attr_over, self.prop_over = {}, {}
        self.drop_attrs, self.drop_props = set(), set()
        self.is_hub = dev_class[0] == 9
        self.tree = None
        self.plugged = False
        self.syspath = None
        self.busnode = None
        self.nodes = []
        self.interfaces = []

    # ---- malformations

    def override(self, attrs=None, props=None, drop_attrs=(), drop_props=()):
        """Replaces sysfs attributes / properties of the usb_device (after
        the catalogue made them) or drops them; returns self."""
        self.attr_over.update(attrs or {})
        self.prop_over.update(props or {})
        self.drop_attrs |= set(drop_attrs)
        self.drop_props |= set(drop_props)
        return self

    # ---- identity

    @property
    def vid(self):
        return self.attr_over.get("idVendor", "%04x" % self.vid_n)

    @property
    def pid(self):
        return self.attr_over.get("idProduct", "%04x" % self.pid_n)

    @property
    def sysname(self):
        return self.port

    @property
    def devpath(self):
        return self.port.split("-", 1)[1]

    @property
    def id_path(self):
        return "pci-%s-usb-0:%s" % (pci_slot(self.bus), self.devpath)

    @property
    def busnode_rdev(self):
        return (MAJOR_USB, (self.bus - 1) * 128 + self.devnum - 1)

    @property
    def id_vendor(self):
        return _clean(self.manufacturer) if self.manufacturer else "%04x" % self.vid_n

    @property
    def id_model(self):
        return _clean(self.product) if self.product else "%04x" % self.pid_n

    @property
    def id_serial(self):
        s = "%s_%s" % (self.id_vendor, self.id_model)
        if self.serial:
            s += "_" + _clean(self.serial)
        return s

    def ttys(self):
        return [n.devnode for n in self.nodes if n.subsystem == "tty"]

    def __repr__(self):
        return "<Device %s %s:%s port %s%s>" % (self.name, self.vid, self.pid, self.port,
                                               " devnum %s" % self.devnum if self.plugged else "")

    # ---- building the sysfs tree (World calls this when plugging)

    def descriptors(self):
        """The sysfs `descriptors` file: device descriptor + configuration."""
        body = b""
        for n, s in enumerate(self.iface_specs):
            body += struct.pack("<BBBBBBBBB", 9, 4, n, 0, len(s.endpoints), s.cls, s.sub, s.proto,
                                0)
            for addr, att, size, interval in s.endpoints:
                body += struct.pack("<BBBBHB", 7, 5, addr, att, size, interval)
        cfg = struct.pack("<BBHBBBBB", 9, 2, 9 + len(body), len(self.iface_specs), 1, 0, 0x80,
                          self.max_power // 2) + body
        strings = [1 if self.manufacturer else 0, 2 if self.product else 0,
                   3 if self.serial is not None else 0]
        dev = struct.pack("<BBHBBBBHHHBBBB", 18, 1, self.bcd_usb, self.dev_class[0],
                          self.dev_class[1], self.dev_class[2], 64, self.vid_n, self.pid_n,
                          self.bcd, strings[0], strings[1], strings[2], 1)
        return dev + cfg

    def _usb_interfaces_prop(self):
        seen = []
        for s in self.iface_specs:
            t = "%02x%02x%02x" % (s.cls, s.sub, s.proto)
            if t not in seen:
                seen.append(t)
        return ":" + ":".join(seen) + ":"

    def _common_uprops(self):
        p = [("ID_BUS", "usb"), ("ID_VENDOR", self.id_vendor),
             ("ID_VENDOR_ENC", _enc(self.manufacturer) if self.manufacturer else self.id_vendor),
             ("ID_VENDOR_ID", "%04x" % self.vid_n), ("ID_MODEL", self.id_model),
             ("ID_MODEL_ENC", _enc(self.product) if self.product else self.id_model),
             ("ID_MODEL_ID", "%04x" % self.pid_n), ("ID_REVISION", "%04x" % self.bcd),
             ("ID_SERIAL", self.id_serial)]
        if self.serial:
            p.append(("ID_SERIAL_SHORT", _clean(self.serial)))
        p.append(("ID_USB_INTERFACES", self._usb_interfaces_prop()))
        return p

    def _db_uprops(self):
        p = []
        if self.vendor_db:
            p.append(("ID_VENDOR_FROM_DATABASE", self.vendor_db))
        if self.model_db:
            p.append(("ID_MODEL_FROM_DATABASE", self.model_db))
        return p

    def build(self, world):
        """Makes the SysDev tree (allocating node names from world)."""
        d = self
        c = d.dev_class
        busnum, devnum = d.bus, d.devnum
        attrs = {
            "idVendor": "%04x" % d.vid_n, "idProduct": "%04x" % d.pid_n,
            "bcdDevice": "%04x" % d.bcd, "bDeviceClass": "%02x" % c[0],
            "bDeviceSubClass": "%02x" % c[1], "bDeviceProtocol": "%02x" % c[2],
            "bNumInterfaces": "%2d" % len(d.iface_specs), "bNumConfigurations": "1",
            "bConfigurationValue": "1", "bmAttributes": "80", "bMaxPower": "%dmA" % d.max_power,
            "bMaxPacketSize0": "64", "busnum": "%d" % busnum, "devnum": "%d" % devnum,
            "devpath": d.devpath, "speed": d.speed,
            "version": "%2x.%02x" % (d.bcd_usb >> 8, d.bcd_usb & 0xFF),
            "maxchild": "4" if d.is_hub else "0", "authorized": "1", "avoid_reset_quirk": "0",
            "removable": "removable", "quirks": "0x0", "urbnum": "12",
        }
        if d.manufacturer is not None:
            attrs["manufacturer"] = d.manufacturer
        if d.product is not None:
            attrs["product"] = d.product
        if d.serial is not None:
            attrs["serial"] = d.serial
        attrs.update(d.attr_over)
        for a in d.drop_attrs:
            attrs.pop(a, None)
        product = "%x/%x/%x" % (d.vid_n, d.pid_n, d.bcd)
        typ = "%d/%d/%d" % c
        kprops = [("PRODUCT", product), ("TYPE", typ), ("BUSNUM", "%03d" % busnum),
                  ("DEVNUM", "%03d" % devnum)]
        uprops = (d._common_uprops() + d._db_uprops() +
                  [("ID_PATH", d.id_path), ("ID_PATH_TAG", _clean(d.id_path).replace(".", "_")
                                                          .replace(":", "_"))])
        for lst in (kprops, uprops):
            lst[:] = [(k, d.prop_over.get(k, v)) for k, v in lst if k not in d.drop_props]
        known = {k for k, _ in kprops + uprops}
        uprops += [(k, v) for k, v in d.prop_over.items() if k not in known]
        root = SysDev(d.port, "usb", "usb_device", driver="usb", kprops=kprops, uprops=uprops,
                      attrs=attrs, bin_attrs={"descriptors": d.descriptors()},
                      node="bus/usb/%03d/%03d" % (busnum, devnum), majmin=d.busnode_rdev)
        root.usbdev = d
        for n, s in enumerate(d.iface_specs):
            iname = "%s:1.%d" % (d.port, n)
            ia = {"bInterfaceNumber": "%02x" % n, "bAlternateSetting": " 0",
                  "bInterfaceClass": "%02x" % s.cls, "bInterfaceSubClass": "%02x" % s.sub,
                  "bInterfaceProtocol": "%02x" % s.proto,
                  "bNumEndpoints": "%02x" % len(s.endpoints), "authorized": "1",
                  "supports_autosuspend": "1",
                  "modalias": "usb:v%04Xp%04Xd%04Xdc%02Xdsc%02Xdp%02Xic%02Xisc%02Xip%02Xin%02X" %
                              (d.vid_n, d.pid_n, d.bcd, c[0], c[1], c[2], s.cls, s.sub, s.proto,
                               n)}
            if s.name:
                ia["interface"] = s.name
            ik = [("PRODUCT", product), ("TYPE", typ),
                  ("INTERFACE", "%d/%d/%d" % (s.cls, s.sub, s.proto)),
                  ("MODALIAS", ia["modalias"])]
            iu = [("ID_PATH", d.id_path + ":1.%d" % n),
                  ("ID_PATH_TAG", _clean(d.id_path + ":1.%d" % n).replace(".", "_")
                   .replace(":", "_"))]
            isd = SysDev(iname, "usb", "usb_interface", driver=None if s.late else s.driver,
                         kprops=ik, uprops=iu, attrs=ia)
            isd.iface_number = n
            root.add(isd)
            if s.late:
                isd.late_driver = s.driver
                isd.deferred = list(s.children)
            else:
                for b in s.children:
                    isd.add(*b(world, d, isd))
        return root


# --------------------------------------------------------------------------
# children: builders f(world, device, iface_sysdev) -> [SysDev]

def _node_uprops(dev, isd, links=()):
    n = isd.iface_number
    p = dev._common_uprops() + [("ID_USB_INTERFACE_NUM", "%02d" % n)]
    if isd.driver or isd.late_driver:
        p.append(("ID_USB_DRIVER", isd.driver or isd.late_driver))
    p += dev._db_uprops()
    ip = dev.id_path + ":1.%d" % n
    p += [("ID_PATH", ip), ("ID_PATH_TAG", _clean(ip).replace(".", "_").replace(":", "_"))]
    if links:
        p.append(("DEVLINKS", " ".join("/dev/" + x for x in links)))
    return p


def usb_serial_tty(port_driver):
    """A usb-serial converter port (ch341, cp210x, ftdi_sio): the port device
    ttyUSBn on the usb-serial bus (bound to port_driver) and its tty."""

    def build(world, dev, isd):
        i = world.alloc("ttyUSB")
        name = "ttyUSB%d" % i
        links = []
        if world.udev_props:
            links = ["serial/by-id/usb-%s-if%02d-port0" % (dev.id_serial, isd.iface_number),
                     "serial/by-path/%s:1.%d-port0" % (dev.id_path, isd.iface_number)]
        port = SysDev(name, "usb-serial", driver=port_driver, attrs={"port_number": "0"})
        port.allocs.append(("ttyUSB", i))
        t = SysDev("tty/" + name, "tty", node=name, majmin=(MAJOR_TTYUSB, i), node_kind="pty",
                   uprops=_node_uprops(dev, isd, links) if world.udev_props else (), links=links)
        return [port.add(t)]
    return build


def acm_tty():
    """A CDC-ACM tty (ttyACMn) below the communication interface."""

    def build(world, dev, isd):
        i = world.alloc("ttyACM")
        name = "ttyACM%d" % i
        links = []
        if world.udev_props:
            links = ["serial/by-id/usb-%s-if%02d" % (dev.id_serial, isd.iface_number),
                     "serial/by-path/%s:1.%d" % (dev.id_path, isd.iface_number)]
        t = SysDev("tty/" + name, "tty", node=name, majmin=(MAJOR_TTYACM, i), node_kind="pty",
                   uprops=_node_uprops(dev, isd, links) if world.udev_props else (), links=links,
                   attrs={"bmCapabilities": "2"})
        t.allocs.append(("ttyACM", i))
        return [t]
    return build


def v4l_nodes(count=2):
    """UVC: video4linux videoN (capture) and videoN+1 (metadata)."""

    def build(world, dev, isd):
        out = []
        for k in range(count):
            i = world.alloc("video")
            name = "video%d" % i
            links = []
            if world.udev_props:
                links = ["v4l/by-id/usb-%s-video-index%d" % (dev.id_serial, k),
                         "v4l/by-path/%s:1.%d-video-index%d" % (dev.id_path,
                                                                 isd.iface_number, k)]
            sd = SysDev("video4linux/" + name, "video4linux", node=name, majmin=(MAJOR_V4L, i),
                        attrs={"name": dev.product or "UVC Camera (%04x:%04x)" % (dev.vid_n,
                                                                                  dev.pid_n),
                               "index": str(k), "dev_debug": "0"},
                        uprops=(_node_uprops(dev, isd, links) +
                                [("ID_V4L_CAPABILITIES", ":capture:"), ("ID_V4L_VERSION", "2")])
                        if world.udev_props else (), links=links)
            sd.allocs.append(("video", i))
            out.append(sd)
        return out
    return build


def input_button():
    """The UVC camera's snapshot button: inputN and its eventM node."""

    def build(world, dev, isd):
        i = world.alloc("input")
        e = world.alloc("event")
        inp = SysDev("input/input%d" % i, "input",
                     kprops=[("PRODUCT", "3/%x/%x/%x" % (dev.vid_n, dev.pid_n, dev.bcd)),
                             ("NAME", '"UVC Camera (%04x:%04x)"' % (dev.vid_n, dev.pid_n)),
                             ("PHYS", '"usb-%s-%s/button"' % (pci_slot(dev.bus), dev.devpath)),
                             ("EV", "3"), ("KEY", "100000 0 0 0")],
                     attrs={"name": "UVC Camera (%04x:%04x)" % (dev.vid_n, dev.pid_n)})
        inp.allocs.append(("input", i))
        ev = SysDev("event%d" % e, "input", node="input/event%d" % e,
                    majmin=(MAJOR_INPUT, 64 + e),
                    uprops=_node_uprops(dev, isd) + [("ID_INPUT", "1"), ("ID_INPUT_KEY", "1")]
                    if world.udev_props else ())
        ev.allocs.append(("event", e))
        return [inp.add(ev)]
    return build


def sound_card():
    """A USB audio card: cardN with controlCN and pcmCND0c (capture)."""

    def build(world, dev, isd):
        c = world.alloc("card", start=1)  # card0: pretend the onboard sound has it
        card = SysDev("sound/card%d" % c, "sound", attrs={"id": "U0x%xx%x" % (dev.vid_n,
                                                                              dev.pid_n),
                                                          "number": str(c)},
                      uprops=_node_uprops(dev, isd) + [("SOUND_INITIALIZED", "1")]
                      if world.udev_props else ())
        card.allocs.append(("card", c))
        up = _node_uprops(dev, isd) if world.udev_props else ()
        card.add(SysDev("controlC%d" % c, "sound", node="snd/controlC%d" % c,
                        majmin=(MAJOR_SND, c * 32), uprops=up),
                 SysDev("pcmC%dD0c" % c, "sound", node="snd/pcmC%dD0c" % c,
                        majmin=(MAJOR_SND, c * 32 + 24), uprops=up))
        return [card]
    return build


def hidraw():
    """A HID device (hid-generic) with its hidrawN node."""

    def build(world, dev, isd):
        seq = world.alloc("hid", start=1, reuse=False)
        hname = "0003:%04X:%04X.%04X" % (dev.vid_n, dev.pid_n, seq)
        h = SysDev(hname, "hid", driver="hid-generic",
                   kprops=[("HID_ID", "0003:%08X:%08X" % (dev.vid_n, dev.pid_n)),
                           ("HID_NAME", "%s %s" % (dev.manufacturer or "", dev.product or "")),
                           ("HID_PHYS", "usb-%s-%s/input%d" % (pci_slot(dev.bus), dev.devpath,
                                                               isd.iface_number)),
                           ("HID_UNIQ", dev.serial or ""),
                           ("MODALIAS", "hid:b0003g0001v%08Xp%08X" % (dev.vid_n, dev.pid_n))])
        i = world.alloc("hidraw")
        r = SysDev("hidraw/hidraw%d" % i, "hidraw", node="hidraw%d" % i,
                   majmin=(MAJOR_HIDRAW, i),
                   uprops=_node_uprops(dev, isd) if world.udev_props else ())
        r.allocs.append(("hidraw", i))
        return [h.add(r)]
    return build


# --------------------------------------------------------------------------
# the catalogue: each returns a Device (not yet in any world)

def ch340(port="1-1", devnum=None, serial=None, **kw):
    """QinHeng CH340 USB-serial (1a86:7523): no serial number, no
    manufacturer string, vendor-specific class; driver ch341 -> ttyUSBn."""
    return Device("ch340", 0x1a86, 0x7523, bcd=0x0264, dev_class=(0xff, 0, 0),
                  product="USB Serial", serial=serial, speed="12", bcd_usb=0x0110, max_power=98,
                  port=port, devnum=devnum, vendor_db="QinHeng Electronics",
                  model_db="CH340 serial converter",
                  interfaces=[Iface(0xff, 1, 2, "ch341", [(0x82, 2, 32, 0), (0x02, 2, 32, 0),
                                                          (0x81, 3, 8, 1)],
                                    [usb_serial_tty("ch341-uart")], late=kw.pop("late", False))],
                  **kw)


def cp210x(port="1-1", devnum=None, serial="0001", **kw):
    """Silicon Labs CP2102 (10c4:ea60); driver cp210x -> ttyUSBn."""
    return Device("cp210x", 0x10c4, 0xea60, bcd=0x0100, manufacturer="Silicon Labs",
                  product="CP2102 USB to UART Bridge Controller", serial=serial, speed="12",
                  bcd_usb=0x0110, port=port, devnum=devnum, vendor_db="Silicon Labs",
                  model_db="CP210x UART Bridge",
                  interfaces=[Iface(0xff, 0, 0, "cp210x", [(0x81, 2, 64, 0), (0x01, 2, 64, 0)],
                                    [usb_serial_tty("cp210x")], late=kw.pop("late", False))],
                  **kw)


def ft232r(port="1-1", devnum=None, serial="A50285BI", **kw):
    """FTDI FT232R (0403:6001); driver ftdi_sio -> ttyUSBn."""
    return Device("ft232r", 0x0403, 0x6001, bcd=0x0600, manufacturer="FTDI",
                  product="FT232R USB UART", serial=serial, speed="12", max_power=90,
                  port=port, devnum=devnum,
                  vendor_db="Future Technology Devices International, Ltd",
                  model_db="FT232 Serial (UART) IC",
                  interfaces=[Iface(0xff, 0xff, 0xff, "ftdi_sio",
                                    [(0x81, 2, 64, 0), (0x02, 2, 64, 0)],
                                    [usb_serial_tty("ftdi_sio")], late=kw.pop("late", False))],
                  **kw)


def black_magic_probe(port="1-1", devnum=None, serial="7BB180B4", **kw):
    """Black Magic Probe (1d50:6018): two CDC-ACM functions (GDB server and
    UART: interfaces 0+1 and 2+3, driver cdc_acm -> ttyACMn, ttyACMn+1) and
    a DFU interface (class fe) that no driver binds."""
    return Device("black_magic_probe", 0x1d50, 0x6018, bcd=0x0100, dev_class=(0xef, 2, 1),
                  manufacturer="Black Magic Debug", product="Black Magic Probe v1.10.2",
                  serial=serial, speed="12", port=port, devnum=devnum,
                  vendor_db="OpenMoko, Inc.", model_db="Black Magic Debug Probe (Application)",
                  interfaces=[
                      Iface(0x02, 2, 1, "cdc_acm", [(0x82, 3, 16, 255)], [acm_tty()],
                            name="Black Magic GDB Server"),
                      Iface(0x0a, 0, 0, "cdc_acm", [(0x81, 2, 64, 0), (0x01, 2, 64, 0)]),
                      Iface(0x02, 2, 1, "cdc_acm", [(0x84, 3, 16, 255)], [acm_tty()],
                            name="Black Magic UART Port"),
                      Iface(0x0a, 0, 0, "cdc_acm", [(0x83, 2, 64, 0), (0x03, 2, 64, 0)]),
                      Iface(0xfe, 1, 1, None, [], name="Black Magic DFU")], **kw)


def uvc_camera(port="1-1", devnum=None, serial="6E3D4D10", **kw):
    """Logitech C270 webcam (046d:0825), no manufacturer/product strings:
    video control + streaming (uvcvideo -> video4linux videoN, videoN+1 and
    an input eventM for the button) and audio control + streaming
    (snd-usb-audio -> sound cardN: controlCN, pcmCND0c)."""
    return Device("uvc_camera", 0x046d, 0x0825, bcd=0x0012, dev_class=(0xef, 2, 1),
                  serial=serial, speed="480", max_power=500, port=port, devnum=devnum,
                  vendor_db="Logitech, Inc.", model_db="Webcam C270",
                  interfaces=[
                      Iface(0x0e, 1, 0, "uvcvideo", [(0x87, 3, 16, 8)],
                            [v4l_nodes(2), input_button()]),
                      Iface(0x0e, 2, 0, "uvcvideo", []),
                      Iface(0x01, 1, 0, "snd-usb-audio", [], [sound_card()]),
                      Iface(0x01, 2, 0, "snd-usb-audio", [])], **kw)


def hid_board(port="1-1", devnum=None, serial="4815160", **kw):
    """Teensy RawHID (16c0:0486): one HID interface, driver usbhid -> a hid
    device bound to hid-generic -> hidrawN."""
    return Device("hid_board", 0x16c0, 0x0486, bcd=0x0100, manufacturer="Teensyduino",
                  product="Teensyduino RawHID", serial=serial, speed="12", port=port,
                  devnum=devnum, vendor_db="Van Ooijen Technische Informatica",
                  model_db="Teensyduino RawHID",
                  interfaces=[Iface(0x03, 0, 0, "usbhid", [(0x83, 3, 64, 1), (0x04, 3, 64, 1)],
                                    [hidraw()], late=kw.pop("late", False))], **kw)


def bare(port="1-1", devnum=None, serial="TEST0001", **kw):
    """pid.codes test device (1209:0001): one vendor-specific interface that
    no driver binds, so no children at all (the usb_device is bound)."""
    return Device("bare", 0x1209, 0x0001, bcd=0x0100, manufacturer="pid.codes",
                  product="Test PID", serial=serial, speed="12", port=port, devnum=devnum,
                  vendor_db="Generic", model_db="pid.codes Test PID",
                  interfaces=[Iface(0xff, 0, 0, None, [(0x81, 2, 64, 0), (0x01, 2, 64, 0)])],
                  **kw)


def hub(port="1-1", devnum=None):
    """An external 4-port hub (Genesys Logic 05e3:0610), driver hub."""
    return Device("hub", 0x05e3, 0x0610, bcd=0x9226, dev_class=(9, 0, 2),
                  manufacturer="GenesysLogic", product="USB2.1 Hub", speed="480", port=port,
                  devnum=devnum, vendor_db="Genesys Logic, Inc.", model_db="Hub",
                  interfaces=[Iface(9, 0, 0, "hub", [(0x81, 3, 1, 12)])])


CATALOGUE = {"ch340": ch340, "cp210x": cp210x, "ft232r": ft232r,
             "black_magic_probe": black_magic_probe, "uvc_camera": uvc_camera,
             "hid_board": hid_board, "bare": bare}


def malformed(kind, port="1-1", devnum=None):
    """Broken variants, each a Device:
    bad-vid       idVendor "zzzz" (sysfs attribute, ID_VENDOR_ID, PRODUCT);
                  the descriptors (what libusb reads) keep 10c4
    no-busnum     no busnum attribute, no BUSNUM property
    no-devnum     no devnum attribute, no DEVNUM property
    empty-serial  serial attribute present but empty ("\\n")
    node-dir      the tty's /dev node is a directory (stat: S_IFDIR)
    node-block    the tty's /dev node stat()s as a block device
    node-missing  the tty has DEVNAME and dev=188:n but no /dev node
    node-rdev     the tty's node stat()s with rdev 188:250, sysfs says 188:n
    no-children   an interface no driver binds (same as bare())
    A regular file is not expressible: the preload reports every non-directory
    under the testbed's /dev as a char (or block) device."""
    if kind == "bad-vid":
        return cp210x(port, devnum, serial="BADVID").override(
            attrs={"idVendor": "zzzz"}, props={"ID_VENDOR_ID": "zzzz",
                                               "PRODUCT": "zzzz/ea60/100"})
    if kind == "no-busnum":
        return cp210x(port, devnum, serial="NOBUS").override(drop_attrs=["busnum"],
                                                             drop_props=["BUSNUM"])
    if kind == "no-devnum":
        return cp210x(port, devnum, serial="NODEV").override(drop_attrs=["devnum"],
                                                             drop_props=["DEVNUM"])
    if kind == "empty-serial":
        return cp210x(port, devnum, serial="")
    if kind == "node-dir":
        return ft232r(port, devnum, serial="NODEDIR", node_kind="dir")
    if kind == "node-block":
        return ft232r(port, devnum, serial="NODEBLK", node_kind="block")
    if kind == "node-missing":
        return ft232r(port, devnum, serial="NODEMISS", node_kind="missing")
    if kind == "node-rdev":
        return ft232r(port, devnum, serial="NODERDEV", node_rdev=(MAJOR_TTYUSB, 250))
    if kind == "no-children":
        return bare(port, devnum)
    raise ValueError("unknown malformation %r" % kind)


MALFORMED = ("bad-vid", "no-busnum", "no-devnum", "empty-serial", "node-dir", "node-block",
             "node-missing", "node-rdev", "no-children")


# --------------------------------------------------------------------------
# ASan / valgrind

_asan_lib = None


def libasan_path():
    """The libasan gcc links against (absolute path)."""
    global _asan_lib
    if _asan_lib is None:
        out = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
        _asan_lib = os.path.realpath(out) if out and os.path.isabs(out) else "libasan.so.8"
    return _asan_lib


def uses_asan(binary):
    """Whether binary is dynamically linked against libasan (gcc -fsanitize=address)."""
    try:
        out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    except OSError:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return "libasan" in out


# --------------------------------------------------------------------------
# the world

def _pick_tmpdir(tmpdir):
    if tmpdir:
        return tmpdir
    if os.environ.get("USBWORLD_TMPDIR"):
        return os.environ["USBWORLD_TMPDIR"]
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return None


class World:
    """A umockdev testbed with USB devices in it.

    World(tmpdir=None, root_hubs=True, udev_props=True, tty_pty=False,
          send_timeout=10.0, buses=(1, 2))
      tmpdir      where the testbed directory goes (default: $USBWORLD_TMPDIR,
                  else /dev/shm if writable, else GLib's default, /tmp). A
                  tmpfs matters: umockdev writes each sysfs attribute with
                  g_file_set_contents, ~50x slower on this VM's ext4 /tmp.
                  Only the first World of a process chooses: GLib caches its
                  temporary directory. Keep the path short: the preload's
                  listener sockets ($dir/umockdev.XXXXXX/event<fd>) must fit
                  in sun_path (108 bytes).
      root_hubs   add usb<B> root hubs (and external hubs for dotted ports)
      buses       buses whose root hubs exist from the start (as from boot);
                  the root hub of any other bus appears silently when the
                  first device goes there (libusb then reports it ARRIVED
                  with that device: it enumerates unknown parents)
      udev_props  write udev's ID_* properties and by-id/by-path links
      send_timeout  how long World.uevent waits for a listener that does
                  not read its socket before it raises
      tty_pty     tty nodes are PTYs (World.pty(devnode) is the master end,
                  for scripted serial I/O) instead of plain files. Off by
                  default: the preload's realpath() overflows the caller's
                  buffer on them ("stack smashing detected": it strips the
                  testbed prefix from "/dev/pts/N", which has none), so any
                  realpath() of a tty node or of a by-id link kills the
                  process in the world.
    The testbed directory (<tmpdir>/umockdev.XXXXXX) is removed by close()."""

    def __init__(self, tmpdir=None, root_hubs=True, udev_props=True, tty_pty=False,
                 send_timeout=10.0, buses=(1, 2)):
        UMockdev = _umockdev()
        # in_mock_environment() caches its first answer: ask before the
        # testbed sets UMOCKDEV_DIR, so that only umockdev-run says yes
        if UMockdev.in_mock_environment():
            raise RuntimeError("usbworld must not run under umockdev-run: there "
                               "add_from_string() emits its own 'add' uevents")
        before = os.environ.get("UMOCKDEV_DIR")
        want = _pick_tmpdir(tmpdir)
        tempfile.gettempdir()  # Python's own choice is made (and cached) first
        old_tmp = os.environ.get("TMPDIR")
        if want:
            os.environ["TMPDIR"] = want
        try:
            self.tb = UMockdev.Testbed.new()
        finally:
            if want:
                if old_tmp is None:
                    del os.environ["TMPDIR"]
                else:
                    os.environ["TMPDIR"] = old_tmp
        self.root = self.tb.get_root_dir()
        # /dev must exist from the start: the preload redirects a /dev path
        # only if it exists in the testbed, so an inotify watch on /dev set
        # before the first node would land on the real /dev
        os.makedirs(self.root + "/dev/.node", exist_ok=True)
        if want and os.path.dirname(self.root) != os.path.realpath(want):
            warnings.warn("umockdev testbed in %s, not %s: GLib keeps the temporary "
                          "directory of the first testbed of a process" %
                          (os.path.dirname(self.root), want))
        # Testbed.new() setenv()s UMOCKDEV_DIR in this process; nothing here
        # needs it, and children must get it only from env()
        if before is None:
            os.unsetenv("UMOCKDEV_DIR")
        else:
            os.putenv("UMOCKDEV_DIR", before)
        self.root_hubs = root_hubs
        self.udev_props = udev_props
        self.tty_pty = tty_pty
        self.send_timeout = send_timeout
        self.seqnum = 0
        self.devices = {}  # syspath -> Device (plugged, incl. hubs)
        self.sent = []  # (action, syspath) of every uevent sent
        self._used = {}  # prefix -> set of indices
        self._next = {}  # prefix -> next index for non-reused counters
        self._next_devnum = {}  # bus -> next devnum
        self._pci = set()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.settimeout(send_timeout)
        self.closed = False
        for bus in buses:
            self._ensure_parent(Device("-", 0, 0, port="%d-1" % bus), events=False)

    # ---- lifetime

    def close(self):
        if self.closed:
            return
        self.closed = True
        for sd in self._all_sysdevs():
            if sd.pty_master is not None:
                os.close(sd.pty_master)
                sd.pty_master = None
        self._sock.close()
        self.tb = None  # the testbed's finaliser removes the directory...
        shutil.rmtree(self.root, ignore_errors=True)  # ...if it ran

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def env(self, asan=False, valgrind=False):
        """Environment variables a child needs to live in this world (merge
        them into os.environ). asan=True: the child is built with
        -fsanitize=address; libasan goes first in LD_PRELOAD (ASan insists
        on coming first; ASAN_OPTIONS=verify_asan_link_order=0 works too).
        valgrind=True: the same LD_PRELOAD works for `valgrind prog`
        (valgrind adds its own preloads in front for the guest)."""
        pre = [PRELOAD]
        if asan:
            pre.insert(0, libasan_path())
        return {"UMOCKDEV_DIR": self.root, "LD_PRELOAD": ":".join(pre)}

    # ---- allocation

    def alloc(self, prefix, start=0, reuse=True):
        """Lowest free index for a node family (ttyUSB, video, ...), as the
        kernel does; reuse=False: ever increasing (hid device ids)."""
        used = self._used.setdefault(prefix, set())
        if reuse:
            i = start
            while i in used:
                i += 1
        else:
            i = max(self._next.get(prefix, start), start)
            self._next[prefix] = i + 1
        used.add(i)
        return i

    def free(self, prefix, i):
        self._used.get(prefix, set()).discard(i)

    def _alloc_devnum(self, bus):
        used = {d.devnum for d in self.devices.values() if d.bus == bus}
        n = self._next_devnum.get(bus, 2)
        for _ in range(127):
            if n > 127:
                n = 2
            if n not in used:
                self._next_devnum[bus] = n + 1
                return n
            n += 1
        raise RuntimeError("bus %d is full (127 devices)" % bus)

    # ---- uevents

    def uevent(self, syspath, action):
        """Sends one uevent for syspath (which must exist in the testbed) to
        every process in the world listening on a udev monitor."""
        self._send(self._message(syspath, action))

    def _message(self, syspath, action, text=None):
        """The message of one uevent for syspath: its sysfs uevent file (or
        text) as it is now. Counts it in seqnum and sent."""
        base = self.root + syspath
        if text is None:
            with open(base + "/uevent") as f:
                text = f.read()
        subsystem = os.path.basename(os.readlink(base + "/subsystem"))
        m = re.search(r"^DEVTYPE=(.*)$", text, re.M)
        self.seqnum += 1
        self.sent.append((action, syspath))
        return udev_message(action, syspath[4:], subsystem, m.group(1) if m else None,
                            self.seqnum, text)

    def _send(self, msg, listeners=None):
        for path in listeners or glob.glob(self.root + "/event[0-9]*"):
            deadline = time.monotonic() + self.send_timeout
            while True:
                try:
                    self._sock.sendto(msg, path)
                    break
                except ConnectionRefusedError:
                    try:  # its process closed the socket: a stale name
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                    break
                except FileNotFoundError:
                    break
                except (BlockingIOError, socket.timeout, InterruptedError):
                    if time.monotonic() > deadline:
                        raise RuntimeError("listener %s has not read its uevents for %.0fs" %
                                           (path, self.send_timeout))
                    time.sleep(0.001)

    # ---- sysfs records

    @staticmethod
    def _attr_escape(v):
        return v.replace("\\", "\\\\").replace("\n", "\\n") + "\\n"

    def _uevent_text(self, sd, bound):
        p = []
        if sd.majmin and sd.node:
            p += [("MAJOR", str(sd.majmin[0])), ("MINOR", str(sd.majmin[1])),
                  ("DEVNAME", sd.node)]
        if sd.devtype:
            p.append(("DEVTYPE", sd.devtype))
        if bound and sd.driver:
            p.append(("DRIVER", sd.driver))
        p += sd.kprops
        if self.udev_props:
            p += sd.uprops
        drop = getattr(getattr(sd, "usbdev", None), "drop_props", ())
        return "".join("%s=%s\n" % kv for kv in p if kv[0] not in drop)

    def _driver_link(self, sd):
        depth = len(sd.syspath.split("/")) - 2  # components below /sys
        return "../" * depth + "bus/%s/drivers/%s" % (sd.subsystem, sd.driver)

    def _record(self, sd, bound):
        lines = ["P: " + sd.syspath[4:], "E: SUBSYSTEM=" + sd.subsystem]
        for line in self._uevent_text(sd, bound).splitlines():
            if line.startswith("DEVNAME="):
                line = "DEVNAME=/dev/" + line[8:]
            lines.append("E: " + line)
        attrs = dict(sd.attrs)
        if sd.majmin and sd.node:
            # with DEVNAME, "dev" makes umockdev write /dev/.node/<name> -> MAJ:MIN,
            # where the preload's stat() finds st_rdev
            attrs.setdefault("dev", "%d:%d" % sd.majmin)
        for a in getattr(getattr(sd, "usbdev", None), "drop_attrs", ()):
            attrs.pop(a, None)
        for k, v in attrs.items():
            if v is not None:
                lines.append("A: %s=%s" % (k, self._attr_escape(v)))
        for k, v in sd.bin_attrs.items():
            lines.append("H: %s=%s" % (k, v.hex().upper()))
        if bound and sd.driver:
            lines.append("L: driver=" + self._driver_link(sd))
        return "\n".join(lines) + "\n"

    def _place(self, sd, parent_syspath):
        sd.syspath = parent_syspath + "/" + sd.name
        for c in sd.children:
            self._place(c, sd.syspath)

    def _check_free(self, sd):
        for s in sd.walk():
            if os.path.exists(self.root + s.syspath + "/uevent"):
                raise ValueError("%s already exists in the world" % s.syspath)
            if s.majmin and s.node and os.path.lexists(self.root + "/dev/" + s.node):
                raise ValueError("/dev/%s already exists in the world" % s.node)

    def _make_node(self, sd):
        """Creates sd's /dev node (and udev's symlinks), before its "add"."""
        if not (sd.node and sd.majmin):
            return
        path = self.root + "/dev/" + sd.node
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kind = sd.node_kind
        if kind == "pty" and not self.tty_pty:
            kind = "file"
        if kind == "pty":
            master, slave = os.openpty()
            name = os.ttyname(slave)
            os.close(slave)
            _tty.setraw(master)
            os.symlink(name, path)
            sd.pty_master = master
            sd.pty_name = name
            mapdir = self.root + "/dev/.ptymap"
            os.makedirs(mapdir, exist_ok=True)
            os.symlink("%d:%d" % sd.majmin, mapdir + "/" + name.replace("/", "_"))
        elif kind == "file":
            open(path, "w").close()
        elif kind == "block":
            open(path, "w").close()
            os.chmod(path, 0o1644)
        elif kind == "dir":
            os.mkdir(path)
        elif kind != "missing":
            raise ValueError("node_kind %r" % kind)
        if sd.node_rdev:
            link = self.root + "/dev/.node/" + sd.node.replace("/", "_")
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink("%d:%d" % sd.node_rdev, link)
        if kind == "missing":
            return
        for link in sd.links:  # as udev: the last device to claim a link gets it
            lp = self.root + "/dev/" + link
            nl = self.root + "/dev/.node/" + link.replace("/", "_")
            os.makedirs(os.path.dirname(lp), exist_ok=True)
            for p in (lp, nl):
                if os.path.lexists(p):
                    os.unlink(p)
            os.symlink(self._link_target(sd, link), lp)
            # stat() through a link gets st_rdev from .node/<link name>
            os.symlink("%d:%d" % (sd.node_rdev or sd.majmin), nl)

    @staticmethod
    def _link_target(sd, link):
        return os.path.relpath("/dev/" + sd.node, os.path.dirname("/dev/" + link))

    def _remove_node(self, sd):
        if not (sd.node and sd.majmin):
            return
        for link in sd.links:
            lp = self.root + "/dev/" + link
            if os.path.islink(lp) and os.readlink(lp) == self._link_target(sd, link):
                os.unlink(lp)
                os.unlink(self.root + "/dev/.node/" + link.replace("/", "_"))
        path = self.root + "/dev/" + sd.node
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        elif os.path.lexists(path):
            os.unlink(path)
        if sd.pty_master is not None:
            os.close(sd.pty_master)
            sd.pty_master = None
            p = self.root + "/dev/.ptymap/" + sd.pty_name.replace("/", "_")
            if os.path.lexists(p):
                os.unlink(p)

    def _create(self, sd, bound):
        self.tb.add_from_string(self._record(sd, bound))
        sd.created = True
        sd.bound = bool(bound and sd.driver)
        if sd.bound:
            os.makedirs(self.root + "/sys/bus/%s/drivers/%s" % (sd.subsystem, sd.driver),
                        exist_ok=True)

    def _write_uevent(self, sd):
        with open(self.root + sd.syspath + "/uevent", "w") as f:
            f.write(self._uevent_text(sd, sd.bound))

    def _bind(self, sd, events=True):
        sd.bound = True
        os.makedirs(self.root + "/sys/bus/%s/drivers/%s" % (sd.subsystem, sd.driver),
                    exist_ok=True)
        os.symlink(self._driver_link(sd), self.root + sd.syspath + "/driver")
        self._write_uevent(sd)
        if events:
            self.uevent(sd.syspath, "bind")

    def _unbind(self, sd, events=True):
        sd.bound = False
        os.unlink(self.root + sd.syspath + "/driver")
        self._write_uevent(sd)
        if events:
            self.uevent(sd.syspath, "unbind")

    # ---- hubs

    def _ensure_pci(self, bus):
        slot = pci_slot(bus)
        if slot in self._pci:
            return
        self._pci.add(slot)
        self.tb.add_from_string(
            "P: /devices/pci0000:00/%s\nE: SUBSYSTEM=pci\nE: DRIVER=xhci_hcd\n"
            "E: PCI_CLASS=C0330\nE: PCI_ID=8086:A36D\nE: PCI_SUBSYS_ID=17AA:312D\n"
            "E: PCI_SLOT_NAME=%s\nE: MODALIAS=pci:v00008086d0000A36Dsv000017AA"
            "sd0000312Dbc0Csc03i30\nA: vendor=0x8086\\n\nA: device=0xa36d\\n\n"
            "A: class=0x0c0330\\n\nL: driver=../../../bus/pci/drivers/xhci_hcd\n" % (slot, slot))

    def _root_hub(self, bus):
        d = Device("root_hub", 0x1d6b, 0x0002, bcd=0x0601, dev_class=(9, 0, 1),
                   manufacturer="Linux 6.1.0 xhci-hcd", product="xHCI Host Controller",
                   serial=pci_slot(bus), speed="480", max_power=0, port="%d-0" % bus,
                   devnum=1, vendor_db="Linux Foundation", model_db="2.0 root hub",
                   interfaces=[Iface(9, 0, 0, "hub", [(0x81, 3, 4, 12)])])
        return d.override(props={"ID_PATH": "pci-" + pci_slot(bus),
                                 "ID_PATH_TAG": "pci-" + pci_slot(bus).replace(":", "_")
                                 .replace(".", "_")})

    @staticmethod
    def port_syspath(port):
        """The sysfs path of the device at a port path ("1-1.4")."""
        bus, rest = port.split("-", 1)
        parts = rest.split(".")
        cur = "%s-%s" % (bus, parts[0])
        p = "%s/usb%s/%s" % (pci_syspath(int(bus)), bus, cur)
        for x in parts[1:]:
            cur += "." + x
            p += "/" + cur
        return p

    def _ensure_parent(self, dev, events):
        """The syspath dev goes below, adding the hubs it needs: root hubs
        silently (they are there from boot), external hubs plugged like dev."""
        bus = dev.bus
        self._ensure_pci(bus)
        rh = pci_syspath(bus) + "/usb%d" % bus
        if self.root_hubs and rh not in self.devices:
            d = self._root_hub(bus)
            d.devnum = 1
            tree = d.build(self)
            tree.name = "usb%d" % bus
            tree.children[0].name = "%d-0:1.0" % bus
            self._insert(d, tree, pci_syspath(bus), events=False, settle=True)
        if "." not in dev.port:
            return rh
        if not self.root_hubs:
            return os.path.dirname(self.port_syspath(dev.port))
        parent_port = dev.port.rsplit(".", 1)[0]
        pdev = next((d for d in self.devices.values() if d.port == parent_port), None)
        if pdev is None:  # a hub plugged in before dev (silently, if dev is)
            pdev = hub(parent_port)
            self.plug(pdev, events=events)
        elif not pdev.is_hub:
            raise ValueError("port %s: %s is not a hub" % (dev.port, pdev))
        return pdev.syspath

    # ---- operations

    def _insert(self, dev, tree, parent_syspath, events, settle):
        self._place(tree, parent_syspath)
        try:
            self._check_free(tree)
        except ValueError:
            for s in tree.walk():
                for prefix, i in s.allocs:
                    self.free(prefix, i)
            dev.devnum = dev.want_devnum
            raise
        dev.tree = tree
        dev.syspath = tree.syspath
        dev.busnode = tree.devnode
        self.devices[dev.syspath] = dev
        dev.plugged = True
        # node kind / rdev malformations go to the first child node
        kids = [s for s in tree.walk() if s is not tree and s.node and s.majmin]
        if kids and dev.node_kind:
            kids[0].node_kind = dev.node_kind
        if kids and dev.node_rdev:
            kids[0].node_rdev = dev.node_rdev
        dev.nodes = [Node(s) for s in kids]
        dev.interfaces = [(s.syspath, s.attrs["bInterfaceClass"], s.driver or s.late_driver)
                          for s in tree.children]
        if not events:
            recs = []
            for s in tree.walk():
                recs.append(self._record(s, s is not tree or settle))
            self.tb.add_from_string("\n".join(recs))
            for s in tree.walk():
                s.created = True
                s.bound = bool(s.driver and (s is not tree or settle))
                if s.bound:
                    os.makedirs(self.root + "/sys/bus/%s/drivers/%s" % (s.subsystem, s.driver),
                                exist_ok=True)
                self._make_node(s)
        else:
            self._plug_sd(tree, tree, settle)

    def _plug_sd(self, sd, top, settle=True):
        self._create(sd, bound=False)
        self._make_node(sd)
        self.uevent(sd.syspath, "add")
        for c in sd.children:
            self._plug_sd(c, top)
        if sd.driver and (sd is not top or settle):
            self._bind(sd)

    def plug(self, dev, settle=True, events=True):
        """Plugs dev in: its sysfs devices and nodes appear with "add",
        "bind" uevents in the kernel's order (see the module doc).
        settle=False stops before the usb_device's final "bind" (settle()
        sends it). events=False: everything appears at once, silently
        (present_at_start)."""
        if dev.plugged:
            raise ValueError("%r is already plugged" % dev)
        if self.closed:
            raise RuntimeError("world closed")
        parent = self._ensure_parent(dev, events)
        dev.devnum = dev.want_devnum or self._alloc_devnum(dev.bus)
        tree = dev.build(self)
        self._insert(dev, tree, parent, events, settle)
        return dev

    @contextlib.contextmanager
    def losing(self, lost):
        """with world.losing(lost): the uevents sent inside for which
        lost(syspath, action) is true are not sent (what a listener whose
        socket queue overflowed misses; sysfs and /dev change as usual).
        They go to World.lost as (action, syspath)."""
        send = self.uevent

        def uevent(syspath, action):
            if lost(syspath, action):
                self.lost.append((action, syspath))
            else:
                send(syspath, action)
        self.lost = getattr(self, "lost", [])
        self.uevent = uevent  # this instance only, until the block ends
        try:
            yield self
        finally:
            del self.uevent

    def present_at_start(self, *devs):
        """Adds devices silently, bound, as if plugged before the plugin
        started. Returns the (first) device."""
        for d in devs:
            self.plug(d, events=False)
        return devs[0] if devs else None

    def settle(self, dev):
        """The usb_device's "bind" that plug(dev, settle=False) held back."""
        if dev.tree.bound:
            raise ValueError("%r is already bound" % dev)
        self._bind(dev.tree)

    def add_late_child(self, dev, child=None, iface=None):
        """A driver that loaded late: adds the deferred children of an
        interface made with late=True (or the given child builder, e.g.
        usb_serial_tty("ch341-uart")), with "add" (+ "bind" of bound
        children) uevents, then binds the interface if it was waiting for
        its driver. iface: interface number (default: the first one with
        deferred children, else 0). Returns the new Nodes."""
        ifs = dev.tree.children
        if iface is None:
            isd = next((s for s in ifs if s.deferred or s.late_driver), ifs[0])
        else:
            isd = ifs[iface]
        builders = [child] if child else isd.deferred
        if child is None:
            isd.deferred = []
        new = []
        for b in builders:
            for c in b(self, dev, isd):
                isd.add(c)
                self._place(c, isd.syspath)
                self._check_free(c)
                new.append(c)
        for c in new:
            self._plug_sd(c, None)
        if isd.late_driver and not isd.bound:
            isd.driver, isd.late_driver = isd.late_driver, None
            self._bind(isd)
        nodes = [Node(s) for c in new for s in c.walk() if s.node and s.majmin]
        dev.nodes += nodes
        dev.interfaces = [(s.syspath, s.attrs["bInterfaceClass"], s.driver or s.late_driver)
                          for s in dev.tree.children]
        return nodes

    def change(self, dev, syspath=None):
        """A "change" uevent for the usb_device (or another syspath)."""
        self.uevent(syspath or dev.syspath, "change")

    def unplug(self, dev, events=True, burst=False):
        """Unplugs dev: depth first, each device's children go, then its
        "unbind" (if bound) and "remove"; nodes vanish before "remove".
        events=False removes everything silently (a missed event).
        burst=True: as the kernel does when a hub loses power: device by
        device (those behind dev, then dev), its nodes vanish and all its
        uevents (same order) are sent back to back; the next device's go as
        soon as the listeners have read them (wait_read), so that each
        device's removal reaches them on its own, a moment before the next,
        with no Python work in between. The sysfs devices go at the end.
        burst_times: when each device's uevents started to go, then when
        the last one had gone (time.monotonic())."""
        if not dev.plugged:
            raise ValueError("%r is not plugged" % dev)
        below = [d for d in self.devices.values()
                 if d is not dev and d.syspath.startswith(dev.syspath + "/")]
        if burst and events:
            self._unplug_burst(dev, below)
            return
        for d in below:  # devices behind a hub go first
            if d.plugged:
                self.unplug(d, events)
        self._unplug_sd(dev.tree, events)
        del self.devices[dev.syspath]
        dev.plugged = False

    def _unplug_burst(self, dev, below):
        below.sort(key=lambda d: -d.syspath.count("/"))  # the deepest first
        devs = below + [dev]
        groups = []  # per device: [(sysdev, action, message)], in unplug()'s order

        def walk(sd, steps):
            for c in sd.children:
                walk(c, steps)
            if sd.bound:
                steps.append((sd, "unbind"))
            steps.append((sd, "remove"))
        for d in devs:
            steps = []
            walk(d.tree, steps)
            groups.append([(sd, a, self._message(sd.syspath, a, text=self._uevent_text(sd, False)))
                           for sd, a in steps])
        listeners = glob.glob(self.root + "/event[0-9]*")
        self.burst_times = []  # when each device's uevents started to go
        for k, group in enumerate(groups):
            if k:
                self.wait_read()
            self.burst_times.append(time.monotonic())
            for sd, action, _ in group:
                if action == "unbind":
                    sd.bound = False
                    os.unlink(self.root + sd.syspath + "/driver")
                else:
                    self._remove_node(sd)
            for _, _, msg in group:
                self._send(msg, listeners)
        self.burst_times.append(time.monotonic())  # and when the last had gone
        for group in groups:
            for sd, action, _ in group:
                if action == "remove":
                    self._forget_sd(sd)
        for d in devs:
            del self.devices[d.syspath]
            d.plugged = False

    def wait_read(self, timeout=None):
        """Waits until every listener has read every uevent sent so far (the
        bytes the kernel still charges to the sending socket, SIOCOUTQ, are
        0 once each datagram was received)."""
        deadline = time.monotonic() + (timeout or self.send_timeout)
        buf = bytearray(4)
        while True:
            fcntl.ioctl(self._sock.fileno(), termios.TIOCOUTQ, buf)
            if int.from_bytes(buf, sys.byteorder) == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("uevents sent %.0fs ago still unread" %
                                   (timeout or self.send_timeout))
            time.sleep(0.0001)

    def _forget_sd(self, sd):
        """Removes sd from the testbed (after its "remove")."""
        if sd.majmin and sd.node:
            # remove_device() leaves /sys/dev/char/MAJ:MIN behind (it reads the
            # "dev" attribute with its newline); the next device with that
            # number elsewhere would make umockdev abort on the dangling link
            link = self.root + "/sys/dev/char/%d:%d" % sd.majmin
            if os.path.islink(link) and os.readlink(link).endswith(sd.syspath[4:]):
                os.unlink(link)
        self.tb.remove_device(sd.syspath)
        sd.created = False
        for prefix, i in sd.allocs:
            self.free(prefix, i)

    def _unplug_sd(self, sd, events):
        for c in sd.children:
            self._unplug_sd(c, events)
        if sd.bound:
            self._unbind(sd, events)
        self._remove_node(sd)
        if events:
            self.uevent(sd.syspath, "remove")
        self._forget_sd(sd)

    # ---- helpers for tests

    def pty(self, devnode):
        """The master fd of a tty node ("/dev/ttyUSB0"): write = what the
        process in the world reads; read = what it wrote."""
        for sd in self._all_sysdevs():
            if sd.devnode == devnode and sd.pty_master is not None:
                return sd.pty_master
        raise KeyError(devnode)

    def _all_sysdevs(self):
        for d in self.devices.values():
            if d.tree:
                yield from d.tree.walk()

    def catalogue_devices(self):
        """Plugged devices other than hubs."""
        return [d for d in self.devices.values() if not d.is_hub]

    def path(self, p):
        """Where a /sys or /dev path of the world is on the real disk."""
        return self.root + p
