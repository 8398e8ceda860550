"""``meshgate install`` on a mesh's store: what it prints, what it changes, and that a bad
setting changes nothing."""

from __future__ import annotations

from pathlib import Path

import yaml
from tests.unit.cli.conftest import Run

REGISTRY_ONLY = "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY"


def meshconfig(mg: Run) -> dict[str, object]:
    result = mg("get", "meshconfig", "default", "-o", "yaml")
    return yaml.safe_load(result.stdout)["spec"] if result.exit_code == 0 else {}


def gateways(mg: Run) -> str:
    return mg("get", "istiogateway", "-n", "istio-system").stdout


def test_set_changes_the_meshconfig_and_get_shows_it(mg: Run) -> None:
    result = mg("install", "--set", REGISTRY_ONLY, "-y")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  meshConfig.outboundTrafficPolicy.mode: (unset) -> REGISTRY_ONLY",
        "meshconfig.meshgate.io/default created",
        "Installation complete: mesh config is in force now.",
    ]
    assert result.stdout.startswith("This will change the mesh in ")
    assert meshconfig(mg) == {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    # Again: nothing to change, nothing changed.
    again = mg("install", "--set", REGISTRY_ONLY, "-y")
    assert again.stdout == "nothing to change: the mesh already has these settings\n"
    # More settings keep what is there (no profile given: only the named paths change).
    result = mg(
        "install",
        "-s", "meshConfig.accessLogFile=/dev/stdout",
        "-s", "meshConfig.accessLogEncoding=TEXT",
        "-s", "meshConfig.accessLogFormat=%REQ(:AUTHORITY)% %RESPONSE_CODE%\n",
        "-s", "values.global.proxy.excludeIPRanges=198.51.100.10/32",
        "-y",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "meshconfig.meshgate.io/default configured" in result.stdout
    assert "Interception settings apply to pods started from now on" in result.stdout
    assert meshconfig(mg) == {
        "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
        "accessLogFile": "/dev/stdout",
        "accessLogEncoding": "TEXT",
        "accessLogFormat": "%REQ(:AUTHORITY)% %RESPONSE_CODE%",
        "excludeIPRanges": "198.51.100.10/32",
    }


def test_any_bad_setting_changes_nothing(mg: Run) -> None:
    assert mg("install", "--set", "meshConfig.accessLogFile=/dev/stdout", "-y").exit_code == 0
    before = meshconfig(mg)
    result = mg(
        "install",
        "--set", REGISTRY_ONLY,
        "--set", "meshConfig.outboundTraficPolicy.mode=ALLOW_ANY",
        "--set", "meshConfig.enableTracing=true",
        "--set", "meshConfig.accessLogEncoding=XML",
        "--set", "meshConfig.outboundTrafficPolicy.mod=REGISTRY_ONLY",
        "--set", "components.egressGateways[0].enabled=true",
        "-y",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: --set: unknown path: meshConfig.outboundTraficPolicy.mode",
        "error: --set: not supported: meshConfig.enableTracing",
        "error: --set: unknown path: meshConfig.outboundTrafficPolicy.mod",
        "error: --set meshConfig.accessLogEncoding: invalid value 'XML': input should be "
        "'JSON' or 'TEXT' [MG0008]",
        "error: 4 error(s) found; nothing was changed",
    ]
    assert result.stdout == ""
    assert meshconfig(mg) == before
    assert "istio-egressgateway" not in gateways(mg)


def test_operator_file_errors_name_file_and_field(mg: Run, tmp_path: Path) -> None:
    iop = tmp_path / "iop.yaml"
    iop.write_text(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n"
        "  meshConfig:\n    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
        "  values:\n    global:\n      proxy: {includeIPRanges: '10.0.0.0/33'}\n"
        "  components:\n    egressGateways:\n    - {name: istio-egressgateway, enabled: true,"
        " k8s: {replicaCount: 2}}\n"
    )
    result = mg("install", "-f", str(iop), "-y")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {iop}: spec.values.global.proxy.includeIPRanges: "
        "values.global.proxy.includeIPRanges: '10.0.0.0/33' is not a CIDR (an address and a "
        "prefix length, such as 10.0.0.0/8 or *)",
        f"error: {iop}: spec.components.egressGateways[0].k8s.replicaCount: not supported: "
        "components.egressGateways[0].k8s.replicaCount",
        "error: 2 error(s) found; nothing was changed",
    ]
    assert meshconfig(mg) == {}
    missing = mg("install", "-f", str(tmp_path / "nope.yaml"), "-y")
    assert missing.exit_code == 1 and f"{tmp_path / 'nope.yaml'}: cannot read" in missing.stderr


def test_file_then_set_and_the_egress_gateway(mg: Run, tmp_path: Path) -> None:
    iop = tmp_path / "iop.yaml"
    iop.write_text(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n"
        "  meshConfig: {accessLogFile: /tmp/a.log}\n"
        "  components:\n    egressGateways:\n    - {name: istio-egressgateway, enabled: true}\n"
    )
    result = mg("install", "-f", str(iop), "--set", "meshConfig.accessLogFile=/dev/stdout", "-y")
    assert result.exit_code == 0, result.stderr
    assert "  components.egressGateways[name:istio-egressgateway].enabled: false -> true" in (
        result.stdout
    )
    assert "istiogateway.istio.alibabacloud.com/istio-egressgateway created" in result.stdout
    assert meshconfig(mg) == {"accessLogFile": "/dev/stdout"}  # --set wins over -f
    gw = yaml.safe_load(
        mg("get", "istiogateway", "istio-egressgateway", "-n", "istio-system", "-o", "yaml").stdout
    )
    assert gw["spec"]["gatewayType"] == "egress"
    assert [(p["name"], p["port"], p["targetPort"]) for p in gw["spec"]["ports"]] == [
        ("http2", 80, 8080),
        ("https", 443, 8443),
    ]
    off = mg("install", "--set", "components.egressGateways[0].enabled=false", "-y")
    assert "istiogateway.istio.alibabacloud.com/istio-egressgateway deleted" in off.stdout
    assert "istio-egressgateway" not in gateways(mg)


def test_confirmation_and_dry_run(mg: Run) -> None:
    no = mg("install", "--set", REGISTRY_ONLY, input="n\n")
    assert no.exit_code == 1
    assert no.stdout.endswith("Proceed? (y/N) ")
    assert no.stderr == "error: cancelled; nothing was changed\n"
    assert meshconfig(mg) == {}
    dry = mg("install", "--set", "profile=demo", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "meshconfig.meshgate.io/default created (dry run)" in dry.stdout
    assert "istiogateway.istio.alibabacloud.com/istio-egressgateway created (dry run)" in dry.stdout
    assert "Proceed" not in dry.stdout
    assert meshconfig(mg) == {} and "istio-egressgateway" not in gateways(mg)
    yes = mg("install", "--set", REGISTRY_ONLY, input="y\n")
    assert yes.exit_code == 0 and "meshconfig.meshgate.io/default created" in yes.stdout
    assert meshconfig(mg) == {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}


def test_nothing_to_install(mg: Run) -> None:
    result = mg("install", "-y")
    assert result.exit_code == 1
    assert result.stderr == "error: nothing to install: give --set PATH=VALUE or -f FILE\n"
    bad = mg("install", "--set", "meshConfig.accessLogFile", "-y")
    assert "error: --set 'meshConfig.accessLogFile': expected PATH=VALUE" in bad.stderr


def test_a_json_access_log_format_that_is_not_an_object_changes_nothing(mg: Run) -> None:
    assert mg("install", "--set", "meshConfig.accessLogEncoding=TEXT", "-y").exit_code == 0
    before = meshconfig(mg)
    result = mg(
        "install",
        "--set", "meshConfig.accessLogEncoding=JSON",
        "--set", "meshConfig.accessLogFormat=[%START_TIME%] %PROTOCOL%",
        "-y",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: --set meshConfig.accessLogFormat: with accessLogEncoding JSON it must be a "
        "JSON object: Expecting value: line 1 column 2 (char 1) [MG1095]",
        "error: 1 error(s) found; nothing was changed",
    ]
    assert meshconfig(mg) == before
    # The same text is a fine TEXT format.
    ok = mg("install", "--set", "meshConfig.accessLogFormat=[%START_TIME%] %PROTOCOL%", "-y")
    assert ok.exit_code == 0, ok.stderr
    assert meshconfig(mg)["accessLogFormat"] == "[%START_TIME%] %PROTOCOL%"
    # Back to JSON: the text format goes too.
    back = mg(
        "install",
        "--set", "meshConfig.accessLogEncoding=JSON",
        "--set", "meshConfig.accessLogFormat=",
        "-y",
    )  # fmt: skip
    assert back.exit_code == 0, back.stderr
    assert meshconfig(mg).get("accessLogFormat") in (None, "")
