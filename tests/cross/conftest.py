"""The integration tests' fixtures (tests/integration/conftest.py), for the
cross-compiled binaries: each test runs the release binary of one
architecture (build/release/ARCH/rootfs, scripts/release.sh) under
qemu-user-static with that tree as its root (-L), the way tests/integration
runs a binary under valgrind (UDP_WRAP)."""

import importlib.util
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTEGRATION = os.path.join(ROOT, "tests", "integration")
sys.path.insert(0, INTEGRATION)

_spec = importlib.util.spec_from_file_location("integration_conftest",
                                               os.path.join(INTEGRATION, "conftest.py"))
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)
# Its fixtures, as if defined here.
devdir = integration.devdir
plugin_dir = integration.plugin_dir
kubelet = integration.kubelet
start_raw = integration.start_raw
run_plugin = integration.run_plugin

QEMU = {"arm64": "qemu-aarch64-static", "armhf": "qemu-arm-static"}
# ELF e_machine of each architecture's binaries.
MACHINE = {"arm64": 183, "armhf": 40}
ARCHS = os.environ.get("CROSS_ARCHS", "arm64 armhf").split()
# qemu translates every instruction: allow the waits more time.
SLOW = 5.0


def pytest_generate_tests(metafunc):
    if "arch" in metafunc.fixturenames:
        metafunc.parametrize("arch", ARCHS)


@pytest.fixture
def cross(arch, monkeypatch):
    """Makes the integration fixtures run ARCH's release binary under qemu;
    returns (binary, rootfs)."""
    rootfs = os.path.join(ROOT, "build", "release", arch, "rootfs")
    binary = os.path.join(rootfs, "usr", "bin", "usb-device-plugin")
    if not os.path.exists(binary):
        pytest.fail("no %s: scripts/release.sh %s (make test-cross builds it)" % (binary, arch))
    qemu = shutil.which(QEMU[arch])
    if not qemu:
        pytest.fail("no %s: apt-get install qemu-user-static" % QEMU[arch])
    monkeypatch.setattr(integration, "BIN", binary)
    monkeypatch.setattr(integration, "WRAP", [qemu, "-L", rootfs])
    monkeypatch.setattr(integration, "SLOW", SLOW)
    return binary, rootfs
