"""The control-plane process: wires store, reconciler, runtime, DNS, xDS and the HTTP API.

Rules:
- One process per state directory, enforced by an exclusive lock file; a second ``up``
  finds the first one healthy and returns.
- Change flow is one-way: store change -> kick -> reconcile pass (in a thread) ->
  snapshot -> DNS zone -> debounced xDS push. A periodic pass (1 s; 0.2 s while a container
  started in the last 10 s is not ready yet; 2 s once five passes in a row found nothing
  for the controllers) also restarts dead containers and refreshes pod status, and a
  container's exit starts a pass at once (``exitwatch``), so a dead proxy is restarted,
  and leaves its Service, without delay. What the timer alone brings (a restart whose
  back-off ended, a readiness probe's next period, 10 s by default) can afford the 2 s.
  At rest a pass runs the runtime's supervision alone (no controller, no store listing:
  see ``reconcile``) in one worker-thread hop, so an idle control plane costs well under
  1% of a core at 100 pods whatever the store holds.
- A proxy whose pod is gone leaves ``proxy-status`` in the pass after its stream closes; a
  closed stream of a pod that still exists stays listed (DISCONNECTED) while it restarts.
- A push is requested only when what a proxy would receive can have changed: a new
  snapshot (the store changed: config, pods, endpoints, pod status), a CA rotation, or a
  certificate reaching its renewal time (``MeshCA.next_change``). A pass that changes
  nothing requests nothing, so an idle mesh translates and sends nothing.
- Pods and proxies survive a control-plane restart: the runtime re-adopts them from its
  manifest, and proxies keep their last config until the xDS stream is back.
- At start, before the first pass, stored ownerReferences without a uid (older state
  directories) are given their owner's uid, or logged as owned by nothing that exists.
- Replicas (``--store etcd://...``, docs/replicas.md): the control plane joins the mesh
  etcd names (``replicas``), serves xDS on its slot's socket in the node owner's runtime
  directory, and campaigns for leadership (``leader``); controllers run only while it
  leads. Only the node owner runs the node and its pods; a replica without the node
  neither starts nor heals any process, and its ``down`` stops itself alone (the mesh's
  pods and the other replicas keep running). With SQLite it is the one control plane of
  its state directory and always leads, as before.
- The control plane's other jobs live beside this module, one each (each states its
  rules): ``xdslisten`` (the xDS socket), ``xdsgen`` (what each proxy is sent),
  ``joinednodes`` (the own Node, mTLS xDS for joined nodes), ``nodeheal`` (the node's
  processes), ``report`` (status); they are ``ControlPlane``'s mixins.
- Shutdown with ``teardown`` stops every pod and removes every namespace, link, file and
  process the mesh made; without it (e.g. SIGTERM for an upgrade) they keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import logging
import os
import secrets
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn

from meshgate.api.defaults import fresh_mesh_objects
from meshgate.api.meta import ResourceKey
from meshgate.console.server import ConsoleServer
from meshgate.home import api_socket, pid_file, run_dir, token_file
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.runtime import procs, uplink
from meshgate.runtime.dns import write_zone
from meshgate.runtime.names import xds_socket
from meshgate.runtime.node import Node
from meshgate.runtime.pods import ContainerNotFound, ContainerNotRunning, PodNotFound, Runtime
from meshgate.runtime.world import World, load_world
from meshgate.security import proxy_credentials
from meshgate.security.ca import MeshCA
from meshgate.server import joinapi
from meshgate.server import nodes as nodes_mod
from meshgate.server.api import build_app
from meshgate.server.exitwatch import ExitWatch
from meshgate.server.joinednodes import JoinedNodes
from meshgate.server.membership import Membership, etcd_config, found_or_join
from meshgate.server.nodeheal import NodeHeal
from meshgate.server.reconcile import Reconciler
from meshgate.server.replicas import Mesh
from meshgate.server.report import Report
from meshgate.server.xdsgen import XdsGen
from meshgate.server.xdslisten import XdsListen
from meshgate.store import open_store
from meshgate.store.etcd_conn import EtcdConfig
from meshgate.telemetry import als, service
from meshgate.telemetry import http as telemetry_http
from meshgate.telemetry import metrics as telemetry_metrics
from meshgate.telemetry.store import Query
from meshgate.translate.cache import SharedTranslations
from meshgate.translate.output import ProxyConfig
from meshgate.xds.server import XdsServer

log = logging.getLogger("meshgate.server")


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the control plane owns SIGTERM/SIGINT
    (a signal stops the process but keeps pods running; only ``down`` tears down)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def not_running(pod: dict[str, Any]) -> str:
    """Why a stored pod cannot be entered: its phase, and the reason and message it has."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    why = ": ".join(str(status[k]) for k in ("reason", "message") if status.get(k))
    where = f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"
    phase = status.get("phase") or "Pending"
    return f"pod {where} is not running ({phase}{': ' + why if why else ''})"


# Seconds after a container's start during which passes come every 0.2 s until it is ready.
STARTING_WINDOW = 10.0
# The periodic pass: every second, and every REST_INTERVAL once QUIET_PASSES passes in a
# row found nothing for the controllers and no container is starting.
REST_INTERVAL = 2.0
QUIET_PASSES = 5


class ControlPlane(XdsListen, XdsGen, JoinedNodes, NodeHeal, Report):
    def __init__(
        self,
        home: Path,
        world: str | None,
        concurrency: int = 1,
        *,
        cert_ttl: float = 86400.0,
        dns_upstreams: str = "",
        etcd: EtcdConfig | None = None,
        mesh: Mesh | None = None,
        node_grace: float | None = None,
    ) -> None:
        self.home = home
        # With etcd, the mesh this replica joined; None: the one control plane (SQLite).
        self.mesh = mesh
        self.owns_node = mesh is None or mesh.owns_node
        # The uplink as the state directory's config says (`up` saved it there); the
        # resolvers come from `up`, which read them where it runs.
        self.uplink = uplink.load_config(home)
        self.dns_upstreams = uplink.parse_upstreams(dns_upstreams) if self.uplink.enabled else ()
        if world and not self.owns_node:
            log.warning("--world %s: the node owner runs the node and its world; ignored", world)
            world = None
        self.world_name = world
        self.world: World | None = load_world(world) if world else None
        self.store = open_store(home)
        self.run_dir = run_dir(home)
        # A replica on the node owner's machine reads the node's pods (exec, logs,
        # proxy-config answer from any replica); only the node owner changes them.
        node_home = Path(mesh.node_home) if mesh is not None else home
        self.runtime = Runtime(node_home if not self.owns_node and node_home.is_dir() else home)
        self.node = Node(home)
        self.ca = MeshCA(home, lifetime=datetime.timedelta(seconds=cert_ttl))
        # Each proxy authenticates its xDS stream with a credential only it is handed.
        key = proxy_credentials.load_or_create_key(home)
        self._credential_key = key
        # Prometheus metrics: own figures read when scraped, traffic from the access log.
        self.metrics = telemetry_metrics.Metrics(
            telemetry_metrics.Sources(
                push_count=lambda: self.xds.push_count,
                statuses=lambda: self.xds.statuses(),
                accesslog=lambda: self.accesslog.counters,
            ),
            principal=service.principal_of(lambda: self.reconciler.snapshot),
        )
        self.metrics_listener: telemetry_http.MetricsListener | None = None
        self.console = ConsoleServer(home)  # the web console: listens from its first login
        # The mesh-wide access log: streamed (ALS) and backfilled from the proxies' logs.
        self.accesslog = service.open_sink(
            home,
            service.local_log_files(lambda: self.reconciler.snapshot.pods, self._log_path_of),
            service.Settings.from_env(),
            on_new=self.metrics.on_entries,
            # With replicas, the others' entries too: every replica answers for the mesh.
            peers=service.replica_peers(home, lambda: self.members.replicas) if mesh else None,
        )
        self.accesslog_reader = service.Reader(home, notes=self.accesslog.notes)
        als_servicer = als.AccessLogServicer(
            authenticate=lambda node, sent: proxy_credentials.verify(key, node, sent),
            identify=service.identify_node(lambda: self.reconciler.snapshot.pods),
            offer=self.accesslog.offer,
            credential_header=proxy_credentials.HEADER,
        )
        self.xds = XdsServer(
            self.metrics.timed(self.generate),
            authenticate=lambda node, sent: proxy_credentials.verify(key, node, sent),
            credential_header=proxy_credentials.HEADER,
            services=[als.add_to_server(als_servicer)],
        )
        self.members = Membership(
            home,
            etcd,
            mesh,
            self._leader_changed,
            proxies=lambda: self.proxy_statuses(),
            on_ca_change=self._ca_changed,
        )
        self.reconciler = Reconciler(
            home,
            self.store,
            self.runtime,
            mesh.xds_sockets() if mesh is not None else xds_socket(self.node.mesh_id),
            concurrency=concurrency,
            leading=lambda: self.members.leading,
            fence=self.members.fence,
            kubelet=self.owns_node,
            proxy_credential=lambda node: (
                proxy_credentials.HEADER,
                proxy_credentials.credential(key, node),
            ),
        )
        self.started = time.time()
        self._kick = asyncio.Event()
        self._stop = asyncio.Event()
        self._teardown = False
        self._lock = asyncio.Lock()
        self._zone: dict[str, list[str]] | None = None
        self.translations = 0  # how many times a proxy's config was translated
        # node id -> the snapshot and proxy a translation was made for, and the result;
        # only the current snapshot's (used by the xDS worker thread alone).
        self._translated: dict[str, tuple[Proxy, ProxyConfig, frozenset[str]]] = {}
        self._translated_for: Snapshot | None = None
        self._shared = SharedTranslations(self._translate, self._personal)
        # SDS names a clusters list refers to, per list object (shared translations share
        # it), and identity secrets per (identity, names): the same objects while the
        # certificate and trust bundle are, so a push packs them once for all its proxies.
        self._cluster_refs: dict[int, tuple[list[Any], set[str]]] = {}
        self._identities: dict[tuple[str, frozenset[str]], tuple[Any, bytes | None, list[Any]]]
        self._identities = {}
        self._certs_checked = datetime.datetime.now(datetime.UTC)
        self._exits: ExitWatch | None = None
        self._xds_sock: Path | None = None  # where this control plane serves xDS
        self._log_paths: dict[tuple[str, str, str], Path | Exception] = {}
        self._log_paths_for: Mapping[tuple[str, str], Any] | None = None  # the pods they're of
        self.node_service = joinapi.NodeService(
            self.store, self.ca, self.reconciler, self._kick_threadsafe, self.node.netns
        )
        if node_grace is not None:
            self.node_service.grace = node_grace
        self.join_listener = joinapi.JoinListener(home, self.node_service, self.ca)
        self._loop_ref: asyncio.AbstractEventLoop | None = None
        self._relay: asyncio.Server | None = None
        self._heartbeats_checked = 0.0

    # -- API hooks ---------------------------------------------------------------------

    def kick(self) -> None:
        self._kick.set()

    def _kick_threadsafe(self) -> None:
        if self._loop_ref is not None:
            self._loop_ref.call_soon_threadsafe(self.kick)

    def _leader_changed(self, leading: bool) -> None:
        """Leading now: run the controllers at once (the next pass sees the change)."""
        log.info("controllers %s", "start: this replica leads" if leading else "stop")
        self.kick()

    def request_shutdown(self, teardown: bool) -> None:
        self._teardown = teardown
        self._stop.set()

    def _forget_gone_proxies(self) -> None:
        """A proxy whose pod is gone for good leaves proxy-status once its stream has
        closed; the time a closed stream stays listed is for proxies that restart."""
        closed = [(node, meta) for node, meta in self.xds.closed() if meta.get("POD_NAME")]
        if not closed:  # the usual case at rest: nothing to look up
            return
        live = {(s.namespace, s.name) for s in self.runtime.pod_states()}
        for node, meta in closed:
            if (meta.get("NAMESPACE"), meta.get("POD_NAME")) not in live:
                self.xds.forget(node)

    def exec_argv(
        self,
        namespace: str,
        name: str,
        command: list[str],
        container: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> list[str]:
        try:
            return self.runtime.exec_argv(namespace, name, command, container, extra_env)
        except ContainerNotFound:
            raise
        except PodNotFound:
            # A Pod the store has but the runtime does not run (not started yet, or its
            # start failed): say so, and why, rather than "not found".
            stored = self.store.get(ResourceKey("", "Pod", namespace, name))
            if stored is None:
                raise
            node = (stored.object.get("spec") or {}).get("nodeName")
            if node and node != nodes_mod.OWN_NODE:  # another node's agent runs it
                raise ContainerNotRunning(
                    f"pod {namespace}/{name} runs on node {node}: run `meshgate exec` with "
                    "the MESHGATE_HOME that node joined with"
                ) from None
            raise ContainerNotRunning(not_running(stored.object)) from None

    def _log_path_of(self, namespace: str, name: str, container: str) -> Path:
        """A container's log file for the access-log backfill (every second, every pod):
        looked up again only when the pods changed, as the runtime reads its manifest for
        each lookup (a config change, e.g. a ServiceEntry, leaves every path as it was)."""
        pods = self.reconciler.snapshot.pods
        if self._log_paths_for is not pods and self._log_paths_for != pods:
            self._log_paths = {}
        self._log_paths_for = pods
        key = (namespace, name, container)
        if key not in self._log_paths:
            try:
                self._log_paths[key] = self.runtime.log_path(namespace, name, container)
            except Exception as exc:  # no such container: remembered until the pods change
                self._log_paths[key] = exc
        found = self._log_paths[key]
        if isinstance(found, Exception):
            raise found
        return found

    def proxy_admin(self, namespace: str, name: str, path: str) -> str:
        return self.runtime.proxy_admin(namespace, name, path)

    def log_path(self, namespace: str, name: str, container: str, previous: bool = False) -> Path:
        return self.runtime.log_path(namespace, name, container, previous)

    def access_log(self, q: Query) -> list[tuple[int, dict[str, Any]]]:
        return self.accesslog_reader.query(q)

    async def ca_rotate(self, activate_after: float, overlap: float | None) -> dict[str, Any]:
        new = self.ca.rotate(
            activate_after=datetime.timedelta(seconds=activate_after),
            overlap=None if overlap is None else datetime.timedelta(seconds=overlap),
        )
        # Replicas: each signs from its own copy of the CA directory; the rotation goes
        # to etcd now, and every replica takes it within a registration poll (casync).
        await self.members.ca_rotated()
        self.xds.request_push("CA rotation")  # the new root joins every trust bundle now
        return {"serialNumber": format(new.serial_number, "x"), **self.ca_status()}

    def _ca_changed(self) -> None:
        """Another replica published the CA directory (a rotation, or its next step)."""
        self.ca.reload()
        self.xds.request_push("CA directory from another replica")

    # -- loops -------------------------------------------------------------------------

    def _zone_for(self) -> dict[str, list[str]]:
        zone: dict[str, list[str]] = {}
        if self.world is not None:
            zone.update(self.world.zone())
        zone.update(self.reconciler.snapshot.dns_zone())
        return zone

    async def _reconcile(self) -> None:
        async with self._lock:
            before = self.reconciler.snapshot
            try:
                await asyncio.to_thread(self.reconciler.run_once)
            except Exception:
                log.exception("reconcile pass failed")
                return
            watched = await asyncio.to_thread(self._supervise)
            if self._exits is not None:
                self._exits.sync(watched)
            if self.reconciler.snapshot is not before:
                zone = self._zone_for()
                if zone != self._zone and self.owns_node:
                    await asyncio.to_thread(write_zone, self.home, zone)
                    self._zone = zone
                self.xds.request_push(f"store revision {self.store.revision()}")
            self._certificates_due()

    def _supervise(self) -> list[procs.ProcId]:
        """A pass's supervision besides the reconciler's, in one worker-thread hop: the
        node's own processes, joined nodes' heartbeats, gone proxies; returns the
        processes whose exit should start a pass."""
        self._heal_node()
        if time.monotonic() - self._heartbeats_checked > 5.0:
            self._heartbeats_checked = time.monotonic()
            self.node_service.check_heartbeats()
        self._forget_gone_proxies()
        return self._watched_processes() if self._exits is not None else []

    def _certificates_due(self) -> None:
        """Push when a certificate's renewal time or a rotation step has come since the
        last check (the CA says when; nothing is re-issued or pushed in between)."""
        now = datetime.datetime.now(datetime.UTC)
        due = self.ca.next_change(after=self._certs_checked)
        if due is not None and due <= now:
            self.xds.request_push("certificate renewal")
        self._certs_checked = now

    async def _loop(self) -> None:
        quiet = 0  # passes in a row that found nothing for the controllers
        while not self._stop.is_set():
            await self._relisten_xds()
            # Cleared before the pass, never after: a change that lands during the pass
            # (an apply) must start the next one at once, not wait for the timer.
            self._kick.clear()
            worked = self.reconciler.controller_passes
            await self._reconcile()
            # A container just started is looked at more often until it is ready, so a
            # restarted proxy rejoins its Service's endpoints soon after it can serve.
            starting = await asyncio.to_thread(self.runtime.starting, STARTING_WINDOW)
            calm = not starting and self.reconciler.controller_passes == worked
            quiet = quiet + 1 if calm else 0
            timeout = 0.2 if starting else REST_INTERVAL if quiet >= QUIET_PASSES else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=timeout)

    async def run(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        existing = {(s.key.kind, s.key.namespace, s.key.name) for s in self.store.list()}
        fresh = [r.to_wire() for r in fresh_mesh_objects()]
        missing = [
            o
            for o in fresh
            if (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            not in existing
        ]
        if missing:
            self.store.apply(missing)
        if self.owns_node:
            await asyncio.to_thread(self._own_node)
            # Before any reconcile pass: older state's uid-less ownerReferences get their
            # owner's uid, so its pods are neither collected nor left to no controller.
            await asyncio.to_thread(self.reconciler.adopt_owner_uids)
            await asyncio.to_thread(self.node.up, self.world, self.uplink, self.dns_upstreams)
        self.accesslog.start()
        await self._listen_xds()
        loop = asyncio.get_running_loop()
        self._loop_ref = loop
        if self.owns_node:  # joining nodes route to the node owner's namespace
            try:
                await self._serve_remote_xds()
                await asyncio.to_thread(self.join_listener.start)
            except Exception:  # the mesh's own node works without them; say so
                log.exception("nodes cannot join: the join endpoint or mTLS xDS did not start")
        self._exits = ExitWatch(loop, self.kick)

        def on_change(*_: object) -> None:
            loop.call_soon_threadsafe(self.kick)

        self.store.watch(on_change)
        self.reconciler.on_started = on_change  # a pod start ended: a pass takes it up
        self.store.watch(self.metrics.on_store_events)
        self._start_metrics_listener()

        token = secrets.token_urlsafe(32)
        tfile = token_file(self.home)
        fd = os.open(tfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        sock = api_socket(self.home)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        config = uvicorn.Config(
            build_app(self, token), uds=str(sock), log_level="warning", lifespan="off"
        )
        server = _ApiServer(config)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown, False)
        api_task = asyncio.create_task(server.serve())
        loop_task = asyncio.create_task(self._loop())
        self.members.start()
        while not server.started:
            await asyncio.sleep(0.02)
        os.chmod(sock, 0o600)
        log.info("control plane ready (home %s, api %s)", self.home, sock)
        await self._stop.wait()
        log.info("shutting down (teardown=%s)", self._teardown)
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
        await self.members.leave(self._teardown)
        self._exits.close()
        await asyncio.to_thread(self.reconciler.close)  # pod starts under way end first
        async with self._lock:
            if self._teardown:
                await asyncio.to_thread(self._teardown_all)
        await asyncio.to_thread(self.join_listener.stop)
        if self._relay is not None:
            self._relay.close()
        await self.xds.stop()
        if self.metrics_listener is not None:
            await self.metrics_listener.stop()
        await asyncio.to_thread(self.accesslog.stop)
        await self.console.stop()
        server.should_exit = True
        await api_task
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        with contextlib.suppress(FileNotFoundError):
            tfile.unlink()
        if self._teardown and not self.owns_node:
            # A replica's runtime directory held its API socket alone (no node recorded
            # it in a manifest): `down` leaves nothing of it.
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()

    def _start_metrics_listener(self) -> None:
        """/metrics for Prometheus; a listener that cannot bind is logged, not fatal."""
        addr = os.environ.get("MESHGATE_METRICS_ADDR", telemetry_http.DEFAULT_METRICS_ADDR)
        try:
            sock = telemetry_http.bind(addr)
        except (OSError, ValueError) as exc:
            log.error("metrics: no /metrics listener on %s: %s", addr, exc)
            return
        app = telemetry_http.metrics_app(
            self.metrics.exposition, telemetry_http.metrics_token(self.home)
        )
        self.metrics_listener = telemetry_http.MetricsListener(app, sock)
        self.metrics_listener.start()
        log.info("metrics at %s", self.metrics_listener.url)

    def _teardown_all(self) -> None:
        if not self.owns_node:
            # A replica without the node made no pod, namespace or process: the mesh's
            # pods belong to the node owner and keep running.
            return
        for st in self.runtime.pod_states():
            self.runtime.stop_pod(st.namespace, st.name)
        self.node.down()
        # Pods are gone: forget their status so a later `up` starts them afresh.
        for stored in self.store.list(kind="Pod"):
            if stored.key.group == "":
                self.store.delete([stored.key])


def main(
    home: Path,
    world: str | None,
    concurrency: int,
    *,
    cert_ttl: float = 86400.0,
    dns_upstreams: str = "",
    node_grace: float | None = None,
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    lock_path = home / "control-plane.lock"
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"a control plane already runs for {home}") from None
    pid_file(home).write_text(str(os.getpid()))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        etcd = etcd_config(home)
        mesh = asyncio.run(found_or_join(home, etcd)) if etcd is not None else None
        cp = ControlPlane(
            home,
            world,
            concurrency,
            cert_ttl=cert_ttl,
            dns_upstreams=dns_upstreams,
            etcd=etcd,
            mesh=mesh,
            node_grace=node_grace,
        )
        asyncio.run(cp.run())
    finally:
        with contextlib.suppress(FileNotFoundError):
            pid_file(home).unlink()
        os.close(lock_fd)
