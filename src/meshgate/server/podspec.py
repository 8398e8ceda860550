"""A stored Pod as the runtime's ``PodSpec``: its containers, volumes, proxy and capture.

Rules:
- Pod specs carry ``restartPolicy`` to the runtime; a Deployment's pods are ``Always``.
- A spec is made from the store as the pass that asks for it reads it (ConfigMaps and
  Secrets, the MeshConfig's capture defaults and xdsMode); making one changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from meshgate.api import annotations as pod_annotations
from meshgate.model.proxy import TLS_MODE_ISTIO, TLS_MODE_LABEL
from meshgate.runtime import envoy
from meshgate.runtime.pods import (
    ContainerSpec,
    PodSpec,
    ProxySpec,
    RestartPolicy,
    VolumeMountSpec,
    VolumeSpec,
)
from meshgate.server import podconfig
from meshgate.server import workloads as wl
from meshgate.xds.bootstrap import bootstrap_config

log = logging.getLogger("meshgate.reconcile")

Obj = dict[str, Any]
READY_PORT = 15021  # Istio's readiness port, /healthz/ready


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


class PodSpecs:
    """The ``Reconciler``'s part that makes pod specs (a mixin: its state is the
    reconciler's, set in ``Reconciler.__init__``)."""

    xds_socket: Path | list[str]
    proxy_credential: Callable[[str], tuple[str, str]] | None
    concurrency: int
    _capture_defaults: pod_annotations.MeshCaptureDefaults
    _xds_mode: str
    _config_objects: Callable[[], list[Obj]]

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
