"""One reconcile pass: store -> controllers -> runtime -> snapshot -> DNS -> xDS push.

Rules:
- The store is the only source of truth. A pass reads it, writes back what controllers
  derive (gateway Deployments/Services, pods, pod status), starts and stops pods so the
  runtime matches the stored Pods, then rebuilds the immutable snapshot that the xDS
  server translates from. Passes never overlap (the caller holds one lock).
- Pod IPs are allocated here, before a pod starts, because the proxy's node id (and so
  its configuration) names its IP; an allocated IP is kept in the Pod's status. Addresses
  are handed out in turn, after the last one given (as a host-local IPAM does), so a
  freed address is not reused at once, and never while a stopping pod still holds it.
- A Pod gone from the store leaves the endpoints (snapshot, cluster-IP rules, EDS) in the
  pass that notices it, but its containers stop only STOP_DELAY later, once the proxies
  have the new endpoints: Kubernetes' endpoint removal before SIGTERM, so a rollout drops
  no request. A Pod re-created under the same name (another uid) replaces it at once.
  ``Recreate`` Deployments get new pods only once their old ones have stopped.
- Identity is namespace + name everywhere (store keys, runtime pods, the maps below);
  ownership is by uid (see ``workloads``). The garbage collector deletes an object once
  none of the owners its ownerReferences name (by uid) exists any more, as Kubernetes'
  does, so a same-named owner in another namespace, or a re-created one, keeps nothing
  alive. ``adopt_owner_uids`` gives older state's uid-less references their owner's uid
  before the first pass, so no dependent is collected (or left unowned) by mistake.
- Pod specs carry ``restartPolicy`` to the runtime; a Deployment's pods are ``Always``.
- A pod that fails to start (its network, capture rules...) stays Pending with reason
  StartError and the error, and is tried again with the kubelet's back-off (10 s doubling
  to 5 min); once it runs, its status is the runtime's, with no stale reason left.
- Pods start in parallel (issue 14): a pass hands each pod to start to a pool of
  ``pod_starts`` threads (``MESHGATE_POD_STARTS``, default min(8, 2 x CPUs)) and waits for
  them only ``start_wait`` seconds, so it goes on to build the snapshot that names the new
  pods, and their proxies are answered as soon as they ask, while the others still start.
  A start that ends later is taken up by the next pass, which ``on_started`` wakes (its
  status, or its failure and back-off, as above). A pod being started is not started,
  re-specced, replaced or stopped again until its start has ended; the runtime keeps each
  pod's operations serial and addresses unique (see ``runtime.pods``).
- The node's filter rules (NetworkPolicy, MeshConfig ``egressEnforcement``: see
  ``nodefilter``) are brought up to date in every pass after new pods get their IPs and
  before they start, so no pod runs a moment without the rules that apply to it.
- Every gateway pod's SSRF guard (see ``ssrfguard``) is brought up to date after the
  snapshot is built, before the pass's xDS push.
- The snapshot is rebuilt only when the store's content changed (another key or resource
  version); otherwise ``run_once`` returns the very same snapshot object, which is how
  the caller knows that no proxy's configuration can have changed.
- A pass at rest costs next to nothing (issue 14): the runtime's own supervision runs in
  every pass (restarts after back-off, held apps, exec probes), then the controllers run
  only if the store's revision, the pods the runtime observes (container states, restart
  counts, probe verdicts), or something pending (a pod stopping or not started yet, rules
  that failed to install) differ from the end of the last full pass. The store is listed
  (and its bodies decoded) once per revision, not once per controller.
- Nodes (see ``nodes``, ``placement``): each pod is placed on a node first; this process
  runs its own node's pods only. For a pod on a joined node it allocates the address
  from that node's podCIDR and makes the pod's spec (its proxy reaching xDS over mTLS
  TCP at ``remote_xds``), kept in ``remote_specs`` for that node's agent to fetch; the
  agent reports the pod's status back (``joinapi``).
- Replicas (docs/replicas.md): the controllers that write objects (IstioGateway,
  ASMEgressTrafficPolicy, garbage collection, Deployments and their status) run only
  while ``leading()`` says this control plane leads; the kubelet's part (pod IPs, starting
  and stopping pods, pod status, the node's filter and NAT rules, gateway guards) only
  where ``kubelet`` is set, on the control plane that owns the node. Every control plane
  builds the snapshot it serves xDS from. Pod IPs stay with the kubelet: they are the
  node's addresses (a CNI's IPAM), and only the node owner knows which are in use. A
  change of leadership makes the next pass run the controllers.
- Blocking work (subprocesses, SQLite) runs in a worker thread; this module is sync.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from meshgate.api import annotations as pod_annotations
from meshgate.api.decode import decode_object
from meshgate.api.kinds.meshgate_kinds import MESH_CONFIG_NAME
from meshgate.api.meta import Resource, ResourceKey
from meshgate.model.proxy import TLS_MODE_ISTIO, TLS_MODE_LABEL
from meshgate.model.snapshot import Snapshot
from meshgate.runtime import envoy, names, restartpolicy, servicenat
from meshgate.runtime.pods import (
    Backoff,
    ContainerSpec,
    PodSpec,
    PodState,
    ProxySpec,
    RestartPolicy,
    Runtime,
    VolumeMountSpec,
    VolumeSpec,
)
from meshgate.server import asmegress, podconfig
from meshgate.server import nodes as nodes_mod
from meshgate.server import workloads as wl
from meshgate.server.nodeconfig import service_routes
from meshgate.server.nodefilter import NodeFilter
from meshgate.server.placement import Placer, without_unscheduled
from meshgate.server.ssrfguard import SsrfGuard
from meshgate.store.base import ConfigStore, StoredObject
from meshgate.xds.bootstrap import bootstrap_config

log = logging.getLogger("meshgate.reconcile")

Obj = dict[str, Any]
POD_NET = ipaddress.ip_network("10.34.0.0/16")
FIRST_POD_HOST = 10  # .1 is the node bridge; keep a few for infrastructure
READY_PORT = 15021  # Istio's readiness port, /healthz/ready
# Status fields the runtime reports for a running pod (others are kept: podIP...).
_OBSERVED = frozenset({"reason", "message"})
STOP_DELAY = 1.0  # seconds between a Pod's removal from the endpoints and its stop
POD_STARTS_ENV = "MESHGATE_POD_STARTS"
MAX_POD_STARTS = 64
START_WAIT = 0.2  # seconds a pass waits for the pod starts it began (see the rules)


def pod_starts(env: Mapping[str, str] = os.environ) -> int:
    """How many pods start at once: ``MESHGATE_POD_STARTS``, else min(8, 2 x CPUs).
    Starting a pod is mostly waiting (``ip``, ``iptables-restore``, the proxy coming up),
    so a few per CPU keep the machine busy without starving the control plane."""
    raw = env.get(POD_STARTS_ENV, "").strip()
    if not raw:
        return min(8, 2 * (os.cpu_count() or 1))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_POD_STARTS:
        raise ValueError(
            f"{POD_STARTS_ENV}={raw!r}: want how many pods may start at once,"
            f" a whole number from 1 to {MAX_POD_STARTS}"
        )
    return int(raw)


def capabilities(security_context: Obj) -> list[str] | None:
    """A container's capability set from its securityContext, as a container runtime
    computes it: privileged -> all; else the default set plus ``add`` minus ``drop``
    (``ALL`` allowed in either). None: the untouched default."""
    if security_context.get("privileged"):
        return ["all"]
    caps = security_context.get("capabilities") or {}
    add = [str(c).lower().removeprefix("cap_") for c in caps.get("add") or []]
    drop = [str(c).lower().removeprefix("cap_") for c in caps.get("drop") or []]
    if not add and not drop:
        return None
    if "all" in add:
        return ["all"]
    base = [] if "all" in drop else list(envoy.DEFAULT_CAPABILITIES)
    return sorted({*base, *add} - set(drop))


def readiness_port(container: Obj) -> int | None:
    """The port a tcpSocket or httpGet readinessProbe checks (a name resolves through the
    container's ports); httpGet is judged by the port listening, not by the response."""
    probe = container.get("readinessProbe") or {}
    action = probe.get("tcpSocket") or probe.get("httpGet") or {}
    port = action.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        port = named.get(port)
    return int(port) if port is not None else None


def readiness_period(container: Obj) -> float:
    """The readinessProbe's periodSeconds (Kubernetes' default 10; at least 1)."""
    period = (container.get("readinessProbe") or {}).get("periodSeconds")
    return max(1.0, float(period)) if isinstance(period, int | float) else 10.0


def readiness_command(container: Obj) -> list[str] | None:
    command = ((container.get("readinessProbe") or {}).get("exec") or {}).get("command")
    return [str(a) for a in command] if command else None


def pod_volumes(
    spec: Obj, namespace: str = "default", sources: podconfig.Sources | None = None
) -> dict[str, VolumeSpec]:
    """The pod's volumes the runtime makes: emptyDir (on disk, or in memory), and the files
    of configMap and secret volumes (see ``podconfig``). Other kinds are not mounted."""
    out = {}
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        empty = v.get("emptyDir")
        if isinstance(empty, dict):
            memory = empty.get("medium") == "Memory"
            out[str(v["name"])] = VolumeSpec(name=str(v["name"]), medium="Memory" if memory else "")
        for kind in ("configMap", "secret"):
            if isinstance(v.get(kind), dict):
                out[str(v["name"])] = podconfig.config_volume(
                    v, kind, namespace, sources or podconfig.Sources()
                )
    return out


def volume_mounts(container: Obj, volumes: dict[str, VolumeSpec]) -> list[VolumeMountSpec]:
    return [
        VolumeMountSpec(
            name=str(m["name"]),
            mount_path=str(m["mountPath"]),
            read_only=m.get("readOnly") is True,
            sub_path=str(m.get("subPath") or ""),
        )
        for m in container.get("volumeMounts") or []
        if isinstance(m, dict) and m.get("name") in volumes
    ]


def _canonical(objects: list[Obj]) -> list[Obj]:
    """Controller-made objects in the store's canonical form (decoded, then encoded), the
    same a user's ``get -o yaml | apply`` produces, so neither side ever looks changed."""
    out = []
    for obj in objects:
        res, _ = decode_object(obj)
        out.append(res.to_wire() if res is not None else obj)
    return out


def _key(obj: Obj) -> ResourceKey:
    return ResourceKey(*wl.key_of(obj))


class Reconciler:
    def __init__(
        self,
        home: Path,
        store: ConfigStore,
        runtime: Runtime,
        xds_socket: Path | list[str],
        *,
        concurrency: int = 1,
        proxy_credential: Callable[[str], tuple[str, str]] | None = None,
        start_backoff: Backoff | None = None,
        starts: int | None = None,
        start_wait: float = START_WAIT,
        on_started: Callable[[], None] | None = None,
        leading: Callable[[], bool] = lambda: True,
        kubelet: bool = True,
    ) -> None:
        self.home = home
        self.leading = leading
        self.kubelet = kubelet
        self.store = store
        self.runtime = runtime
        self.xds_socket = xds_socket
        # node id -> (header, value) a proxy authenticates its xDS stream with; None: none.
        self.proxy_credential = proxy_credential
        self.concurrency = concurrency
        self.snapshot: Snapshot = Snapshot.build([])
        # How many snapshots were built: a pass whose store content is unchanged keeps
        # the one it has (the same object), so nothing downstream recomputes at rest.
        self.snapshot_builds = 0
        self._typed: dict[tuple[ResourceKey, str], Resource] = {}
        self._fingerprint: tuple[tuple[ResourceKey, str], ...] | None = None
        self._nat_text = ""
        self._node_filter = NodeFilter(home)
        self._ssrf_guard = SsrfGuard(home, runtime)
        # (namespace, name) of pods gone from the store but still running -> when noticed.
        self._stopping: dict[tuple[str, str], float] = {}
        # (namespace, name) of pods a Deployment deleted -> the Deployment's uid.
        self._deleted_by: dict[tuple[str, str], str] = {}
        self._next_host: dict[str, int] = {}  # per pod range: where the next address is
        self._placer = Placer(store)
        # Where proxies on joined nodes reach xDS (host:port over mTLS); None: not served.
        self.remote_xds: str | None = None
        # node -> (namespace, name) -> the pod's spec (PodSpec as a dict) its agent runs.
        self.remote_specs: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.remote_specs_ready = False
        # (namespace, name) of pods whose start failed -> (failures in a row, next try at).
        self._start_retry: dict[tuple[str, str], tuple[int, float]] = {}
        self.start_backoff = start_backoff or Backoff()
        self.pod_starts = pod_starts() if starts is None else starts
        self.start_wait = start_wait
        # Called (in a start's thread) when a start ends after its pass: wake a pass.
        self.on_started = on_started
        self._start_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.pod_starts, thread_name_prefix="pod-start"
        )
        # (namespace, name) -> the start under way (or ended, not yet taken up by a pass).
        self._starts: dict[tuple[str, str], concurrent.futures.Future[Any]] = {}
        # The MeshConfig's outbound capture defaults, read in each pass before pods start.
        self._capture_defaults = pod_annotations.MeshCaptureDefaults()
        # Passes run, and those in which the controllers worked (the rest found nothing
        # changed): `meshgate status` shows both, so rest is visible.
        self.passes = 0
        self.controller_passes = 0
        # The store's listing and the revision it was taken at: one list per revision.
        self._listing: tuple[int, list[StoredObject]] | None = None
        # (store revision, pods observed) at the end of the last full pass.
        self._settled: tuple[int, list[PodState], bool] | None = None  # and leading
        self._pending = True  # a pod wanted but not running, or a sync to retry
        self._xds_mode = "delta"  # MeshConfig xdsMode, for proxies started from now on

    # -- controllers -------------------------------------------------------------------

    def _stored(self) -> list[StoredObject]:
        """The store's objects, listed again only once its revision moved. The revision is
        read before the list: a write in between makes the list newer than its tag, so the
        next pass lists again (never the reverse)."""
        revision = self.store.revision()
        if self._listing is None or self._listing[0] != revision:
            self._listing = (revision, self.store.list())
        return self._listing[1]

    def _objects(self) -> list[Obj]:
        return [s.object for s in self._stored()]

    def _config_objects(self) -> list[Obj]:
        return [o for o in self._objects() if o.get("kind") in ("ConfigMap", "Secret")]

    def _egress_policies(self, objs: list[Obj]) -> None:
        asmegress.sync(self.store, objs, _canonical)

    def _gateways(self, objs: list[Obj]) -> None:
        gateways = [o for o in objs if o.get("kind") == "IstioGateway"]
        desired: list[Obj] = []
        for gw in gateways:
            if (gw.get("spec") or {}).get("gatewayType", "ingress") in ("egress", "ingress"):
                desired.extend(wl.gateway_objects(gw))
        if desired:
            from meshgate.server.admission import default_cluster_ips

            desired = default_cluster_ips(desired, (o for o in objs if o.get("kind") == "Service"))
            desired = asmegress.expose_ports(desired, objs)  # ASMEgressTrafficPolicy ports
            changes = self.store.apply(_canonical(desired))
            for c in changes:
                if c.action != "unchanged":
                    log.info("%s %s", c.key, c.action)

    def adopt_owner_uids(self) -> None:
        """Give ownerReferences stored without a uid (state from before ownership was by
        uid) the uid of the owner they name in their namespace; say which owners are gone
        (the garbage collector then deletes their dependents, as it did before)."""
        objs = self._objects()
        fill = wl.fill_owner_uids(objs, objs)
        for line in fill.unresolved:
            log.warning("%s: its owner is gone, so it will be garbage-collected", line)
        if fill.filled:
            for c in self.store.apply(fill.filled):
                log.info("%s: ownerReferences given their owner's uid (%s)", c.key, c.action)

    def _garbage_collect(self, objs: list[Obj]) -> None:
        uids = {wl.uid_of(o): o for o in objs if wl.uid_of(o)}
        orphans = [_key(o) for o in objs if wl.dangling(o, uids)]
        if orphans:
            for key in orphans:
                log.info("%s: its owner is gone; deleting it", key)
            self.store.delete(orphans, missing_ok=True)

    def _deployments(self, objs: list[Obj]) -> None:
        pods = [o for o in objs if o.get("kind") == "Pod"]
        injection = wl.namespace_injection(objs)
        creates: list[Obj] = []
        deletes: list[ResourceKey] = []
        for dep in (o for o in objs if o.get("kind") == "Deployment"):
            namespace = (dep.get("metadata") or {}).get("namespace") or "default"
            plan = wl.plan_pods(dep, pods, namespace_injection=injection.get(namespace))
            dep_ref = wl.uid_of(dep)
            if plan.create and dep_ref in self._deleted_by.values():
                # Recreate: none of the old pods may still run when a new one starts.
                strategy = ((dep.get("spec") or {}).get("strategy") or {}).get("type")
                stopping = {k for k, v in self._deleted_by.items() if v == dep_ref}
                if strategy == "Recreate" and stopping & set(self._runtime_pods()):
                    plan.create = []
            creates.extend(plan.create)
            deletes.extend(_key(p) for p in plan.delete)
            for p in plan.delete:
                self._deleted_by[(_key(p).namespace, _key(p).name)] = dep_ref
        if deletes:
            self.store.delete(deletes)
        if creates:
            self.store.apply(_canonical(creates))

    def _deployment_status(self, objs: list[Obj]) -> None:
        """Deployment status as Kubernetes' controller keeps it, from the pods it owns:
        replicas, ready, available and up-to-date counts (what `get deploy` shows)."""
        pods = [o for o in objs if o.get("kind") == "Pod"]
        for dep in (o for o in objs if o.get("kind") == "Deployment"):
            mine = [p for p in pods if wl.owned_by(p, dep)]
            thash = wl.template_hash(dep)
            ready = [p for p in mine if wl.pod_ready(p)]
            updated = [
                p
                for p in mine
                if ((p.get("metadata") or {}).get("labels") or {}).get("pod-template-hash") == thash
            ]
            meta = dep.get("metadata") or {}
            status: Obj = {
                "observedGeneration": meta.get("generation", 1),
                "replicas": len(mine),
                "updatedReplicas": len(updated),
                "readyReplicas": len(ready),
                "availableReplicas": len(ready),
            }
            if (dep.get("status") or {}) != status:
                self.store.update_status(_key(dep), status)

    # -- runtime -----------------------------------------------------------------------

    def _runtime_pods(self) -> dict[tuple[str, str], Any]:
        return {(s.namespace, s.name): s for s in self.runtime.pod_states()}

    def _allocate_ip(self, pods: list[Obj], cidr: str = str(POD_NET)) -> str:
        net = ipaddress.ip_network(cidr)
        used = {(p.get("status") or {}).get("podIP") for p in pods}
        used |= {s.ip for s in self.runtime.pod_states()}
        used = {ip for ip in used if ip and ipaddress.ip_address(ip) in net}
        hosts = [int(ipaddress.ip_address(ip)) - int(net.network_address) for ip in used if ip]
        if cidr not in self._next_host:  # after a restart: go on after the highest in use
            self._next_host[cidr] = max([FIRST_POD_HOST - 1, *hosts]) + 1
        span = net.num_addresses - 1 - FIRST_POD_HOST
        for i in range(span):
            host = FIRST_POD_HOST + (self._next_host[cidr] - FIRST_POD_HOST + i) % span
            ip = str(net.network_address + host)
            if ip not in used:
                self._next_host[cidr] = host + 1
                return ip
        raise RuntimeError(f"pod network {cidr} is full")

    def _remote_pods(
        self, pods: list[Obj], placed: dict[tuple[str, str], str], node_objs: list[Obj]
    ) -> None:
        """Addresses and specs of the pods placed on joined nodes (see the rules)."""
        cidrs = {nodes_mod.name_of(n): nodes_mod.pod_cidr(n) for n in node_objs}
        specs: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for pod in pods:
            ns_name = (_key(pod).namespace, _key(pod).name)
            node = placed.get(ns_name)
            if node in (None, nodes_mod.OWN_NODE) or not cidrs.get(node or ""):
                continue
            assert node is not None
            status = without_unscheduled(dict(pod.get("status") or {}))
            if not status.get("podIP"):
                status.update({"phase": "Pending", "podIP": self._allocate_ip(pods, cidrs[node])})
            if status != (pod.get("status") or {}):
                pod["status"] = status
                self.store.update_status(_key(pod), status)
            if self.remote_xds is None:
                continue
            try:
                spec = self._pod_spec(pod, status["podIP"], xds_address=self.remote_xds)
            except Exception:
                log.exception("pod %s/%s: no spec for node %s", *ns_name, node)
                continue
            specs.setdefault(node, {})[ns_name] = dataclasses.asdict(spec)
        self.remote_specs = specs
        # Agents are answered from now on: before this first full list (a restarted
        # control plane), an empty one would make them stop every pod they run.
        self.remote_specs_ready = self.remote_xds is not None

    def _pod_spec(self, pod: Obj, ip: str, xds_address: str | None = None) -> PodSpec:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        name, namespace = meta["name"], meta.get("namespace", "default")
        router = wl.is_router(pod)
        owners = {r.get("kind") for r in meta.get("ownerReferences") or []}
        policy: RestartPolicy = "Always"  # Kubernetes allows nothing else for a Deployment
        asked = spec.get("restartPolicy")
        if not owners & {"Deployment", "ReplicaSet"} and asked in ("OnFailure", "Never"):
            policy = "OnFailure" if asked == "OnFailure" else "Never"
        containers: list[ContainerSpec] = []
        pod_sc = spec.get("securityContext") or {}
        sources = podconfig.Sources.build(self._config_objects())
        volumes = pod_volumes(spec, namespace, sources)
        proxy_mounts: list[VolumeMountSpec] = []
        for c in spec.get("containers") or []:
            if router and c.get("name") == wl.PROXY_CONTAINER:
                proxy_mounts = volume_mounts(c, volumes)  # a gateway's Envoy reads them
                continue
            sc = c.get("securityContext") or {}
            run = podconfig.container_run(c, pod, sources, ip)
            containers.append(
                ContainerSpec(
                    name=c.get("name", "app"),
                    argv=run.argv,
                    image=run.image,
                    command=run.command,
                    args=run.args,
                    config_error=run.error,
                    env=run.env,
                    run_as_user=sc.get("runAsUser", pod_sc.get("runAsUser", 0)),
                    run_as_group=sc.get("runAsGroup", pod_sc.get("runAsGroup", 0)),
                    working_dir=c.get("workingDir"),
                    capabilities=capabilities(sc),
                    readiness_port=readiness_port(c),
                    readiness_command=readiness_command(c),
                    readiness_period=readiness_period(c),
                    mounts=volume_mounts(c, volumes),
                )
            )
        proxy: ProxySpec | None = None
        if router or wl.wants_sidecar(pod):
            kind: Literal["sidecar", "router"] = "router" if router else "sidecar"
            node_id = f"{kind}~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local"
            boot = bootstrap_config(
                node_id,
                xds_address
                or (self.xds_socket if isinstance(self.xds_socket, list) else str(self.xds_socket)),
                cluster=f"{meta.get('labels', {}).get('app', name)}.{namespace}",
                metadata={"NAMESPACE": namespace, "POD_NAME": name, "INSTANCE_IP": ip},
                credential=self.proxy_credential(node_id) if self.proxy_credential else None,
                # A gateway's readiness is Istio's /healthz/ready (the pod leaves its
                # Service's endpoints while its Envoy is down or not yet configured).
                ready_port=READY_PORT if router else None,
                xds_mode=self._proxy_xds_mode(meta),
            )
            proxy = ProxySpec(
                bootstrap=boot, mode=kind, concurrency=self.concurrency, mounts=proxy_mounts
            )
        sidecar = proxy is not None and not router
        inbound = pod_annotations.InboundPorts()
        outbound = pod_annotations.OutboundCapture()
        if sidecar:
            annotations = dict(meta.get("annotations") or {})
            try:
                inbound = pod_annotations.inbound_ports(annotations)
            except ValueError as exc:  # validation refuses these; older stored pods may not
                log.warning("pod %s/%s: %s; capturing every inbound port", namespace, name, exc)
            try:
                outbound = pod_annotations.outbound_capture(annotations, self._capture_defaults)
            except ValueError as exc:
                log.warning("pod %s/%s: %s; capturing all outbound TCP", namespace, name, exc)
        return PodSpec(
            name=name,
            namespace=namespace,
            uid=meta.get("uid", ""),
            ip=ip,
            containers=containers,
            proxy=proxy,
            capture=sidecar,
            # Only pods labelled for auto mTLS get inbound capture: a pod without the label
            # (made by an older meshgate) keeps being reached directly, in plaintext.
            capture_inbound=sidecar
            and (meta.get("labels") or {}).get(TLS_MODE_LABEL) == TLS_MODE_ISTIO,
            inbound_include=None if inbound.include is None else list(inbound.include),
            inbound_exclude=list(inbound.exclude),
            outbound_include_ranges=None
            if outbound.include_ranges is None
            else list(outbound.include_ranges),
            outbound_exclude_ranges=list(outbound.exclude_ranges),
            outbound_include_ports=list(outbound.include_ports),
            outbound_exclude_ports=list(outbound.exclude_ports),
            labels=dict(meta.get("labels") or {}),
            restart_policy=policy,
            volumes=list(volumes.values()),
            share_process_namespace=spec.get("shareProcessNamespace") is True,
        )

    def _proxy_xds_mode(self, meta: Obj) -> str:
        """A pod's annotation, else the mesh's MeshConfig xdsMode."""
        try:
            asked = pod_annotations.xds_mode(dict(meta.get("annotations") or {}))
        except ValueError as exc:  # validation refuses it; an older stored pod may have it
            log.warning("pod %s: %s; using the mesh's xdsMode", meta.get("name"), exc)
            asked = None
        return asked or self._xds_mode

    def _pods(self, objs: list[Obj]) -> None:
        pods = [o for o in objs if o.get("kind") == "Pod"]
        meshes = [
            o
            for o in objs
            if o.get("kind") == "MeshConfig"
            and (o.get("metadata") or {}).get("name") == MESH_CONFIG_NAME
        ]
        mode = ((meshes[0].get("spec") or {}).get("xdsMode") if meshes else None) or "DELTA"
        # Delta by default, as Istio since 1.22; SOTW is the opt-out (validated on apply).
        self._xds_mode = "sotw" if mode == "SOTW" else "delta"
        self._capture_defaults = pod_annotations.mesh_capture_defaults(objs)
        placed = self._placer.place(pods, objs)
        node_objs = [o for o in objs if o.get("kind") == "Node"]
        wanted = {
            (_key(p).namespace, _key(p).name): p
            for p in pods
            if placed.get((_key(p).namespace, _key(p).name)) == nodes_mod.OWN_NODE
        }
        self._remote_pods(pods, placed, node_objs)
        running = self._runtime_pods()
        now = time.monotonic()
        self._take_up_starts(wanted, now)
        for ns_name in sorted(set(running) - set(wanted)):
            since = self._stopping.setdefault(ns_name, now)
            if now - since >= STOP_DELAY and ns_name not in self._starts:
                log.info("stopping pod %s/%s", *ns_name)
                self.runtime.stop_pod(*ns_name)
                del running[ns_name]
        for ns_name in set(self._stopping) - set(running):
            del self._stopping[ns_name]
            self._deleted_by.pop(ns_name, None)
        starting: list[tuple[tuple[str, str], Obj]] = []
        for ns_name, pod in sorted(wanted.items()):
            if ns_name in self._starts:
                continue  # being started: looked at again once that has ended
            uid = (pod.get("metadata") or {}).get("uid", "")
            if ns_name in running and uid and running[ns_name].uid not in ("", uid):
                log.info("replacing pod %s/%s (re-created)", *ns_name)
                self.runtime.stop_pod(*ns_name)
                del running[ns_name]
            if ns_name in running:
                if podconfig.waits_for_config(running[ns_name]):
                    self._respec(ns_name, pod)
                continue
            status = without_unscheduled(dict(pod.get("status") or {}))
            if not status.get("podIP"):
                status.update({"phase": "Pending", "podIP": self._allocate_ip(pods)})
                pod["status"] = status
                self.store.update_status(_key(pod), status)
            starting.append((ns_name, pod))
        self._node_filter.sync(objs)  # `objs` holds the pods' new IPs (same dicts)
        for gone in set(self._start_retry) - set(wanted):
            del self._start_retry[gone]
        begun = []
        for ns_name, pod in starting:
            _, due = self._start_retry.get(ns_name, (0, 0.0))
            if due > now:
                continue  # backing off after a failed start
            ip = (pod.get("status") or {})["podIP"]
            log.info("starting pod %s/%s at %s", *ns_name, ip)
            begun.append(self._begin_start(ns_name, pod, ip))
        if begun:
            # Quick starts are taken up in this pass; the others once they end.
            concurrent.futures.wait(begun, timeout=self.start_wait)
            self._take_up_starts(wanted, now)
        self.runtime.reconcile()
        states = {(s.namespace, s.name): s for s in self.runtime.pod_states()}
        # A pod that did not start (it failed) is tried again in the next pass.
        self._pending = bool(set(wanted) - set(states)) or bool(self._stopping or self._starts)
        for ns_name, pod in wanted.items():
            state = states.get(ns_name)
            if state is None:
                continue
            status = state.to_status() if hasattr(state, "to_status") else {}
            old = pod.get("status") or {}
            # The runtime's view is the whole truth about a running pod: a reason or message
            # it does not give (one left by a failed start) is gone.
            merged = {
                k: v for k, v in {**old, **status}.items() if k in status or k not in _OBSERVED
            }
            if merged != old:
                self.store.update_status(_key(pod), merged)

    def _begin_start(
        self, ns_name: tuple[str, str], pod: Obj, ip: str
    ) -> concurrent.futures.Future[Any]:
        """Hand the pod's start to the pool (its spec is made here, in the pass: it reads
        the store and the pass's state); a spec that cannot be made is a failed start."""
        try:
            spec = self._pod_spec(pod, ip)
        except Exception as exc:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            future.set_exception(exc)
        else:
            future = self._start_pool.submit(self.runtime.start_pod, spec)
            future.add_done_callback(self._start_ended)
        self._starts[ns_name] = future
        return future

    def _start_ended(self, _: concurrent.futures.Future[Any]) -> None:
        if self.on_started is not None:
            self.on_started()

    def _take_up_starts(self, wanted: dict[tuple[str, str], Obj], now: float) -> None:
        """Settle the starts that have ended: a failure is logged, backs off and shows in
        the pod's status (Pending, StartError); a success clears the back-off."""
        for ns_name, future in sorted(self._starts.items()):
            if not future.done():
                continue
            del self._starts[ns_name]
            exc = future.exception()
            if exc is None:
                self._start_retry.pop(ns_name, None)
                continue
            log.error("pod %s/%s failed to start", *ns_name, exc_info=exc)
            failures, _ = self._start_retry.get(ns_name, (0, 0.0))
            again = restartpolicy.after_start_error(failures, self.start_backoff)
            self._start_retry[ns_name] = (again.crashes, now + again.delay)
            pod = wanted.get(ns_name)
            if pod is None:
                continue  # gone from the store meanwhile: nothing to report on
            # Pending, as the kubelet leaves a pod whose sandbox it cannot create: it
            # will be tried again, so it has not failed for good.
            wait = restartpolicy.duration(again.window)
            status = dict(pod.get("status") or {})
            status.update(
                {
                    "phase": "Pending",
                    "reason": "StartError",
                    "message": f"{exc} (back-off {wait} before the next try)",
                }
            )
            pod["status"] = status
            self.store.update_status(_key(pod), status)

    def close(self) -> None:
        """Wait for the pod starts under way (before shutdown or teardown)."""
        self._start_pool.shutdown(wait=True)

    def _respec(self, ns_name: tuple[str, str], pod: Obj) -> None:
        """Give a pod that waits for a ConfigMap or Secret its spec from the store as it is
        now: the runtime keeps the pod when nothing changed, else re-creates it (the kubelet
        retries creating the container once the object exists)."""
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return
        try:
            self.runtime.start_pod(self._pod_spec(pod, ip))
        except Exception:  # the next pass tries again; the others go on
            log.exception("pod %s/%s: re-creating with its config failed", *ns_name)

    # -- snapshot ----------------------------------------------------------------------

    def _typed_resources(self) -> tuple[list[Resource], tuple[tuple[ResourceKey, str], ...]]:
        """The store's resources decoded (cached per resource version), and the list of
        (key, resource version) they came from: equal lists mean equal content."""
        out: list[Resource] = []
        seen: set[tuple[ResourceKey, str]] = set()
        order: list[tuple[ResourceKey, str]] = []
        for stored in self._stored():
            cache_key = (stored.key, str(stored.resource_version))
            seen.add(cache_key)
            order.append(cache_key)
            res = self._typed.get(cache_key)
            if res is None:
                res, problems = decode_object(stored.object)
                if res is None:
                    log.warning("skipping %s: %s", stored.key, "; ".join(map(str, problems)))
                    continue
                self._typed[cache_key] = res
            out.append(res)
        for stale in set(self._typed) - seen:
            del self._typed[stale]
        return out, tuple(order)

    def refresh_snapshot(self) -> bool:
        """Build a new snapshot if the store's content changed; whether it did. Only a
        real change builds one: the caller pushes when (and only when) the snapshot object
        is new, so a pass at rest costs the proxies nothing."""
        typed, fingerprint = self._typed_resources()
        if fingerprint == self._fingerprint:
            return False
        self.snapshot = Snapshot.build(typed)
        self._fingerprint = fingerprint
        self.snapshot_builds += 1
        return True

    def run_once(self) -> Snapshot:
        self.passes += 1
        # The runtime's supervision first, in every pass: a container that died, a restart
        # whose back-off passed, a probe verdict show up in what it observes next.
        if self.kubelet:
            self.runtime.reconcile()
        leading = self.leading()
        # What the controllers are about to read, taken before they read it: a write or a
        # pod change during the pass (our own status writes included) differs from it, so
        # the next pass runs them again, and only a pass that changed nothing settles.
        pods = self.runtime.pod_states() if self.kubelet else []
        seen = (self.store.revision(), pods, leading)
        if not self._pending and seen == self._settled:
            return self.snapshot
        self.controller_passes += 1
        nat_ok = True
        try:
            # Leadership is asked again before each controller: one lost mid-pass stops
            # the writes that are left (the new leader's next pass does them).
            for controller in (
                self._egress_policies,
                self._gateways,
                self._garbage_collect,
                self._deployments,
            ):
                if leading and self.leading():
                    controller(self._objects())
            if self.kubelet:
                self._pods(self._objects())
            else:
                self._pending = False
            if leading and self.leading():
                self._deployment_status(self._objects())
            self.refresh_snapshot()
            if self.kubelet:
                nat_ok = self._service_nat(self.snapshot)
                # After the snapshot (the gateways' routes say what they may reach) and
                # before the caller pushes it: a gateway gets no route before its guard.
                self._ssrf_guard.sync(self._objects(), self.snapshot, frozenset(self._typed))
        except BaseException:
            # Controllers edit listed dicts before writing them: never reuse those.
            self._listing = self._settled = None
            raise
        self._pending = self._pending or (
            self.kubelet and not (nat_ok and self._node_filter.settled and self._ssrf_guard.settled)
        )
        self._settled = seen
        return self.snapshot

    def _service_nat(self, snap: Snapshot) -> bool:
        """kube-proxy's part: cluster IPs DNAT to ready pod endpoints in the node; False if
        the rules could not be installed (the next pass tries again)."""
        text = servicenat.render(service_routes(snap))
        if text == self._nat_text:
            return True
        node = names.node_netns(names.mesh_id(self.home))
        try:
            servicenat.apply(node, text)
        except Exception:  # the mesh keeps working through sidecars; say so, retry next pass
            log.exception("installing service cluster-IP rules failed")
            return False
        self._nat_text = text
        return True
