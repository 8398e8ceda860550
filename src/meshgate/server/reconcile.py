"""One reconcile pass: store -> controllers -> runtime -> snapshot -> DNS -> xDS push.

Rules:
- The store is the only source of truth. A pass reads it, writes back what controllers
  derive (gateway Deployments/Services, pods, pod status), starts and stops pods so the
  runtime matches the stored Pods, then rebuilds the immutable snapshot that the xDS
  server translates from. Passes never overlap (the caller holds one lock).
- Identity is namespace + name everywhere (store keys, runtime pods, the maps below);
  ownership is by uid (see ``workloads``). The garbage collector deletes an object once
  none of the owners its ownerReferences name (by uid) exists any more, as Kubernetes'
  does, so a same-named owner in another namespace, or a re-created one, keeps nothing
  alive. ``adopt_owner_uids`` gives older state's uid-less references their owner's uid
  before the first pass, so no dependent is collected (or left unowned) by mistake.
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
- Replicas (docs/replicas.md): the controllers that write objects (IstioGateway,
  ASMEgressTrafficPolicy, garbage collection, Deployments and their status) run only
  while ``leading()`` says this control plane leads; the kubelet's part (pod IPs, starting
  and stopping pods, pod status, the node's filter and NAT rules, gateway guards) only
  where ``kubelet`` is set, on the control plane that owns the node. Every control plane
  builds the snapshot it serves xDS from. Pod IPs stay with the kubelet: they are the
  node's addresses (a CNI's IPAM), and only the node owner knows which are in use. A
  change of leadership makes the next pass run the controllers. Their writes are fenced
  with the leader's lease (``fence()``, server/leader.py): one that comes after the lease
  is gone is refused by the store, and the pass runs no more controllers.
- The kubelet's part lives beside this module, one job each: ``podsync`` starts and
  stops pods, ``podips`` allocates their addresses, ``podspec`` makes their specs (each
  states its rules); they are the ``Reconciler``'s mixins, so a pass still reads top
  to bottom here.
- Blocking work (subprocesses, SQLite) runs in a worker thread; this module is sync.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshgate.api import annotations as pod_annotations
from meshgate.api.decode import decode_object
from meshgate.api.meta import Resource, ResourceKey
from meshgate.model.snapshot import Snapshot
from meshgate.runtime import names, servicenat
from meshgate.runtime.pods import Backoff, PodState, Runtime
from meshgate.server import asmegress, eviction
from meshgate.server import workloads as wl
from meshgate.server.nodeconfig import service_routes
from meshgate.server.nodefilter import NodeFilter
from meshgate.server.placement import Placer

# The kubelet's part (podips, podspec, podsync): what moved there stays importable here.
from meshgate.server.podips import FIRST_POD_HOST as FIRST_POD_HOST
from meshgate.server.podips import POD_NET as POD_NET
from meshgate.server.podspec import READY_PORT as READY_PORT
from meshgate.server.podspec import capabilities as capabilities
from meshgate.server.podspec import pod_volumes as pod_volumes
from meshgate.server.podspec import readiness_command as readiness_command
from meshgate.server.podspec import readiness_period as readiness_period
from meshgate.server.podspec import readiness_port as readiness_port
from meshgate.server.podspec import volume_mounts as volume_mounts
from meshgate.server.podsync import START_WAIT, PodSync, _key
from meshgate.server.podsync import STOP_DELAY as STOP_DELAY
from meshgate.server.podsync import pod_starts as pod_starts
from meshgate.server.ssrfguard import SsrfGuard
from meshgate.store.base import Compacted, ConfigStore, Event, Fence, Fenced, StoredObject

log = logging.getLogger("meshgate.reconcile")

Obj = dict[str, Any]


def _canonical(objects: list[Obj]) -> list[Obj]:
    """Controller-made objects in the store's canonical form (decoded, then encoded), the
    same a user's ``get -o yaml | apply`` produces, so neither side ever looks changed."""
    out = []
    for obj in objects:
        res, _ = decode_object(obj)
        out.append(res.to_wire() if res is not None else obj)
    return out


class Reconciler(PodSync):
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
        fence: Callable[[], Fence | None] = lambda: None,
    ) -> None:
        self.home = home
        self.leading = leading
        self.fence = fence
        self.fenced_writes = 0  # controller writes the store refused: leadership was gone
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
        self._by_key: dict[ResourceKey, StoredObject] | None = None  # the same, by key
        # (store revision, pods observed) at the end of the last full pass.
        self._settled: tuple[int, list[PodState], bool] | None = None  # and leading
        self._pending = True  # a pod wanted but not running, or a sync to retry
        # A pod on a silent node tolerates it for a while yet: look again each pass.
        self._eviction_later = False
        self._xds_mode = "delta"  # MeshConfig xdsMode, for proxies started from now on

    # -- controllers -------------------------------------------------------------------

    def _stored(self) -> list[StoredObject]:
        """The store's objects, brought up to date only once its revision moved: by the
        events since the listing's revision (what changed, decoded alone), or listed
        afresh when the store no longer keeps them (compacted) or there is no listing yet.
        With 10,000 objects a full list decodes every body; one change's events decode
        one or two. The revision is read before the update: a write in between makes the
        listing newer than its tag, so the next pass applies that event again (by key, so
        twice is once), never misses it."""
        revision = self.store.revision()
        if self._listing is not None and self._listing[0] == revision:
            return self._listing[1]
        if self._listing is not None and self._by_key is not None:
            try:
                events = self.store.events_since(self._listing[0])
            except Compacted:
                events = None
            if events is not None:
                for e in events:
                    if e.type == "DELETED":
                        self._by_key.pop(e.key, None)
                    else:
                        self._by_key[e.key] = _stored_from_event(e)
                self._listing = (revision, [self._by_key[k] for k in sorted(self._by_key)])
                return self._listing[1]
        listed = self.store.list()
        self._by_key = {s.key: s for s in listed}
        self._listing = (revision, listed)
        return listed

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

    def _evict(self, objs: list[Obj]) -> None:
        """Pods on joined nodes that stopped reporting, past their tolerations (eviction)."""
        gone, self._eviction_later = eviction.due(objs, datetime.datetime.now(datetime.UTC))
        for pod, why in gone:
            key = _key(pod)
            log.warning("evicting pod %s/%s: %s", key.namespace, key.name, why)
        if gone:
            self.store.delete([_key(pod) for pod, _ in gone], missing_ok=True)

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
        if not leading:
            self._eviction_later = False  # the leader's to look for, not a follower's
        # What the controllers are about to read, taken before they read it: a write or a
        # pod change during the pass (our own status writes included) differs from it, so
        # the next pass runs them again, and only a pass that changed nothing settles.
        pods = self.runtime.pod_states() if self.kubelet else []
        seen = (self.store.revision(), pods, leading)
        if not self._pending and not self._eviction_later and seen == self._settled:
            return self.snapshot
        self.controller_passes += 1
        fenced_before = self.fenced_writes
        nat_ok = True
        try:
            # Leadership is asked again before each controller: one lost mid-pass stops
            # the writes that are left (the new leader's next pass does them).
            for controller in (
                self._egress_policies,
                self._gateways,
                self._evict,
                self._garbage_collect,
                self._deployments,
            ):
                leading = leading and self._lead(controller)
            if self.kubelet:
                self._pods(self._objects())
            else:
                self._pending = False
            leading = leading and self._lead(self._deployment_status)
            self.refresh_snapshot()
            if self.kubelet:
                nat_ok = self._service_nat(self.snapshot)
                # After the snapshot (the gateways' routes say what they may reach) and
                # before the caller pushes it: a gateway gets no route before its guard.
                self._ssrf_guard.sync(self._objects(), self.snapshot, frozenset(self._typed))
        except BaseException:
            # Controllers edit listed dicts before writing them: never reuse those.
            self._listing = self._settled = None
            self._by_key = None
            raise
        self._pending = self._pending or (
            self.kubelet and not (nat_ok and self._node_filter.settled and self._ssrf_guard.settled)
        )
        # A pass whose writes were refused did not settle anything: the next one looks again.
        self._settled = seen if self.fenced_writes == fenced_before else None
        return self.snapshot

    def _lead(self, controller: Callable[[list[Obj]], None]) -> bool:
        """Run one controller as the leader, its writes fenced; False once this replica
        no longer leads (asked again, or a write refused), for the rest of the pass."""
        if not self.leading():
            return False
        try:
            with self.store.fenced(self.fence()):
                controller(self._objects())
        except Fenced as exc:
            self.fenced_writes += 1
            log.warning("controllers stop: this replica's leadership is gone (%s)", exc)
            # The controller may have edited listed dicts before the refused write.
            self._listing = None
            self._by_key = None
            return False
        return True

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


def _stored_from_event(e: Event) -> StoredObject:
    """The object an event left (its own decoded dict: events are read afresh)."""
    meta = e.object.get("metadata") or {}
    version = meta.get("resourceVersion")
    return StoredObject(
        e.key,
        e.object,
        int(version) if isinstance(version, str) and version.isdigit() else e.revision,
        int(meta.get("generation") or 1),
    )
