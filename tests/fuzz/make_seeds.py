#!/usr/bin/env python3
"""Writes the committed seed corpora in tests/fuzz/corpus/ (run from the
repository root; the files are committed, this only regenerates them):
config files from config/ and the docs' examples and the unit tests' cases,
command lines, protobuf-encoded gRPC requests (encoded by hand: no protobuf
package needed) and tiny usb.ids databases. Standard library only."""
import hashlib
import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    # Named by content, as libFuzzer names its own entries.
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


# ---- config files ----

DEV_FUSE = '{"name": "fuse", "groups": [{"paths": [{"path": "/dev/fuse"}]}]}'

CONFIG_FILES = [
    "",
    "# nothing here\n",
    "devices:\n",
    "devices: []\n",
    "domain: file.example\nlisten: \":1111\"\nlog-level: warn\nplugin-directory: /file/dir\n"
    "grace-period: 10\ndevices:\n  - name: fromfile\n    groups: [{paths: [{path: /dev/null}]}]\n",
    "devices: [{name: a, groups: [{paths: [{path: /dev/a}]}]}]\nlog-level: chatty\n",
    "domain: [a, b]\n",
    "\n\nlog_level: info\n",
    "plugins: 1\n",
    "- a\n- b\n",
    "grace-period: 5 s\n",
    "devices: {name: a}\n",
    "devices: []\ndevice: []\n",
    "device:\n  - name: one\n    groups: [{usb: [{vendor: \"1a86\"}]}]\n",
    "device:\n  - name: one\n    groups: [{usb: [{vendor: \"1a86\", x: 1}]}]\n",
    "devices:\n  - name: a\n     groups: []\n",
    "devices:\n  - name: a\n    groups: [{paths: [{path: /dev/a}]}]\n    name: b\n",
    "x: &g [{paths: [{path: /dev/a}]}]\ndevices: [{name: a, groups: *g}]\n",
    "devices: []\n---\ndevices: []\n",
    "domain: !custom x\n",
    "domain: !!str 12\nlisten: !!int 3\n",
    "domain: \"abc\n",
    "devices:\n\t- name: x\n",
    "? [a]\n: b\n",
    "a: " + "[" * 200,
    "devices:\n  - name: sdr\n    groups:\n      - usb:\n          - vendor: 0bda\n"
    "            product: 2838\n          - vendor: 0x0403\n            product: 6001\n"
    "          - vendor: \"0403\"\n            product: 1\n",
    "devices:\n  - type: fuse\n    paths: [/dev/fuse]\n",
    "devices:\n  - name: 42\n    groups:\n      - count: \"3\"\n"
    "        paths: [{path: /dev/a, optional: On, limit: \"2\"}]\n",
    "devices:\n  - name: no\n    groups: [{paths: [{path: /dev/a}]}]\n",
    "devices:\n  - name: a\n    groups: [{paths: [{path: /dev/a}]}]\n  - type: a\n"
    "    paths: [/dev/b]\n",
    "devices:\n  - name: a\n    groups: [{paths: [{path: /dev/a}]}]\n  - name: b\n"
    "    groups:\n      - count: 2\n        paths:\n          - mountPath: /x\n",
    "devices:\n  - name: A\n    groups: [{paths: [{path: /dev/a}]}]\n",
    "devices:\n  - name: snd\n    groups:\n      - count: 4\n        paths:\n"
    "          - {path: ' /dev/snd/pcm* ', mountPath: ' /dev/snd/ ', permissions: wr, "
    "limit: 2, optional: true}\n"
    "          - {path: /dev/snd/controlC0, type: Device, permissions: mr, mountPath: '  '}\n"
    "          - {path: /etc/asound.conf, type: Mount, readOnly: true, permissions: r}\n"
    "          - {path: '/dev/tty[0-9]\\\\*', type: '', permissions: r, readOnly: true}\n",
    "devices:\n  - name: usb\n    groups:\n      - usb:\n"
    "          - {class: cdc-acm}\n          - {class: \"0x0E\"}\n          - {class: HID}\n"
    "          - {vendor: 1a86, port: ' 1-1.* ', mountPath: /dev/serial/}\n"
    "          - {class: ff, vendor: \"0403\", serial: \"A5*\", product: '*'}\n",
    "devices: [{name: a, groups: [{usb: [{class: \"100\"}]}, {usb: [{vendor: xyz1}]}]}]\n",
    "devices: [{name: a, groups: [{paths: [{path: \"/a\\0b\"}]}]}]\n",
    "grace-period: 1h2m3s4ms\ndevices: [{name: a, groups: [{paths: [{path: /a}], "
    "count: 99999999999999999999}]}]\n",
    "grace-period: \"1500\\u00b5s\"\nlisten: \"[::1]:8080\"\n"
    "devices: [{name: a, groups: [{paths: [{path: /a}]}]}]\n",
    "\xef\xbb\xbf{\"devices\": []}\n",
    '{\n  "domain": "squat.ai",\n  "devices": [\n    {"name": "serial", "groups": [{"usb": '
    '[{"vendor": "1a86", "product": 7523}]}]}\n  ]\n}\n',
    '{\n  "devices": [\n    {"name": "a",}\n',
    '{"devices": [\n  {"name": "a",\n   "groups": [{"paths": [{"path": "dev/a"}]}]}\n]}\n',
    '\t{"devices": [{"name": "t", "groups": [{"paths": [{"path": '
    '"/dev/\\ud83d\\ude00"}]}]}]}\n',
    '\t{"devices": [{"name": "t"}]}\n',
    "\t" + "[" * 70 + "]" * 70 + "\n",  # tab: read by cJSON, too deep
    "[" * 70 + "]" * 70 + "\n",  # read by libyaml, too deep
    '{"devices": [' + DEV_FUSE + ', ' + DEV_FUSE + ']}',
    '[1, 2]',
    '{"a": 1, "a": 2}',
    '{"devices": [{"type": "serial", "count": 2, "paths": ["/dev/ttyUSB*", "/dev/ttyACM*"]}]}',
    # Found by fuzzing: a raw line break in a string, an escaped NUL.
    '{"devices": [{"type": 2,"paths": ["/de[\n  ","CM,*"]}]}',
    '{"devices": [{"g-\\u0000roups": []}]}',
]


# smarter-device-manager's format, virtual groups, templates, CDI settings
CONFIG_FILES += [
    "# smarter-device-manager's conf.yaml\n- devicematch: ^snd$\n  nummaxdevices: 20\n- devicematch: ^rtc0$\n  nummaxdevices: 20\n- devicematch: ^ttyUSB[0-9]*$\n  nummaxdevices: 1\n- devicematch: ^net/tun$\n  nummaxdevices: 10\n- devicematch: nvidia-gpu\n  nummaxdevices: 1\n",
    'cdi: true\ncdi-dir: /var/run/cdi\ndomain: example.com\ndevices:\n  - name: fuse\n    groups: [{paths: [{path: /dev/fuse}], count: 10}]\n',
    'domain: sim.example.com\ndevices:\n  - name: sim\n    groups:\n      - count: 2\n        virtual:\n          count: 4\n          idPrefix: sim\n          envPrefix: SIM_\n          annotationPrefix: sim.example.com/\n          deviceFilePrefix: /dev/sim\n  - name: plain\n    groups:\n      - virtual: {}\n',
    'devices:\n  - name: serial\n    groups:\n      - usb: [{vendor: "1a86", product: "7523"}]\n        env:\n          SERIAL_{index}_TTY: "{tty}"\n          SERIAL_{index}_ID: "{vendor}:{product} {serial}"\n        annotations:\n          example.com/serial-{index}: "{id}@{port}"\n      - paths: [{path: /dev/ttyACM*}]\n        count: 2\n        env:\n          ACM_{index}: "{host[0]} -> {container}"\n          LITERAL: "{{not a placeholder}}"\n          RESOURCE: "{resource}/{slot}"\n        annotations:\n          example.com/acm: "{hosts};{containers}"\n',
]


def docs_blocks():
    """The yaml and json code blocks of docs/config-reference.md."""
    with open(os.path.join(ROOT, "docs", "config-reference.md")) as f:
        text = f.read()
    return re.findall(r"```(?:yaml|json)\n(.*?)```", text, re.S)


def config_file_seeds():
    t = "fuzz_config_file"
    shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
    with open(os.path.join(ROOT, "config", "default.yaml"), "rb") as f:
        write(t, f.read())
    for block in docs_blocks():
        write(t, block)
    for doc in CONFIG_FILES:
        write(t, doc)


# ---- command lines ----

def usb_dev(entry):
    return '{"name": "a", "groups": [{"usb": [' + entry + ']}]}'


def path_dev(entry):
    return '{"name": "a", "groups": [{"paths": [' + entry + ']}]}'


DEVICES = [
    DEV_FUSE,
    '{"name": "serial", "groups": [{"usb": [{"vendor": "1a86", "product": "7523"}]}]}',
    "{name: serial, groups: [{usb: [{vendor: 1a86, product: 7523}]}, "
    "{paths: [{path: /dev/ttyUSB*, mountPath: /dev/serial/, optional: yes}]}]}",
    '{"name": "serial", "groups": [{"usb": [{"vendor": "1a86"}]}]',
    '{"name": "x", "groups": [1, 2,, ]}',
    "serial",
    '{"name": "a",\n "groups": [}',
    '{name: "a", "groups": [}',
    '{"name": "a}',
    '{"name": 1,  , "x": [}',
    "[1,2x]",
    "{} x",
    '{"name": "a", "name": "b"}',
    "null",
    "[" * 200,
    "[" * 70 + "]" * 70,  # well-formed, too deep
    '{"a": ' * 70 + "1" + "}" * 70,
    '{"type": "serial", "count": 2, "paths": ["/dev/ttyUSB*", " /dev/ttyACM* "]}',
    '{"type": "a", "name": "a", "paths": ["/a"]}',
    '{"type": "a", "paths": [{"path": "/a"}]}',
    '{"name": "a", "groups": [{"paths": [{"path": "/a"}], "usb": [{"vendor": "1"}]}]}',
    '{"name": "a", "groups": [{"paths": [{"path": "/a"}], "count": 10001}]}',
    '{"name": "a", "groups": [{"count": 1.5, "usb": [{"vendor": "1"}]}]}',
    '{"name": "a", "colour": 1, "groups": []}',
    '{"name": "a", "groups": [{"paths": [{"path": "/dev/a", "mountpath": "/b"}]}]}',
    '{"name": "a", "groups": [{"vendor": "1a86"}]}',
    '{"name": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "groups": []}',
    "{name: a, groups: [{paths: [{path: \"/a\\0b\"}]}]}",
    path_dev('{"path": " /dev/snd/pcm* ", "mountPath": " /dev/snd/ ", "permissions": "wr", '
             '"limit": 2, "optional": true}, {"path": "/etc/asound.conf", "type": "Mount", '
             '"readOnly": true, "permissions": "r"}'),
    path_dev('{"path": "/dev/tty[0-"}'),
    path_dev('{"path": "/dev/tty[^0-9]\\\\*?", "permissions": "rr"}'),
    usb_dev('{"vendor": "0x1A86", "product": "7523"}, {"vendor": "10C4", "product": "*", '
            '"serial": "0001*"}, {"vendor": 403, "product": 6001, "serial": ""}, '
            '{"product": "0X0F", "vendor": null}, {"serial": "ABC"}'),
    usb_dev('{"class": "cdc-acm"}, {"class": "0x0E"}, {"vendor": "1a86", "port": " 1-1.* ", '
            '"mountPath": "/dev/serial/"}, {"class": "ff", "vendor": "0403"}'),
    usb_dev('{"vendor": -1}, {}'),
    path_dev('{"path": "/dev/a\n  b"}'),
    path_dev('{"path": "/dev/a\\u0000b"}'),
]

COMMAND_LINES = [
    ["--device", DEV_FUSE],
    ["--domain", "squat.ai", "--listen=127.0.0.1:9090", "--log-level", "debug",
     "--plugin-directory=/tmp/plugins", "--grace-period", "1m30s", "--device", DEV_FUSE],
    ["--plugin-directory", "/a/", "--plugin-directory", "/b/", "--device=" + DEV_FUSE],
    ["--grace-period", "1h2m3s4ms", "--device", DEV_FUSE],
    ["--grace-period=-1s", "--device", DEV_FUSE],
    ["--grace-period", "99999999999999999999s", "--device", DEV_FUSE],
    ["--grace-period", "1500\u00b5s", "--device", DEV_FUSE],
    ["--bogus", "--device", DEV_FUSE],
    ["--log_level=info", "--device", DEV_FUSE],
    ["-device", DEV_FUSE],
    ["--device", DEV_FUSE, "--domain"],
    ["--domain", "--device", DEV_FUSE],
    ["--device", DEV_FUSE, "--", "--x"],
    ["--version=maybe"],
    ["--version"],
    ["--bogus", "--help", "--log-level", "nope"],
    ["-h"],
    ["list", "--log-level=debug"],
    ["--list=true", "--domain", "my-org.example.com"],
    ["--listen", "[::1]:8080", "--device", DEV_FUSE],
    ["--listen", "::1:80", "--device", DEV_FUSE],
    ["--domain", "kubernetes.io", "--device", DEV_FUSE],
    ["--domain", "a" * 300, "--device", DEV_FUSE],
    ["--config=", "--device", DEV_FUSE],
    ["--device", DEV_FUSE, "--device",
     '{"name": "b", "groups": [{"paths": [{"path": "/b"}]}]}', "--device",
     '{"name": " fuse", "groups": [{"paths": [{"path": "/b"}]}]}'],
]


def config_flags_seeds():
    t = "fuzz_config_flags"
    shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
    for argv in COMMAND_LINES:
        write(t, "\0".join(argv).encode("utf-8", "surrogateescape"))
    # Device mode: a control character, then NUL-separated --device values.
    for dev in DEVICES:
        write(t, "\x01" + dev)
    write(t, "\x01" + DEV_FUSE + "\0" + DEVICES[1] + "\0" + DEV_FUSE)


# ---- gRPC requests (proto/deviceplugin.proto) ----

def varint(n):
    n &= (1 << 64) - 1  # negative int32: ten bytes, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_len(num, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def strings(num, items):
    return b"".join(field_len(num, s) for s in items)


def allocate(*containers):
    return b"".join(field_len(1, strings(1, ids)) for ids in containers)


def preferred(*containers):
    out = b""
    for avail, must, size in containers:
        c = strings(1, avail) + strings(2, must)
        if size is not None:
            c += field_varint(3, size)
        out += field_len(1, c)
    return out


SHA_ID = "0f4e7c0b6c1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e"  # as in fuzz_requests.c
ALL_IDS = ["a-0", "a-1", "b-0", "b-1", "b-2", "c-0", SHA_ID, "u-0", "g-0"]


def requests_seeds():
    t = "fuzz_requests"
    shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
    write(t, b"")
    write(t, allocate(["a-0"]))
    write(t, allocate(["b-1", "a-0", "b-0"], ["c-0"]))
    write(t, allocate(["a-0", "a-1", "c-0", SHA_ID]))
    write(t, allocate(["a-0", "zzz"]))
    write(t, allocate(["u-0"]))
    write(t, allocate(["g-0"]))
    write(t, allocate([]))
    write(t, allocate(["b-0"], [], ["b-2"]))
    write(t, preferred((ALL_IDS, [], 3)))
    write(t, preferred((["a-0", "a-1", "b-0", "b-1", "b-2", "c-0"], ["b-0"], 4)))
    write(t, preferred((["a-0", "a-0", "x"], ["x", "x"], 2), ([], [], 0)))
    write(t, preferred((ALL_IDS, ALL_IDS, 100)))
    write(t, preferred((["b-0", "b-1"], [], -1)))
    write(t, preferred((["b-0"], [], None)))
    write(t, strings(1, ["a-0", "b-2"]))  # PreStartContainerRequest
    write(t, strings(1, ["u-0"]))
    write(t, strings(1, ["nope"]))
    options = field_varint(1, 1) + field_varint(2, 1)
    write(t, field_len(1, "v1beta1") + field_len(2, "usb-device-plugin-serial.sock") +
          field_len(3, "usb-device-plugin.dev/serial") + field_len(4, options))
    write(t, field_varint(15, 1) + field_len(99, "unknown"))  # unknown fields


# ---- usb.ids ----

USBIDS = [
    "0001  Fry's Electronics\n\t7778  Counterfeit flash drive [Kingston]\n",
    "# comment\n\n0403  Future Technology Devices International, Ltd\n"
    "\t6001  FT232 Serial (UART) IC\n\t6015  Bridge(I2C/SPI/UART/FIFO)\n"
    "1a86  QinHeng Electronics\n\t5523  CH341 in serial mode\n"
    "\t7523  CH340 serial converter\n\t\t00  interface\n"
    "\nC 02  Communications\n\t01  Direct Line\n\t02  Abstract (modem)\n\t\t00  None\n"
    "C 03  Human Interface Device\nC ff  Vendor Specific Class\n",
    "1a86  QinHeng\r\n\t7523  CH340\r\n# c\r\n\r\n\t7522  CH340 later\r\nC 02  Comm\r\n",
    "ffff  Last\n\tffff  Last product\n0000  First\n\t0000  zero\n1a86  Dup\n1a86  Again\n",
    "1a86  Long " + "x" * 600 + "\n\t7523  " + "\xc3\xa9" * 300 + "\n",
    "1a86\tTabbed\n\t7523\tTabbed product\nC 0x  bad\n1A86  Upper\nzzzz  no\n",
    "1a86  Name\n\t7523  Product\n\n===\n1a86  Replaced\n\t7523  Other\n",
    "1a86  Name\n\t7523  Product\n\n===\n1a86  EmaN\n\t7523  Tcudorp\n",
    "C 02  Only a class",
    "1a86  \x01\x7f control",
]


def usbids_seeds():
    t = "fuzz_usbids"
    shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
    for db in USBIDS:
        write(t, db.encode("utf-8"))
    # The real file's first vendors and the classes, cut small.
    with open(os.path.join(ROOT, "usbids", "usb.ids"), "rb") as f:
        lines = f.read().split(b"\n")
    start = next(i for i, l in enumerate(lines) if l.startswith(b"1a86  "))
    cls = next(i for i, l in enumerate(lines) if l.startswith(b"C 02  "))
    write(t, b"\n".join(lines[:60]) + b"\n")
    write(t, b"\n".join(lines[start:start + 40] + lines[cls:cls + 30]) + b"\n")


# ---- path groups (see fuzz_paths.c for the format and the tree) ----

def opts(optional=False, mount=False, read_only=False, mount_path=0, limit=1):
    o = optional | mount << 1 | read_only << 2 | mount_path << 3 | (limit - 1) << 5
    return bytes([o or 0x80])  # never 0: a NUL separates entries


def group(count_index, *entries):
    return bytes([count_index]) + b"\0".join(o + g for o, g in entries)


def paths_seeds():
    t = "fuzz_paths"
    shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
    o = opts()
    write(t, group(0, (o, b"a")))
    write(t, group(1, (o, b"tty*")))
    write(t, group(2 | 4, (opts(mount_path=1), b"tty[0-9]*"), (opts(limit=4), b"a")))
    write(t, group(3, (opts(optional=True), b"nothing*"), (o, b"d/*")))
    write(t, group(0, (opts(mount=True, read_only=True, mount_path=2), b"*/*")))
    write(t, group(0, (o, b"bus/usb/*/*")))
    write(t, group(0, (o, b"link/sub/?")))
    write(t, group(0, (o, b"[^a-c]*"), (o, b"\\[x]"), (o, b"\\*")))
    write(t, group(0, (o, "[\u00e0-\u00ff]".encode()), (o, "?".encode())))
    write(t, group(0, (o, b"d/.h"), (o, b".hid*"), (o, b"*hidden")))
    write(t, group(0, (o, b"tty[0-"), (o, b"x\\")))  # malformed
    write(t, group(0, (o, b"[]a]"), (o, b"[a-]"), (o, b"[\xff]")))
    write(t, group(0, (o, b"back\\\\slash"), (o, b"q\\?"), (o, b"dangling")))
    write(t, group(0, (opts(mount_path=3), b"./d//sub/./z")))


if __name__ == "__main__":
    paths_seeds()
    config_file_seeds()
    config_flags_seeds()
    requests_seeds()
    usbids_seeds()
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))))
