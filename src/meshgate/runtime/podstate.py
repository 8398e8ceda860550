"""A pod's record in the runtime manifest, and the kubelet's view of it.

Rules:
- A record is plain JSON (the manifest's `pods` section): the spec as given, the pod's
  network namespace and IP, and per container its state, reason, exit code, restart count,
  crash count, process (pid and start time) and timings.
- `observe` only reads: a container recorded as running whose process is gone shows as
  terminated (with its exit code when known); restarting it is `Runtime.reconcile`'s job.
- A run's readiness is remembered (``ready_seen``) once its probe has passed: the restart
  policy counts such a run as one that went fine.
- Phase: Failed when the pod could not start (a missing command), Pending while a container
  is being created or has never been (its image or config missing), else the kubelet's
  phase from the containers (`pod_phase`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from meshgate.runtime import probes, procs
from meshgate.runtime.podspec import (
    NOT_CREATED,
    ContainerSpec,
    ContainerState,
    Phase,
    PodSpec,
    PodState,
    exit_reason,
    pod_phase,
)

Record = dict[str, Any]


def new_record(spec: PodSpec, ns: str, ip: str, containers: list[str]) -> Record:
    """A pod about to be created: every container waiting in ContainerCreating."""
    return {
        "name": spec.name,
        "namespace": spec.namespace,
        "netns": ns,
        "ip": ip,
        "spec": dataclasses.asdict(dataclasses.replace(spec, ip=ip)),
        "failed": None,
        "held_until": None,
        "containers": {
            c: {
                "state": "waiting",
                "reason": "ContainerCreating",
                "message": "",
                "exit_code": None,
                "restart_count": 0,
                "crashes": 0,
                "pid": None,
                "start_time": None,
                "started_at": None,
                "next_start_at": None,
            }
            for c in containers
        },
    }


def observe(
    rec: Record,
    container_specs: list[ContainerSpec],
    *,
    alive: Callable[[str, dict[str, Any]], bool],
    exit_code: Callable[[str, dict[str, Any]], int | None],
) -> PodState:
    """The pod as the kubelet would report it now."""
    spec = rec["spec"]
    specs = {c.name: c for c in container_specs}  # decoded once per look
    states = []
    for cname, crec in rec["containers"].items():
        st = ContainerState(
            name=cname,
            state=crec["state"],
            reason=crec["reason"],
            message=crec["message"],
            exit_code=crec["exit_code"],
            restart_count=crec["restart_count"],
            pid=crec["pid"],
            started_at=crec["started_at"],
        )
        if st.state == "running" and not alive(cname, crec):
            # Observed only; reconcile() decides about restarts.
            code = exit_code(cname, crec)
            st.state, st.pid, st.exit_code = "terminated", None, code
            st.reason = exit_reason(code)
        if st.state == "running":
            st.probe_ready = probes.verdict(specs.get(cname), crec)
        states.append(st)
    phase: Phase
    reason, message = "", ""
    if rec.get("failed"):
        phase, reason, message = "Failed", rec["failed"]["reason"], rec["failed"]["message"]
    elif any(
        s.state == "waiting"
        and (
            s.reason == "ContainerCreating"
            or (s.reason in NOT_CREATED and s.started_at is None and s.restart_count == 0)
        )
        for s in states
    ):
        phase = "Pending"
    else:
        phase = pod_phase(spec.get("restart_policy", "Always"), states)
    return PodState(
        name=rec["name"],
        namespace=rec["namespace"],
        uid=spec["uid"],
        ip=rec["ip"],
        netns=rec["netns"],
        phase=phase,
        reason=reason,
        message=message,
        containers=states,
        labels=dict(spec["labels"]),
    )


def processes(rec: Record) -> list[procs.ProcId]:
    """The processes of the pod's running containers."""
    return [
        procs.ProcId(c["pid"], c["start_time"])
        for c in rec["containers"].values()
        if c["state"] == "running" and c["pid"] is not None and c["start_time"]
    ]


def starting(rec: Record, specs: list[ContainerSpec], now: float, window: float) -> bool:
    """Whether a container with a readiness probe started less than `window` seconds
    before `now` and has not been ready yet."""
    by_name = {c.name: c for c in specs}
    for cname, c in rec["containers"].items():
        spec = by_name.get(cname)
        probed = spec is not None and (spec.readiness_port or spec.readiness_command)
        if (
            probed
            and c["state"] == "running"
            and not c.get("ready_seen")
            and now - (c["started_at"] or 0.0) < window
        ):
            return True
    return False
