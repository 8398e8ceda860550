"""Istio's HTTP metadata exchange headers, as a sidecar adds them to outbound requests.

Rules of this module:
- Every request a sidecar sends out on an HTTP route carries ``x-envoy-peer-metadata-id``
  (the proxy's node id, ``sidecar~IP~POD.NS~NS.svc.cluster.local``) and
  ``x-envoy-peer-metadata`` (base64 of a serialized ``google.protobuf.Struct`` of the
  node's metadata, with Istio's upper-case keys), as Istio's ``istio.metadata_exchange``
  filter does. Both are set whatever the app sent (an app cannot pose as another peer).
- The Struct is serialized deterministically (map keys sorted), so one proxy always sends
  the same bytes and its configuration does not change from one push to the next.
- Keys: ``CLUSTER_ID`` (``Kubernetes``), ``INSTANCE_IPS``, ``LABELS``, ``MESH_ID``
  (``cluster.local``), ``NAME``, ``NAMESPACE``, ``OWNER``, ``PLATFORM_METADATA`` (empty),
  ``SERVICE_ACCOUNT``, ``WORKLOAD_NAME``. A pod with a ``pod-template-hash`` label belongs
  to a Deployment named by its name up to ``-<hash>-``, as Istio derives it; any other pod
  is its own workload.
- Done with the route configuration's ``request_headers_to_add`` (plain Envoy, no Wasm or
  Istio filter), so the headers go to every upstream an HTTP route sends to: the mesh's
  services and external hosts alike, as Istio's sidecars did before Istio 1.22.
"""

from __future__ import annotations

import base64
from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from meshgate.model.proxy import Proxy

METADATA_HEADER = "x-envoy-peer-metadata"
METADATA_ID_HEADER = "x-envoy-peer-metadata-id"
TEMPLATE_HASH_LABEL = "pod-template-hash"


def workload(proxy: Proxy) -> tuple[str, str]:
    """(workload name, owner URI) of the proxy's pod."""
    ns = proxy.namespace
    tag = proxy.labels.get(TEMPLATE_HASH_LABEL, "")
    marker = f"-{tag}-"
    if tag and marker in proxy.pod:
        name = proxy.pod[: proxy.pod.rindex(marker)]
        return name, f"kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{name}"
    return proxy.pod, f"kubernetes://apis/v1/namespaces/{ns}/pods/{proxy.pod}"


def metadata_struct(proxy: Proxy) -> Any:
    name, owner = workload(proxy)
    node = struct_pb2.Struct()
    node.update(
        {
            "CLUSTER_ID": "Kubernetes",
            "INSTANCE_IPS": proxy.ip,
            "LABELS": dict(proxy.labels),
            "MESH_ID": "cluster.local",
            "NAME": proxy.pod,
            "NAMESPACE": proxy.namespace,
            "OWNER": owner,
            "PLATFORM_METADATA": {},
            "SERVICE_ACCOUNT": proxy.service_account,
            "WORKLOAD_NAME": name,
        }
    )
    return node


def encoded(proxy: Proxy) -> str:
    raw = metadata_struct(proxy).SerializeToString(deterministic=True)
    return base64.b64encode(raw).decode("ascii")


def request_headers(proxy: Proxy) -> list[Any]:
    """The two headers, replacing any the app sent."""
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=METADATA_HEADER, value=encoded(proxy)),
            append_action=overwrite,
        ),
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=METADATA_ID_HEADER, value=proxy.node_id),
            append_action=overwrite,
        ),
    ]
