"""A kubelet stand-in: the kubelet's side of the device plugin API v1beta1,
spoken over real gRPC on real unix sockets (Python grpcio + Google's
protobuf runtime, so the plugin's wire format is checked by an independent
implementation).

It serves Registration on <plugin_dir>/kubelet.sock; when a plugin
registers it dials the plugin's endpoint, opens ListAndWatch and records
every list it receives, as the kubelet's device manager does. Restart
behaves like a real kubelet restart: ListAndWatch streams cancelled, every
other socket in the directory deleted, kubelet.sock recreated."""

import os
import subprocess
import sys
import threading
import time
from concurrent import futures

# The tests fork (subprocess with preexec_fn) while grpcio's threads run.
# With fork support on, gRPC's pthread_atfork handler waits for those
# threads, one of which may wait for the GIL the forking thread holds: on a
# busy machine the suite hung in fork. The stand-in never uses gRPC in a
# child, so the handlers are not wanted. Set before grpc is first imported.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import grpc  # noqa: E402

# Every wait in the tests is scaled by one factor: a busy machine, valgrind
# (UDP_WRAP) or the sanitizers make everything slower, and a wait is only an
# upper bound. UDP_SLOW overrides it.
SLOW = float(os.environ.get("UDP_SLOW") or (10.0 if os.environ.get("UDP_WRAP") else 3.0))

# The most the kubelet's gRPC client receives in one message.
KUBELET_MAX_RECEIVE = 4 * 1024 * 1024

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GEN = os.path.join(ROOT, "build", "pygen")


def load_proto(name):
    """Compiles proto/<name>.proto for Python (again when the .proto is
    newer) and imports it."""
    import importlib
    proto = os.path.join(ROOT, "proto", name + ".proto")
    out = os.path.join(GEN, name + "_pb2.py")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(proto):
        os.makedirs(GEN, exist_ok=True)
        subprocess.run(["protoc", "--python_out=" + GEN, "-I" + os.path.dirname(proto), proto],
                       check=True)
    if GEN not in sys.path:
        sys.path.insert(0, GEN)
    return importlib.import_module(name + "_pb2")


api = load_proto("deviceplugin")


def wait_until(pred, timeout, what):
    """Polls pred (a cheap in-memory check) until true; fails naming what."""
    timeout *= SLOW
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.005)


class Stream:
    """One ListAndWatch stream to a plugin, read on its own thread."""

    def __init__(self, channel, resource):
        self.resource = resource
        self.lists = []  # (monotonic time, {id: health})
        self.cond = threading.Condition()
        self.ended = None
        call = channel.unary_stream(
            "/v1beta1.DevicePlugin/ListAndWatch",
            request_serializer=api.Empty.SerializeToString,
            response_deserializer=api.ListAndWatchResponse.FromString)
        self.call = call(api.Empty())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for resp in self.call:
                devs = {d.ID: d.health for d in resp.devices}
                with self.cond:
                    self.lists.append((time.monotonic(), devs))
                    self.cond.notify_all()
        except grpc.RpcError as e:
            with self.cond:
                self.ended = e.code()
                self.cond.notify_all()
        else:
            with self.cond:
                self.ended = "end"
                self.cond.notify_all()

    def latest(self):
        with self.cond:
            return self.lists[-1][1] if self.lists else None

    def count(self):
        with self.cond:
            return len(self.lists)

    def wait(self, pred, timeout=5.0, what="a matching device list"):
        """Waits for a list for which pred(devs) is true; returns it."""
        timeout *= SLOW
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.lists and pred(self.lists[-1][1]):
                    return self.lists[-1][1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "%s: timed out after %.1fs waiting for %s; last list: %r" %
                        (self.resource, timeout, what,
                         self.lists[-1][1] if self.lists else None))
                self.cond.wait(left)

    def cancel(self):
        self.call.cancel()


class Plugin:
    """The kubelet's view of one registered plugin."""

    def __init__(self, plugin_dir, request):
        self.request = request
        self.resource = request.resource_name
        self.endpoint = request.endpoint
        # the kubelet's client receives at most 4 MiB a message (grpc-go's
        # default): a longer list must fail here as it fails there
        self.channel = grpc.insecure_channel(
            "unix:" + os.path.join(plugin_dir, request.endpoint),
            options=[("grpc.max_receive_message_length", KUBELET_MAX_RECEIVE)])
        self.stream = None

    def _unary(self, method, req_type, resp_type):
        return self.channel.unary_unary(
            "/v1beta1.DevicePlugin/" + method,
            request_serializer=req_type.SerializeToString,
            response_deserializer=resp_type.FromString)

    def open_stream(self):
        return Stream(self.channel, self.resource)

    def options(self, timeout=5):
        return self._unary("GetDevicePluginOptions", api.Empty, api.DevicePluginOptions)(
            api.Empty(), timeout=timeout)

    def allocate(self, *containers, timeout=5):
        req = api.AllocateRequest(container_requests=[
            api.ContainerAllocateRequest(devices_ids=list(ids)) for ids in containers])
        return self._unary("Allocate", api.AllocateRequest, api.AllocateResponse)(
            req, timeout=timeout)

    def preferred(self, available, must_include, size, timeout=5):
        req = api.PreferredAllocationRequest(container_requests=[
            api.ContainerPreferredAllocationRequest(
                available_deviceIDs=list(available), must_include_deviceIDs=list(must_include),
                allocation_size=size)])
        return self._unary("GetPreferredAllocation", api.PreferredAllocationRequest,
                           api.PreferredAllocationResponse)(req, timeout=timeout * SLOW)

    def prestart(self, ids, timeout=5):
        return self._unary("PreStartContainer", api.PreStartContainerRequest,
                           api.PreStartContainerResponse)(
            api.PreStartContainerRequest(devices_ids=list(ids)), timeout=timeout * SLOW)

    def close(self):
        if self.stream:
            self.stream.cancel()
        self.channel.close()


class Kubelet:
    def __init__(self, plugin_dir, reject=None):
        self.dir = plugin_dir
        self.sock = os.path.join(plugin_dir, "kubelet.sock")
        self.reject = reject  # resource name -> grpc status code to answer Register with
        self.lock = threading.Condition()
        self.registrations = []  # every RegisterRequest, in order
        self.plugins = {}  # resource -> Plugin (the newest registration)
        self.server = None

    def _register(self, request, context):
        with self.lock:
            self.registrations.append(request)
        if self.reject and request.resource_name in self.reject:
            context.abort(self.reject[request.resource_name], "rejected by the test")
        plugin = Plugin(self.dir, request)
        # The kubelet dials the endpoint and opens ListAndWatch right away.
        plugin.stream = plugin.open_stream()
        with self.lock:
            old = self.plugins.get(request.resource_name)
            self.plugins[request.resource_name] = plugin
            self.lock.notify_all()
        if old:
            old.close()
        return api.Empty()

    def start(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler("v1beta1.Registration", {
            "Register": grpc.unary_unary_rpc_method_handler(
                self._register, request_deserializer=api.RegisterRequest.FromString,
                response_serializer=api.Empty.SerializeToString)})
        self.server.add_generic_rpc_handlers((handler,))
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.server.add_insecure_port("unix:" + self.sock)
        self.server.start()
        return self

    def stop(self):
        """The kubelet goes away: streams cancelled, its socket left behind
        (as a real kubelet leaves it)."""
        with self.lock:
            plugins = list(self.plugins.values())
            self.plugins = {}
        for p in plugins:
            p.close()
        if self.server:
            self.server.stop(grace=None).wait()
            self.server = None

    def restart(self):
        """A kubelet restart as the real one does it: streams cancelled, every
        other socket in its directory deleted, kubelet.sock recreated."""
        self.stop()
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            if name != "kubelet.sock" and not name.startswith("kubelet_internal_checkpoint"):
                os.unlink(path)
        self.start()

    def wait_plugin(self, resource, timeout=5.0, after=0):
        """Waits for a registration of resource (the after-th one counts
        registrations seen so far) and returns its Plugin."""
        def ready():
            # the Plugin of the newest registration: a registration is
            # recorded before its Plugin dials, so an older one may still be
            # the one in self.plugins for a moment
            regs = [r for r in self.registrations if r.resource_name == resource]
            return (len(regs) > after and resource in self.plugins and
                    self.plugins[resource].endpoint == regs[-1].endpoint)
        timeout *= SLOW
        with self.lock:
            if not self.lock.wait_for(ready, timeout):
                raise AssertionError("timed out after %.1fs waiting for %s to register; "
                                     "registrations: %r" % (timeout, resource,
                                                            [r.resource_name for r in
                                                             self.registrations]))
            return self.plugins[resource]

    def count(self, resource):
        with self.lock:
            return len([r for r in self.registrations if r.resource_name == resource])
