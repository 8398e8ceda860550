"""Auto mTLS: a client's proxy sends mesh mTLS to the endpoints that have a proxy.

Rules of this module (Istio's auto mTLS, MeshConfig ``enableAutoMtls``, on by default):
- It applies to clusters of mesh-internal services (Kubernetes Services, MESH_INTERNAL
  ServiceEntries) whose DestinationRule sets no ``tls`` for the cluster (a rule's TLS, even
  ``DISABLE``, is the user's choice and wins), and not where PeerAuthentication at the
  service's namespace (else mesh) level is ``DISABLE`` (``security.peerauth``'s guess).
- The cluster gets two transport socket matches: ``tlsMode-istio`` (ISTIO_MUTUAL: the
  proxy's mesh certificate, the mesh roots) for endpoints whose metadata
  ``envoy.transport_socket_match`` says ``tlsMode: istio`` (pods labelled
  ``security.istio.io/tlsMode: istio``, i.e. pods with a sidecar and an inbound side), and
  ``tlsMode-disabled`` (plaintext) for the rest. An egress gateway has no such label, so a
  sidecar keeps talking to it as the DestinationRules say (the seed's plaintext hop).
- SNI is Istio's ``outbound_.<port>_.<subset>_.<host>``; ALPN one of Istio's ``istio*``
  values (``istio-h2`` for HTTP/2 ports, ``istio-http/1.1`` for HTTP/1, ``istio`` for
  TCP), which is how the server's inbound side tells mesh mTLS from an app's own TLS.
- The ISTIO_MUTUAL context is built once per translation and copied per cluster (a proxy
  may have thousands of clusters).
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import struct_pb2

from meshgate.model import protocol
from meshgate.model.proxy import TLS_MODE_ISTIO, TLS_MODE_LABEL
from meshgate.model.services import Endpoint, Service
from meshgate.model.snapshot import Snapshot
from meshgate.security import peerauth
from meshgate.translate import tls
from meshgate.translate.pb import pack

MATCH_KEY = "envoy.transport_socket_match"
TLS_MODE = "tlsMode"
RAW_BUFFER = "envoy.transport_sockets.raw_buffer"


def sni(port: int, subset: str, host: str) -> str:
    return f"outbound_.{port}_.{subset}_.{host}"


def alpn(port_protocol: str) -> str:
    if port_protocol in protocol.H2_FAMILY:
        return "istio-h2"
    if protocol.is_http(port_protocol):
        return "istio-http/1.1"
    return "istio"


def endpoint_metadata(ep: Endpoint) -> Any | None:
    """The ``envoy.transport_socket_match`` metadata of an endpoint with a proxy, else None."""
    if ep.labels.get(TLS_MODE_LABEL) != TLS_MODE_ISTIO:
        return None
    meta = base_pb2.Metadata()
    meta.filter_metadata[MATCH_KEY].update({TLS_MODE: TLS_MODE_ISTIO})
    return meta


class AutoMtls:
    """Decides and builds auto mTLS for one translation (memoised per namespace)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._enabled = snapshot.mesh.enable_auto_mtls
        self._modes: dict[str, str] = {}
        self._context: Any | None = None
        self._plain = cluster_pb2.Cluster.TransportSocketMatch(
            name="tlsMode-disabled",
            match=struct_pb2.Struct(),
            transport_socket=base_pb2.TransportSocket(
                name=RAW_BUFFER, typed_config=pack(raw_buffer_pb2.RawBuffer())
            ),
        )

    def applies(self, service: Service, has_tls: bool) -> bool:
        if not self._enabled or has_tls or service.location != "MESH_INTERNAL":
            return False
        mode = self._modes.get(service.namespace)
        if mode is None:
            mode = self._modes[service.namespace] = peerauth.service_mtls(
                self._snapshot.peer_authentications,
                service.namespace,
                self._snapshot.mesh.root_namespace,
            )
        return mode != peerauth.DISABLE

    def _base(self) -> Any:
        if self._context is None:
            socket = tls.istio_mutual_client("", [])
            context = tls_pb2.UpstreamTlsContext()
            socket.typed_config.Unpack(context)
            self._context = context
        return self._context

    def add(self, cluster: Any, port: int, port_protocol: str, subset: str, host: str) -> None:
        """Give ``cluster`` the two transport socket matches (in place)."""
        context = tls_pb2.UpstreamTlsContext()
        context.CopyFrom(self._base())
        context.sni = sni(port, subset, host)
        context.common_tls_context.alpn_protocols.append(alpn(port_protocol))
        mutual = cluster.transport_socket_matches.add()
        mutual.name = "tlsMode-istio"
        mutual.match.update({TLS_MODE: TLS_MODE_ISTIO})
        mutual.transport_socket.CopyFrom(tls.socket(context))
        cluster.transport_socket_matches.append(self._plain)
