"""The rest of a node's Kubernetes world, faked for the eviction tests:

- PodResources: the kubelet's PodResources API v1 (List) on a unix socket,
  real gRPC (grpcio) with messages compiled from proto/podresources.proto;
  the test says which Pod holds which device.
- ApiServer: a Kubernetes API server stand-in on 127.0.0.1 only, HTTPS with
  a certificate from a throwaway CA made with openssl for this test, a
  bearer token checked on every request, and a service account directory
  (token, ca.crt, namespace) for the plugin. It answers GET of a Pod, POST
  of an Eviction and POST of an Event, records every request, and can be
  told to fail (a status per request) or to hang."""

import json
import os
import re
import ssl
import subprocess
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from kubelet import SLOW, load_proto


pr = load_proto("podresources")


class PodResources:
    """The kubelet's PodResources List. pods: {(namespace, name): {resource: [ids]}}."""

    def __init__(self, path):
        self.path = path
        self.pods = {}
        self.lock = threading.Lock()
        self.calls = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler("v1.PodResourcesLister", {
            "List": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=pr.ListPodResourcesRequest.FromString,
                response_serializer=pr.ListPodResourcesResponse.SerializeToString)})
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("unix:" + path)
        self.server.start()

    def hold(self, namespace, name, resource, *ids):
        with self.lock:
            self.pods.setdefault((namespace, name), {}).setdefault(resource, []).extend(ids)

    def _list(self, request, context):
        resp = pr.ListPodResourcesResponse()
        with self.lock:
            self.calls += 1
            for (ns, name), held in sorted(self.pods.items()):
                p = resp.pod_resources.add(name=name, namespace=ns)
                c = p.containers.add(name="main")
                for res, ids in held.items():
                    c.devices.add(resource_name=res, device_ids=ids)
                # a second container with nothing: the plugin must not mind
                p.containers.add(name="sidecar")
        return resp

    def stop(self):
        self.server.stop(grace=None).wait()


def make_ca(d):
    """A throwaway CA and a server certificate for 127.0.0.1, in directory d."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
        "-days", "1", "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=kubernetes")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "1", "-extfile", ext)
    return ca_crt, crt, key


class Request:
    def __init__(self, method, path, headers, body):
        self.t = time.monotonic()
        self.method = method
        self.path = path
        self.auth = headers.get("Authorization")
        self.body = json.loads(body) if body else None


class ApiServer:
    """A Kubernetes API server stand-in. Pods it knows: {(ns, name): (uid, node)};
    a Pod it does not know answers 404."""

    TOKEN = "test-token-0123456789"

    def __init__(self, tmp):
        self.sa_dir = os.path.join(tmp, "serviceaccount")
        os.makedirs(self.sa_dir)
        ca_crt, crt, key = make_ca(tmp)
        with open(os.path.join(self.sa_dir, "ca.crt"), "wb") as f, open(ca_crt, "rb") as g:
            f.write(g.read())
        with open(os.path.join(self.sa_dir, "token"), "w") as f:
            f.write(self.TOKEN + "\n")
        with open(os.path.join(self.sa_dir, "namespace"), "w") as f:
            f.write("kube-system")
        self.pods = {}
        self.requests = []
        self.cond = threading.Condition()
        self.plan = {}  # (method, kind) -> list of statuses to answer first
        self.hang = None  # (method, kind, threading.Event): hold such requests until set
        self.eviction_versions = ("policy/v1",)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, answer = api._answer(method, self.path, self.headers, body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (its timeout)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def env(self):
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def add_pod(self, ns, name, uid, node):
        self.pods[(ns, name)] = (uid, node)

    @staticmethod
    def _kind(path):
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/[^/]+/eviction", path):
            return "eviction"
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/[^/]+", path):
            return "pod"
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/events", path):
            return "event"
        return None

    def _status(self, code, reason, message):
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "reason": reason, "message": message, "code": code}

    def _answer(self, method, path, headers, body):
        req = Request(method, path, headers, body)
        kind = self._kind(path)
        with self.cond:
            self.requests.append(req)
            self.cond.notify_all()
            hang = self.hang
            planned = self.plan.get((method, kind))
            status = planned.pop(0) if planned else None
        if hang and hang[0] == method and hang[1] == kind:
            hang[2].wait(60)
        if req.auth != "Bearer " + self.TOKEN:
            return self._status(401, "Unauthorized", "bad token")
        if status:
            return self._status(status, "TooManyRequests" if status == 429 else "InternalError",
                                "planned failure %d" % status)
        parts = path.split("/")
        if kind == "pod" and method == "GET":
            pod = self.pods.get((parts[4], parts[6]))
            if not pod:
                return self._status(404, "NotFound", 'pods "%s" not found' % parts[6])
            return 200, {"kind": "Pod", "apiVersion": "v1",
                         "metadata": {"name": parts[6], "namespace": parts[4], "uid": pod[0]},
                         "spec": {"nodeName": pod[1]}}
        if kind == "eviction" and method == "POST":
            if req.body.get("apiVersion") not in self.eviction_versions:
                return self._status(400, "BadRequest", 'no kind "Eviction" is registered for '
                                    'version "%s"' % req.body.get("apiVersion"))
            if (parts[4], parts[6]) not in self.pods:
                return self._status(404, "NotFound", 'pods "%s" not found' % parts[6])
            del self.pods[(parts[4], parts[6])]
            return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
        if kind == "event" and method == "POST":
            return 201, dict(req.body, metadata=dict(req.body["metadata"], name="ev1"))
        return self._status(404, "NotFound", "the stand-in does not serve " + path)

    def of(self, method, kind):
        with self.cond:
            return [r for r in self.requests if r.method == method and self._kind(r.path) == kind]

    def evictions(self):
        """The Pods evicted with success, as (namespace, name), in order."""
        return [(r.body["metadata"]["namespace"], r.body["metadata"]["name"])
                for r in self.of("POST", "eviction")]

    def wait(self, pred, timeout, what):
        timeout *= SLOW
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise AssertionError("API server: timed out after %.1fs waiting for %s; "
                                     "requests: %r" % (timeout, what,
                                                       [(r.method, r.path) for r in
                                                        self.requests]))

    def stop(self):
        if self.hang:
            self.hang[2].set()
        self.httpd.shutdown()
        self.httpd.server_close()
