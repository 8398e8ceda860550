"""IstioGateway ``secretVolumes``/``configVolumes``: the gateway Deployment's volumes and
its proxy's mounts (as Istio's gateway chart renders them), refused when malformed, and the
runtime spec a gateway pod gets from them."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.server.test_workloads import GATEWAY

from meshgate.api.decode import decode_text
from meshgate.runtime.podspec import VolumeMountSpec, spec_from_dict
from meshgate.server import workloads as wl
from meshgate.validation import validate_all


def _with(**spec: Any) -> dict[str, Any]:
    gw = copy.deepcopy(GATEWAY)
    gw["spec"].update(spec)
    return gw


def test_volumes_become_optional_read_only_mounts_of_the_proxy() -> None:
    gw = _with(
        secretVolumes=[
            {"name": "nginx-client-certs", "secretName": "nginx-client-certs",
             "mountPath": "/etc/istio/nginx-client-certs"},
        ],
        configVolumes=[
            {"name": "extra", "configMapName": "extra-cm", "mountPath": "/etc/istio/extra"},
            {"name": "unmounted", "configMapName": "other"},
        ],
    )  # fmt: skip
    dep, _, _ = wl.gateway_objects(gw)
    pod = dep["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "nginx-client-certs",
         "secret": {"secretName": "nginx-client-certs", "optional": True}},
        {"name": "extra", "configMap": {"name": "extra-cm", "optional": True}},
        {"name": "unmounted", "configMap": {"name": "other", "optional": True}},
    ]  # fmt: skip
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "nginx-client-certs", "mountPath": "/etc/istio/nginx-client-certs",
         "readOnly": True},
        {"name": "extra", "mountPath": "/etc/istio/extra", "readOnly": True},
    ]  # fmt: skip


def test_no_volumes_leave_the_deployment_as_before() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    pod = dep["spec"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]


def test_malformed_volumes_are_refused_naming_the_field() -> None:
    text = """apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  gatewayType: egress
  secretVolumes:
  - {name: a, secretName: s, mountPath: relative/path}
  - {name: a, mountPath: /etc/b}
  configVolumes:
  - {name: c}
"""
    result = decode_text(text, "gw.yaml")
    found = [(p.code, p.field, p.message) for p in validate_all(result.documents) if p.is_error]
    assert found == [
        ("MG1086", "spec.secretVolumes[0].mountPath",
         "Invalid value: 'relative/path': must be absolute"),
        ("MG1086", "spec.secretVolumes[1].name", "Duplicate value: 'a'"),
        ("MG1086", "spec.secretVolumes[1].secretName", "Required value"),
        ("MG1086", "spec.configVolumes[0].configMapName", "Required value"),
    ]  # fmt: skip


def test_a_router_spec_keeps_its_proxy_mounts_through_the_manifest() -> None:
    mount = {"name": "v", "mount_path": "/etc/istio/v", "read_only": True, "sub_path": ""}
    spec = spec_from_dict(
        {"name": "gw", "namespace": "istio-system", "containers": [],
         "proxy": {"bootstrap": {}, "mode": "router", "mounts": [mount]}}
    )  # fmt: skip
    assert spec.proxy is not None
    assert spec.proxy.mounts == [VolumeMountSpec("v", "/etc/istio/v", True, "")]
