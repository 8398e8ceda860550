"""MG2005: a sidecar given a MUTUAL credentialName whose service account may not read Secrets."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import secretaccess

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: sleep-1, labels: {app: sleep}}
spec:
  serviceAccountName: sleep
  containers: [{name: sleep, image: curlimages/curl}]
---
apiVersion: v1
kind: Pod
metadata: {name: sleep-2, labels: {app: sleep}}
spec:
  serviceAccountName: sleep
  containers: [{name: sleep, image: curlimages/curl}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: other}}
spec:
  containers: [{name: app, image: busybox}]
"""

RULE = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate}
spec:
  SELECTOR
  host: my-nginx.example.org
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: MODE, credentialName: client-credential}
"""

RBAC = """
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sleep-reads}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: sleep, namespace: default}]
"""

SELECT_SLEEP = "workloadSelector: {matchLabels: {app: sleep}}"


def _rule(mode: str = "MUTUAL", selector: str = SELECT_SLEEP) -> str:
    return RULE.replace("MODE", mode).replace("SELECTOR", selector)


def test_unbound_account_is_reported_once_with_its_pods(run: Run) -> None:
    found = run(PODS + _rule(), secretaccess.unreadable_credentials)
    assert codes(found) == [("MG2005", "DestinationRule default/originate")]
    (message,) = found
    assert message.line == 27  # the workloadSelector that picks the pods
    assert str(message).split(".yaml:27) ", 1)[1] == (
        "credentialName "
        '"client-credential" is not delivered to the sidecars of pods sleep-1, sleep-2: '
        "service account default/sleep may not list Secrets in namespace default (Kubernetes "
        "RBAC, checked as istiod checks it), so they get no client certificate and their "
        "mutual TLS to my-nginx.example.org fails. Bind the account to a Role allowing get, "
        "list and watch on secrets."
    )


def test_a_role_binding_silences_it(run: Run) -> None:
    assert run(PODS + _rule() + RBAC, secretaccess.unreadable_credentials) == []


def test_only_mutual_with_a_selector_asks_for_the_key(run: Run) -> None:
    assert run(PODS + _rule("SIMPLE"), secretaccess.unreadable_credentials) == []
    assert run(PODS + _rule(selector=""), secretaccess.unreadable_credentials) == []


def test_no_selected_pod_no_message(run: Run) -> None:
    nobody = _rule(selector="workloadSelector: {matchLabels: {app: nobody}}")
    assert run(PODS + nobody, secretaccess.unreadable_credentials) == []


def test_registered_with_the_other_analyzers(run: Run) -> None:
    found = run(PODS + _rule(), "destinationrule.SidecarCredentialAnalyzer")
    assert codes(found) == [("MG2005", "DestinationRule default/originate")]
