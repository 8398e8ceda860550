"""proxy-config tables built from Envoy admin dumps (the shapes Envoy 1.40 emits)."""

from __future__ import annotations

from typing import Any

from meshgate.cli.proxy_config import (
    cluster_rows,
    endpoint_rows,
    format_rows,
    listener_rows,
    route_rows,
)

T = "type.googleapis.com/envoy.admin.v3."


def _addr(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def _rds(name: str) -> dict[str, Any]:
    return {"filters": [{"typed_config": {"rds": {"route_config_name": name}}}]}


DUMP: dict[str, Any] = {
    "configs": [
        {"@type": T + "BootstrapConfigDump", "bootstrap": {"node": {"id": "x"}}},
        {
            "@type": T + "ClustersConfigDump",
            "static_clusters": [{"cluster": {"name": "xds-grpc", "type": "STATIC"}}],
            "dynamic_active_clusters": [
                {"cluster": {"name": "outbound|80||aliyun.com", "type": "STRICT_DNS"}},
                {"cluster": {"name": "outbound|443|canary|httpbin.org", "type": "EDS"}},
                {"cluster": {"name": "PassthroughCluster", "type": "ORIGINAL_DST"}},
            ],
        },
        {
            "@type": T + "ListenersConfigDump",
            "dynamic_listeners": [
                {
                    "active_state": {
                        "listener": {
                            "name": "virtualOutbound",
                            "address": {
                                "socket_address": {"address": "0.0.0.0", "port_value": 15001}
                            },
                            "filter_chains": [
                                {
                                    "filter_chain_match": {"destination_port": 15001},
                                    "filters": [{"typed_config": {"cluster": "BlackHoleCluster"}}],
                                }
                            ],
                            "default_filter_chain": {
                                "filters": [{"typed_config": {"cluster": "PassthroughCluster"}}]
                            },
                        }
                    }
                },
                {
                    "active_state": {
                        "listener": {
                            "name": "0.0.0.0_80",
                            "address": _addr("0.0.0.0", 80),
                            "filter_chains": [
                                {
                                    "filters": [
                                        {"typed_config": {"rds": {"route_config_name": "80"}}}
                                    ]
                                }
                            ],
                        }
                    }
                },
            ],
        },
        {
            "@type": T + "RoutesConfigDump",
            "dynamic_route_configs": [
                {
                    "route_config": {
                        "name": "80",
                        "virtual_hosts": [
                            {
                                "name": "aliyun.com:80",
                                "domains": ["aliyun.com", "aliyun.com:80"],
                                "routes": [
                                    {
                                        "match": {"prefix": "/"},
                                        "route": {"cluster": "outbound|80||aliyun.com"},
                                        "metadata": {
                                            "filter_metadata": {
                                                "istio": {
                                                    "config": "/apis/networking.istio.io/v1/"
                                                    "namespaces/default/virtual-service/vs1"
                                                }
                                            }
                                        },
                                    }
                                ],
                            },
                            {
                                "name": "block_all",
                                "domains": ["*"],
                                "routes": [
                                    {"match": {"prefix": "/"}, "direct_response": {"status": 502}}
                                ],
                            },
                        ],
                    }
                }
            ],
        },
    ]
}


def test_clusters_split_istio_names_and_filter() -> None:
    rows = cluster_rows(DUMP)
    assert rows[0] == ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"]
    assert ["aliyun.com", "80", "-", "outbound", "STRICT_DNS"] in rows
    assert ["httpbin.org", "443", "canary", "outbound", "EDS"] in rows
    assert ["xds-grpc", "-", "-", "-", "STATIC"] in rows
    assert cluster_rows(DUMP, fqdn="httpbin.org")[1:] == [
        ["httpbin.org", "443", "canary", "outbound", "EDS"]
    ]
    assert len(cluster_rows(DUMP, port=80)) == 2


def test_listeners_show_each_chain_and_its_destination() -> None:
    rows = listener_rows(DUMP)
    assert [
        "virtualOutbound",
        "0.0.0.0",
        "15001",
        "dport 15001",
        "Cluster: BlackHoleCluster",
    ] in rows
    assert ["virtualOutbound", "0.0.0.0", "15001", "ALL", "Cluster: PassthroughCluster"] in rows
    assert ["0.0.0.0_80", "0.0.0.0", "80", "ALL", "Route: 80"] in rows
    assert len(listener_rows(DUMP, port=80)) == 2


def test_routes_name_the_virtual_service() -> None:
    rows = route_rows(DUMP)
    assert rows[1] == ["80", "aliyun.com:80", "aliyun.com +1 more", "/*",
                       "outbound|80||aliyun.com", "vs1.default"]  # fmt: skip
    assert rows[2][1:] == ["block_all", "*", "/*", "direct 502", "-"]
    assert route_rows(DUMP, name="nope") == rows[:1]


def test_endpoints_and_formatting() -> None:
    status = {
        "cluster_statuses": [
            {
                "name": "outbound|80||aliyun.com",
                "host_statuses": [
                    {
                        "address": {
                            "socket_address": {"address": "198.51.100.10", "port_value": 80}
                        },
                        "health_status": {
                            "eds_health_status": "HEALTHY",
                            "failed_outlier_check": True,
                        },
                    }
                ],
            },
            {"name": "xds-grpc", "host_statuses": [{"address": {"pipe": {"path": "/run/x.sock"}}}]},
        ]
    }
    rows = endpoint_rows(status)
    assert rows[1] == ["198.51.100.10:80", "HEALTHY", "FAILED", "outbound|80||aliyun.com"]
    assert rows[2][0] == "unix:///run/x.sock"
    text = format_rows(rows)
    assert text.splitlines()[0].startswith("ENDPOINT")
    assert len(text.splitlines()) == 3
