"""Small constructors for recurring Envoy protobuf pieces.

Rules: only shape-building here (Any packing, durations, addresses, config sources); no
mesh decisions. Everything is deterministic and allocation-light: the translator calls
these tens of thousands of times per snapshot.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import address_pb2, config_source_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from meshgate.model import durations


def pack(message: Any) -> Any:
    # Deterministic: the packed bytes end up inside resources whose hash is the xDS version.
    # Map fields (the access log's Struct) would otherwise serialise in hash-seed order, and
    # every control-plane restart would push the same config again under a new version.
    packed = any_pb2.Any()
    packed.Pack(message, deterministic=True)
    return packed


def duration(text: str) -> Any:
    seconds, nanos = durations.split(text)
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def seconds(value: int) -> Any:
    return duration_pb2.Duration(seconds=value)


def boolean(value: bool) -> Any:
    return wrappers_pb2.BoolValue(value=value)


def uint32(value: int) -> Any:
    return wrappers_pb2.UInt32Value(value=value)


def socket_address(host: str, port: int) -> Any:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
    )


def ads_source() -> Any:
    """Config comes over the ADS stream (xDS v3)."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )
