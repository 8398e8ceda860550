"""``describe pod``'s Security section: the pod's SPIFFE identity, the mTLS its inbound side
enforces (and which PeerAuthentication decided), and the AuthorizationPolicies that apply."""

from __future__ import annotations

from tests.unit.cli.conftest import Run

PODS = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, security.istio.io/tlsMode: istio}
spec: {serviceAccountName: web, containers: [{name: web, image: python}]}
---
apiVersion: v1
kind: Pod
metadata: {name: plain, annotations: {sidecar.istio.io/inject: "false"}}
spec: {containers: [{name: c, image: curl}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mesh, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls: {9090: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-from-default, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{from: [{source: {namespaces: [default]}}]}]
"""


def section(out: str) -> list[str]:
    lines = out.splitlines()
    return lines[lines.index("Security:") : lines.index("Egress:")]


def test_identity_mtls_and_policies(mg: Run) -> None:
    mg("apply", "-f", "-", input=PODS)
    assert section(mg("describe", "pod", "web").stdout) == [
        "Security:",
        "  Identity:     spiffe://cluster.local/ns/default/sa/web",
        "  mTLS:         STRICT (PeerAuthentication default/web, istio-system/mesh)",
        "    port 9090:    PERMISSIVE",
        "  Authorization:",
        "    ALLOW  default/web-from-default",
    ]


def test_a_pod_without_a_sidecar_says_so(mg: Run) -> None:
    mg("apply", "-f", "-", input=PODS)
    got = section(mg("describe", "pod", "plain").stdout)
    assert got[1].split() == ["Sidecar:", "none:", "no", "mesh", "identity,", "mTLS", "or",
                              "AuthorizationPolicy", "applies", "here"]  # fmt: skip


ORIGINATE = """apiVersion: v1
kind: Pod
metadata:
  name: sleep
  labels: {app: sleep, security.istio.io/tlsMode: istio}
spec: {serviceAccountName: sleep, containers: [{name: sleep, image: curlimages/curl}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-mtls-for-nginx}
spec:
  workloadSelector: {matchLabels: {app: sleep}}
  host: my-nginx.example.org
  trafficPolicy:
    tls: {mode: MUTUAL, credentialName: client-credential}
"""

RBAC = """---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: client-credential-role}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: client-credential-role-binding}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: client-credential-role}
subjects: [{kind: ServiceAccount, name: sleep, namespace: default}]
"""


def test_a_credential_the_sidecar_may_not_read_is_explained(mg: Run) -> None:
    mg("apply", "-f", "-", input=ORIGINATE)
    got = section(mg("describe", "pod", "sleep").stdout)
    assert got[-2:] == [
        "  Secrets:      not readable: sleep/default is not authorized to read secrets",
        "    credentialName client-credential (DestinationRule originate-mtls-for-nginx): not "
        "delivered, the sidecar gets no client certificate (bind default/sleep to a Role "
        "allowing list on secrets)",
    ]


def test_a_credential_the_sidecar_may_read_names_the_binding(mg: Run) -> None:
    mg("apply", "-f", "-", input=ORIGINATE + RBAC)
    got = section(mg("describe", "pod", "sleep").stdout)
    assert got[-1] == (
        "  Secrets:      readable: RoleBinding default/client-credential-role-binding "
        "(Role client-credential-role)"
    )


def test_no_credential_no_secrets_line(mg: Run) -> None:
    mg("apply", "-f", "-", input=PODS)
    assert not any("Secrets:" in line for line in section(mg("describe", "pod", "web").stdout))
