"""The debugging views on the seed mesh at step 4 (aliyun.com through istio-egressgateway):
`describe pod` names the mode and the gateway path, `proxy-status` prints istioctl's columns
for every running proxy, and `pc secret` shows the gateway's mesh certificate as istioctl
does (table, and Envoy's SecretsConfigDump with `-o json`)."""

from __future__ import annotations

import pytest

from meshgate import __version__
from meshgate.home import mesh_id
from tests.e2e.meshctl import WALKTHROUGH, Mesh, proxy_certificates, retry

pytestmark = pytest.mark.e2e

GW_SA = "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"


def _moved(out: str) -> bool:
    return " 301 " in out


def _egress_section(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index("Egress:") : lines.index("Events:  <none>")]


def test_describe_proxy_status_and_secrets_on_the_seed_mesh(mesh: Mesh) -> None:
    for step in ("1-sleep", "2-registry-only", "3-serviceentry", "4-egress-gateway"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / f"{step}.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    ok, out = retry(lambda: mesh.curl(sleep, "-I", "http://aliyun.com/").stdout, _moved, 30)
    assert ok, out

    # describe pod: the mode, and aliyun.com:80 through the gateway, from the live store.
    section = _egress_section(mesh.meshgate("describe", "pod", sleep).stdout)
    assert section[3].startswith("  Mode:         REGISTRY_ONLY (MeshConfig outboundTrafficPolicy)")
    at = section.index("    aliyun.com:80 HTTP (ServiceEntry default/external-svc-http)")
    assert section[at + 1] == (
        "      via:      egress gateway istio-egressgateway.istio-system.svc.cluster.local:80 "
        "(VirtualService default/egressgateway-vs)"
    ), section
    assert (
        "      gateway:  Gateway default/egress-gw port 80 (HTTP) -> aliyun.com:80 "
        "(VirtualService default/egressgateway-vs)"
    ) in section[at:], section

    # proxy-status: istioctl's columns, every running proxy SYNCED on what it was sent.
    istiod = f"meshgate-{mesh_id(mesh.home)}"

    def rows() -> dict[str, list[str]]:
        lines = mesh.meshgate("proxy-status").stdout.splitlines()
        assert lines[0].split() == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS",
                                    "ISTIOD", "VERSION", "MODE", "ERRORS"]  # fmt: skip
        return {line.split()[0]: line.split() for line in lines[1:]}

    def synced(table: dict[str, list[str]]) -> bool:
        names = (f"{sleep}.default", f"{gw}.istio-system")
        return all(n in table and table[n][2:6] == ["SYNCED"] * 4 for n in names)

    ok, table = retry(rows, synced, 30)
    assert ok, table
    row = table[f"{sleep}.default"]
    # NOT SENT (no ECDS) is two words when the row is split on spaces.
    assert row == [f"{sleep}.default", "Kubernetes", "SYNCED", "SYNCED", "SYNCED", "SYNCED",
                   "NOT", "SENT", istiod, __version__, "delta", "<none>"]  # fmt: skip
    detail = mesh.meshgate("proxy-status", sleep).stdout.splitlines()
    assert f"Istiod:     {istiod} (meshgate {__version__})" in detail, detail

    # pc secret: istioctl's table and, with -o json, Envoy's own dump in istioctl's names.
    table_out = mesh.meshgate("-n", "istio-system", "pc", "secret", gw).stdout.splitlines()
    assert " ".join(table_out[0].split()) == (
        "RESOURCE NAME TYPE STATUS VALID CERT SERIAL NUMBER NOT AFTER NOT BEFORE"
    )
    default = next(line.split() for line in table_out if line.startswith("default "))
    assert default[1:5] == ["Cert", "Chain", "ACTIVE", "true"], table_out
    dump = mesh.meshgate("-n", "istio-system", "pc", "secret", gw, "-o", "json").stdout
    certs = proxy_certificates(dump)
    ((serial, sans),) = certs["default"]
    assert sans == [GW_SA]
    assert serial == default[5]  # the table's SERIAL NUMBER is the dump's certificate
    assert '"dynamicActiveSecrets"' in dump and '"tlsCertificate"' in dump
