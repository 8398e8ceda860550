"""``meshgate install``'s reading of istioctl's --set paths and IstioOperator files."""

# Case tables keep each case on one line.
# ruff: noqa: E501

from __future__ import annotations

import pytest
import yaml

from meshgate.cli import install_settings as s

MESH_FIELDS = frozenset(
    {"outboundTrafficPolicy", "accessLogFile", "accessLogEncoding", "accessLogFormat"}
    | {"defaultServiceExportTo", "includeIPRanges", "excludeIPRanges", "egressEnforcement"}
)


def plan(*args: str) -> s.Plan:
    return s.plan([s.parse_set(a) for a in args], MESH_FIELDS)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("REGISTRY_ONLY", "REGISTRY_ONLY"),
        ("/dev/stdout", "/dev/stdout"),
        ("3", 3),
        ("-2", -2),
        ("1.5", 1.5),
        ("true", True),
        ("False", False),
        ("10.0.0.0/8\\,192.168.0.0/16", "10.0.0.0/8,192.168.0.0/16"),
        ("", ""),
        ("yes", "yes"),  # Go's ParseBool knows no "yes"
    ],
)
def test_set_values_are_read_as_istioctl_reads_them(text: str, value: object) -> None:
    assert s.parse_set(f"meshConfig.x={text}").value == value


def test_set_needs_path_and_value() -> None:
    with pytest.raises(ValueError, match=r"--set 'meshConfig.accessLogFile': expected PATH=VALUE"):
        s.parse_set("meshConfig.accessLogFile")
    with pytest.raises(ValueError, match="expected PATH=VALUE"):
        s.parse_set("=x")
    assert s.parse_set("spec.profile=demo").path == "profile"  # istioctl accepts spec.


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("meshConfig.outboundTrafficPolicy.mode", ["meshConfig", "outboundTrafficPolicy", "mode"]),
        (
            "components.egressGateways[0].enabled",
            ["components", "egressGateways", "[0]", "enabled"],
        ),
        (
            "components.egressGateways[name:istio-egressgateway].enabled",
            ["components", "egressGateways", "[name:istio-egressgateway]", "enabled"],
        ),
    ],
)
def test_paths_split_on_dots_and_brackets(path: str, segments: list[str]) -> None:
    assert s.split_path(path) == segments


@pytest.mark.parametrize("path", ["a..b", ".a", "a.", "a[0]b", "[0].a", "a[0", ""])
def test_malformed_paths(path: str) -> None:
    with pytest.raises(ValueError, match="malformed path"):
        s.split_path(path)


def test_supported_paths_lead_to_meshconfig_fields() -> None:
    p = plan(
        "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY",
        "meshConfig.accessLogFile=/dev/stdout",
        "meshConfig.accessLogEncoding=JSON",
        "meshConfig.accessLogFormat=[%START_TIME%] %REQ(:AUTHORITY)%",
        "values.global.proxy.includeIPRanges=10.0.0.0/8",
        "values.global.proxy.excludeIPRanges=",
        "values.meshConfig.defaultServiceExportTo[0]=.",
    )
    assert p.errors == []
    assert [(path, value) for path, value, _ in p.mesh] == [
        (("outboundTrafficPolicy", "mode"), "REGISTRY_ONLY"),
        (("accessLogFile",), "/dev/stdout"),
        (("accessLogEncoding",), "JSON"),
        (("accessLogFormat",), "[%START_TIME%] %REQ(:AUTHORITY)%"),
        (("includeIPRanges",), "10.0.0.0/8"),
        (("excludeIPRanges",), ""),
        (("defaultServiceExportTo", 0), "."),
    ]
    assert p.egress is None


@pytest.mark.parametrize(
    ("arg", "error"),
    [
        ("meshConfig.enableTracing=true", "--set: not supported: meshConfig.enableTracing"),
        (
            "meshConfig.defaultConfig.holdApplicationUntilProxyStarts=true",
            "not supported: meshConfig.defaultConfig",
        ),
        ("meshConfig.accesLogFile=/dev/stdout", "--set: unknown path: meshConfig.accesLogFile"),
        ("values.global.proxy.privileged=true", "not supported: values.global.proxy.privileged"),
        (
            "values.global.proxy.excludeInboundPorts=22",
            "not supported: values.global.proxy.excludeInboundPorts",
        ),
        ("values.global.proxy.bogus=1", "unknown path: values.global.proxy.bogus"),
        ("values.global.hub=docker.io/istio", "not supported: values.global.hub"),
        ("values.pilot.traceSampling=100", "not supported: values.pilot"),
        ("values.nonsense=1", "unknown path: values.nonsense"),
        ("hub=docker.io/istio", "not supported: hub"),
        ("revision=canary", "not supported: revision"),
        ("components.cni.enabled=true", "not supported: components.cni"),
        ("components.ingressGateways[0].enabled=true", "not supported: components.ingressGateways"),
        (
            "components.egressGateways[0].k8s.replicaCount=2",
            "not supported: components.egressGateways[0].k8s.replicaCount",
        ),
        (
            "components.egressGateways[0].label.istio=egress",
            "not supported: components.egressGateways[0].label.istio",
        ),
        (
            "components.egressGateways[0].bogus=1",
            "unknown path: components.egressGateways[0].bogus",
        ),
        ("components.egressGateways[0].enabled=maybe", "'maybe' is not true or false"),
        ("components.nonsense.enabled=true", "unknown path: components.nonsense.enabled"),
        ("profile=ambient", "not supported: profile ambient"),
        ("profile=tiny", "unknown profile 'tiny'"),
        ("whatever=1", "--set: unknown path: whatever"),
        (
            "values.global.proxy.includeIPRanges=10.0.0.1",
            "values.global.proxy.includeIPRanges: '10.0.0.1' is not a CIDR",
        ),
        (
            "values.global.proxy.excludeOutboundPorts=ssh",
            "values.global.proxy.excludeOutboundPorts: 'ssh' is not a port number",
        ),
    ],
)
def test_refused_paths_are_named_with_the_reason(arg: str, error: str) -> None:
    p = plan(arg)
    assert len(p.errors) == 1 and error in p.errors[0], p.errors
    assert p.mesh == [] and p.egress is None


def test_egress_gateway_entries() -> None:
    on = plan(
        "components.egressGateways[0].name=istio-egressgateway",
        "components.egressGateways[0].enabled=true",
    )
    assert (on.errors, on.egress) == ([], True)
    assert plan("components.egressGateways[0].enabled=true").egress is True  # entry 0's name
    off = plan("components.egressGateways[name:istio-egressgateway].enabled=false")
    assert (off.errors, off.egress) == ([], False)
    other = plan(
        "components.egressGateways[0].name=my-egress", "components.egressGateways[0].enabled=true"
    )
    assert other.egress is None and "not supported: egress gateway 'my-egress'" in other.errors[0]
    unnamed = plan("components.egressGateways[1].enabled=true")
    assert "not supported: egress gateway '(no name)'" in unnamed.errors[0]


def test_profiles_and_what_meshgate_always_is() -> None:
    demo = plan("profile=demo")
    assert demo.egress is True and [(p, v) for p, v, _ in demo.mesh] == [
        (("accessLogFile",), "/dev/stdout")
    ]
    default = plan("profile=default", "components.egressGateways[0].enabled=true")
    assert default.egress is True  # --set wins over the profile
    assert [(p, v) for p, v, _ in default.mesh] == [(("accessLogFile",), None)]
    fixed = plan("components.pilot.enabled=true", "components.ingressGateways[0].enabled=false")
    assert fixed.errors == [] and fixed.mesh == []
    assert fixed.notes == [
        "--set: components.pilot.enabled=true: in meshgate it always runs",
        "--set: components.ingressGateways[0].enabled=false: in meshgate it does not exist",
    ]
    assert "not supported: components.pilot" in plan("components.pilot.enabled=false").errors[0]


OPERATOR = """
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: example, namespace: istio-system}
spec:
  profile: demo
  meshConfig:
    accessLogFile: /dev/stdout
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
    defaultServiceExportTo: ["."]
  values:
    global:
      proxy: {includeIPRanges: "10.0.0.0/8"}
  components:
    egressGateways:
    - name: istio-egressgateway
      enabled: true
"""


def test_operator_file_flattens_to_settings_naming_file_and_field() -> None:
    settings, errors = s.operator_settings(yaml.safe_load(OPERATOR), "iop.yaml")
    assert errors == []
    assert [(x.path, x.value, x.source) for x in settings] == [
        ("profile", "demo", "iop.yaml: spec.profile"),
        ("meshConfig.accessLogFile", "/dev/stdout", "iop.yaml: spec.meshConfig.accessLogFile"),
        (
            "meshConfig.outboundTrafficPolicy.mode",
            "REGISTRY_ONLY",
            "iop.yaml: spec.meshConfig.outboundTrafficPolicy.mode",
        ),
        (
            "meshConfig.defaultServiceExportTo",
            ["."],
            "iop.yaml: spec.meshConfig.defaultServiceExportTo",
        ),
        (
            "values.global.proxy.includeIPRanges",
            "10.0.0.0/8",
            "iop.yaml: spec.values.global.proxy.includeIPRanges",
        ),
        (
            "components.egressGateways[0].name",
            "istio-egressgateway",
            "iop.yaml: spec.components.egressGateways[0].name",
        ),
        (
            "components.egressGateways[0].enabled",
            True,
            "iop.yaml: spec.components.egressGateways[0].enabled",
        ),
    ]
    p = s.plan(settings, MESH_FIELDS)
    assert p.errors == [] and p.egress is True


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        (
            "apiVersion: install.istio.io/v1beta1\nkind: IstioOperator\nspec: {}",
            "iop.yaml: apiVersion: expected install.istio.io/v1alpha1, got 'install.istio.io/v1beta1'",
        ),
        (
            "apiVersion: install.istio.io/v1alpha1\nkind: Deployment\nspec: {}",
            "iop.yaml: kind: expected IstioOperator, got 'Deployment'",
        ),
        (
            "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspce: {}",
            "iop.yaml: spce: unknown field",
        ),
        (
            "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: [1]",
            "iop.yaml: spec: expected a mapping",
        ),
        ("- 1", "iop.yaml: expected an IstioOperator object, got list"),
    ],
)
def test_operator_file_errors(doc: str, error: str) -> None:
    _, errors = s.operator_settings(yaml.safe_load(doc), "iop.yaml")
    assert error in errors


def test_operator_file_field_problems_name_file_and_field() -> None:
    doc = yaml.safe_load(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n"
        "spec:\n  meshConfig: {enableTracing: true}\n  values: {global: {proxy: {image: x}}}\n"
    )
    settings, errors = s.operator_settings(doc, "iop.yaml")
    assert errors == []
    assert s.plan(settings, MESH_FIELDS).errors == [
        "iop.yaml: spec.meshConfig.enableTracing: not supported: meshConfig.enableTracing",
        "iop.yaml: spec.values.global.proxy.image: not supported: values.global.proxy.image",
    ]


def test_apply_mesh_sets_nested_fields_and_removes_with_none() -> None:
    spec = {"accessLogFile": "/dev/stdout", "outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}
    changes = plan(
        "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY",
        "meshConfig.defaultServiceExportTo[0]=.",
        "profile=default",
    ).mesh
    assert s.apply_mesh(spec, changes) == {
        "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
        "defaultServiceExportTo": ["."],
    }
    assert spec["accessLogFile"] == "/dev/stdout"  # the input is left as it was
    with pytest.raises(TypeError):
        s.apply_mesh({"accessLogFile": "x"}, plan("meshConfig.accessLogFile[0]=y").mesh)
