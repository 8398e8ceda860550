"""proxy-status values: per-type states, and how a closed stream is shown."""

from __future__ import annotations

from datetime import UTC, datetime

from meshgate.translate.output import CLUSTER, LISTENER
from meshgate.xds.status import ProxyStatus, SyncState, TypeStatus


def type_status(
    url: str,
    *,
    sent: str | None = "v2",
    acked: str | None = "v2",
    nonce: str | None = "n2",
    acked_nonce: str | None = "n2",
    nack: str | None = None,
) -> TypeStatus:
    return TypeStatus(
        type_url=url,
        sent_version=sent,
        acked_version=acked,
        last_nonce=nonce,
        acked_nonce=acked_nonce,
        nack_error=nack,
        nacked_version=sent if nack else None,
        resource_count=1,
        subscribed_names=None,
    )


def proxy(connected: bool, **types: TypeStatus) -> ProxyStatus:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    return ProxyStatus(
        node_id="sidecar~10.0.0.2~sleep-1.default~default.svc.cluster.local",
        cluster="sleep.default",
        metadata={},
        connected=connected,
        connected_since=now,
        disconnected_at=None if connected else now,
        types={t.type_url: t for t in types.values()},
    )


def test_type_states() -> None:
    assert type_status(LISTENER).state == SyncState.SYNCED
    assert type_status(LISTENER, sent=None, nonce=None).state == SyncState.NOT_SENT
    assert type_status(LISTENER, nack="bad", acked="v1").state == SyncState.NACKED
    # The right version but an older nonce: the last response is not acknowledged yet.
    assert type_status(LISTENER, acked_nonce="n1").state == SyncState.STALE
    assert type_status(LISTENER, acked="v1", acked_nonce="n1").state == SyncState.STALE


def test_connected_proxy_shows_each_state() -> None:
    view = proxy(
        True, lds=type_status(LISTENER), cds=type_status(CLUSTER, acked="v1", acked_nonce="n1")
    ).to_json()
    assert view["connected"] is True
    assert view["types"][LISTENER]["state"] == "SYNCED"
    assert view["types"][CLUSTER]["state"] == "STALE"
    assert view["types"][CLUSTER]["ackedNonce"] == "n1"
    assert view["types"][CLUSTER]["missingNames"] == []


def test_disconnected_proxy_is_never_synced() -> None:
    status = proxy(False, lds=type_status(LISTENER), cds=type_status(CLUSTER))
    assert status.state_of(LISTENER) == SyncState.DISCONNECTED
    view = status.to_json()
    assert view["connected"] is False
    assert view["disconnectedAt"] is not None
    for url in (LISTENER, CLUSTER):
        assert view["types"][url]["state"] == "DISCONNECTED"
        assert view["types"][url]["lastState"] == "SYNCED"
