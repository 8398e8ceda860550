"""``meshgate describe``: one readable page per resource.

Rules: ``describe KIND NAME...`` describes those objects, ``describe KIND`` every object of
the kind in the namespace; descriptions are separated by a blank line; missing names
print kubectl's NotFound line and exit 1. A Pod's page has an ``Egress:`` section
(``describe_egress``): how it reaches external hosts, and whether it can go around the
egress gateway, then its outbound mode and each external host it sees, through which
gateway and under which AuthorizationPolicies (``describe_hosts``); and a ``Security:``
section (``describe_security``): its mesh identity, the mTLS its inbound side enforces and
the AuthorizationPolicies that apply.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshgate.cli.options import AllNamespaces, Namespace, Selector

EXAMPLES = """Examples:

\b
  meshgate describe se external-svc-http
  meshgate describe vs -n default
  meshgate describe istiogateway/istio-egressgateway -n istio-system
"""


def command(
    args: Annotated[
        list[str], typer.Argument(metavar="KIND [NAME]...", help="KIND [NAME...] or KIND/NAME...")
    ],
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    selector: Selector = None,
) -> None:
    """Show details of a resource or group of resources."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.describe_text import describe
    from meshgate.cli.fetch import fetch
    from meshgate.cli.output import err, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE

    ns = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)
    fetched = fetch(args, ns, selector)
    pods = [o for o in fetched.objects if o.get("kind") == "Pod" and o.get("apiVersion") == "v1"]
    mesh = _mesh_objects() if pods else []
    pages = [describe(obj, _pod_sections(obj, mesh)) for obj in fetched.objects]
    if pages:
        out("\n\n".join(pages))
    elif not fetched.missing:
        err(fetched.empty_message())
    for line in fetched.missing:
        err(line)
    if fetched.missing:
        raise typer.Exit(1)


def _mesh_objects() -> list[dict[str, Any]]:
    """What decides a pod's way out: settings, policies, routes and the gateway workloads."""
    from meshgate.api.registry import by_group_kind
    from meshgate.cli.context import backend_errors, get_backend

    backend = get_backend()
    out: list[dict[str, Any]] = []
    with backend_errors():
        for group, kind in (
            ("meshgate.io", "MeshConfig"),
            ("networking.k8s.io", "NetworkPolicy"),
            ("networking.istio.io", "VirtualService"),
            # The pod's effective egress (describe_hosts): hosts, scoping, the gateway path.
            ("networking.istio.io", "ServiceEntry"),
            ("networking.istio.io", "Sidecar"),
            ("networking.istio.io", "Gateway"),
            ("istio.alibabacloud.com", "IstioGateway"),
            ("security.istio.io", "PeerAuthentication"),
            ("security.istio.io", "AuthorizationPolicy"),
            # A sidecar's credentialName and who may read Secrets (Security: Secrets).
            ("networking.istio.io", "DestinationRule"),
            *(("rbac.authorization.k8s.io", k) for k in ("Role", "RoleBinding")),
            *(("rbac.authorization.k8s.io", k) for k in ("ClusterRole", "ClusterRoleBinding")),
            ("", "Service"),
            ("", "Pod"),
            ("", "Namespace"),
        ):
            info = by_group_kind(group, kind)
            if info is not None:
                out += backend.get(info, None, None, None)
    return out


def _pod_sections(obj: dict[str, Any], mesh: list[dict[str, Any]]) -> list[str] | None:
    if obj.get("kind") != "Pod" or obj.get("apiVersion") != "v1":
        return None
    from meshgate.cli.describe_egress import egress_lines
    from meshgate.cli.describe_security import security_lines

    return security_lines(obj, mesh) + egress_lines(obj, mesh)
