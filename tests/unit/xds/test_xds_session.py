"""The sans-I/O ADS session: versions, nonces, ACK/NACK, subscriptions, ordering."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.rpc.status_pb2 import Status

from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyConfig
from meshgate.xds.session import AdsSession, UnknownTypeError
from meshgate.xds.status import SyncState


def config(tag: str = "a", eds: tuple[str, ...] = ("c1", "c2")) -> ProxyConfig:
    return ProxyConfig(
        listeners=[Listener(name="l1", stat_prefix=tag)],
        routes=[RouteConfiguration(name="r1"), RouteConfiguration(name="r2")],
        clusters=[Cluster(name=n) for n in eds],
        endpoints=[ClusterLoadAssignment(cluster_name=n) for n in eds],
    )


def req(type_url: str, *, nonce: str = "", version: str = "", names: Any = (), **kw: Any) -> Any:
    return DiscoveryRequest(
        type_url=type_url,
        response_nonce=nonce,
        version_info=version,
        resource_names=list(names),
        **kw,
    )


def ack(response: DiscoveryResponse, names: Any = ()) -> Any:
    return req(response.type_url, nonce=response.nonce, version=response.version_info, names=names)


def nack(response: DiscoveryResponse, last_good: str, message: str = "bad", names: Any = ()) -> Any:
    return req(
        response.type_url,
        nonce=response.nonce,
        version=last_good,
        names=names,
        error_detail=Status(code=3, message=message),
    )


def test_no_answer_until_config_known_then_push_answers() -> None:
    session = AdsSession("s")
    assert session.handle_request(req(LISTENER)) == []
    assert session.type_statuses()[LISTENER].state == SyncState.NOT_SENT
    out = session.set_config(config())
    assert [r.type_url for r in out] == [LISTENER]
    assert len(out[0].resources) == 1


def test_versions_are_content_hashes_and_deterministic() -> None:
    a, b = AdsSession("a"), AdsSession("b")
    a.set_config(config())
    b.set_config(config())
    ra = a.handle_request(req(LISTENER))[0]
    rb = b.handle_request(req(LISTENER))[0]
    assert ra.version_info == rb.version_info
    assert ra.nonce != rb.nonce
    c = AdsSession("c")
    c.set_config(config("other"))
    assert c.handle_request(req(LISTENER))[0].version_info != ra.version_info


def test_ack_then_push_sends_only_changed_types() -> None:
    session = AdsSession("s")
    session.set_config(config())
    lds = session.handle_request(req(LISTENER))[0]
    cds = session.handle_request(req(CLUSTER))[0]
    assert session.handle_request(ack(lds)) == []
    assert session.handle_request(ack(cds)) == []
    statuses = session.type_statuses()
    assert statuses[LISTENER].state == SyncState.SYNCED
    assert statuses[LISTENER].acked_version == lds.version_info
    assert session.set_config(config()) == []
    out = session.set_config(config("b"))
    assert [r.type_url for r in out] == [LISTENER]


def test_nack_recorded_not_resent_until_content_changes() -> None:
    session = AdsSession("s")
    session.set_config(config("good"))
    good = session.handle_request(req(LISTENER))[0]
    session.handle_request(ack(good))
    bad = session.set_config(config("bad"))[0]
    assert session.handle_request(nack(bad, good.version_info, "invalid regex")) == []
    status = session.type_statuses()[LISTENER]
    assert status.state == SyncState.NACKED
    assert status.nack_error == "invalid regex"
    assert status.acked_version == good.version_info
    assert session.set_config(config("bad")) == []
    fixed = session.set_config(config("fixed"))
    assert len(fixed) == 1
    assert session.type_statuses()[LISTENER].state == SyncState.STALE
    session.handle_request(ack(fixed[0]))
    status = session.type_statuses()[LISTENER]
    assert status.state == SyncState.SYNCED
    assert status.nack_error is None


def test_stale_nonce_is_ignored() -> None:
    session = AdsSession("s")
    session.set_config(config("a"))
    first = session.handle_request(req(LISTENER))[0]
    second = session.set_config(config("b"))[0]
    assert session.handle_request(ack(first)) == []
    assert session.type_statuses()[LISTENER].acked_version is None
    session.handle_request(ack(second))
    assert session.type_statuses()[LISTENER].acked_version == second.version_info


def test_named_types_filter_and_resend_on_subscription_change() -> None:
    session = AdsSession("s")
    session.set_config(config())
    eds = session.handle_request(req(ENDPOINT, names=["c1"]))[0]
    assert [ClusterLoadAssignment.FromString(r.value).cluster_name for r in eds.resources] == ["c1"]
    more = session.handle_request(ack(eds, names=["c1", "c2", "missing"]))
    assert len(more) == 1
    assert len(more[0].resources) == 2
    assert session.type_statuses()[ENDPOINT].subscribed_names == ("c1", "c2", "missing")
    # A plain ACK with unchanged names asks for nothing.
    assert session.handle_request(ack(more[0], names=["c1", "c2", "missing"])) == []


def test_wildcard_types_send_everything() -> None:
    session = AdsSession("s")
    session.set_config(config())
    out = session.handle_request(req(CLUSTER, names=["c1"]))[0]
    assert len(out.resources) == 2
    assert session.type_statuses()[CLUSTER].subscribed_names is None


def test_push_order_cds_eds_lds_rds() -> None:
    session = AdsSession("s")
    session.set_config(config("a", ("c1",)))
    for type_url, names in ((ROUTE, ["r1"]), (LISTENER, []), (ENDPOINT, ["c1"]), (CLUSTER, [])):
        session.handle_request(req(type_url, names=names))
    changed = ProxyConfig(
        listeners=[Listener(name="l1", stat_prefix="z")],
        routes=[RouteConfiguration(name="r1", validate_clusters={"value": True})],
        clusters=[Cluster(name="c1", connect_timeout={"seconds": 2})],
        endpoints=[ClusterLoadAssignment(cluster_name="c1", endpoints=[{"priority": 0}])],
    )
    out = session.set_config(changed)
    assert [r.type_url for r in out] == [CLUSTER, ENDPOINT, LISTENER, ROUTE]


def test_resync_after_restart_answers_with_current_config() -> None:
    first = AdsSession("old")
    first.set_config(config())
    old = first.handle_request(req(LISTENER))[0]
    # A new control-plane process: fresh session; the proxy says what it runs.
    second = AdsSession("new")
    second.set_config(config())
    again = second.handle_request(req(LISTENER, version=old.version_info))
    assert len(again) == 1
    assert again[0].version_info == old.version_info
    status = second.type_statuses()[LISTENER]
    assert status.acked_version == old.version_info  # what the proxy says it runs
    assert status.state == SyncState.STALE  # until it acknowledges this stream's response
    second.handle_request(ack(again[0]))
    assert second.type_statuses()[LISTENER].state == SyncState.SYNCED


def test_unknown_type_is_rejected() -> None:
    session = AdsSession("s")
    with pytest.raises(UnknownTypeError):
        session.handle_request(req("type.googleapis.com/nope.Thing"))


# -- cluster re-warming, repeated requests, what SYNCED means ---------------------------


def cluster_config(timeout: int = 1, port: int = 80, extra: tuple[str, ...] = ()) -> ProxyConfig:
    """Two EDS clusters (c1, c2) plus clusters without endpoints (`extra`)."""
    return ProxyConfig(
        clusters=[Cluster(name="c1", connect_timeout={"seconds": timeout}), Cluster(name="c2")]
        + [Cluster(name=n) for n in extra],
        endpoints=[
            ClusterLoadAssignment(
                cluster_name=n,
                endpoints=[
                    {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": f"/{port}"}}}}]}
                ],
            )
            for n in ("c1", "c2")
        ],
    )


def synced_cds_eds(
    session: AdsSession, cfg: ProxyConfig
) -> tuple[DiscoveryResponse, DiscoveryResponse]:
    session.set_config(cfg)
    cds = session.handle_request(req(CLUSTER))[0]
    session.handle_request(ack(cds))
    eds = session.handle_request(req(ENDPOINT, names=["c1", "c2"]))[0]
    assert session.handle_request(ack(eds, names=["c1", "c2"])) == []
    states = session.type_statuses()
    assert states[CLUSTER].state == states[ENDPOINT].state == SyncState.SYNCED
    return cds, eds


def test_modified_eds_cluster_brings_its_endpoints_again() -> None:
    session = AdsSession("s")
    _, eds = synced_cds_eds(session, cluster_config(timeout=1))
    out = session.set_config(cluster_config(timeout=5))  # endpoints unchanged
    assert [r.type_url for r in out] == [CLUSTER, ENDPOINT]
    assert out[1].version_info == eds.version_info
    assert out[1].nonce != eds.nonce
    assert len(out[1].resources) == 2
    # Envoy's own request for the re-warming cluster carries an older nonce: ignored.
    assert session.handle_request(ack(eds, names=["c1", "c2"])) == []
    assert session.handle_request(ack(out[1], names=["c1", "c2"])) == []
    session.handle_request(ack(out[0]))
    assert session.type_statuses()[CLUSTER].state == SyncState.SYNCED
    # Nothing changed: nothing sent.
    assert session.set_config(cluster_config(timeout=5)) == []


def test_cluster_changes_that_warm_no_eds_cluster_send_cds_only() -> None:
    session = AdsSession("s")
    synced_cds_eds(session, cluster_config())
    # A new cluster the proxy does not fetch endpoints for yet: its EDS request (new
    # names) is answered when it comes, nothing to force now.
    out = session.set_config(cluster_config(extra=("c3",)))
    assert [r.type_url for r in out] == [CLUSTER]
    # Endpoints alone: EDS only.
    out = session.set_config(cluster_config(extra=("c3",), port=81))
    assert [r.type_url for r in out] == [ENDPOINT]
    # Both: CDS then EDS, once each.
    out = session.set_config(cluster_config(timeout=9, extra=("c3",), port=82))
    assert [r.type_url for r in out] == [CLUSTER, ENDPOINT]


def test_rewarm_does_not_force_a_rejected_eds_version() -> None:
    session = AdsSession("s")
    _, eds = synced_cds_eds(session, cluster_config())
    bad = session.set_config(cluster_config(port=99))
    assert [r.type_url for r in bad] == [ENDPOINT]
    assert session.handle_request(nack(bad[0], eds.version_info, names=["c1", "c2"])) == []
    out = session.set_config(cluster_config(timeout=7, port=99))
    assert [r.type_url for r in out] == [CLUSTER]
    assert session.type_statuses()[ENDPOINT].state == SyncState.NACKED


def test_repeated_request_with_answered_nonce_gets_a_response() -> None:
    session = AdsSession("s")
    _, eds = synced_cds_eds(session, cluster_config())
    # Same nonce, names and version as the ACK: a new watch in the proxy asks again.
    again = session.handle_request(ack(eds, names=["c1", "c2"]))
    assert len(again) == 1
    assert again[0].version_info == eds.version_info
    assert again[0].nonce != eds.nonce
    assert session.type_statuses()[ENDPOINT].state == SyncState.STALE
    # Its ACK is a plain ACK again: no loop.
    assert session.handle_request(ack(again[0], names=["c1", "c2"])) == []
    assert session.type_statuses()[ENDPOINT].state == SyncState.SYNCED


def test_ack_whose_version_differs_from_the_one_sent_gets_a_response() -> None:
    session = AdsSession("s")
    session.set_config(config())
    lds = session.handle_request(req(LISTENER))[0]
    odd = req(LISTENER, nonce=lds.nonce, version="something-else")
    out = session.handle_request(odd)
    assert [r.version_info for r in out] == [lds.version_info]
    status = session.type_statuses()[LISTENER]
    assert status.acked_version == "something-else"
    assert status.state == SyncState.STALE


def test_repeat_after_nack_keeps_the_nack_and_does_not_resend() -> None:
    session = AdsSession("s")
    session.set_config(config("good"))
    good = session.handle_request(req(LISTENER))[0]
    session.handle_request(ack(good))
    bad = session.set_config(config("bad"))[0]
    session.handle_request(nack(bad, good.version_info, "invalid"))
    # Envoy clears error_detail after sending it once; a later request for the same
    # nonce carries the last good version and no error.
    assert session.handle_request(req(LISTENER, nonce=bad.nonce, version=good.version_info)) == []
    status = session.type_statuses()[LISTENER]
    assert status.state == SyncState.NACKED
    assert status.nack_error == "invalid"
    assert status.acked_version == good.version_info


def test_synced_means_the_last_response_was_acknowledged() -> None:
    session = AdsSession("s")
    cds, _ = synced_cds_eds(session, cluster_config(timeout=1))
    changed = session.set_config(cluster_config(timeout=2))
    reverted = session.set_config(cluster_config(timeout=1))
    assert reverted[0].version_info == cds.version_info
    # Same version as the one acknowledged long ago, but this response is not ACKed yet
    # (Envoy holds CDS ACKs while a cluster warms).
    status = session.type_statuses()[CLUSTER]
    assert status.acked_version == status.sent_version
    assert status.state == SyncState.STALE
    # An ACK of the superseded response is stale; the one for the last response counts.
    session.handle_request(ack(changed[0]))
    assert session.type_statuses()[CLUSTER].state == SyncState.STALE
    session.handle_request(ack(reverted[0]))
    assert session.type_statuses()[CLUSTER].state == SyncState.SYNCED


def test_cds_ack_arriving_after_later_responses_of_other_types_is_recorded() -> None:
    session = AdsSession("s")
    synced_cds_eds(session, cluster_config())
    lds = session.handle_request(req(LISTENER))[0]
    out = session.set_config(cluster_config(timeout=3, port=83))
    cds, eds = out
    # Envoy answers EDS and LDS first; the CDS ACK comes once warming is over.
    session.handle_request(ack(eds, names=["c1", "c2"]))
    session.handle_request(ack(lds))
    session.handle_request(ack(cds))
    states = session.type_statuses()
    assert {url: s.state for url, s in states.items()} == {
        CLUSTER: SyncState.SYNCED,
        ENDPOINT: SyncState.SYNCED,
        LISTENER: SyncState.SYNCED,
    }
    assert states[CLUSTER].acked_version == cds.version_info


def test_eds_without_cds_subscription_is_still_pushed() -> None:
    session = AdsSession("s")
    session.set_config(cluster_config())
    eds = session.handle_request(req(ENDPOINT, names=["c1"]))[0]
    session.handle_request(ack(eds, names=["c1"]))
    out = session.set_config(cluster_config(port=90))
    assert [r.type_url for r in out] == [ENDPOINT]


def test_names_asked_for_but_unknown_are_reported_missing() -> None:
    session = AdsSession("s")
    session.set_config(config())
    rds = session.handle_request(req(ROUTE, names=["r1", "nope"]))[0]
    assert len(rds.resources) == 1
    status = session.type_statuses()[ROUTE]
    assert status.missing_names == ("nope",)
    session.handle_request(ack(rds, names=["r1", "nope"]))
    # Still SYNCED (the proxy took the response), but the gap stays visible.
    status = session.type_statuses()[ROUTE]
    assert status.state == SyncState.SYNCED
    assert status.missing_names == ("nope",)
    lds = session.handle_request(req(LISTENER))[0]
    assert lds.resources
    assert session.type_statuses()[LISTENER].missing_names == ()
