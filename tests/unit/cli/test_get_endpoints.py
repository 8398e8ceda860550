"""``get endpoints`` and ``get endpointslices`` as kubectl prints them, Endpoints computed
for Services with a selector, and ``apply``/``validate`` of the new kinds and Service types."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

Run = Callable[..., Result]

OBJECTS = """apiVersion: v1
kind: Service
metadata: {name: legacy, labels: {tier: old}}
spec: {ports: [{name: http, port: 80}, {name: https, port: 443}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy, labels: {tier: old}}
subsets:
- addresses: [{ip: 198.51.100.10}, {ip: 198.51.100.11}]
  ports: [{name: http, port: 80}, {name: https, port: 443}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: empty}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: legacy-1, labels: {kubernetes.io/service-name: legacy}}
addressType: IPv4
endpoints: [{addresses: [198.51.100.12]}]
ports: [{name: http, port: 80}, {name: any}]
---
apiVersion: v1
kind: Service
metadata: {name: aliyun}
spec: {type: ExternalName, externalName: aliyun.com}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {tier: web}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 192.0.2.99}], ports: [{name: http, port: 1}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {containers: [{name: web, image: python:3}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec: {containers: [{name: web, image: python:3}]}
"""

STATUS = {
    "web-1": {
        "phase": "Running",
        "podIP": "10.34.0.7",
        "conditions": [{"type": "Ready", "status": "True"}],
    },
    "web-2": {"phase": "Pending", "podIP": "10.34.0.8"},
}


def _apply(mg: Run, tmp_path: Path, text: str) -> Result:
    path = tmp_path / "objects.yaml"
    path.write_text(text)
    return mg("apply", "-f", str(path))


def _pod_status(tmp_path: Path) -> None:
    """Pod status as the runtime records it (``apply`` keeps status out, as Kubernetes)."""
    from meshgate.api.meta import ResourceKey
    from meshgate.store import open_store

    store = open_store(tmp_path / "home")
    for name, status in STATUS.items():
        store.update_status(ResourceKey("", "Pod", "default", name), status)


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_get_endpoints_columns_and_computed(mg: Run, tmp_path: Path) -> None:
    result = _apply(mg, tmp_path, OBJECTS)
    assert result.exit_code == 0, result.stderr
    assert "service/aliyun created" in result.stdout
    _pod_status(tmp_path)
    rows = _rows(mg("get", "endpoints").stdout)
    assert rows[0] == ["NAME", "ENDPOINTS", "AGE"]
    by_name = {r[0]: r[1:] for r in rows[1:]}
    # Per port, then per address; three at most, then kubectl's "+ N more...".
    assert by_name["legacy"][:4] == [
        "198.51.100.10:80,198.51.100.11:80,198.51.100.10:443",
        "+",
        "1",
        "more...",
    ]
    assert by_name["empty"][0] == "<none>"
    # web has a selector: the ready pod at the targetPort, not the applied object.
    assert by_name["web"][0] == "10.34.0.7:8080"
    assert "aliyun" not in by_name
    assert _rows(mg("get", "ep", "-l", "tier=web").stdout)[1][:2] == ["web", "10.34.0.7:8080"]
    one = mg("get", "endpoints", "web", "-o", "yaml").stdout
    assert "targetRef:" in one and "name: web-1" in one and "port: 8080" in one


def test_get_endpointslices_columns(mg: Run, tmp_path: Path) -> None:
    assert _apply(mg, tmp_path, OBJECTS).exit_code == 0
    rows = _rows(mg("get", "endpointslices").stdout)
    assert rows[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert rows[1][:4] == ["legacy-1", "IPv4", "80,any", "198.51.100.12"]


def test_bad_endpoints_and_service_types_name_file_and_field(mg: Run, tmp_path: Path) -> None:
    bad = """apiVersion: v1
kind: Endpoints
metadata: {name: legacy}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: aliyun}
spec: {type: ExternalName}
"""
    result = _apply(mg, tmp_path, bad)
    assert result.exit_code != 0
    assert "objects.yaml:4 Endpoints default/legacy subsets[0].addresses[0].ip" in result.stderr
    assert "may not be in the loopback range" in result.stderr
    assert "Service default/aliyun spec.externalName: Required value" in result.stderr
    assert "No resources found" in mg("get", "endpoints").stderr  # nothing was stored
