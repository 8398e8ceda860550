"""What the runtime is asked to run and what it reports: pod and container specs, their
observed states, and the kubelet's rules that map one to the other.

Rules:
- Plain dataclasses only, JSON-able through `dataclasses.asdict` (the manifest stores specs
  as dicts and `spec_from_dict` reads them back): nothing here touches the system.
- Names and figures are the kubelet's: restart back-off, exit reasons, pod phase, status
  fields in Kubernetes spelling.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

from meshgate.runtime import names

PROXY_CONTAINER = "istio-proxy"
BACKOFF_START = 10.0  # the kubelet's initial crash back-off
BACKOFF_MAX = 300.0  # ... doubling up to 5 min
RESET_AFTER = 600.0  # ... and forgotten after 10 min of running

# Waiting reasons of a container that could not be created yet: while one of them has
# never run, its pod is Pending (as the kubelet reports it).
NOT_CREATED = ("ContainerCreating", "CreateContainerConfigError", "ErrImagePull")

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]
ContainerPhase = Literal["running", "waiting", "terminated"]
RestartPolicy = Literal["Always", "OnFailure", "Never"]


@dataclass(frozen=True)
class Backoff:
    """Crash back-off: `start` seconds, doubling up to `cap`; forgotten after `reset_after`
    seconds of running. The defaults are the kubelet's."""

    start: float = BACKOFF_START
    cap: float = BACKOFF_MAX
    reset_after: float = RESET_AFTER

    def delay(self, crashes: int) -> float:
        """The wait before the restart that follows `crashes` earlier crashes."""
        return min(self.cap, self.start * float(2 ** min(crashes, 32)))


def restarts(policy: str, exit_code: int | None) -> bool:
    """Whether a container that exited with `exit_code` (None: unknown) is started again."""
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def exit_reason(exit_code: int | None) -> str:
    return "Unknown" if exit_code is None else ("Completed" if exit_code == 0 else "Error")


@dataclass
class VolumeMountSpec:
    """A pod volume mounted into one container (Kubernetes' volumeMounts entry)."""

    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass
class VolumeFile:
    """A file of a configMap or secret volume: its path in the volume, bytes, mode."""

    path: str
    data: str  # base64 (a Secret's bytes need not be text)
    mode: int = 0o644


@dataclass
class VolumeSpec:
    """A pod volume the runtime makes: an emptyDir (on the node's disk, or in memory), or
    the files of a ConfigMap or Secret (in memory, read-only in every container). `error`:
    why it cannot be set up (a missing ConfigMap...), in the kubelet's words; containers
    that mount it wait in ContainerCreating."""

    name: str
    medium: Literal["", "Memory"] = ""
    source: Literal["emptyDir", "configMap", "secret"] = "emptyDir"
    files: list[VolumeFile] = field(default_factory=list)
    error: str = ""


@dataclass
class ContainerSpec:
    name: str
    # What runs: `argv` as given when there is no image; with an image, the image table's
    # ENTRYPOINT/CMD under `command`/`args` (Kubernetes' rule, see `images`).
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    run_as_user: int = 0
    run_as_group: int | None = None  # None: same as run_as_user's default group, 0
    working_dir: str | None = None
    # Lower-case capability names without "cap_" (["all"]: privileged); None: the
    # container runtime's default set (envoy.DEFAULT_CAPABILITIES).
    capabilities: list[str] | None = None
    # readinessProbe: ready once this port listens in the pod (tcpSocket and httpGet probes
    # both map to it), or once this command exits 0 (exec probes); None: ready when running.
    readiness_port: int | None = None
    readiness_command: list[str] | None = None
    # The probe's periodSeconds (Kubernetes' default 10): an exec probe runs once per period,
    # and a port seen listening is believed that long before it is asked again.
    readiness_period: float = 10.0
    mounts: list[VolumeMountSpec] = field(default_factory=list)
    image: str = ""
    command: list[str] | None = None
    args: list[str] | None = None
    # Why the container cannot be created (a missing ConfigMap in its env...): it waits
    # with reason CreateContainerConfigError and this message.
    config_error: str = ""


@dataclass
class ProxySpec:
    bootstrap: dict[str, Any]
    mode: Literal["sidecar", "router"] = "sidecar"
    concurrency: int = 2
    log_level: str = "warn"
    # A gateway's istio-proxy container's volumeMounts (a sidecar's proxy has none).
    mounts: list[VolumeMountSpec] = field(default_factory=list)


@dataclass
class PodSpec:
    name: str
    namespace: str
    containers: list[ContainerSpec]
    uid: str = ""
    ip: str | None = None  # None: the runtime allocates one from 10.34.0.0/16
    proxy: ProxySpec | None = None
    capture: bool = False
    # Inbound capture (to the sidecar's 15006): off for records from before it existed.
    capture_inbound: bool = False
    inbound_include: list[int] | None = None  # None: every port
    inbound_exclude: list[int] = field(default_factory=list)
    # Outbound capture scope (Istio's include/excludeOutboundIPRanges and -Ports): ranges
    # None is "*", every destination.
    outbound_include_ranges: list[str] | None = None
    outbound_exclude_ranges: list[str] = field(default_factory=list)
    outbound_include_ports: list[int] = field(default_factory=list)
    outbound_exclude_ports: list[int] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    restart_policy: RestartPolicy = "Always"
    termination_grace_period: float = 2.0
    volumes: list[VolumeSpec] = field(default_factory=list)
    # shareProcessNamespace: the pod's app containers share one PID namespace.
    share_process_namespace: bool = False


@dataclass
class ContainerState:
    name: str
    state: ContainerPhase
    reason: str = ""
    message: str = ""
    exit_code: int | None = None  # when terminated, or the last termination while waiting
    restart_count: int = 0
    pid: int | None = None
    started_at: float | None = None  # wall clock
    probe_ready: bool | None = None  # None: no readiness probe, ready means running

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.probe_ready is not False

    def to_status(self) -> dict[str, Any]:
        """A Kubernetes-style containerStatuses entry."""
        detail: dict[str, Any] = {}
        if self.state == "running":
            if self.started_at is not None:
                detail["startedAt"] = _iso(self.started_at)
        else:
            if self.reason:
                detail["reason"] = self.reason
            if self.message:
                detail["message"] = self.message
            if self.state == "terminated" and self.exit_code is not None:
                detail["exitCode"] = self.exit_code
        out: dict[str, Any] = {
            "name": self.name,
            "ready": self.ready,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": {self.state: detail},
        }
        if self.state == "waiting" and self.exit_code is not None:
            out["lastState"] = {
                "terminated": {"exitCode": self.exit_code, "reason": exit_reason(self.exit_code)}
            }
        return out


def _duration(seconds: float) -> str:
    """Go's time.Duration spelling, as the kubelet's back-off message has it: 10s, 5m0s."""
    whole = round(seconds)
    if seconds < 60 and whole != seconds:
        return f"{seconds:g}s"
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60}s"


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodState:
    name: str
    namespace: str
    uid: str
    ip: str
    netns: str
    phase: Phase
    reason: str
    message: str
    containers: list[ContainerState]
    labels: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.containers)

    def to_status(self) -> dict[str, Any]:
        """A Kubernetes-style Pod `status` (camelCase; empty reason/message left out)."""
        status: dict[str, Any] = {
            "phase": self.phase,
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "hostIP": names.BRIDGE_IP,
            "containerStatuses": [c.to_status() for c in self.containers],
        }
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        ready = "True" if self.phase == "Running" and self.ready else "False"
        status["conditions"] = [
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ]
        return status


def pod_phase(policy: str, containers: list[ContainerState]) -> Phase:
    """The kubelet's phase of a started pod from its containers: Running while any container
    runs (the sidecar, stopped once the apps ended, included: a pod is Succeeded or Failed
    only when all its containers have terminated) or an app will be restarted; then the apps'
    exit codes decide (the proxy's counts only in a pod that has nothing else)."""
    apps = [c for c in containers if c.name != PROXY_CONTAINER] or containers
    if not all(c.state == "terminated" for c in containers):
        return "Running"
    if any(restarts(policy, c.exit_code) for c in apps):
        return "Running"  # reconcile() is about to restart it
    return "Succeeded" if all(c.exit_code == 0 for c in apps) else "Failed"


class PodError(RuntimeError):
    """A pod spec the runtime cannot run (bad uid, IP taken, node not up...)."""


class PodNotFound(PodError, KeyError):
    """No such pod or container (a KeyError too, so API layers can map it to 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ContainerNotFound(PodNotFound):
    """The pod exists but has no such container (kubectl: "container X is not valid")."""


def spec_from_dict(d: dict[str, Any]) -> PodSpec:
    d = dict(d)
    containers = []
    for c in d["containers"]:
        c = dict(c)
        c["mounts"] = [VolumeMountSpec(**m) for m in c.get("mounts") or []]
        containers.append(ContainerSpec(**c))
    d["containers"] = containers
    volumes = []
    for v in d.get("volumes") or []:
        v = dict(v)
        v["files"] = [VolumeFile(**f) for f in v.get("files") or []]
        volumes.append(VolumeSpec(**v))
    d["volumes"] = volumes
    if d.get("proxy") is not None:
        p = dict(d["proxy"])
        p["mounts"] = [VolumeMountSpec(**m) for m in p.get("mounts") or []]
        d["proxy"] = ProxySpec(**p)
    return PodSpec(**d)


class ContainerNotRunning(PodError):
    """`exec` or a probe into a container that has no live process (waiting, ended)."""
