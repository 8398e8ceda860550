"""SDS secrets (``kubernetes://NAME``, ``kubernetes://NAME-cacert``) for one proxy.

Rules of this module:
- Only secrets the proxy's own clusters and listeners refer to are built: nothing else
  leaves the control plane.
- A secret comes from a Kubernetes Secret in the proxy's own namespace (a gateway: its pod's
  namespace, as in Istio); never from another namespace.
- ``kubernetes://NAME`` is a TlsCertificate (certificate chain and key, inline);
  ``kubernetes://NAME-cacert`` a validation context (trusted CA, inline). How Secret keys map
  to them is ``model.secrets``'s business.
- A sidecar gets a certificate and key (not a CA bundle) only when its service account may
  list its namespace's Secrets, as istiod asks Kubernetes (``security.secretaccess``);
  gateways are not asked.
- A reference that cannot be served (no such Secret, missing keys, another scheme) is left
  out: Envoy keeps what needs it warming, and proxy-status lists it as missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from meshgate.model.proxy import Proxy
from meshgate.model.secrets import CA_SUFFIX, KUBERNETES_PREFIX
from meshgate.model.snapshot import Snapshot
from meshgate.security.secretaccess import RbacIndex
from meshgate.translate.tls import sds_names


def _context_names(transport_socket: Any) -> list[str]:
    packed = transport_socket.typed_config
    if packed.Is(tls_pb2.UpstreamTlsContext.DESCRIPTOR):
        ctx: Any = tls_pb2.UpstreamTlsContext()
    elif packed.Is(tls_pb2.DownstreamTlsContext.DESCRIPTOR):
        ctx = tls_pb2.DownstreamTlsContext()
    else:
        return []
    packed.Unpack(ctx)
    return sds_names(ctx)


def referenced(clusters: Iterable[Any], listeners: Iterable[Any]) -> set[str]:
    """SDS names the clusters' and listeners' TLS contexts refer to (transport socket
    matches read from the first cluster that has them: auto mTLS gives all the same)."""
    names: set[str] = set()
    matched = False
    for cluster in clusters:
        # HasField is a C call: cheap enough for tens of thousands of clusters.
        if cluster.HasField("transport_socket"):
            names.update(_context_names(cluster.transport_socket))
        # Transport socket matches (auto mTLS) are the same on every cluster: read one.
        if not matched and cluster.transport_socket_matches:
            matched = True
            for match in cluster.transport_socket_matches:
                names.update(_context_names(match.transport_socket))
    for listener in listeners:
        for chain in listener.filter_chains:
            if chain.HasField("transport_socket"):
                names.update(_context_names(chain.transport_socket))
    return names


def secret(snapshot: Snapshot, proxy: Proxy, name: str) -> Any | None:
    """The Envoy Secret for one SDS name, or None when the proxy's namespace cannot serve it."""
    if not name.startswith(KUBERNETES_PREFIX):
        return None
    credential = name.removeprefix(KUBERNETES_PREFIX)
    if not credential or "/" in credential:
        return None  # kubernetes://NS/NAME: another namespace, never served
    if credential.endswith(CA_SUFFIX):
        bundle = snapshot.secrets.ca_bundle(proxy.namespace, credential)
        if bundle is None:
            return None
        out = secret_pb2.Secret(name=name)
        out.validation_context.trusted_ca.inline_bytes = bundle
        return out
    pair = snapshot.secrets.key_and_cert(proxy.namespace, credential)
    if pair is None:
        return None
    if not proxy.is_router:
        access = RbacIndex(snapshot.rbac).may_list_secrets(proxy.namespace, proxy.service_account)
        if not access.allowed:
            return None  # Envoy keeps what needs it warming; analyze and describe say why
    out = secret_pb2.Secret(name=name)
    out.tls_certificate.certificate_chain.inline_bytes = pair.cert
    out.tls_certificate.private_key.inline_bytes = pair.key
    return out


def build_secrets(snapshot: Snapshot, proxy: Proxy, names: Iterable[str]) -> list[Any]:
    """Secrets for ``names`` that the proxy's namespace can serve, sorted by name."""
    out = []
    for name in sorted(set(names)):
        built = secret(snapshot, proxy, name)
        if built is not None:
            out.append(built)
    return out
