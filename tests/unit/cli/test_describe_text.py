"""describe prints kubectl's generic layout."""

from __future__ import annotations

from meshgate.cli.describe_text import describe, title

SE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "ServiceEntry",
    "metadata": {
        "name": "external-svc-http",
        "namespace": "default",
        "labels": {"b": "2", "a": "1"},
        "uid": "u-1",
        "generation": 1,
    },
    "spec": {
        "hosts": ["aliyun.com"],
        "location": "MESH_EXTERNAL",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "resolution": "DNS",
    },
}


def test_title_case() -> None:
    assert title("creationTimestamp") == "Creation Timestamp"
    assert title("uid") == "UID"
    assert title("hosts") == "Hosts"


def test_describe_layout() -> None:
    assert describe(SE).splitlines() == [
        "Name:         external-svc-http",
        "Namespace:    default",
        "Labels:       a=1",
        "              b=2",
        "Annotations:  <none>",
        "API Version:  networking.istio.io/v1",
        "Kind:         ServiceEntry",
        "Metadata:",
        "  UID:         u-1",
        "  Generation:  1",
        "Spec:",
        "  Hosts:",
        "    aliyun.com",
        "  Location:  MESH_EXTERNAL",
        "  Ports:",
        "    Number:    80",
        "    Name:      http",
        "    Protocol:  HTTP",
        "  Resolution:  DNS",
        "Events:  <none>",
    ]
