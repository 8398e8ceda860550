"""Pod start/stop orchestration: the kubelet's part of a pass, runtime to match the store.

Rules:
- A Pod gone from the store leaves the endpoints (snapshot, cluster-IP rules, EDS) in the
  pass that notices it, but its containers stop only STOP_DELAY later, once the proxies
  have the new endpoints: Kubernetes' endpoint removal before SIGTERM, so a rollout drops
  no request. A Pod re-created under the same name (another uid) replaces it at once.
  ``Recreate`` Deployments get new pods only once their old ones have stopped.
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
- Nodes (see ``nodes``, ``placement``): each pod is placed on a node first; this process
  runs its own node's pods only. For a pod on a joined node it allocates the address
  from that node's podCIDR and makes the pod's spec (its proxy reaching xDS over mTLS
  TCP at ``remote_xds``), kept in ``remote_specs`` for that node's agent to fetch; the
  agent reports the pod's status back (``joinapi``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from meshgate.api import annotations as pod_annotations
from meshgate.api.kinds.meshgate_kinds import MESH_CONFIG_NAME
from meshgate.api.meta import ResourceKey
from meshgate.runtime import restartpolicy
from meshgate.runtime.pods import Backoff
from meshgate.server import nodes as nodes_mod
from meshgate.server import podconfig
from meshgate.server import workloads as wl
from meshgate.server.nodefilter import NodeFilter
from meshgate.server.placement import Placer, without_unscheduled
from meshgate.server.podips import PodAddresses
from meshgate.server.podspec import Obj, PodSpecs
from meshgate.store.base import ConfigStore

log = logging.getLogger("meshgate.reconcile")

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


def _key(obj: Obj) -> ResourceKey:
    return ResourceKey(*wl.key_of(obj))


class PodSync(PodSpecs, PodAddresses):
    """The ``Reconciler``'s pod starts and stops (a mixin: its state is the reconciler's,
    set in ``Reconciler.__init__``)."""

    store: ConfigStore
    _placer: Placer
    _node_filter: NodeFilter
    remote_xds: str | None
    remote_specs: dict[str, dict[tuple[str, str], dict[str, Any]]]
    remote_specs_ready: bool
    _stopping: dict[tuple[str, str], float]
    _deleted_by: dict[tuple[str, str], str]
    _start_retry: dict[tuple[str, str], tuple[int, float]]
    start_backoff: Backoff
    start_wait: float
    on_started: Callable[[], None] | None
    _start_pool: concurrent.futures.ThreadPoolExecutor
    _starts: dict[tuple[str, str], concurrent.futures.Future[Any]]
    _pending: bool

    def _runtime_pods(self) -> dict[tuple[str, str], Any]:
        return {(s.namespace, s.name): s for s in self.runtime.pod_states()}

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
