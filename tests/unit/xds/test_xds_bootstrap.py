"""The Envoy bootstrap: shape, proto validity, and Envoy's own validation."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from envoy.extensions.network.dns_resolver.cares.v3 import cares_dns_resolver_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import (
    downstream_connections_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format

from meshgate.xds.bootstrap import XDS_CLUSTER, bootstrap_config, envoy_argv, ready_port_of

# Referenced so the Any types in the bootstrap are in the descriptor pool.
_REGISTERED = (cares_dns_resolver_pb2, http_protocol_options_pb2, downstream_connections_pb2)


def _xds_address(config: dict[str, Any]) -> dict[str, Any]:
    cluster = config["static_resources"]["clusters"][0]
    assert cluster["name"] == XDS_CLUSTER
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    return dict(endpoint["address"])


def test_unix_socket_bootstrap() -> None:
    config = bootstrap_config(
        "sidecar~10.1.0.5~sleep-1.default",
        "/run/meshgate/x/xds.sock",
        cluster="sleep.default",
        metadata={"NAMESPACE": "default"},
    )
    assert config["node"] == {
        "id": "sidecar~10.1.0.5~sleep-1.default",
        "cluster": "sleep.default",
        "metadata": {"NAMESPACE": "default"},
    }
    ads = config["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == "GRPC"
    assert ads["transport_api_version"] == "V3"
    assert ads["set_node_on_first_message_only"] is True
    back_off = ads["grpc_services"][0]["envoy_grpc"]["retry_policy"]["retry_back_off"]
    assert back_off == {"base_interval": "0.1s", "max_interval": "1s"}
    for key in ("lds_config", "cds_config"):
        assert config["dynamic_resources"][key] == {"ads": {}, "resource_api_version": "V3"}
    assert _xds_address(config) == {"pipe": {"path": "/run/meshgate/x/xds.sock"}}
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 15000,
    }
    assert "typed_dns_resolver_config" not in config
    json_format.ParseDict(config, Bootstrap())


@pytest.mark.parametrize(
    ("address", "kind", "host", "port"),
    [
        ("127.0.0.1:15010", "STATIC", "127.0.0.1", 15010),
        ("[::1]:15012", "STATIC", "::1", 15012),
        ("meshgate.example:15012", "STRICT_DNS", "meshgate.example", 15012),
    ],
)
def test_tcp_bootstrap(address: str, kind: str, host: str, port: int) -> None:
    config = bootstrap_config("n", address, cluster="c")
    assert config["static_resources"]["clusters"][0]["type"] == kind
    assert _xds_address(config) == {"socket_address": {"address": host, "port_value": port}}
    json_format.ParseDict(config, Bootstrap())


@pytest.mark.parametrize("address", ["127.0.0.1", "host:", ":80", "h:99999", "[::1"])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        bootstrap_config("n", address, cluster="c")


def test_dns_resolver() -> None:
    config = bootstrap_config("n", "/s", cluster="c", dns_resolver="10.96.0.10")
    resolver = config["typed_dns_resolver_config"]
    assert resolver["name"] == "envoy.network.dns_resolver.cares"
    assert resolver["typed_config"]["resolvers"] == [
        {"socket_address": {"address": "10.96.0.10", "port_value": 53}}
    ]
    custom = bootstrap_config("n", "/s", cluster="c", dns_resolver="10.0.0.2:5353")
    addr = custom["typed_dns_resolver_config"]["typed_config"]["resolvers"][0]
    assert addr["socket_address"]["port_value"] == 5353
    json_format.ParseDict(config, Bootstrap())


def test_argv() -> None:
    argv = envoy_argv("/b.json", concurrency=2, log_level="info", envoy_path="/bin/envoy")
    assert argv == [
        "/bin/envoy", "-c", "/b.json", "--disable-hot-restart", "--concurrency", "2",
        "--file-flush-interval-msec", "1000", "--log-level", "info",
    ]  # fmt: skip


def test_envoy_accepts_the_bootstrap(tmp_path: Path) -> None:
    try:
        argv = envoy_argv(str(tmp_path / "b.json"))
    except Exception as exc:
        pytest.skip(f"envoy binary not available: {exc}")
    if not os.access(argv[0], os.X_OK):
        pytest.skip("envoy binary not executable")
    for address in ("/tmp/mg-none/xds.sock", "127.0.0.1:15010", "xds.example:15012"):
        config = bootstrap_config(
            "n", address, cluster="c", admin_port=0, dns_resolver="1.2.3.4", ready_port=15021
        )
        (tmp_path / "b.json").write_text(json.dumps(config))
        result = subprocess.run(
            [*argv, "--mode", "validate"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_readiness_listener_is_istios() -> None:
    plain = bootstrap_config("n", "/x/xds.sock", cluster="c")
    assert "listeners" not in plain["static_resources"] and ready_port_of(plain) is None
    config = bootstrap_config("n", "/x/xds.sock", cluster="c", ready_port=15021)
    (listener,) = config["static_resources"]["listeners"]
    assert listener["name"] == "0.0.0.0_15021"
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 15021}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert route == {"match": {"prefix": "/healthz/ready"}, "direct_response": {"status": 200}}
    assert ready_port_of(config) == 15021
    json_format.ParseDict(config, Bootstrap())  # a valid v3 bootstrap


def test_delta_mode_asks_for_incremental_ads() -> None:
    from meshgate.xds.bootstrap import bootstrap_config

    sotw = bootstrap_config("n", "/run/x.sock", cluster="c")
    delta = bootstrap_config("n", "/run/x.sock", cluster="c", xds_mode="delta")
    assert sotw["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    assert delta["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    import pytest

    with pytest.raises(ValueError, match="xds_mode 'fast'"):
        bootstrap_config("n", "/run/x.sock", cluster="c", xds_mode="fast")


def test_replica_addresses_make_one_failover_cluster() -> None:
    """Every replica's socket is an endpoint of the one xds-grpc cluster; a refused
    connection ejects that endpoint and no panic mode sends retries back to it."""
    socks = [f"/run/meshgate/abc123/xds/xds-{i}.sock" for i in range(3)]
    config = bootstrap_config("n", socks, cluster="c")
    json_format.ParseDict(config, Bootstrap())
    (cluster,) = config["static_resources"]["clusters"]
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["pipe"]["path"] for e in endpoints] == socks
    outlier = cluster["outlier_detection"]
    assert outlier["consecutive_local_origin_failure"] == 1
    assert outlier["max_ejection_percent"] == 100
    assert cluster["common_lb_config"]["healthy_panic_threshold"] == {"value": 0}


def test_one_address_in_a_list_is_the_plain_cluster() -> None:
    assert bootstrap_config("n", ["/x/xds.sock"], cluster="c") == bootstrap_config(
        "n", "/x/xds.sock", cluster="c"
    )
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_config("n", [], cluster="c")
