"""Pods as network namespaces: their containers, sidecar Envoy, capture rules and lifecycle.

Rules:
- Input is plain dataclasses (`PodSpec`, `ContainerSpec`, `ProxySpec`); this module knows
  nothing of the config store or typed resources.
- A pod is the namespace `mg-<id>-<pod id>`: `lo` up, `eth0` (veth to the node bridge) with the
  pod IP, default route via 10.34.0.1, and its own /etc files (`containers.Launcher`).
- How containers start and are entered is `containers.Launcher`'s: each app in a sandbox of
  its own (mount, PID, IPC, UTS namespaces) as its user, uid 0 by default as an image without
  USER would (uid/gid 1337 is the proxy's and refused for apps), with the container runtime's
  default capabilities unless its securityContext says otherwise: never NET_ADMIN by default,
  so an app cannot remove its pod's capture rules. The sidecar/gateway Envoy is container
  `istio-proxy`, run as 1337:1337 in the proxy cgroup. With capture, apps start only once the
  proxy listens on 15001 (pod Pending meanwhile), or after `proxy_hold_max` seconds;
  `start_pod` never blocks long on it.
- Capture (`capture=True`, `capture.install`) redirects the pod's outbound TCP to 15001,
  except the proxy's own traffic (told by its cgroup), 127.0.0.1 and what the spec's
  outbound ranges and ports leave out (`capture` writes them as istio-iptables), and with
  `capture_inbound` the TCP arriving from outside to 15006. Rules live in the pod's
  namespace and die with it. Router pods may bind ports below 1024 as uid 1337.
- Stopping a pod sends SIGTERM to its containers' processes (a sandbox's bwrap is spared, so
  the app's own exit status is kept), SIGKILL after the grace period, then ends whatever is
  still in its network namespace, its PID-namespace holder last, and removes its volumes.
- All pod state lives in the manifest (section `pods`), so a new `Runtime` over the same state
  directory re-adopts live containers by (pid, start time). The exit code of a container that
  dies while nobody holds it as a child is unknown (reported as None, reason "Unknown").
- `reconcile()` restarts dead containers per restart policy (Always; OnFailure: only after a
  non-zero exit; Never: never): at once the first time, then with the kubelet's back-off
  while they keep crashing (reason CrashLoopBackOff while waiting); `restartpolicy` decides,
  and a `Runtime` takes other figures for tests. A run that became ready went fine. A
  container that must not restart stays terminated (Completed or Error, with its exit
  code). The proxy is a native sidecar: restarted whatever the policy while an app
  container may still run, and stopped once every app container has ended for good.
  Phase: Succeeded when all app containers exited 0 for good, Failed when one failed for
  good, Running while any runs or will restart. A command that does not exist fails the pod.
- A container with an `image` runs what the image table maps it to (`images`): its
  ENTRYPOINT/CMD under the spec's command/args, on the image's layer. An image that cannot
  be mapped waits in ErrImagePull, retried with the kubelet's back-off (the user's table is
  read again each time); a container whose ConfigMap or Secret is missing waits in
  CreateContainerConfigError (env) or ContainerCreating (volumes), and is not retried: the
  control plane gives the pod a new spec once the object exists.
- `pod_states()` only observes; it never starts or kills anything.
- Thread-safe, per pod: the control plane starts pods in several threads at once (see
  `server.reconcile`), so each pod has a lock of its own, held by whatever creates, stops,
  restarts or enters it; pods never wait for each other. The manifest's flock keeps each
  write whole, and every write of a pod record replaces that pod's entry alone, so writers
  of different pods do not undo each other. An address is chosen and recorded in one
  step (`podnet.reserve`). `reconcile()` passes over a pod another thread holds (the next
  pass looks at it) and over one written since it read the manifest; looks
  (`pod_states()`) take no lock: they read the manifest as last written.
- At rest a supervision pass costs little: it looks at the manifest as last written
  (shared, parsed once per write) and copies a pod's record only when something is to be
  done for it (a dead or newly ready container, a start due, a held pod, exec probes, a
  sidecar to stop); a pod's decoded container specs are kept while its record is unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from meshgate.api.annotations import InboundPorts, OutboundCapture
from meshgate.runtime import (
    capture,
    containers,
    envoy,
    images,
    launch,
    manifest,
    names,
    netns,
    podnet,
    podstate,
    probes,
    procs,
    restartpolicy,
    sandbox,
)
from meshgate.runtime.podspec import (
    PROXY_CONTAINER,
    Backoff,
    ContainerNotFound,
    ContainerNotRunning,
    ContainerSpec,
    ContainerState,
    Phase,
    PodError,
    PodNotFound,
    PodSpec,
    PodState,
    ProxySpec,
    RestartPolicy,
    VolumeMountSpec,
    VolumeSpec,
    exit_reason,
    pod_phase,
    restarts,
    spec_from_dict,
)
from meshgate.xds.bootstrap import ready_port_of

TRIM_EVERY = 10.0  # seconds between two bounds of the containers' logs

# The pod types are re-exported: callers import them from here, beside the Runtime.
__all__ = [
    "PROXY_CONTAINER",
    "Backoff",
    "ContainerNotFound",
    "ContainerNotRunning",
    "ContainerSpec",
    "ContainerState",
    "Phase",
    "PodError",
    "PodNotFound",
    "PodSpec",
    "PodState",
    "ProxySpec",
    "RestartPolicy",
    "Runtime",
    "VolumeMountSpec",
    "VolumeSpec",
    "exit_reason",
    "pod_phase",
    "restarts",
    "spec_from_dict",
]

PROXY_HOLD_INLINE = 0.5
PROXY_HOLD_MAX = 10.0

CAPTURE_PORT = capture.CAPTURE_PORT


def _container_env(pod_name: str, c: ContainerSpec) -> dict[str, str]:
    """What a container's processes see: PATH, HOSTNAME (the pod's name), HOME, its env."""
    return {
        "PATH": launch.DEFAULT_PATH,
        "HOSTNAME": pod_name,
        "HOME": "/root" if c.run_as_user == 0 else "/",
        **c.env,
    }


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _proc_key(pod_key: str, container: str) -> str:
    return f"pod/{pod_key}/{container}"


class Runtime:
    """Starts, supervises and stops pods of the mesh whose state lives in `state_dir`."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        proxy_hold_max: float = PROXY_HOLD_MAX,
        backoff: Backoff | None = None,
        network: podnet.PodNetwork = podnet.DEFAULT,
    ) -> None:
        self.proxy_hold_max = proxy_hold_max
        self.network = network  # the node's pod range (a joined node's is its own)
        self.backoff = backoff or Backoff()
        self.state_dir = Path(os.path.realpath(state_dir))
        self.mesh_id = names.mesh_id(self.state_dir)
        self.manifest = manifest.Manifest(self.state_dir)
        # Per pod (namespace/name): held while it is created, stopped, supervised, entered.
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        # Per pod: how many times this runtime wrote its record (see reconcile()).
        self._writes: dict[str, int] = {}
        self._children: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        # (pod key, container) -> when its exec readiness probe is next due (time.time();
        # in memory: after a restart every probe is simply due at once)
        self._probe_due: dict[tuple[str, str], float] = {}
        # Decoded specs by the record dict they came from (kept alive here, so its id is
        # not reused while cached): the shared manifest view keeps unchanged dicts.
        self._specs: dict[int, tuple[dict[str, Any], tuple[ContainerSpec, ...]]] = {}
        self._trimmed_at = 0.0  # monotonic time logs were last bounded (reconcile())
        self.launcher = containers.Launcher(self.state_dir, self.mesh_id, self.manifest)
        # Its pods use their own node's DNS, on its bridge (a joined node's: its own).
        self.launcher.nameserver = network.gateway

    # -- records -----------------------------------------------------------------------------

    def _pods(self) -> dict[str, Any]:
        return self.manifest.section("pods")

    def _pods_view(self) -> dict[str, Any]:
        """The pod records for a look that changes nothing (shared: never modify them)."""
        return self.manifest.peek_section("pods")

    def _pod_lock(self, key: str) -> threading.RLock:
        """The pod's own lock (made on first use; kept: a name comes back with its pod)."""
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.RLock()
            return lock

    def _save_pod(
        self,
        key: str,
        rec: dict[str, Any] | None,
        process: tuple[str, procs.ProcId, list[str]] | None = None,
    ) -> None:
        """Write the pod's record (None: remove it) and, in the same write, a `process` just
        started (its manifest key, id, argv); the caller holds the pod's lock."""
        with self.manifest.edit() as m:
            pods = m["sections"].setdefault("pods", {})
            if rec is None:
                pods.pop(key, None)
            else:
                pods[key] = rec
            if process is not None:
                pkey, proc, argv = process
                m["processes"][pkey] = {
                    "pid": proc.pid,
                    "start_time": proc.start_time,
                    "argv": argv,
                }
        self._saved(key)

    def _saved(self, key: str) -> None:
        self._writes[key] = self._writes.get(key, 0) + 1

    # -- paths -------------------------------------------------------------------------------

    def log_path(
        self, namespace: str, name: str, container: str | None = None, previous: bool = False
    ) -> Path:
        """The container's log file (its current run; with `previous`, the run before, as
        kubectl logs -p); without `container`, the pod's first app container.

        A pod that exists must have the container (ContainerNotFound otherwise). Logs outlive
        their pod until the state directory goes, so a removed pod's container log is still
        found by name; PodNotFound when there is neither a pod nor such a log."""
        if not container or _key(namespace, name) in self._pods():
            container = self._default_container(namespace, name, container).name
            return self._log_file(namespace, name, container, previous)
        path = self._log_file(namespace, name, container, previous)
        if not path.exists():
            raise PodNotFound(f"pod {namespace}/{name} not found")
        return path

    def _log_file(self, namespace: str, name: str, container: str, previous: bool = False) -> Path:
        suffix = ".previous.log" if previous else ".log"
        return self.state_dir / "logs" / "pods" / namespace / name / f"{container}{suffix}"

    def _default_container(
        self, namespace: str, name: str, container: str | None = None
    ) -> ContainerSpec:
        rec = self._pods().get(_key(namespace, name))
        if rec is None:
            raise PodNotFound(f"pod {namespace}/{name} not found")
        specs = {c.name: c for c in self._container_specs(rec)}
        # Like kubectl, the default is the first app container, never the proxy.
        # A gateway pod has only the proxy, which is then the default.
        apps = [n for n in specs if n != PROXY_CONTAINER]
        cname = container or (apps[0] if apps else PROXY_CONTAINER)
        if cname not in specs:
            raise ContainerNotFound(f"container {cname} is not valid for pod {name}")
        return specs[cname]

    def pod_runtime_dir(self, namespace: str, name: str) -> Path:
        return self.launcher.pod_runtime_dir(namespace, name)

    def netns_of(self, namespace: str, name: str) -> str:
        return names.pod_netns(self.mesh_id, names.pod_id(namespace, name))

    # -- public API --------------------------------------------------------------------------

    def start_pod(self, spec: PodSpec) -> PodState:
        """Create the pod and start its containers; idempotent for an identical spec. Other
        pods may start at the same time (in other threads)."""
        key = _key(spec.namespace, spec.name)
        with self._pod_lock(key):
            existing = self._pods().get(key)
            if existing is not None:
                if spec_from_dict(existing["spec"]) == dataclasses.replace(
                    spec, ip=spec.ip or existing["ip"]
                ):
                    return self._state(existing)
                self._stop(key, existing)
            self._validate(spec)
            try:
                rec = self._create(spec)
                self._start_all(key, rec)
            except BaseException:
                failed = self._pods().get(key)
                if failed is not None:
                    self._stop(key, failed)
                raise
            return self._state(self._pods()[key])

    def stop_pod(self, namespace: str, name: str) -> None:
        key = _key(namespace, name)
        with self._pod_lock(key):
            rec = self._pods().get(key)
            if rec is not None:
                self._stop(key, rec)

    def pod_states(self) -> list[PodState]:
        pods = self._pods_view()
        return [self._state(pods[k]) for k in sorted(pods)]

    def pod_state(self, namespace: str, name: str) -> PodState | None:
        rec = self._pods_view().get(_key(namespace, name))
        return None if rec is None else self._state(rec)

    def running_processes(self) -> list[procs.ProcId]:
        """The processes of every running container, whose exit `reconcile()` should see
        at once (the control plane waits on them)."""
        return [p for rec in self._pods_view().values() for p in podstate.processes(rec)]

    def starting(self, window: float) -> bool:
        """Whether a container with a readiness probe started less than `window` seconds
        ago and has not been ready yet."""
        now = time.time()
        return any(
            podstate.starting(rec, self._container_specs(rec), now, window)
            for rec in self._pods_view().values()
        )

    def reconcile(self) -> None:
        """Notice dead containers, restart those whose back-off has passed, bound the logs.

        A pod another thread holds (starting, stopping) is left for the next call, and so
        is one whose record was written after the manifest was read here (the read would
        be stale)."""
        writes = dict(self._writes)  # before the read: a later write shows as a new count
        now = time.time()
        # Logs are bounded every few seconds, not every pass: a stat per container per
        # pass is most of a calm mesh's cost, and a log outgrows its limit in minutes.
        trim = time.monotonic() - self._trimmed_at >= TRIM_EVERY
        if trim:
            self._trimmed_at = time.monotonic()
        for key, shared in sorted(self._pods_view().items()):
            lock = self._pod_lock(key)
            if not lock.acquire(blocking=False):
                continue
            try:
                if self._writes.get(key, 0) != writes.get(key, 0):
                    continue
                if trim:
                    for c in self._container_specs(shared):
                        # The path itself: log_path() would read the manifest per container.
                        path = self._log_file(shared["namespace"], shared["name"], c.name)
                        launch.trim_log(path)
                if self._wants_attention(key, shared, now):
                    self._reconcile_pod(key, manifest.private_copy(shared))
            finally:
                lock.release()

    def _wants_attention(self, key: str, rec: dict[str, Any], now: float) -> bool:
        """Whether `_reconcile_pod` has anything to do for the pod (read-only: `rec` is
        the shared view)."""
        if rec.get("held_until") is not None:
            return True
        for c in self._container_specs(rec):
            crec = rec["containers"][c.name]
            if crec["reason"] == "ContainerCreating":
                continue
            if crec["state"] == "running" and (
                (c.readiness_command and self._probe_due.get((key, c.name), 0.0) <= now)
                or not self._alive(key, c.name, crec)
                or (not crec.get("ready_seen") and probes.verdict(c, crec))
            ):
                return True
            due = crec.get("next_start_at")
            if crec["state"] == "waiting" and due is not None and due <= now:
                return True
        proxy = rec["containers"].get(PROXY_CONTAINER)
        return self._apps_ended(rec) and proxy is not None and proxy["state"] != "terminated"

    def _reconcile_pod(self, key: str, rec: dict[str, Any]) -> None:
        now = time.time()
        held = rec.get("held_until")
        if held is not None and (held <= now or self._proxy_listening(key, rec)):
            self._start_apps(key, rec)
        changed = False
        for c in self._container_specs(rec):
            crec = rec["containers"][c.name]
            if crec["reason"] == "ContainerCreating":
                continue
            if crec["state"] == "running" and not self._alive(key, c.name, crec):
                self._on_exit(key, rec, c.name, crec, now)
                changed = True
            elif (
                crec["state"] == "running"
                and not crec.get("ready_seen")
                and probes.verdict(c, crec)
            ):
                crec["ready_seen"] = True  # this run went fine (see restartpolicy)
                changed = True
            if (
                crec["state"] == "waiting"
                and crec.get("next_start_at") is not None
                and crec["next_start_at"] <= now
            ):
                self._start_container(key, rec, c)
                changed = True
        if self._apps_ended(rec) and self._stop_sidecar(key, rec):
            changed = True
        if self._run_exec_probes(key, rec):
            changed = True
        if changed:
            self._save_pod(key, rec)

    @staticmethod
    def _apps_ended(rec: dict[str, Any]) -> bool:
        """Every app container has terminated and will not be started again (a pod of its
        proxy alone, a gateway, never ends this way)."""
        apps = [c for n, c in rec["containers"].items() if n != PROXY_CONTAINER]
        return bool(apps) and all(
            c["state"] == "terminated" and c.get("next_start_at") is None for c in apps
        )

    def _stop_sidecar(self, key: str, rec: dict[str, Any]) -> bool:
        """Stop the proxy of a pod whose apps have ended, as the kubelet stops a native
        sidecar once the main containers are done; it is not restarted. True if stopped."""
        crec = rec["containers"].get(PROXY_CONTAINER)
        if crec is None or crec["state"] == "terminated":
            return False
        if crec["state"] == "running" and crec["pid"] is not None and crec["start_time"]:
            grace = float(rec["spec"]["termination_grace_period"])
            proxy = procs.ProcId(crec["pid"], crec["start_time"])
            procs.terminate([proxy], grace=grace, spare_leaders=[proxy.pid])
        child = self._children.pop((key, PROXY_CONTAINER), None)
        # Stopped on purpose: an adopted proxy (no child to ask) counts as a clean exit.
        code: int | None = 0
        if child is not None and child.pid == crec["pid"]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                raw = child.wait(timeout=1.0)
                # Envoy drains and exits 0 on SIGTERM; death by the signal itself is 143.
                code = 0 if raw in (0, -15) else (128 - raw if raw < 0 else raw)
        elif crec["state"] == "waiting":
            code = crec["exit_code"]
        self.manifest.forget_process(_proc_key(key, PROXY_CONTAINER))
        crec.update(
            state="terminated",
            reason=exit_reason(code),
            message="",
            exit_code=code,
            pid=None,
            next_start_at=None,
        )
        return True

    ADMIN_PATHS = ("/config_dump", "/clusters?format=json", "/server_info", "/ready", "/stats")

    def proxy_admin(self, namespace: str, name: str, path: str, timeout: float = 5.0) -> str:
        """GET `path` from the pod's Envoy admin (127.0.0.1:15000 inside the pod). Read-only
        paths only: the admin also has endpoints that stop or reconfigure the proxy."""
        if path.split("?")[0] not in {p.split("?")[0] for p in self.ADMIN_PATHS}:
            raise PodError(f"admin path {path!r} is not one of {', '.join(self.ADMIN_PATHS)}")
        with self._pod_lock(_key(namespace, name)):
            rec = self._pods().get(_key(namespace, name))
            if rec is None:
                raise PodNotFound(f"pod {namespace}/{name} not found")
            if rec["spec"].get("proxy") is None:
                raise PodError(f"pod {namespace}/{name} has no proxy")
            ns = rec["netns"]
        proc = subprocess.run(
            [*netns.exec_prefix(ns), "curl", "-sS", "--max-time", str(timeout),
             f"http://127.0.0.1:15000{path}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise PodError(f"proxy admin of {namespace}/{name}: {proc.stderr.strip()}")
        return proc.stdout

    def exec_argv(
        self,
        namespace: str,
        name: str,
        command: list[str],
        container: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> list[str]:
        """The argv that runs `command` inside the pod as the container's user (like kubectl
        exec); `ip netns exec` bind-mounts the pod's resolv.conf and hosts."""
        with self._pod_lock(_key(namespace, name)):
            c = self._default_container(namespace, name, container)
            rec = self._pods()[_key(namespace, name)]
            # As kubectl exec: the container's environment (never the caller's, which would
            # leak the operator's variables into the pod) and working directory.
            env = {**_container_env(name, c), **(extra_env or {})}
            setenv = [
                "env",
                "-i",
                "-C",
                c.working_dir or "/",
                *(f"{k}={v}" for k, v in env.items()),
            ]
            return [*self._enter(_key(namespace, name), rec, c), *setenv, *command]

    def _enter(self, key: str, rec: dict[str, Any], c: ContainerSpec) -> list[str]:
        crec = rec["containers"][c.name]
        alive = crec["state"] == "running" and self._alive(key, c.name, crec)
        return self.launcher.enter_prefix(rec, c, int(crec["pid"]) if alive else None)

    # -- creation ----------------------------------------------------------------------------

    def _validate(self, spec: PodSpec) -> None:
        if not spec.containers and spec.proxy is None:
            # A gateway pod is its proxy alone; any other pod needs something to run.
            raise PodError("a pod needs at least one container")
        seen: set[str] = set()
        for c in spec.containers:
            if c.name in seen or (c.name == PROXY_CONTAINER and spec.proxy is not None):
                raise PodError(f"duplicate container name {c.name!r}")
            seen.add(c.name)
            if not c.argv and not c.image:
                raise PodError(f"container {c.name!r} has no command")
            uid, gid = containers.ids(c)
            if envoy.PROXY_UID in (uid, gid):
                raise PodError(f"container {c.name!r}: uid/gid 1337 is reserved for the proxy")
            for m in c.mounts:
                if m.name not in {v.name for v in spec.volumes}:
                    raise PodError(f"container {c.name!r}: volume {m.name!r} not found")
                if not m.mount_path.startswith("/") or ".." in m.mount_path.split("/"):
                    raise PodError(f"container {c.name!r}: mountPath {m.mount_path!r} not absolute")
                if ".." in m.sub_path.split("/") or m.sub_path.startswith("/"):
                    raise PodError(
                        f"container {c.name!r}: subPath {m.sub_path!r} leaves the volume"
                    )
        for m in spec.proxy.mounts if spec.proxy is not None else []:  # a gateway's volumes
            parts = [*m.mount_path.split("/"), *m.sub_path.split("/")]
            known = m.name in {v.name for v in spec.volumes}
            if (
                not known
                or not m.mount_path.startswith("/")
                or ".." in parts
                or m.sub_path[:1] == "/"
            ):
                raise PodError(f"container {PROXY_CONTAINER!r}: bad volume mount {m.name!r}")
        if spec.containers and shutil.which(sandbox.BWRAP) is None:
            raise PodError(
                f"{sandbox.BWRAP} is not installed: app containers run in bubblewrap sandboxes"
                " (Debian's bubblewrap package; make installs it)"
            )
        if not netns.exists(names.node_netns(self.mesh_id)):
            raise PodError("the node is not up (Node(state_dir).up() first)")

    def _create(self, spec: PodSpec) -> dict[str, Any]:
        key = _key(spec.namespace, spec.name)
        ns = names.pod_netns(self.mesh_id, names.pod_id(spec.namespace, spec.name))
        containers = ([PROXY_CONTAINER] if spec.proxy else []) + [c.name for c in spec.containers]
        cgroup = self.launcher.proxy_cgroup() if spec.capture else None

        def record(ip: str) -> dict[str, Any]:
            rec = podstate.new_record(spec, ns, ip, containers)
            if spec.capture:
                rec["proxy_cgroup"] = None if cgroup is None else str(cgroup)
            return rec

        # Its address chosen and the pod, its namespace and veth recorded in one write
        # (pods start in several threads; each write costs the whole manifest), and first:
        # a crash from here on leaves a manifest naming the namespace.
        rec = podnet.reserve(
            self.manifest, "pods", key, spec.namespace, spec.name, spec.ip, record, self.network
        )
        self._saved(key)
        ip = rec["ip"]
        podnet.wire(self.manifest, self.mesh_id, spec.namespace, spec.name, ip, True, self.network)
        self.launcher.write_etc(spec, ns, ip)
        self.launcher.make_volumes(spec)
        if spec.capture:
            inbound = None
            if spec.capture_inbound:
                include = None if spec.inbound_include is None else tuple(spec.inbound_include)
                inbound = InboundPorts(include, tuple(spec.inbound_exclude))
            outbound = OutboundCapture(
                None
                if spec.outbound_include_ranges is None
                else tuple(spec.outbound_include_ranges),
                tuple(spec.outbound_exclude_ranges),
                tuple(spec.outbound_include_ports),
                tuple(spec.outbound_exclude_ports),
            )
            capture.install(ns, cgroup, inbound, outbound)
        if spec.proxy is not None:  # (low ports: podnet makes every port unprivileged)
            self.launcher.write_bootstrap(spec)
        return rec

    # -- containers --------------------------------------------------------------------------

    def _container_specs(self, rec: dict[str, Any]) -> list[ContainerSpec]:
        """The pod's containers in start order: the proxy first, so capture has a listener."""
        raw = rec["spec"]
        cached = self._specs.get(id(raw))
        if cached is not None and cached[0] is raw:
            return list(cached[1])
        spec = spec_from_dict(raw)
        specs = ([self._proxy_container(spec)] if spec.proxy is not None else []) + [
            *spec.containers
        ]
        if len(self._specs) > 4096:  # records come and go: start afresh
            self._specs.clear()
        self._specs[id(raw)] = (raw, tuple(specs))
        return specs

    def _proxy_container(self, spec: PodSpec) -> ContainerSpec:
        assert spec.proxy is not None
        bootstrap = self.pod_runtime_dir(spec.namespace, spec.name) / "envoy.json"
        argv = envoy.envoy_argv(
            envoy.binary_for_proxy(), bootstrap, spec.proxy.concurrency, spec.proxy.log_level
        )
        # The proxy's readiness is its own (Istio's /healthz/ready): its readiness listener
        # listens once Envoy has its initial config; a sidecar without one is ready once it
        # listens on the capture port, which comes from the same config.
        ready = ready_port_of(spec.proxy.bootstrap)
        if ready is None and spec.capture:
            ready = CAPTURE_PORT
        return ContainerSpec(
            name=PROXY_CONTAINER,
            argv=argv,
            run_as_user=envoy.PROXY_UID,
            run_as_group=envoy.PROXY_GID,
            working_dir="/",
            readiness_port=ready,
            mounts=list(spec.proxy.mounts),
        )

    def _start_all(self, key: str, rec: dict[str, Any]) -> None:
        """Start the proxy, then the apps once it listens on the capture port (else their
        first connections are refused; Istio's holdApplicationUntilProxyStarts). A proxy fed
        by xDS may need the control plane's next push to listen: then the apps are held
        (pod Pending) and `reconcile()` starts them, at the latest after PROXY_HOLD_MAX."""
        specs = self._container_specs(rec)
        proxy = [c for c in specs if c.name == PROXY_CONTAINER]
        saved = False
        for c in proxy:
            saved = self._start_container(key, rec, c)
        if not saved:
            self._save_pod(key, rec)
        if proxy and rec["spec"]["capture"]:
            deadline = time.monotonic() + PROXY_HOLD_INLINE
            while not self._proxy_listening(key, rec) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not self._proxy_listening(key, rec):
                rec["held_until"] = time.time() + self.proxy_hold_max
                self._save_pod(key, rec)
                return
        self._start_apps(key, rec)

    def _start_apps(self, key: str, rec: dict[str, Any]) -> None:
        rec["held_until"] = None
        saved = False  # whether the record as it is now has been written
        for c in self._container_specs(rec):
            if c.name != PROXY_CONTAINER:
                saved = self._start_container(key, rec, c)
        if not saved:
            self._save_pod(key, rec)

    def _start_container(self, key: str, rec: dict[str, Any], c: ContainerSpec) -> bool:
        """Start (or record why it cannot start) container `c`; True if the pod's record
        was written since (a started process is recorded with it, in one write: each
        write costs the whole manifest)."""
        crec = rec["containers"][c.name]
        env = _container_env(rec["name"], c)
        argv = c.argv
        layer: tuple[sandbox.Mount, ...] = ()
        if self._not_created(rec, c):  # a gateway's proxy waits for its volumes as apps do
            return False
        if c.name != PROXY_CONTAINER and c.image:
            try:
                image = images.resolve(c.image, images.load_user_table(self.state_dir))
            except images.ImageError as exc:
                now = time.time()
                restartpolicy.record_pull_error(rec, c.name, str(exc), now, self.backoff)
                return False
            argv = images.argv(image, c.command, c.args)
            if not argv:
                restartpolicy.record_config_error(
                    rec, c.name, f'image "{c.image}" has no ENTRYPOINT or CMD: give a command'
                )
                return False
            layer = self.launcher.image_layer(rec, c, image)
        found = launch.resolve_command(argv[0], env.get("PATH", launch.DEFAULT_PATH))
        if found is None or (c.name != PROXY_CONTAINER and not sandbox.sees(found)):
            not_found = f'exec: "{argv[0]}": executable file not found in $PATH'
            policy = rec["spec"].get("restart_policy", "Always")
            if c.name != PROXY_CONTAINER and restarts(policy, 127):
                # As the kubelet: retried with back-off (the binary may appear), the
                # reason visible while it waits.
                restartpolicy.record_start_error(rec, c.name, not_found, time.time(), self.backoff)
                return False
            crec.update(
                state="terminated",
                reason="StartError",
                message=not_found,
                exit_code=127,
                pid=None,
                start_time=None,
                next_start_at=None,
            )
            msg = f"container {c.name}: {crec['message']}"
            rec["failed"] = {"reason": "StartError", "message": msg}
            return False
        pidns = None
        if c.name != PROXY_CONTAINER and rec["spec"].get("share_process_namespace"):
            pidns = self._pidns(key, rec)
        argv = [*self.launcher.launch_prefix(rec, c, pidns, layer), *argv]
        log = self.log_path(rec["namespace"], rec["name"], c.name)
        with contextlib.suppress(OSError):
            if log.stat().st_size:  # each run has its own log; the last one stays for -p
                os.replace(log, self._log_file(rec["namespace"], rec["name"], c.name, True))
        # A new run is not ready until its probe says so, which it is asked at once.
        crec.pop("probe_ok", None)
        self._probe_due.pop((key, c.name), None)
        crec.pop("ready_seen", None)
        try:
            fds = () if pidns is None else (pidns,)
            popen = launch.spawn(argv, log, env=env, cwd=c.working_dir or "/", pass_fds=fds)
        finally:
            if pidns is not None:
                os.close(pidns)
        proc = procs.identify(popen.pid)
        self._children[(key, c.name)] = popen
        crec.update(
            state="running",
            reason="",
            message="",
            pid=popen.pid,
            start_time=proc.start_time if proc else None,
            started_at=time.time(),
            next_start_at=None,
        )
        if proc is None:
            return False
        self._save_pod(key, rec, process=(_proc_key(key, c.name), proc, argv))
        return True

    def _not_created(self, rec: dict[str, Any], c: ContainerSpec) -> bool:
        """Whether container `c` cannot be created from its spec (a ConfigMap or Secret its
        env or volumes need is missing): it then waits, as the kubelet leaves it, until its
        pod is given a spec that works (the control plane does so once the object exists)."""
        if c.config_error:
            restartpolicy.record_config_error(rec, c.name, c.config_error)
            return True
        why = self.launcher.volume_error(rec, c)
        if why:
            restartpolicy.record_config_error(rec, c.name, why, reason="ContainerCreating")
            return True
        return False

    def _pidns(self, key: str, rec: dict[str, Any]) -> int:
        """An open descriptor of the pod's shared PID namespace, its holder started first
        if it is not running (a holder that died took every container in it along)."""
        if not self.launcher.pause_alive(rec):
            argv = self.launcher.pause_argv(rec)
            log = self._log_file(rec["namespace"], rec["name"], containers.PAUSE)
            popen = launch.spawn(argv, log)
            self._children[(key, containers.PAUSE)] = popen
            proc = procs.identify(popen.pid)
            if proc is None:
                raise PodError(f"pod {key}: the PID namespace holder did not start")
            rec["pause"] = {"pid": proc.pid, "start_time": proc.start_time}
            self.manifest.record_process(_proc_key(key, containers.PAUSE), proc, argv)
            self._save_pod(key, rec)
        deadline = time.monotonic() + 5.0
        while (fd := self.launcher.open_pidns(rec)) is None:
            if time.monotonic() > deadline:
                raise PodError(f"pod {key}: no shared PID namespace")
            time.sleep(0.005)
        return fd

    def _alive(self, key: str, cname: str, crec: dict[str, Any]) -> bool:
        child = self._children.get((key, cname))
        if child is not None and child.pid == crec["pid"]:
            return child.poll() is None
        if crec["pid"] is None or crec["start_time"] is None:
            return False
        return procs.is_alive(procs.ProcId(crec["pid"], crec["start_time"]))

    def _exit_code(self, key: str, cname: str, crec: dict[str, Any]) -> int | None:
        child = self._children.get((key, cname))
        if child is not None and child.pid == crec["pid"]:
            code = child.poll()
            if code is not None:
                # Popen reports death by signal N as -N; Kubernetes shows 128 + N.
                return 128 - code if code < 0 else code
        return None

    def _on_exit(
        self, key: str, rec: dict[str, Any], cname: str, crec: dict[str, Any], now: float
    ) -> None:
        code = self._exit_code(key, cname, crec)
        if crec["pid"] is not None:
            procs.kill_leftovers(int(crec["pid"]))
        self._children.pop((key, cname), None)
        self.manifest.forget_process(_proc_key(key, cname))
        # The proxy is a sidecar: restarted whatever the pod's policy (until the apps end).
        policy = (
            "Always" if cname == PROXY_CONTAINER else rec["spec"].get("restart_policy", "Always")
        )
        restartpolicy.record_exit(rec, cname, policy, code, now, self.backoff)

    def _proxy_listening(self, key: str, rec: dict[str, Any]) -> bool:
        crec = rec["containers"][PROXY_CONTAINER]
        if not self._alive(key, PROXY_CONTAINER, crec):
            return False
        pid = crec["pid"]
        try:
            target = os.stat(netns.path(rec["netns"]))
            # Right after spawn the process may not have entered the pod namespace yet, and
            # /proc/PID/net shows whichever namespace it is in.
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            return False
        same = (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino)
        return same and probes.listening(pid, CAPTURE_PORT)

    # -- readiness ---------------------------------------------------------------------------

    def _run_exec_probes(self, key: str, rec: dict[str, Any]) -> bool:
        """Run the exec readiness probes of running containers; True if a verdict changed."""
        changed = False
        now = time.time()
        for c in self._container_specs(rec):
            crec = rec["containers"][c.name]
            if not c.readiness_command or crec["state"] != "running":
                continue
            if self._probe_due.get((key, c.name), 0.0) > now:  # once per periodSeconds
                continue
            self._probe_due[(key, c.name)] = now + c.readiness_period
            try:
                argv = [*self._enter(key, rec, c), *c.readiness_command]
            except ContainerNotRunning:
                continue
            ok = probes.run(argv, timeout=1.0)
            if crec.get("probe_ok") != ok:
                crec["probe_ok"] = ok
                changed = True
        return changed

    # -- state -------------------------------------------------------------------------------

    def _state(self, rec: dict[str, Any]) -> PodState:
        key = _key(rec["namespace"], rec["name"])
        return podstate.observe(
            rec,
            self._container_specs(rec),
            alive=lambda cname, crec: self._alive(key, cname, crec),
            exit_code=lambda cname, crec: self._exit_code(key, cname, crec),
        )

    # -- stopping ----------------------------------------------------------------------------

    def _stop(self, key: str, rec: dict[str, Any]) -> None:
        targets, sandboxes = [], []
        for crec in rec["containers"].values():
            if crec["pid"] is not None and crec["start_time"] is not None:
                targets.append(procs.ProcId(crec["pid"], crec["start_time"]))
                sandboxes.append(crec["pid"])  # every container is a sandbox, the proxy too
        grace = float(rec["spec"]["termination_grace_period"])
        procs.terminate(targets, grace=grace, spare_leaders=sandboxes)
        if pause := rec.get("pause"):  # last: its end would SIGKILL what runs in its namespace
            holder = procs.ProcId(pause["pid"], pause["start_time"])
            procs.terminate([holder], grace=0.5, spare_leaders=[holder.pid])
        ns = rec["netns"]
        strays = [
            p
            for pid in procs.pids_in_netns(str(netns.path(ns)))
            if (p := procs.identify(pid)) is not None
        ]
        procs.terminate(strays, grace=0.5, group=False)
        for cname in [*rec["containers"], containers.PAUSE]:
            self._probe_due.pop((key, cname), None)
            child = self._children.pop((key, cname), None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=1.0)
            self.manifest.forget_process(_proc_key(key, cname))
        podnet.unwire(self.manifest, self.mesh_id, rec["namespace"], rec["name"], ns)
        shutil.rmtree(self.pod_runtime_dir(rec["namespace"], rec["name"]), ignore_errors=True)
        self.launcher.remove_volumes(rec["namespace"], rec["name"])
        self._save_pod(key, None)
