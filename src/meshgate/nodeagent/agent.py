"""The node agent of a joined node (``meshgate join`` starts it): a small kubelet.

Rules:
- It lives in its own state directory (the ``MESHGATE_HOME`` ``join`` ran with), which
  holds what joining gave it (``node/join.json``, its keys and certificates: 0600), its
  runtime manifest and logs. ``meshgate down`` there stops it like a control plane: the
  local API (Unix socket, bearer token) answers ``/v1/health``, ``/v1/status``,
  ``/v1/shutdown``, and ``/v1/exec``, ``/v1/log``, ``/v1/proxy-admin`` for its pods
  (``meshgate exec``/``logs``/``proxy-config`` in that home); with teardown it stops
  its pods, leaves (the Node is deleted) and removes its namespace, link and files.
- Every second (SYNC_PERIOD) it asks the control plane, over mTLS with its node
  certificate, for the specs of the pods placed on it; starts those it does not run (a
  spec that changed: the pod is made again), stops those no longer listed, supervises
  them (restarts, probes: ``Runtime.reconcile``), and reports each pod's status and its
  own readiness back. A pod that fails to start is tried again after START_RETRY.
- Its proxies reach xDS over mTLS TCP (``with_xds_tls``: the proxies' certificate, not
  the agent's); the control plane gave each spec the TCP address.
- Before the pods of each sync, it brings its node up to what the control plane renders
  for it (``GET /node/v1/config``, see ``server.nodeconfig``): its DNS zone (served by
  its own DNS server on its bridge address, started and kept running here), its filter
  rules (NetworkPolicy, ``egressEnforcement``) and its cluster-IP NAT, each installed in
  its own namespace only when it changed, our own chains only. A part that fails to
  install is logged and tried again at the next sync; pods still start. Right after
  starting pods it installs each gateway pod's SSRF guard in the pod's namespace (the
  control plane gives what the gateway may reach; the proxies' match is this node's).
- The control plane being away changes nothing that runs: the pods go on, the next
  report catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import secrets
import signal
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshgate.home import api_socket, pid_file, token_file
from meshgate.runtime import capture, netpolicy, podnet, servicenat, ssrfguard
from meshgate.runtime.dns import write_zone
from meshgate.runtime.nodelink import JoinedNetwork, JoinedNode
from meshgate.runtime.pods import Runtime
from meshgate.runtime.podspec import spec_from_dict
from meshgate.xds.bootstrap import with_xds_tls

log = logging.getLogger("meshgate.agent")

SYNC_PERIOD = 1.0
START_RETRY = 10.0
PROXY_CERT, PROXY_KEY, CA_FILE = "proxy.crt", "proxy.key", "ca.crt"


def node_dir(home: Path) -> Path:
    return home / "node"


class ControlPlaneRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None and key is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def call(
    url: str, method: str, path: str, ctx: ssl.SSLContext, body: Any = None, timeout: float = 10.0
) -> Any:
    """One JSON request to the control plane's node endpoint; ControlPlaneRefused on an
    error answer (its message), OSError when it cannot be reached."""
    parts = urlsplit(url)
    conn = http.client.HTTPSConnection(
        parts.hostname or "127.0.0.1", parts.port or 443, context=ctx, timeout=timeout
    )
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {"error": raw.decode(errors="replace")}
    if resp.status >= 400:
        raise ControlPlaneRefused(resp.status, str(answer.get("error") or resp.reason))
    return answer


class Agent:
    def __init__(self, home: Path) -> None:
        self.home = home
        d = node_dir(home)
        self.info: dict[str, Any] = json.loads((d / "join.json").read_text())
        self.name = str(self.info["name"])
        self.url = str(self.info["url"])
        self.ctx = tls_context(d / CA_FILE, d / "node.crt", d / "node.key")
        self.network = podnet.PodNetwork(
            cidr=self.info["podCIDR"], gateway=self._gateway(self.info["podCIDR"])
        )
        self.node = JoinedNode(home)
        self.runtime = Runtime(home, network=self.network)
        self.ready = False
        self.last_error = ""
        self.started = time.time()
        self._specs: dict[tuple[str, str], dict[str, Any]] = {}  # as last started
        self._retry: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self.teardown = False
        self.dns_upstream = f"{self.info.get('dns') or '10.34.0.1'}:53"
        self._config_version = ""
        self._config_error = ""
        self._installed: dict[str, Any] = {}  # part -> what was installed
        self._gateways: dict[str, Any] = {}  # "ns/name" -> its SSRF guard's inputs
        self._guards: dict[tuple[str, str], tuple[str, str]] = {}  # pod -> rules installed

    @staticmethod
    def _gateway(cidr: str) -> str:
        from meshgate.server.nodes import gateway_ip

        return gateway_ip(cidr)

    def node_up(self) -> None:
        link = self.info["link"]
        d = node_dir(self.home)
        self.node.up(
            JoinedNetwork(
                first_netns=self.info["firstNodeNetns"],
                first_cidr=self.info["firstNodeCIDR"],
                pod_cidr=self.network.cidr,
                gateway=self.network.gateway,
                link_first=link["first"],
                link_node=link["node"],
                link_prefix=int(link["prefixLen"]),
            ),
            {
                PROXY_CERT: (d / PROXY_CERT).read_bytes(),
                PROXY_KEY: (d / PROXY_KEY).read_bytes(),
                CA_FILE: (d / CA_FILE).read_bytes(),
            },
        )
        self.node.ensure_dns(self.network.gateway, self.dns_upstream)

    # -- the node's own DNS, filter and NAT ---------------------------------------------------

    def sync_config(self) -> None:
        self.node.ensure_dns(self.network.gateway, self.dns_upstream)
        path = "/node/v1/config?have=" + self._config_version
        body = call(self.url, "GET", path, self.ctx)
        if body.get("unchanged"):
            return
        self._gateways = dict(body.get("gateways") or {})
        ok = True
        for part, install in (
            ("zone", lambda v: write_zone(self.home, v, layer="mesh")),
            ("filter", lambda v: netpolicy.apply(self.node.netns, v)),
            ("nat", lambda v: servicenat.apply(self.node.netns, v)),
        ):
            value = body.get(part)
            if value is None or self._installed.get(part) == value:
                continue
            try:
                install(value)
            except netpolicy.BridgeFilterMissing as exc:
                log.warning("%s", exc)
            except Exception:
                log.exception("installing the node's %s failed (tried again)", part)
                ok = False
                continue
            log.info("installed the node's %s (config %s)", part, body.get("version"))
            self._installed[part] = value
        if ok:
            self._config_version = str(body.get("version") or "")

    def sync_guards(self) -> bool:
        """Each running gateway pod's SSRF guard (``runtime.ssrfguard``) from the inputs
        the control plane gave; False when one failed (tried again at the next sync)."""
        running = {(s.namespace, s.name): s for s in self.runtime.pod_states()}
        for gone in set(self._guards) - set(running):
            del self._guards[gone]
        ok = True
        match = ""
        for ref, guard in sorted(self._gateways.items()):
            ns, _, name = ref.partition("/")
            if (ns, name) not in running:
                continue
            try:
                match = match or capture.exemption(self.runtime.launcher.proxy_cgroup())[0]
                allowed = [
                    ssrfguard.Allowed(str(a[0]), int(a[1]), str(a[2])) for a in guard["allowed"]
                ]
                texts = ssrfguard.render(
                    match, allowed, enabled=bool(guard["enabled"]), dns_ip=self.network.gateway
                )
                if self._guards.get((ns, name)) == texts:
                    continue
                ssrfguard.apply(running[(ns, name)].netns, texts)
            except Exception:
                log.exception("installing the SSRF guard of gateway pod %s failed", ref)
                ok = False
                continue
            self._guards[(ns, name)] = texts
        return ok

    # -- one sync ---------------------------------------------------------------------------

    def _proxy_tls(self, spec: dict[str, Any]) -> dict[str, Any]:
        proxy = spec.get("proxy")
        if not proxy:
            return spec
        d = self.node.tls_dir
        boot = with_xds_tls(
            proxy["bootstrap"],
            str(d / PROXY_CERT),
            str(d / PROXY_KEY),
            str(d / CA_FILE),
            str(self.info["xds"]["serverName"]),
        )
        return {**spec, "proxy": {**proxy, "bootstrap": boot}}

    def sync_once(self) -> None:
        try:
            self.sync_config()
            self._config_error = ""
        except ControlPlaneRefused as exc:
            if str(exc) != self._config_error:  # once, not every second
                log.warning("node config: %s", exc)
            self._config_error = str(exc)
        listed = call(self.url, "GET", "/node/v1/pods", self.ctx)["pods"]
        wanted = {(str(s["namespace"]), str(s["name"])): s for s in listed}
        running = {(s.namespace, s.name): s for s in self.runtime.pod_states()}
        for ns_name in sorted(set(running) - set(wanted)):
            log.info("stopping pod %s/%s", *ns_name)
            self.runtime.stop_pod(*ns_name)
            self._specs.pop(ns_name, None)
        now = time.monotonic()
        failed: dict[str, dict[str, Any]] = {}
        for ns_name, raw in sorted(wanted.items()):
            if ns_name in running and self._specs.get(ns_name) == raw:
                continue
            if self._retry.get(ns_name, 0.0) > now:
                continue
            log.info("starting pod %s/%s at %s", *ns_name, raw.get("ip"))
            try:
                self.runtime.start_pod(spec_from_dict(self._proxy_tls(raw)))
            except Exception as exc:
                log.exception("pod %s/%s failed to start", *ns_name)
                self._retry[ns_name] = now + START_RETRY
                failed["/".join(ns_name)] = {
                    "phase": "Pending",
                    "reason": "StartError",
                    "message": f"{exc} (tried again in {START_RETRY:.0f}s)",
                }
                continue
            self._retry.pop(ns_name, None)
            self._specs[ns_name] = raw
            self._guards.pop(ns_name, None)  # a new sandbox: its guard goes in again
        # Right after the starts: a gateway's guard is in place before much can reach it.
        self.sync_guards()  # one that failed is tried again at the next sync
        self.runtime.reconcile()
        statuses: dict[str, Any] = dict(failed)
        for st in self.runtime.pod_states():
            if (st.namespace, st.name) in wanted:
                status = st.to_status()
                status["hostIP"] = self.network.gateway
                statuses[f"{st.namespace}/{st.name}"] = status
        call(self.url, "POST", "/node/v1/status", self.ctx, {"ready": True, "pods": statuses})
        self.ready = True
        self.last_error = ""

    def run_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except (OSError, ControlPlaneRefused) as exc:
                if str(exc) != self.last_error:
                    log.warning("control plane: %s", exc)
                self.last_error = str(exc)
            except Exception:
                log.exception("sync failed")
            self._stop.wait(SYNC_PERIOD)

    def stop(self, teardown: bool) -> None:
        self.teardown = teardown
        self._stop.set()

    def finish(self) -> None:
        """After the loop: with teardown, stop the pods, leave, remove what was made."""
        if not self.teardown:
            return
        for st in self.runtime.pod_states():
            self.runtime.stop_pod(st.namespace, st.name)
        try:
            call(self.url, "POST", "/node/v1/leave", self.ctx, {})
        except (OSError, ControlPlaneRefused) as exc:
            log.warning("leaving: %s (the Node object stays on the control plane)", exc)
        self.node.down()

    def status(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "pid": os.getpid(),
            "node": self.name,
            "ready": self.ready,
            "controlPlane": self.url,
            "podCIDR": self.network.cidr,
            "uptimeSeconds": round(time.time() - self.started, 1),
            "pods": len(self.runtime.pod_states()),
            "lastError": self.last_error or None,
        }


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


async def serve(agent: Agent) -> None:
    token = secrets.token_urlsafe(32)
    tfile = token_file(agent.home)
    fd = os.open(tfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)

    def authorized(request: Request) -> bool:
        import hmac

        got = request.headers.get("authorization", "")
        return hmac.compare_digest(got, f"Bearer {token}")

    async def health(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"ok": True, "home": str(agent.home), "node": agent.name})

    async def status(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse(await asyncio.to_thread(agent.status))

    async def pod_exec(request: Request) -> JSONResponse:
        """The argv that enters a pod of this node (`meshgate exec` in this home)."""
        from meshgate.runtime.pods import PodError

        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.json()
        try:
            argv = agent.runtime.exec_argv(
                body["namespace"],
                body["name"],
                list(body.get("command") or []),
                body.get("container") or None,
                {"TERM": str(body["term"])} if body.get("term") else None,
            )
        except PodError as exc:
            return JSONResponse({"error": str(exc), "reason": "BadRequest"}, status_code=400)
        return JSONResponse({"argv": argv})

    async def pod_log(request: Request) -> JSONResponse:
        from meshgate.runtime.pods import PodError

        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        q = request.query_params
        try:
            path = agent.runtime.log_path(
                q["namespace"],
                q["name"],
                q.get("container") or "",
                previous=q.get("previous") in ("1", "true"),
            )
        except PodError as exc:
            return JSONResponse({"error": str(exc), "reason": "BadRequest"}, status_code=400)
        return JSONResponse({"path": str(path)})

    async def proxy_admin(request: Request) -> JSONResponse:
        """A proxy's read-only admin pages (`meshgate proxy-config` in this home)."""
        from meshgate.runtime.pods import PodError, PodNotFound

        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        q = request.query_params
        try:
            body = await asyncio.to_thread(
                agent.runtime.proxy_admin, q["namespace"], q["name"], q.get("path", "/config_dump")
            )
        except PodNotFound as exc:
            return JSONResponse({"error": str(exc), "reason": "NotFound"}, status_code=404)
        except PodError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"body": body})

    done = asyncio.Event()

    async def shutdown(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.json() if await request.body() else {}
        agent.stop(bool(body.get("teardown", True)))
        done.set()
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/v1/health", health, methods=["GET"]),
            Route("/v1/status", status, methods=["GET"]),
            Route("/v1/shutdown", shutdown, methods=["POST"]),
            Route("/v1/exec", pod_exec, methods=["POST"]),
            Route("/v1/log", pod_log, methods=["GET"]),
            Route("/v1/proxy-admin", proxy_admin, methods=["GET"]),
        ]
    )
    sock = api_socket(agent.home)
    sock.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    server = _Server(uvicorn.Config(app, uds=str(sock), log_level="warning", lifespan="off"))
    loop = asyncio.get_running_loop()

    def on_signal() -> None:  # a signal stops the agent, its pods keep running
        agent.stop(False)
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await asyncio.to_thread(agent.node_up)
    worker = threading.Thread(target=agent.run_loop, name="sync", daemon=True)
    worker.start()
    api = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    os.chmod(sock, 0o600)
    log.info("node agent %s ready (home %s, control plane %s)", agent.name, agent.home, agent.url)
    await done.wait()
    await asyncio.to_thread(worker.join)
    await asyncio.to_thread(agent.finish)
    server.should_exit = True
    await api
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    tfile.unlink(missing_ok=True)


def main(home: Path) -> None:
    import fcntl

    lock_fd = os.open(home / "control-plane.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"a node agent or control plane already runs for {home}") from None
    pid_file(home).write_text(str(os.getpid()))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(Agent(home)))
    finally:
        pid_file(home).unlink(missing_ok=True)
        os.close(lock_fd)
