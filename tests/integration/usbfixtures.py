"""pytest fixtures for running the plugin inside a fake USB world
(usbworld.World, umockdev). Import them into conftest.py:

    from usbfixtures import usb_world, start_in_world  # noqa: F401

usb_world          a usbworld.World, closed after the test (skips the test
                   when umockdev's GObject introspection is not importable)
start_in_world     start_in_world(world, args, asan=None, valgrind=None, env=None)
                   -> conftest.PluginProcess of the plugin binary living in
                   the world. asan=None: detected from the binary (dynamic
                   libasan -> libasan goes first in LD_PRELOAD); valgrind=None:
                   follows UDP_WRAP as every other plugin test does (True
                   forces valgrind for this process).

The plugin needs nothing else: LD_PRELOAD + UMOCKDEV_DIR from World.env()
redirect its /sys, /dev and netlink uevent socket into the world, where the
test adds devices (world.present_at_start(...) before starting it,
world.plug(...)/unplug(...) while it runs)."""


import pytest

import usbworld


@pytest.fixture
def usb_world():
    why = usbworld.available()
    if why:
        pytest.skip(why)
    w = usbworld.World()
    yield w
    w.close()


def _conftest():
    # imported late: conftest imports this module
    import conftest
    return conftest


def start_in_world(world, args, asan=None, valgrind=None, env=None):
    """Starts the plugin (conftest.BIN) with args inside world; returns a
    conftest.PluginProcess."""
    c = _conftest()
    if asan is None:
        asan = usbworld.uses_asan(c.BIN)
    e = world.env(asan=asan, valgrind=bool(valgrind or c.WRAP))
    e.update(env or {})
    if valgrind and not c.WRAP:
        # PluginProcess prepends conftest.WRAP when it starts the process
        old = c.WRAP
        c.WRAP = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                  "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"]
        try:
            return c.PluginProcess(args, env=e)
        finally:
            c.WRAP = old
    return c.PluginProcess(args, env=e)
