"""What `meshgate proxy-status` shows: per proxy, per xDS type, what was sent and acknowledged.

Rules: plain immutable values, safe to hand to other threads and to serialise; no
behaviour beyond derived read-only properties. SYNCED means the proxy acknowledged the
last response sent (by nonce); a proxy whose stream has closed is never SYNCED: every
type of it shows DISCONNECTED, and its last known state stays readable as `lastState`.
A listing of every proxy carries per type only the count of subscribed names (with 1000
services a proxy's EDS names alone are ~40 KB); one proxy's detail carries the names, and
the last responses sent to it (`recentSends`: per response its type, size, and in delta
mode the names it carried and removed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class SyncState(StrEnum):
    """istioctl-style summary of one type on one proxy."""

    NOT_SENT = "NOT SENT"  # the proxy asked, nothing has gone out yet (unknown proxy)
    STALE = "STALE"  # sent, not yet acknowledged
    SYNCED = "SYNCED"  # the proxy acknowledged the last version sent
    NACKED = "NACKED"  # the proxy rejected the last version sent; it runs an older one
    DISCONNECTED = "DISCONNECTED"  # the stream is closed: nothing is known any more


@dataclass(frozen=True)
class TypeStatus:
    """One xDS type on one proxy stream."""

    type_url: str
    sent_version: str | None
    acked_version: str | None
    last_nonce: str | None
    acked_nonce: str | None
    nack_error: str | None
    nacked_version: str | None
    resource_count: int
    subscribed_names: tuple[str, ...] | None  # None: wildcard (LDS, CDS), or not asked for
    # Asked for but not in the config: Envoy waits for them (see session._missing).
    missing_names: tuple[str, ...] = ()
    subscribed_count: int | None = None  # None: wildcard

    @property
    def state(self) -> SyncState:
        if self.sent_version is None:
            return SyncState.NOT_SENT
        if self.nack_error is not None and self.nacked_version == self.sent_version:
            return SyncState.NACKED
        if self.acked_nonce == self.last_nonce and self.acked_version == self.sent_version:
            return SyncState.SYNCED
        return SyncState.STALE


@dataclass(frozen=True)
class ProxyStatus:
    """One proxy (its latest stream): identity, connection and per-type state."""

    node_id: str
    cluster: str
    metadata: dict[str, Any]
    connected: bool
    connected_since: datetime
    disconnected_at: datetime | None
    types: dict[str, TypeStatus] = field(default_factory=dict)
    mode: str = "sotw"  # which ADS the proxy speaks: "sotw" or "delta" (incremental)
    responses_sent: int = 0
    bytes_sent: int = 0
    # The last responses sent (oldest first), only where names were asked for.
    recent_sends: tuple[dict[str, Any], ...] | None = None

    def state_of(self, type_url: str) -> SyncState:
        """The state shown for one type: DISCONNECTED once the stream has closed."""
        if not self.connected:
            return SyncState.DISCONNECTED
        return self.types[type_url].state

    @property
    def name(self) -> str:
        """POD.NAMESPACE, from the node id (the node id itself if not in Istio's form)."""
        parts = self.node_id.split("~")
        return parts[2] if len(parts) > 2 else self.node_id

    def matches(self, wanted: str) -> bool:
        """Whether ``wanted`` (POD or POD.NAMESPACE) names this proxy."""
        return wanted in (self.name, self.name.split(".", 1)[0])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view for the HTTP API and the CLI (``subscribedNames`` only where
        the names were asked for)."""
        return {
            "nodeId": self.node_id,
            "cluster": self.cluster,
            "mode": self.mode,
            "metadata": self.metadata,
            "connected": self.connected,
            "connectedSince": self.connected_since.isoformat(),
            "disconnectedAt": self.disconnected_at.isoformat() if self.disconnected_at else None,
            "types": {
                url: {
                    "state": str(self.state_of(url)),
                    "lastState": str(t.state),
                    "sentVersion": t.sent_version,
                    "ackedVersion": t.acked_version,
                    "lastNonce": t.last_nonce,
                    "ackedNonce": t.acked_nonce,
                    "nackError": t.nack_error,
                    "nackedVersion": t.nacked_version,
                    "resourceCount": t.resource_count,
                    "subscribedCount": t.subscribed_count,
                    **(
                        {"subscribedNames": list(t.subscribed_names)}
                        if t.subscribed_names is not None
                        else {}
                    ),
                    "missingNames": list(t.missing_names),
                }
                for url, t in sorted(self.types.items())
            },
            "sent": {"responses": self.responses_sent, "bytes": self.bytes_sent},
            **({"recentSends": list(self.recent_sends)} if self.recent_sends is not None else {}),
        }
