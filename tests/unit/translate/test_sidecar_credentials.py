"""credentialName at a sidecar (Istio's "mutual TLS origination at the sidecar"): only from a
DestinationRule with a workloadSelector, and the key only when the pod's service account may
list its namespace's Secrets (RBAC); CA bundles always; gateways never asked."""

from __future__ import annotations

from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from tests.golden.seedworld import decode, gateway_proxy, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.output import ProxyConfig

NGINX = "outbound|31443||my-nginx.mesh-external.svc.cluster.local"

TASK = """apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: originate-mtls-for-nginx}
spec:
  exportTo: [.]
  hosts: [my-nginx.mesh-external.svc.cluster.local]
  location: MESH_EXTERNAL
  ports: [{name: http-port-for-tls-origination, number: 31443, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: originate-mtls-for-nginx}
spec:
  SELECTOR
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 31443}
      tls:
        mode: MODE
        credentialName: client-credential
        sni: my-nginx.mesh-external.svc.cluster.local
---
apiVersion: v1
kind: Secret
metadata: {name: client-credential, namespace: default}
stringData: {tls.crt: CERT, tls.key: KEY, ca.crt: CA}
"""

SELECTOR = "workloadSelector: {matchLabels: {app: sleep}}"

RBAC = """---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: client-credential-role, namespace: default}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: client-credential-role-binding, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: client-credential-role}
subjects: [{kind: ServiceAccount, name: sleep, namespace: default}]
"""


def _sidecar(mode: str = "MUTUAL", selector: str = SELECTOR, extra: str = "") -> ProxyConfig:
    text = TASK.replace("MODE", mode).replace("SELECTOR", selector) + extra
    snap = Snapshot.build(step_resources(4) + decode(text, "task.yaml"))
    return translate(snap, sleep_proxy(snap))


def _common(config: ProxyConfig) -> Any:
    (cluster,) = [c for c in config.clusters if c.name == NGINX]
    ctx = tls_pb2.UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(ctx)
    return ctx.common_tls_context


def _names(config: ProxyConfig) -> list[str]:
    return [s.name for s in config.secrets]


def test_with_the_role_binding_the_sidecar_gets_its_client_certificate() -> None:
    config = _sidecar(extra=RBAC)
    common = _common(config)
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == [
        "kubernetes://client-credential"
    ]
    combined = common.combined_validation_context.validation_context_sds_secret_config
    assert combined.name == "kubernetes://client-credential-cacert"
    assert _names(config) == [
        "kubernetes://client-credential",
        "kubernetes://client-credential-cacert",
    ]
    (cert,) = [s for s in config.secrets if s.name == "kubernetes://client-credential"]
    assert cert.tls_certificate.private_key.inline_bytes == b"KEY"


def test_without_it_the_key_is_withheld_and_the_ca_still_served() -> None:
    config = _sidecar()
    # The cluster still asks for the certificate (Envoy waits for it, as under Istio)...
    assert _common(config).tls_certificate_sds_secret_configs
    # ...and only the public CA bundle is sent.
    assert _names(config) == ["kubernetes://client-credential-cacert"]


def test_a_binding_for_another_account_does_not_help() -> None:
    other = RBAC.replace("name: sleep,", "name: httpbin,")
    assert _names(_sidecar(extra=other)) == ["kubernetes://client-credential-cacert"]


def test_simple_needs_only_the_public_ca() -> None:
    config = _sidecar("SIMPLE")
    assert not _common(config).tls_certificate_sds_secret_configs
    assert _names(config) == ["kubernetes://client-credential-cacert"]


def test_without_a_workload_selector_the_sidecar_ignores_credential_name() -> None:
    config = _sidecar(selector="", extra=RBAC)
    assert not _common(config).HasField("combined_validation_context")
    assert config.secrets == []


def test_gateways_are_not_asked() -> None:
    # The gateway reads credentialName Secrets of its own namespace with no RoleBinding.
    text = (
        TASK.replace("MODE", "MUTUAL")
        .replace("SELECTOR", "")
        .replace("namespace: default}", "namespace: istio-system}")
        .replace("exportTo: [.]", "exportTo: ['*']")
    )
    snap = Snapshot.build(step_resources(4) + decode(text, "task.yaml"))
    config = translate(snap, gateway_proxy(snap))
    assert "kubernetes://client-credential" in _names(config)


def test_the_control_plane_can_say_what_it_withheld() -> None:
    from meshgate.security.sds import withheld
    from meshgate.translate.secrets import referenced

    def check(extra: str) -> tuple[list[str], str]:
        text = TASK.replace("MODE", "MUTUAL").replace("SELECTOR", SELECTOR) + extra
        snap = Snapshot.build(step_resources(4) + decode(text, "task.yaml"))
        proxy = sleep_proxy(snap)
        config = translate(snap, proxy)
        return withheld(snap, proxy, referenced(config.clusters, config.listeners))

    assert check("") == (
        ["client-credential"],
        "sleep/default is not authorized to read secrets: ",
    )
    assert check(RBAC) == ([], "")
