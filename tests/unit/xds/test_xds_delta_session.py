"""The sans-I/O delta (incremental) ADS session: subscriptions, per-resource versions,
ACK/NACK by nonce, changes sent alone, removals, reconnects, make-before-break order."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.endpoint.v3.endpoint_components_pb2 import LbEndpoint
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DeltaDiscoveryResponse
from google.rpc.status_pb2 import Status

from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyConfig
from meshgate.xds.delta import DeltaSession
from meshgate.xds.resources import Packer
from meshgate.xds.session import UnknownTypeError
from meshgate.xds.status import SyncState


def cla(name: str, *ips: str) -> ClusterLoadAssignment:
    eps = [
        LbEndpoint(
            endpoint={"address": Address(socket_address=SocketAddress(address=ip, port_value=80))}
        )
        for ip in ips
    ]
    return ClusterLoadAssignment(cluster_name=name, endpoints=[{"lb_endpoints": eps}])


def mesh(
    hosts: dict[str, tuple[str, ...]], *, secrets: tuple[str, ...] = (), timeout: int = 1
) -> ProxyConfig:
    """A config in the translator's shape: per host a cluster, its endpoints, and a
    virtual host in route ``80``."""
    names = sorted(hosts)
    return ProxyConfig(
        listeners=[Listener(name="virtualOutbound"), Listener(name="0.0.0.0_80")],
        routes=[
            RouteConfiguration(
                name="80", virtual_hosts=[VirtualHost(name=h, domains=[h]) for h in names]
            )
        ],
        clusters=[
            Cluster(name=f"outbound|80||{h}", connect_timeout={"seconds": timeout}) for h in names
        ],
        endpoints=[cla(f"outbound|80||{h}", *hosts[h]) for h in names],
        secrets=[Secret(name=s) for s in secrets],
    )


def req(type_url: str, *, sub: Any = (), unsub: Any = (), nonce: str = "", **kw: Any) -> Any:
    return DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(sub),
        resource_names_unsubscribe=list(unsub),
        response_nonce=nonce,
        **kw,
    )


def ack(response: DeltaDiscoveryResponse) -> Any:
    return req(response.type_url, nonce=response.nonce)


def nack(response: DeltaDiscoveryResponse, message: str = "bad") -> Any:
    return req(
        response.type_url, nonce=response.nonce, error_detail=Status(code=3, message=message)
    )


def names(response: DeltaDiscoveryResponse) -> list[str]:
    return [r.name for r in response.resources]


def envoy_like(session: DeltaSession, config: ProxyConfig) -> DeltaSession:
    """Subscribe as Envoy does (wildcard CDS/LDS, then EDS/RDS by name) and ACK all."""
    session.set_config(config)
    for r in session.handle_request(req(CLUSTER)):
        session.handle_request(ack(r))
    eds = [c.name for c in config.clusters]
    for r in session.handle_request(req(ENDPOINT, sub=eds)):
        session.handle_request(ack(r))
    for r in session.handle_request(req(LISTENER)):
        session.handle_request(ack(r))
    for r in session.handle_request(req(ROUTE, sub=[x.name for x in config.routes])):
        session.handle_request(ack(r))
    return session


BASE = {"a.example": ("10.0.0.1",), "b.example": ("10.0.0.2",), "c.example": ("10.0.0.3",)}


def test_wildcard_and_named_subscriptions_get_what_they_cover() -> None:
    session = DeltaSession("s")
    assert session.handle_request(req(CLUSTER)) == []  # nothing known yet
    out = session.set_config(mesh(BASE))
    assert [r.type_url for r in out] == [CLUSTER]
    assert sorted(names(out[0])) == [f"outbound|80||{h}" for h in sorted(BASE)]
    assert all(r.version for r in out[0].resources)
    (eds,) = session.handle_request(req(ENDPOINT, sub=["outbound|80||b.example"]))
    assert names(eds) == ["outbound|80||b.example"]
    st = session.type_statuses()
    assert st[CLUSTER].subscribed_names is None  # wildcard
    assert st[ENDPOINT].subscribed_names == ("outbound|80||b.example",)
    assert st[ENDPOINT].state == SyncState.STALE
    session.handle_request(ack(eds))
    assert session.type_statuses()[ENDPOINT].state == SyncState.SYNCED
    assert session.type_statuses()[ENDPOINT].acked_version == eds.system_version_info


def test_a_wildcard_type_with_nothing_in_it_is_answered_once_empty() -> None:
    """A gateway before its Gateway exists has no listener: Envoy still needs a first LDS
    response to finish initializing (else it waits out its 15 s initial-fetch timeout)."""
    session = DeltaSession("s")
    no_listeners = ProxyConfig(listeners=[], routes=[], clusters=[], endpoints=[], secrets=[])
    assert session.handle_request(req(LISTENER)) == []  # no config yet: nothing to say
    (first,) = session.set_config(no_listeners)
    assert (first.type_url, names(first), list(first.removed_resources)) == (LISTENER, [], [])
    session.handle_request(ack(first))
    assert session.type_statuses()[LISTENER].state == SyncState.SYNCED
    assert session.set_config(no_listeners) == []  # once: later pushes send only changes
    # A named subscription to something absent still waits (listed as missing), unanswered.
    assert session.handle_request(req(ENDPOINT, sub=["outbound|80||x.example"])) == []


def test_ack_alone_gets_no_response_and_unchanged_config_sends_nothing() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    assert all(t.state == SyncState.SYNCED for t in session.type_statuses().values())
    assert session.set_config(mesh(BASE)) == []


def test_one_changed_endpoint_sends_only_that_cluster_load_assignment() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    changed = dict(BASE, **{"b.example": ("10.0.0.2", "10.0.0.9")})
    out = session.set_config(mesh(changed))
    assert [(r.type_url, names(r), list(r.removed_resources)) for r in out] == [
        (ENDPOINT, ["outbound|80||b.example"], [])
    ]
    for r in out:
        session.handle_request(ack(r))
    assert session.type_statuses()[ENDPOINT].state == SyncState.SYNCED


def test_a_new_host_sends_its_cluster_then_route_and_its_endpoints_on_request() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    grown = dict(BASE, **{"d.example": ("10.0.0.4",)})
    out = session.set_config(mesh(grown))
    assert [(r.type_url, names(r)) for r in out] == [
        (CLUSTER, ["outbound|80||d.example"]),
        (ROUTE, ["80"]),  # the route configuration that names it
    ]
    # Envoy warms the new cluster and asks for its endpoints by name: only those come.
    (eds,) = session.handle_request(req(ENDPOINT, sub=["outbound|80||d.example"]))
    assert names(eds) == ["outbound|80||d.example"]


def test_a_changed_cluster_brings_its_endpoints_for_rewarming() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    out = session.set_config(mesh(BASE, timeout=5))  # every cluster changes, no endpoint
    assert [r.type_url for r in out] == [CLUSTER, ENDPOINT]
    assert sorted(names(out[1])) == sorted(names(out[0]))


def test_removed_host_is_removed_after_the_routes_stop_naming_it() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    shrunk = {h: v for h, v in BASE.items() if h != "c.example"}
    out = session.set_config(mesh(shrunk))
    assert [(r.type_url, names(r), list(r.removed_resources)) for r in out] == [
        (ROUTE, ["80"], []),
        (CLUSTER, [], ["outbound|80||c.example"]),
        (ENDPOINT, [], ["outbound|80||c.example"]),
    ]
    assert session.type_statuses()[CLUSTER].resource_count == 2


def test_bytes_grow_with_the_change_not_with_the_mesh() -> None:
    big = {f"h{i}.example": (f"10.1.{i // 250}.{i % 250}",) for i in range(500)}
    session = envoy_like(DeltaSession("s"), mesh(big))
    changed = dict(big, **{"h7.example": ("10.9.9.9",)})
    out = session.set_config(mesh(changed))
    whole = sum(len(r.SerializeToString()) for r in mesh(changed).endpoints)
    sent = sum(r.ByteSize() for r in out)
    assert [names(r) for r in out] == [["outbound|80||h7.example"]]
    assert sent < 300 < whole / 50


def test_nack_keeps_the_rejected_version_from_being_sent_again() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    bad = mesh(BASE, timeout=7)
    cds = session.set_config(bad)[0]
    assert session.handle_request(nack(cds, "bad timeout")) == []
    st = session.type_statuses()[CLUSTER]
    assert st.state == SyncState.NACKED and st.nack_error == "bad timeout"
    assert session.set_config(mesh(BASE, timeout=7)) == []  # same content: not again
    fixed = session.set_config(mesh(BASE, timeout=8))
    assert fixed[0].type_url == CLUSTER and len(fixed[0].resources) == 3
    session.handle_request(ack(fixed[0]))
    st = session.type_statuses()[CLUSTER]
    assert st.state == SyncState.SYNCED and st.nack_error is None


def test_reconnect_with_initial_versions_resends_only_what_differs() -> None:
    first = envoy_like(DeltaSession("a"), mesh(BASE))
    held = {n: r for n, r in Packer().pack_config(mesh(BASE)).versions_of(CLUSTER).items()}
    assert first.type_statuses()[CLUSTER].resource_count == 3
    later = dict(BASE, **{"a.example": ("10.0.0.1",), "e.example": ("10.0.0.5",)})
    later.pop("c.example")
    again = DeltaSession("b")
    again.set_config(mesh(later))
    (cds,) = again.handle_request(req(CLUSTER, initial_resource_versions=held))
    assert names(cds) == ["outbound|80||e.example"]
    assert list(cds.removed_resources) == ["outbound|80||c.example"]


def held_by(session: DeltaSession, config: ProxyConfig) -> dict[str, dict[str, str]]:
    """What a proxy synced to ``config`` lists in initial_resource_versions, per type."""
    packed = Packer().pack_config(config)
    return {url: dict(packed.versions_of(url)) for url in (CLUSTER, ENDPOINT, LISTENER, ROUTE)}


def resume(
    session: DeltaSession, held: dict[str, dict[str, str]], config: ProxyConfig
) -> list[Any]:
    """Reconnect as Envoy does: every type asked for again, listing what it holds; ACK all."""
    session.set_config(config)
    out = []
    for url, sub in (
        (CLUSTER, ()),
        (ENDPOINT, sorted(held[ENDPOINT])),
        (LISTENER, ()),
        (ROUTE, sorted(held[ROUTE])),
    ):
        for r in session.handle_request(req(url, sub=sub, initial_resource_versions=held[url])):
            session.handle_request(ack(r))
            out.append(r)
    return out


def test_resume_with_nothing_changed_resends_nothing_and_is_synced() -> None:
    before = envoy_like(DeltaSession("a"), mesh(BASE))
    again = DeltaSession("b")
    out = resume(again, held_by(before, mesh(BASE)), mesh(BASE))
    # One empty response per type, so the proxy ACKs and proxy-status knows what it runs.
    assert [(r.type_url, names(r), list(r.removed_resources)) for r in out] == [
        (CLUSTER, [], []),
        (ENDPOINT, [], []),
        (LISTENER, [], []),
        (ROUTE, [], []),
    ]
    assert sum(r.ByteSize() for r in out) < 400
    statuses = again.type_statuses()
    assert all(t.state == SyncState.SYNCED for t in statuses.values())
    for url in (CLUSTER, ENDPOINT, LISTENER, ROUTE):
        assert statuses[url].acked_version == before.type_statuses()[url].acked_version
        assert again.acked_resources()[url] == before.acked_resources()[url]
    assert again.set_config(mesh(BASE)) == []  # and a push of the same sends nothing


def test_resume_sends_what_changed_removes_what_is_gone_and_rewarms_changed_clusters() -> None:
    before = envoy_like(DeltaSession("a"), mesh(BASE))
    later = {"a.example": ("10.0.0.1",), "b.example": ("10.0.0.7",), "e.example": ("10.0.0.5",)}
    again = DeltaSession("b")
    out = resume(again, held_by(before, mesh(BASE)), mesh(later, timeout=1))
    sent = [(r.type_url, names(r), list(r.removed_resources)) for r in out]
    assert sent == [
        (CLUSTER, ["outbound|80||e.example"], ["outbound|80||c.example"]),
        # b's endpoints changed; c's are gone (the proxy still listed them); a's are not
        # sent again. e's come once Envoy subscribes to them.
        (ENDPOINT, ["outbound|80||b.example"], ["outbound|80||c.example"]),
        (LISTENER, [], []),
        (ROUTE, ["80"], []),
    ]
    (eds,) = again.handle_request(req(ENDPOINT, sub=["outbound|80||e.example"]))
    assert names(eds) == ["outbound|80||e.example"]


def test_resume_rewarms_a_changed_cluster_whose_endpoints_the_proxy_holds() -> None:
    before = envoy_like(DeltaSession("a"), mesh(BASE))
    out = resume(DeltaSession("b"), held_by(before, mesh(BASE)), mesh(BASE, timeout=3))
    assert [(r.type_url, sorted(names(r))) for r in out[:2]] == [
        (CLUSTER, [f"outbound|80||{h}" for h in sorted(BASE)]),
        # Unchanged endpoints, sent again: Envoy re-warms every changed cluster.
        (ENDPOINT, [f"outbound|80||{h}" for h in sorted(BASE)]),
    ]


def test_a_listener_that_goes_away_is_removed_by_a_push() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    fewer = mesh(BASE)
    fewer.listeners.pop()
    out = session.set_config(fewer)
    assert [(r.type_url, names(r), list(r.removed_resources)) for r in out] == [
        (LISTENER, [], ["0.0.0.0_80"])
    ]


def test_subscribe_again_resends_and_unsubscribe_forgets() -> None:
    session = envoy_like(DeltaSession("s"), mesh(BASE))
    name = "outbound|80||a.example"
    assert session.handle_request(req(ENDPOINT, unsub=[name])) == []
    assert name not in (session.type_statuses()[ENDPOINT].subscribed_names or ())
    (eds,) = session.handle_request(req(ENDPOINT, sub=[name]))
    assert names(eds) == [name]
    # A subscription change rides on a stale nonce too: it is still honoured.
    (eds2,) = session.handle_request(req(ENDPOINT, sub=[name], nonce="old-1"))
    assert names(eds2) == [name]


def test_missing_names_wait_and_secrets_are_never_removed() -> None:
    session = DeltaSession("s")
    session.set_config(mesh(BASE, secrets=("default",)))
    out = session.handle_request(req(SECRET, sub=["default", "gw-cert"]))
    assert [names(r) for r in out] == [["default"]]
    assert session.type_statuses()[SECRET].missing_names == ("gw-cert",)
    assert session.set_config(mesh(BASE)) == []  # "default" gone: no removal is sent


def test_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownTypeError):
        DeltaSession("s").handle_request(req("type.googleapis.com/nope"))
