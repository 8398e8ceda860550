"""SDS over ADS: Envoy asks for secrets by name on the ADS stream; only those are sent, a
secret added later reaches a proxy already waiting for it, and status names what is missing."""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from meshgate.translate.output import CLUSTER, SECRET, ProxyConfig
from meshgate.xds.session import AdsSession
from meshgate.xds.status import SyncState


def _secret(name: str, ca: bytes = b"CA") -> Secret:
    out = Secret(name=name)
    out.validation_context.trusted_ca.inline_bytes = ca
    return out


def _config(*secrets: Secret) -> ProxyConfig:
    return ProxyConfig(clusters=[Cluster(name="c")], secrets=list(secrets))


def _names(response: object) -> list[str]:
    out = []
    for item in response.resources:  # type: ignore[attr-defined]
        secret = Secret()
        item.Unpack(secret)
        out.append(secret.name)
    return out


def test_secrets_are_served_by_name_and_updates_follow() -> None:
    session = AdsSession("s")
    session.set_config(_config(_secret("kubernetes://a-cacert"), _secret("kubernetes://b")))
    (first,) = session.handle_request(
        DiscoveryRequest(type_url=SECRET, resource_names=["kubernetes://a-cacert"])
    )
    assert _names(first) == ["kubernetes://a-cacert"]  # never a secret not asked for
    ack = DiscoveryRequest(
        type_url=SECRET,
        resource_names=["kubernetes://a-cacert"],
        response_nonce=first.nonce,
        version_info=first.version_info,
    )
    assert session.handle_request(ack) == []
    assert session.type_statuses()[SECRET].state == SyncState.SYNCED

    # The Secret's content changes: a push re-sends SDS (and nothing else changed).
    pushed = session.set_config(_config(_secret("kubernetes://a-cacert", b"NEW")))
    assert [r.type_url for r in pushed] == [SECRET]
    assert _names(pushed[0]) == ["kubernetes://a-cacert"]


def test_missing_secret_is_reported_then_sent_when_it_appears() -> None:
    session = AdsSession("s")
    session.set_config(_config())
    (cds,) = session.handle_request(DiscoveryRequest(type_url=CLUSTER))
    session.handle_request(
        DiscoveryRequest(type_url=CLUSTER, response_nonce=cds.nonce, version_info=cds.version_info)
    )
    (empty,) = session.handle_request(
        DiscoveryRequest(type_url=SECRET, resource_names=["kubernetes://late"])
    )
    assert _names(empty) == []
    session.handle_request(
        DiscoveryRequest(
            type_url=SECRET,
            resource_names=["kubernetes://late"],
            response_nonce=empty.nonce,
            version_info=empty.version_info,
        )
    )
    assert session.type_statuses()[SECRET].missing_names == ("kubernetes://late",)
    pushed = session.set_config(_config(_secret("kubernetes://late")))
    assert _names(pushed[0]) == ["kubernetes://late"]
    assert [r.type_url for r in pushed] == [SECRET]  # the clusters did not change
