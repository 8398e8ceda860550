"""Kubernetes Services beyond selectors in the model: endpoints from Endpoints and
EndpointSlice objects, ExternalName aliases, headless Services, and the DNS zone."""

from __future__ import annotations

from tests.golden.kubeworld import STATEFUL, kube_resources, kube_snapshot
from tests.golden.seedworld import decode, pod

from meshgate.model.services import ALIAS, Endpoint, resolve_aliases
from meshgate.model.snapshot import Snapshot


def test_endpoints_object_gives_a_selectorless_service_its_ready_addresses() -> None:
    legacy = kube_snapshot().service("legacy.default.svc.cluster.local")
    assert legacy is not None and legacy.resolution == "STATIC"
    assert legacy.addresses == ("10.96.20.20",)
    # The Endpoints port is the port to dial (not the Service's targetPort); the not-ready
    # address is left out.
    assert legacy.endpoints[80] == (Endpoint("198.51.100.10", 80),)


def test_endpoint_slice_by_service_name_label_ready_only() -> None:
    db = kube_snapshot().service("db.default.svc.cluster.local")
    assert db is not None
    assert [(e.address, e.port) for e in db.endpoints[5432]] == [("198.51.100.30", 5433)]


def test_endpoints_of_a_selector_service_are_ignored_and_slices_add_up() -> None:
    extra = decode(
        """apiVersion: v1
kind: Endpoints
metadata: {name: sleep, namespace: default}
subsets: [{addresses: [{ip: 192.0.2.1}], ports: [{name: http, port: 80}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sleep-x, namespace: default, labels: {kubernetes.io/service-name: sleep}}
addressType: IPv4
endpoints: [{addresses: [192.0.2.2]}]
ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sleep-fqdn, namespace: default, labels: {kubernetes.io/service-name: sleep}}
addressType: FQDN
endpoints: [{addresses: [example.com]}]
ports: [{name: http, port: 80}]
"""
    )
    snap = Snapshot.build(kube_resources() + extra)
    sleep = snap.service("sleep.default.svc.cluster.local")
    assert sleep is not None
    # The pod the selector picks, plus the IPv4 slice; the Endpoints object is Kubernetes'
    # controller's to write for a selector Service, and FQDN slices are not read.
    assert [(e.address, e.port) for e in sleep.endpoints[80]] == [
        ("10.34.0.5", 80),
        ("192.0.2.2", 8080),
    ]


def test_an_address_that_is_a_pod_carries_its_labels() -> None:
    extra = decode(
        """apiVersion: v1
kind: Service
metadata: {name: manual, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: manual, namespace: default}
subsets: [{addresses: [{ip: 10.34.0.40}], ports: [{port: 8080}]}]
"""
    )
    snap = Snapshot.build(kube_resources() + extra)
    manual = snap.service("manual.default.svc.cluster.local")
    assert manual is not None
    (ep,) = manual.endpoints[80]
    assert ep.pod == "default/stateful-0" and ep.labels["app"] == "stateful"


def test_external_name_is_an_alias_without_address_or_endpoints() -> None:
    snap = kube_snapshot()
    alias = snap.service("aliyun.default.svc.cluster.local")
    assert alias is not None and alias.resolution == ALIAS and alias.is_alias
    assert alias.external_name == "aliyun.com"
    assert alias.addresses == () and dict(alias.endpoints) == {}
    assert snap.cluster_ip(("default", "aliyun")) == ""
    assert snap.aliases["aliyun.com"] == (("default", "aliyun.default.svc.cluster.local"),)
    assert snap.aliases["legacy.default.svc.cluster.local"] == (
        ("default", "legacy-alias.default.svc.cluster.local"),
    )


def test_alias_chains_resolve_to_the_concrete_host_and_loops_to_nothing() -> None:
    text = """apiVersion: v1
kind: Service
metadata: {name: NAME, namespace: default}
spec: {type: ExternalName, externalName: TARGET}
"""
    docs = []
    for name, target in (
        ("a", "b.default.svc.cluster.local"),
        ("b", "Example.COM."),
        ("x", "y.default.svc.cluster.local"),
        ("y", "x.default.svc.cluster.local"),
    ):
        docs += decode(text.replace("NAME", name).replace("TARGET", target))
    services = Snapshot.build(docs).services
    assert resolve_aliases(services) == {
        "example.com": (
            ("default", "a.default.svc.cluster.local"),
            ("default", "b.default.svc.cluster.local"),
        )
    }


def test_headless_service_resolves_none_and_lists_its_pods() -> None:
    snap = kube_snapshot()
    stateful = snap.service("stateful.default.svc.cluster.local")
    assert stateful is not None and stateful.is_headless and stateful.resolution == "NONE"
    assert stateful.addresses == ()
    ips = tuple(ip for _, ip in STATEFUL)
    assert tuple(e.address for e in stateful.endpoints[8080]) == ips
    assert stateful.dns_addresses == ips


def test_dns_zone_is_kube_dns() -> None:
    zone = kube_snapshot().dns_zone()
    assert zone["legacy.default.svc.cluster.local"] == ["10.96.20.20"]
    assert zone["aliyun.default.svc.cluster.local"] == ["aliyun.com."]  # a CNAME
    assert zone["stateful.default.svc.cluster.local"] == ["10.34.0.40", "10.34.0.41"]
    assert zone["stateful-1.stateful.default.svc.cluster.local"] == ["10.34.0.41"]


def test_not_ready_pods_leave_headless_dns() -> None:
    resources = [r for r in kube_resources() if r.kind != "Pod" or r.metadata.name != "stateful-1"]
    resources.append(
        pod("stateful-1", "default", "10.34.0.41", {"app": "stateful"}, phase="Pending")
    )
    assert Snapshot.build(resources).dns_zone()["stateful.default.svc.cluster.local"] == [
        "10.34.0.40"
    ]
