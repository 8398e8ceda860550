"""A sidecar's inbound side: ``virtualInbound`` on 15006, where mTLS and authorization apply.

Rules of this module (Istio's inbound listener, simplified where noted):
- Inbound capture (``runtime.capture``) sends TCP arriving at the pod to 0.0.0.0:15006;
  the original-destination listener filter restores the pod port, the filter chains below
  match on it, and the connection is handed on to that address (the app) by ORIGINAL_DST
  clusters: ``inbound|<port>||`` for the pod's service ports, ``InboundPassthroughCluster``
  for the rest. The proxy's own connections are exempt from capture, so this never loops.
- ``virtualInbound`` never sets ``use_original_dst`` (Istio's does not either): that would
  hand a connection to the listener of its original destination, and the sidecar's
  outbound ``0.0.0.0_<port>`` listeners (``bind_to_port: false``) match any address, so an
  inbound connection to the app's port 80 would land on the outbound listener for port 80:
  no mTLS termination, no authorization, and the pod an open proxy to plaintext callers.
- The pod's ports are the ports its Services (and ServiceEntries selecting it) dial it on,
  each with its service port's protocol (HTTP family: an HTTP connection manager; anything
  else: tcp_proxy). Ports a workload PeerAuthentication names in ``portLevelMtls`` get
  chains too (TCP unless a Service says otherwise). Other ports use the passthrough chains.
- Mutual TLS per port follows ``security.peerauth``:
  - ``STRICT``: only mesh mTLS (TLS whose ALPN is one of Istio's ``istio*`` values, a client
    certificate from the mesh CA); anything else matches no chain and is closed.
  - ``PERMISSIVE``: mesh mTLS, or plaintext; TLS the client's app speaks itself (no istio
    ALPN) is passed through untouched.
  - ``DISABLE``: plaintext chains only: whatever arrives goes to the app as it came.
- Where mTLS is terminated, the peer's identity is Envoy's connection principal (what
  AuthorizationPolicy ``principals``/``namespaces`` match) and reaches an HTTP app as
  ``x-forwarded-client-cert`` (APPEND_FORWARD, as Istio's sidecars).
- The TLS inspector waits at most 5 s for a client's first bytes, then treats the
  connection as plaintext (a server-first protocol under PERMISSIVE still works; under
  STRICT it is closed, as there is no mTLS).
- A connection whose original destination is 15006 itself goes to the BlackHoleCluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from meshgate.model import protocol
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.security import peerauth
from meshgate.translate import filters, naming, refusals, tls
from meshgate.translate.accesslog import access_log_config
from meshgate.translate.pb import boolean, duration, pack, seconds, socket_address, uint32

INBOUND_PORT = 15006
VIRTUAL_INBOUND_LISTENER = "virtualInbound"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"
# The ALPN values Istio's clients offer on mesh mTLS (TCP, then HTTP/1.0, 1.1 and 2).
MTLS_ALPNS = ("istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2")
TLS = "tls"
RAW = "raw_buffer"
INSPECT_TIMEOUT_S = 5
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_MEMO_KEY = "inbound-ports"


def pod_ports(snapshot: Snapshot) -> Mapping[str, Mapping[int, str]]:
    """``ns/pod`` -> {port the pod is dialled on: protocol}, over every service (memoised:
    the snapshot is immutable, and every sidecar asks)."""
    memo = snapshot._memo.get(_MEMO_KEY)
    if memo is not None:
        return memo  # type: ignore[no-any-return]
    ports: dict[str, dict[int, str]] = {}
    for svc in snapshot.services:
        for sp in svc.ports:
            for ep in svc.endpoints.get(sp.number, ()):
                if not ep.pod:
                    continue
                known = ports.setdefault(ep.pod, {})
                prev = known.get(ep.port)
                # Two services on one pod port: an HTTP reading wins (it still carries TCP).
                if prev is None or (protocol.is_http(sp.protocol) and not protocol.is_http(prev)):
                    known[ep.port] = sp.protocol
    snapshot._memo[_MEMO_KEY] = ports
    return ports


def workload_mtls(snapshot: Snapshot, proxy: Proxy) -> peerauth.InboundMtls:
    return peerauth.inbound_mtls(
        snapshot.peer_authentications,
        proxy.namespace,
        proxy.labels,
        snapshot.mesh.root_namespace,
    )


def inbound_cluster_name(port: int) -> str:
    return naming.cluster_name(port, "", "", "inbound")


def _mtls_socket() -> Any:
    return tls.downstream_tls({"mode": "ISTIO_MUTUAL"})


def _http_manager(port: int, access_log: bool) -> Any:
    cluster = inbound_cluster_name(port)
    route = rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=cluster, timeout=seconds(0)),
        decorator=rc.Decorator(operation=f"{cluster}/*"),
    )
    hcm = filters.HttpConnectionManager(
        stat_prefix=f"inbound_0.0.0.0_{port}",
        codec_type=filters.HttpConnectionManager.AUTO,
        route_config=route_pb2.RouteConfiguration(
            name=cluster,
            virtual_hosts=[
                rc.VirtualHost(name=f"inbound|http|{port}", domains=["*"], routes=[route])
            ],
            validate_clusters=boolean(False),
            response_headers_to_remove=[refusals.REFUSED_HEADER],
        ),
        http_filters=[refusals.header_mover(), *filters.default_http_filters()],
        use_remote_address=boolean(False),
        normalize_path=boolean(True),
        path_with_escaped_slashes_action=filters.HttpConnectionManager.KEEP_UNCHANGED,
        server_header_transformation=filters.HttpConnectionManager.PASS_THROUGH,
        upgrade_configs=[filters.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        # As Istio's sidecars: the app sees who called, proven by the mTLS hop.
        forward_client_cert_details=filters.HttpConnectionManager.APPEND_FORWARD,
    )
    details = hcm.set_current_client_cert_details
    details.subject.value = True
    details.dns = True
    details.uri = True
    if access_log:
        hcm.access_log.extend(access_log_config(grpc="http"))
    return lc.Filter(name=filters.HCM, typed_config=pack(hcm))


def _chain(
    name: str,
    network: Any,
    *,
    port: int | None = None,
    transport: str = "",
    alpns: tuple[str, ...] = (),
    socket: Any | None = None,
) -> Any:
    match = lc.FilterChainMatch(transport_protocol=transport, application_protocols=alpns)
    if port is not None:
        match.destination_port.CopyFrom(uint32(port))
    chain = lc.FilterChain(name=name, filter_chain_match=match, filters=[network])
    if socket is not None:
        chain.transport_socket.CopyFrom(socket)
    return chain


def _port_chains(port: int, proto: str, mode: str, access_log: bool) -> list[Any]:
    cluster = inbound_cluster_name(port)
    http = protocol.is_http(proto)

    def app() -> Any:
        if http:
            return _http_manager(port, access_log)
        return filters.tcp_proxy(cluster, cluster, access_log=access_log)

    def raw() -> Any:
        return filters.tcp_proxy(cluster, cluster, access_log=access_log)

    chains = []
    if mode != peerauth.DISABLE:
        chains.append(
            _chain(f"{cluster}-mtls", app(), port=port, transport=TLS, alpns=MTLS_ALPNS,
                   socket=_mtls_socket())
        )  # fmt: skip
    if mode != peerauth.STRICT:
        # TLS the apps speak themselves passes through; plaintext meets the app's protocol.
        chains.append(_chain(f"{cluster}-tls", raw(), port=port, transport=TLS))
        chains.append(_chain(f"{cluster}-plaintext", app(), port=port, transport=RAW))
    return chains


def _passthrough_chains(mode: str, access_log: bool) -> list[Any]:
    def proxy() -> Any:
        name = INBOUND_PASSTHROUGH_CLUSTER
        return filters.tcp_proxy(name, name, access_log=access_log)

    chains = [
        _chain(
            f"{VIRTUAL_INBOUND_LISTENER}-blackhole",
            filters.tcp_proxy(naming.BLACKHOLE_CLUSTER, naming.BLACKHOLE_CLUSTER, access_log=False),
            port=INBOUND_PORT,
        )
    ]
    if mode != peerauth.DISABLE:
        chains.append(
            _chain(f"{VIRTUAL_INBOUND_LISTENER}-mtls", proxy(), transport=TLS, alpns=MTLS_ALPNS,
                   socket=_mtls_socket())
        )  # fmt: skip
    if mode != peerauth.STRICT:
        chains.append(_chain(f"{VIRTUAL_INBOUND_LISTENER}-tls", proxy(), transport=TLS))
        chains.append(_chain(f"{VIRTUAL_INBOUND_LISTENER}-plaintext", proxy(), transport=RAW))
    return chains


def inbound_ports(snapshot: Snapshot, proxy: Proxy, mtls: peerauth.InboundMtls) -> dict[int, str]:
    """The pod's own ports with their protocols (service ports, then portLevelMtls ports)."""
    ports = dict(pod_ports(snapshot).get(f"{proxy.namespace}/{proxy.pod}", {}))
    for port in mtls.ports:
        ports.setdefault(port, "TCP")
    ports.pop(INBOUND_PORT, None)
    return ports


def virtual_inbound(snapshot: Snapshot, proxy: Proxy) -> Any:
    access_log = bool(snapshot.mesh.access_log_file)
    mtls = workload_mtls(snapshot, proxy)
    chains: list[Any] = []
    for port, proto in sorted(inbound_ports(snapshot, proxy, mtls).items()):
        chains.extend(_port_chains(port, proto, mtls.mode(port), access_log))
    chains.extend(_passthrough_chains(mtls.default, access_log))
    return listener_pb2.Listener(
        name=VIRTUAL_INBOUND_LISTENER,
        address=socket_address("0.0.0.0", INBOUND_PORT),
        listener_filters=[filters.original_dst_filter(), filters.tls_inspector_filter()],
        listener_filters_timeout=seconds(INSPECT_TIMEOUT_S),
        continue_on_listener_filters_timeout=True,
        filter_chains=chains,
        traffic_direction=base_pb2.INBOUND,
    )


def _original_dst(name: str, connect_timeout: str, proto: str | None) -> Any:
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(connect_timeout),
        alt_stat_name=name,
    )
    if proto is not None and protocol.is_http(proto):
        options = http_protocol_options_pb2.HttpProtocolOptions()
        # The app gets what the client spoke (HTTP/1.1 or 2), as Istio's inbound clusters.
        options.use_downstream_protocol_config.CopyFrom(
            http_protocol_options_pb2.HttpProtocolOptions.UseDownstreamHttpConfig()
        )
        cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(pack(options))
    return cluster


def inbound_clusters(snapshot: Snapshot, proxy: Proxy) -> list[Any]:
    """``InboundPassthroughCluster`` and one ``inbound|<port>||`` per known pod port."""
    timeout = snapshot.mesh.connect_timeout
    mtls = workload_mtls(snapshot, proxy)
    out = [_original_dst(INBOUND_PASSTHROUGH_CLUSTER, timeout, None)]
    for port, proto in sorted(inbound_ports(snapshot, proxy, mtls).items()):
        out.append(_original_dst(inbound_cluster_name(port), timeout, proto))
    return out
