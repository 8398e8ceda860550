"""The proxy a configuration is generated for, and Istio's node id form.

Rules of this module:
- A node id is ``<type>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local``, type
  ``sidecar`` or ``router`` (gateways), exactly as Istio's pilot-agent writes it.
- ``Proxy`` is a frozen value; the snapshot builds it from the pod (``Snapshot.proxy_for``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from meshgate.model.hosts import DOMAIN_SUFFIX

ProxyKind = Literal["sidecar", "router"]
PROXY_TYPE_ANNOTATION = "meshgate.io/proxy-type"
# Istio's injector labels each pod it gives a sidecar; clients send auto mTLS only to
# endpoints so labelled (a pod made by an older meshgate has no inbound side: no label).
TLS_MODE_LABEL = "security.istio.io/tlsMode"
TLS_MODE_ISTIO = "istio"


@dataclass(frozen=True)
class Proxy:
    kind: ProxyKind
    ip: str
    pod: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"

    @property
    def node_id(self) -> str:
        return node_id(self.kind, self.ip, self.pod, self.namespace)

    @property
    def is_router(self) -> bool:
        return self.kind == "router"


def node_id(kind: ProxyKind, ip: str, pod: str, namespace: str) -> str:
    return f"{kind}~{ip}~{pod}.{namespace}~{namespace}.svc.{DOMAIN_SUFFIX}"


@dataclass(frozen=True)
class NodeId:
    kind: ProxyKind
    ip: str
    pod: str
    namespace: str


def parse_node_id(value: str) -> NodeId | None:
    """Split an Istio node id; None when it is not in that form."""
    parts = value.split("~")
    if len(parts) != 4:
        return None
    kind, ip, workload, domain = parts
    if kind not in ("sidecar", "router"):
        return None
    pod, dot, namespace = workload.rpartition(".")
    if not dot or not pod or not namespace:
        return None
    if not domain.startswith(f"{namespace}."):
        return None
    return NodeId("sidecar" if kind == "sidecar" else "router", ip, pod, namespace)
