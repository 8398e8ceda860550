"""Kubernetes kinds: what kube-apiserver refuses, meshgate refuses before it is stored."""

# Case tables keep each YAML case on one line.
# ruff: noqa: E501

from __future__ import annotations

import pytest

from meshgate.api.decode import decode_text
from meshgate.api.problems import Problem
from meshgate.validation import validate_all
from meshgate.validation.kube import base64_problem

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  {spec}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: c, image: x}}], {pod}}}
"""


def problems(text: str) -> list[Problem]:
    result = decode_text(text, "case.yaml")
    return result.problems + validate_all(result.documents)


def errors(text: str) -> list[tuple[str, str, str]]:
    return [(p.code, p.field, p.message) for p in problems(text) if p.is_error]


def deployment(spec: str = "replicas: 1", pod: str = "") -> str:
    return DEPLOYMENT.format(spec=spec, pod=pod)


@pytest.mark.parametrize(
    ("spec", "pod", "field"),
    [
        ("replicas: -1", "", "spec.replicas"),
        ("minReadySeconds: -5", "", "spec.minReadySeconds"),
        ("revisionHistoryLimit: -2", "", "spec.revisionHistoryLimit"),
        (
            "replicas: 1",
            "terminationGracePeriodSeconds: -1",
            "spec.template.spec.terminationGracePeriodSeconds",
        ),
    ],
)
def test_negative_counts_are_refused(spec: str, pod: str, field: str) -> None:
    got = errors(deployment(spec, pod))
    assert [(code, f) for code, f, _ in got] == [("MG1083", field)]
    assert got[0][2].endswith("must be greater than or equal to 0")


def test_zero_replicas_and_defaults_are_fine() -> None:
    assert errors(deployment("replicas: 0", "terminationGracePeriodSeconds: 0")) == []
    assert errors(deployment("minReadySeconds: 0\n  progressDeadlineSeconds: 600")) == []


def test_progress_deadline_must_exceed_min_ready() -> None:
    got = errors(deployment("minReadySeconds: 10\n  progressDeadlineSeconds: 10"))
    assert got == [
        (
            "MG1083",
            "spec.progressDeadlineSeconds",
            "Invalid value: 10: must be greater than minReadySeconds",
        )
    ]


def secret(data: str, field: str = "data") -> str:
    return f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: default}}\n{field}: {data}\n"


def test_secret_data_must_be_base64() -> None:
    got = errors(secret('{ca.crt: "not base64!!", tls.crt: YWJj}'))
    assert got == [("MG1084", "data.ca.crt", "illegal base64 data at input byte 3")]
    # stringData is plain text: anything goes.
    assert errors(secret('{ca.crt: "not base64!!"}', "stringData")) == []


def test_secret_base64_may_span_lines() -> None:
    assert errors(secret('{k: "YWJj\\nZGVm\\n"}')) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", None),
        ("YQ==", None),
        ("YWJj", None),
        ("not base64!!", "illegal base64 data at input byte 3"),
        ("YWJ", "illegal base64 data at input byte 0"),
        ("YWJjZ", "illegal base64 data at input byte 4"),
        ("YQ==YQ==", "illegal base64 data at input byte 4"),
        ("YW=j", "illegal base64 data at input byte 2"),
        ("YQ=", "illegal base64 data at input byte 3"),
        ("=AAA", "illegal base64 data at input byte 0"),
        ("YWJ=", None),
        ("YWJ=Y", "illegal base64 data at input byte 4"),
        ("YW\r\nJj\n", None),
        ("YWJj-A==", "illegal base64 data at input byte 4"),
    ],
)
def test_base64_problem(value: str, problem: str | None) -> None:
    assert base64_problem(value) == problem


def test_config_keys_and_binary_data() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n"
        'data: {app.properties: "a=1", "a b": x, both: y}\n'
        'binaryData: {both: YWJj, blob: "@@"}\n'
    )
    got = {(code, field) for code, field, _ in errors(text)}
    assert got == {
        ("MG1084", "data.a b"),
        ("MG1084", "binaryData.both"),
        ("MG1084", "binaryData.blob"),
    }


SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {{name: svc, namespace: default}}\nspec:\n  ports: {ports}\n"


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ("[{name: a, port: 80}, {name: b, port: 80}]", [("MG1085", "spec.ports[1]")]),
        (
            "[{name: a, port: 80}, {name: b, port: 80, protocol: TCP}]",
            [("MG1085", "spec.ports[1]")],
        ),
        ("[{name: a, port: 80}, {name: b, port: 80, protocol: UDP}]", []),
        (
            "[{name: a, port: 80}, {name: b, port: 81}, {name: c, port: 80}]",
            [("MG1085", "spec.ports[2]")],
        ),
        (
            "[{name: a, port: 80}, {name: a, port: 81}]",
            [("MG1016", "spec.ports[0].name"), ("MG1016", "spec.ports[1].name")],
        ),
        ("[{port: 80}]", []),
    ],
)
def test_service_ports_are_unique(ports: str, expected: list[tuple[str, str]]) -> None:
    got = [(code, field) for code, field, _ in errors(SERVICE.format(ports=ports))]
    assert got == expected


POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: default}}\nspec:\n  volumes: {volumes}\n  containers: [{{name: c, image: x, volumeMounts: {mounts}}}]\n"


@pytest.mark.parametrize(
    ("volumes", "mounts", "expected"),
    [
        ("[{name: d, emptyDir: {}}]", "[{name: d, mountPath: /data}]", []),
        (
            "[{name: d, emptyDir: {medium: Memory}}]",
            "[{name: d, mountPath: /data, subPath: x/y, readOnly: true}]",
            [],
        ),
        (
            "[]",
            "[{name: d, mountPath: /data}]",
            [("MG1086", "spec.containers[0].volumeMounts[0].name")],
        ),
        (
            "[{name: d, emptyDir: {}}]",
            "[{name: d, mountPath: data}]",
            [("MG1086", "spec.containers[0].volumeMounts[0].mountPath")],
        ),
        (
            "[{name: d, emptyDir: {}}]",
            "[{name: d, mountPath: /a}, {name: d, mountPath: /a/}]",
            [("MG1086", "spec.containers[0].volumeMounts[1].mountPath")],
        ),
        (
            "[{name: d, emptyDir: {}}]",
            "[{name: d, mountPath: /a, subPath: ../x}]",
            [("MG1086", "spec.containers[0].volumeMounts[0].subPath")],
        ),
        (
            "[{name: d, emptyDir: {}}]",
            "[{name: d, mountPath: /a, subPath: /x}]",
            [("MG1086", "spec.containers[0].volumeMounts[0].subPath")],
        ),
        (
            "[{name: d, emptyDir: {}}, {name: d, emptyDir: {}}]",
            "[]",
            [("MG1086", "spec.volumes[1].name")],
        ),
    ],
)
def test_pod_volumes_and_mounts(volumes: str, mounts: str, expected: list[tuple[str, str]]) -> None:
    got = [(code, field) for code, field, _ in errors(POD.format(volumes=volumes, mounts=mounts))]
    assert sorted(got) == sorted(expected)


MESH_CONFIG = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {{name: default}}
spec: {{egressEnforcement: {value}}}
"""


@pytest.mark.parametrize("value", ["OFF", "GATEWAY_ONLY"])
def test_mesh_config_egress_enforcement_values(value: str) -> None:
    assert errors(MESH_CONFIG.format(value=value)) == []


def test_mesh_config_egress_enforcement_refuses_others() -> None:
    got = errors(MESH_CONFIG.format(value="STRICT"))
    assert [(code, field) for code, field, _ in got] == [("MG0008", "spec.egressEnforcement")]
    assert "'OFF' or 'GATEWAY_ONLY'" in got[0][2]


def test_mesh_config_egress_enforcement_is_off_by_default() -> None:
    from meshgate.api.kinds.meshgate_kinds import MeshConfigSpec

    assert MeshConfigSpec().effective_egress_enforcement == "OFF"


@pytest.mark.parametrize(
    ("annotations", "field"),
    [
        ("{traffic.sidecar.istio.io/includeInboundPorts: '*'}", None),
        ("{traffic.sidecar.istio.io/includeInboundPorts: '8080, 9090'}", None),
        ("{traffic.sidecar.istio.io/includeInboundPorts: ''}", None),
        (
            "{traffic.sidecar.istio.io/excludeInboundPorts: '*'}",
            "metadata.annotations.traffic.sidecar.istio.io/excludeInboundPorts",
        ),
        (
            "{traffic.sidecar.istio.io/includeInboundPorts: '80,http'}",
            "metadata.annotations.traffic.sidecar.istio.io/includeInboundPorts",
        ),
        (
            "{traffic.sidecar.istio.io/excludeInboundPorts: '70000'}",
            "metadata.annotations.traffic.sidecar.istio.io/excludeInboundPorts",
        ),
    ],
)
def test_inbound_capture_annotations(annotations: str, field: str | None) -> None:
    pod = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p, annotations: {annotations}}}\nspec: {{containers: [{{name: c, image: x}}]}}\n"
    got = [(code, f) for code, f, _ in errors(pod) if code == "MG1088"]
    assert got == ([] if field is None else [("MG1088", field)])
    template = DEPLOYMENT.replace(
        "metadata: {{labels: {{app: web}}}}",
        f"metadata: {{{{labels: {{{{app: web}}}}, annotations: {annotations.replace('{', '{{').replace('}', '}}')}}}}}",
    )
    got = [code for code, _, _ in errors(template.format(spec="replicas: 1", pod=""))]
    assert ("MG1088" in got) is (field is not None)


@pytest.mark.parametrize(
    ("annotations", "field", "reason"),
    [
        ("{traffic.sidecar.istio.io/includeOutboundIPRanges: '*'}", None, ""),
        ("{traffic.sidecar.istio.io/includeOutboundIPRanges: ''}", None, ""),
        (
            "{traffic.sidecar.istio.io/excludeOutboundIPRanges: '198.51.100.10/32, 10.0.0.0/8'}",
            None,
            "",
        ),
        ("{traffic.sidecar.istio.io/includeOutboundPorts: '80,443'}", None, ""),
        (
            "{traffic.sidecar.istio.io/excludeOutboundIPRanges: '*'}",
            "metadata.annotations.traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "'*' is not a CIDR",
        ),
        (
            "{traffic.sidecar.istio.io/includeOutboundIPRanges: '10.0.0.0/8,300.1.1.1/32'}",
            "metadata.annotations.traffic.sidecar.istio.io/includeOutboundIPRanges",
            "'300.1.1.1/32' is not a CIDR",
        ),
        (
            "{traffic.sidecar.istio.io/includeOutboundPorts: '80,web'}",
            "metadata.annotations.traffic.sidecar.istio.io/includeOutboundPorts",
            "'web' is not a port number",
        ),
        (
            "{traffic.sidecar.istio.io/excludeOutboundPorts: '99999'}",
            "metadata.annotations.traffic.sidecar.istio.io/excludeOutboundPorts",
            "'99999' is not a port number",
        ),
    ],
)
def test_outbound_capture_annotations(annotations: str, field: str | None, reason: str) -> None:
    pod = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p, annotations: {annotations}}}\nspec: {{containers: [{{name: c, image: x}}]}}\n"
    got = [(code, f) for code, f, _ in errors(pod) if code == "MG1088"]
    assert got == ([] if field is None else [("MG1088", field)])
    if field is not None:
        (message,) = [m for code, _, m in errors(pod) if code == "MG1088"]
        assert reason in message and field.rsplit("/", 1)[1] in message


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ("{includeIPRanges: '10.0.0.0/8', excludeIPRanges: '10.9.0.0/16'}", None, ""),
        ("{includeIPRanges: '*', includeOutboundPorts: '80', excludeOutboundPorts: ''}", None, ""),
        (
            "{includeIPRanges: '10.0.0.0'}",
            "spec.includeIPRanges",
            "includeIPRanges: '10.0.0.0' is not a CIDR",
        ),
        ("{excludeIPRanges: '*'}", "spec.excludeIPRanges", "excludeIPRanges: '*' is not a CIDR"),
        (
            "{excludeOutboundPorts: 'ssh'}",
            "spec.excludeOutboundPorts",
            "'ssh' is not a port number",
        ),
    ],
)
def test_meshconfig_capture_ranges(spec: str, field: str | None, reason: str) -> None:
    text = f"apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: default}}\nspec: {spec}\n"
    got = [(code, f, m) for code, f, m in errors(text)]
    if field is None:
        assert got == []
    else:
        assert [(c, f) for c, f, _ in got] == [("MG1088", field)]
        assert reason in got[0][2]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ('{accessLogFormat: \'{"code": "%RESPONSE_CODE%", "n": {"a": "%PROTOCOL%"}}\'}', None),
        ('{accessLogEncoding: JSON, accessLogFormat: \'{"code": "%RESPONSE_CODE%"}\'}', None),
        ("{accessLogEncoding: TEXT, accessLogFormat: '[%START_TIME%] %PROTOCOL%'}", None),
        ("{accessLogEncoding: JSON, accessLogFormat: ''}", None),
        (
            "{accessLogEncoding: JSON, accessLogFormat: '[%START_TIME%] %PROTOCOL%'}",
            "with accessLogEncoding JSON it must be a JSON object: Expecting value: line 1 column 2",
        ),
        (
            "{accessLogFormat: '%PROTOCOL%'}",
            "with accessLogEncoding JSON it must be a JSON object: Expecting value",
        ),
        (
            "{accessLogFormat: '[\"%PROTOCOL%\"]'}",
            "with accessLogEncoding JSON it must be a JSON object, not an array",
        ),
    ],
)
def test_meshconfig_json_access_log_format_is_an_object(spec: str, reason: str | None) -> None:
    text = f"apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: default}}\nspec: {spec}\n"
    got = errors(text)
    if reason is None:
        assert got == []
    else:
        assert [(c, f) for c, f, _ in got] == [("MG1095", "spec.accessLogFormat")]
        assert got[0][2].startswith(reason)
