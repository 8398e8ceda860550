"""Defaulting, as the Kubernetes API server and istiod do it, and the objects a fresh
mesh starts with.

Rules of this module:
- ``apply_defaults`` writes into a resource only what Kubernetes itself would store:
  the namespace (``default``, or the caller's ``-n``) of namespaced kinds (cluster-scoped
  kinds get none), a Service port's ``protocol: TCP`` and ``targetPort`` = ``port``, a
  Deployment's ``replicas: 1``. It is idempotent, so decode -> wire -> decode is stable.
- Istio/meshgate defaults that Kubernetes does not store (ServiceEntry location
  MESH_EXTERNAL and resolution NONE, outbound mode ALLOW_ANY, ...) are never written into
  the spec: read them through the ``effective_*`` properties on the spec models, or the
  helpers here that accept a missing object.
"""

from __future__ import annotations

from meshgate.api.kinds.kubernetes import Deployment, Namespace, Service
from meshgate.api.kinds.meshgate_kinds import MESH_CONFIG_NAME, MeshConfig, MeshConfigSpec
from meshgate.api.meta import ObjectMeta, Resource
from meshgate.api.registry import KindInfo, by_group_kind

DEFAULT_NAMESPACE = "default"
ROOT_NAMESPACE = "istio-system"


def apply_defaults(
    resource: Resource, info: KindInfo | None = None, namespace: str | None = None
) -> Resource:
    """Default ``resource`` in place (and return it)."""
    info = info or by_group_kind(resource.group, resource.kind)
    if info is not None:
        if info.namespaced:
            if not resource.metadata.namespace:
                resource.metadata.namespace = namespace or DEFAULT_NAMESPACE
        else:
            resource.metadata.namespace = None
    if isinstance(resource, Service):
        for port in resource.spec.ports or []:
            if port.protocol is None:
                port.protocol = "TCP"
            if port.target_port is None:
                port.target_port = port.port
    elif isinstance(resource, Deployment) and resource.spec.replicas is None:
        resource.spec.replicas = 1
    return resource


def mesh_spec(mesh: MeshConfig | None) -> MeshConfigSpec:
    """The MeshConfig spec in force: the stored one, or all defaults when there is none."""
    return mesh.spec if mesh is not None else MeshConfigSpec()


def fresh_mesh_objects() -> list[Resource]:
    """What a new mesh holds before the user applies anything."""
    return [
        Namespace(api_version="v1", kind="Namespace", metadata=ObjectMeta(name=DEFAULT_NAMESPACE)),
        Namespace(api_version="v1", kind="Namespace", metadata=ObjectMeta(name=ROOT_NAMESPACE)),
        MeshConfig(
            api_version="meshgate.io/v1alpha1",
            kind="MeshConfig",
            metadata=ObjectMeta(name=MESH_CONFIG_NAME),
        ),
    ]
