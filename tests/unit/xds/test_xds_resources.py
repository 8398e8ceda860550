"""Resource naming, packing and content versions."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from hypothesis import given
from hypothesis import strategies as st

from meshgate.translate.output import CLUSTER, ENDPOINT
from meshgate.xds.resources import VERSION_LENGTH, render, resource_name


def test_names() -> None:
    assert resource_name(Cluster(name="outbound|80||aliyun.com")) == "outbound|80||aliyun.com"
    assert resource_name(ClusterLoadAssignment(cluster_name="c")) == "c"


def test_render_filters_by_name_and_keeps_order() -> None:
    items = [ClusterLoadAssignment(cluster_name=n) for n in ("b", "a", "c")]
    out = render(ENDPOINT, items, frozenset({"a", "b", "zz"}))
    assert out.names == ("b", "a")
    assert all(r.type_url.endswith("ClusterLoadAssignment") for r in out.resources)
    assert len(out.version) == VERSION_LENGTH


def test_empty_content_has_a_version() -> None:
    assert render(CLUSTER, [], None).version != render(ENDPOINT, [], None).version


@given(st.lists(st.text(min_size=1, max_size=20), max_size=8, unique=True))
def test_version_is_a_function_of_content(names: list[str]) -> None:
    first = render(CLUSTER, [Cluster(name=n) for n in names], None)
    second = render(CLUSTER, [Cluster(name=n) for n in names], None)
    assert first.version == second.version
    if names:
        changed = render(CLUSTER, [Cluster(name=n + "x") for n in names], None)
        assert changed.version != first.version


@pytest.mark.parametrize("size", [0, 1, 2046, 2047, 2048, 4095, 150_000])
def test_versions_are_blake2b_of_the_bytes_whatever_their_size(size: int) -> None:
    """Large resources are hashed in slices (the GIL is kept): the same digest as one
    call, so versions stay what proxies that reconnect were given before."""
    import hashlib

    from google.protobuf import any_pb2

    from meshgate.xds.resources import RESOURCE_VERSION_BYTES, resource_version

    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    item = any_pb2.Any(type_url="type.googleapis.com/x", value=data)
    want = hashlib.blake2b(data, digest_size=RESOURCE_VERSION_BYTES).hexdigest()
    assert resource_version(item) == want
