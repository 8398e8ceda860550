"""describe prints kubectl's generic layout."""

from __future__ import annotations

import base64

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


KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_shows_sizes_never_values() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "secure-httpbin",
            "namespace": "istio-system",
            "labels": {"app": "gw"},
            "uid": "u-2",
        },
        "type": "kubernetes.io/tls",
        "data": {"tls.key": b64(KEY_PEM), "tls.crt": b64("crt"), "ca.crt": b64("")},
        "stringData": {"token": "abc"},
    }
    text = describe(secret)
    assert text.splitlines() == [
        "Name:         secure-httpbin",
        "Namespace:    istio-system",
        "Labels:       app=gw",
        "Annotations:  <none>",
        "",
        "Type:  kubernetes.io/tls",
        "",
        "Data",
        "====",
        "ca.crt:   0 bytes",
        "tls.crt:  3 bytes",
        f"tls.key:  {len(KEY_PEM)} bytes",
        "token:    3 bytes",
    ]
    assert b64(KEY_PEM)[:20] not in text and "PRIVATE" not in text and "abc" not in text


def test_secret_without_type_is_opaque_and_bad_base64_is_flagged() -> None:
    text = describe(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "!!"}}
    )
    assert "Type:  Opaque" in text.splitlines()
    assert "k:  <invalid base64>" in text.splitlines()


def test_configmap_values_under_their_keys_as_kubectl() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"log_level": "debug", "app.properties": "a=1\nb=2\n"},
        "binaryData": {"blob": b64("12345")},
    }
    assert describe(cm).splitlines() == [
        "Name:         cfg",
        "Namespace:    default",
        "Labels:       <none>",
        "Annotations:  <none>",
        "",
        "Data",
        "====",
        "app.properties:",
        "----",
        "a=1",
        "b=2",
        "",
        "log_level:",
        "----",
        "debug",
        "",
        "",
        "BinaryData",
        "====",
        "blob: 5 bytes",
        "",
        "Events:  <none>",
    ]


def test_title_keeps_names_with_other_characters() -> None:
    assert title("app.properties") == "app.properties"
    assert title("log_level") == "log_level"
    assert title("http2MaxRequests") == "http2MaxRequests"
    assert title("maxRetries") == "Max Retries"


def test_user_map_keys_are_verbatim_and_multiline_values_indented() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web", "version": "v1"},
                    "annotations": {"sidecar.istio.io/inject": "true"},
                },
                "spec": {"containers": [{"name": "c", "args": ["-c", "echo a\necho b"]}]},
            },
        },
        "data": {"script": "line1\nline2", "ok": "yes"},
    }
    lines = describe(obj).splitlines()
    at = lines.index("  Selector:")
    assert lines[at + 1 : at + 3] == ["    Match Labels:", "      app:  web"]
    at = lines.index("    Metadata:")
    assert lines[at + 1 : at + 7] == [
        "      Labels:",
        "        app:      web",
        "        version:  v1",
        "      Annotations:",
        "        sidecar.istio.io/inject:  true",
        "    Spec:",
    ]
    assert "          echo a" in lines and "          echo b" in lines
    at = lines.index("Data:")
    assert lines[at + 1 : at + 5] == ["  script:", "    line1", "    line2", "  ok:  yes"]


def test_service_selector_keys_verbatim() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    lines = describe(svc).splitlines()
    at = lines.index("  Selector:")
    assert lines[at + 1] == "    app:  web"
