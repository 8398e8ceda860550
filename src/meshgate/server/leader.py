"""Leader election among control-plane replicas, on an etcd lease.

Rules:
- One key, ``<store prefix>/control/leader``, names the leader. A replica becomes leader
  by putting it, bound to a lease of ``ttl`` seconds (3 by default), in a transaction
  that succeeds only if the key does not exist (its create revision is 0): at most one
  replica holds it.
- The leader refreshes its lease every ``ttl / 3`` seconds. It stops leading AT ONCE when
  a refresh fails, times out, or etcd says the lease is gone, and also when no refresh has
  succeeded for ``ttl - margin`` seconds (a hung call): it never believes it leads after
  etcd may have given the key to another. Only then does it look again, as a follower.
- A follower reads the key every ``poll`` seconds (0.5) and campaigns when it is absent,
  so a leader killed with ``kill -9`` is replaced within ``ttl + poll`` seconds of its
  last refresh; a leader that stops cleanly revokes its lease and is replaced within
  ``poll``.
- Every etcd call has a deadline (1 s). The client is one gRPC channel over every etcd
  member of the store URL (the store's own settings: TLS, auth), so one dead member
  costs a retry, not the election.
- With the SQLite store there is no election: the one control plane of a state directory
  is always the leader (``AlwaysLeader``).
- ``on_change`` is called (in the event loop) whenever this replica starts or stops
  leading, so the control plane runs its controllers at once.
- ``fence()`` is the store fence of the lease this replica last led with (the leader key
  under that lease): the controllers write through it, so a write that comes after the
  lease is gone is refused by etcd itself (``Fenced``), whatever this process believes.
  ``leading`` turning False is the fast path; the fence is the guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from meshgate.store import Fence
    from meshgate.store.etcd_conn import EtcdConfig

log = logging.getLogger("meshgate.leader")

LEADER_KEY = "leader"
DEFAULT_TTL = 3
POLL = 0.5
CALL_TIMEOUT = 1.0

T = TypeVar("T")


class Leadership(Protocol):
    @property
    def leading(self) -> bool: ...

    def fence(self) -> Fence | None: ...

    def describe(self) -> dict[str, Any]: ...


class AlwaysLeader:
    """The single control plane of a SQLite state directory: it always leads."""

    leading = True

    def __init__(self, identity: dict[str, Any]) -> None:
        self.identity = identity

    def fence(self) -> Fence | None:
        return None  # nobody else can write as the leader

    def describe(self) -> dict[str, Any]:
        return {"election": "none (one control plane per store)", "leader": self.identity}


class Etcd:
    """The control plane's own etcd client (the store has its own, on its own loop): the
    store's connection settings (every member as one gRPC channel, TLS, auth), and keys
    under ``<store prefix>/control/``, beside the store's objects, never among them."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self.base = config.prefix + "/control/"
        self._client: Any = None

    @property
    def endpoint(self) -> str:
        return self.config.url

    def key(self, name: str) -> bytes:
        return (self.base + name).encode()

    async def call(self, fn: Callable[[Any], Awaitable[T]], timeout: float = CALL_TIMEOUT) -> T:
        """``fn(client)`` with a deadline (the channel itself moves between members)."""
        if self._client is None:
            from meshgate.store.etcd_conn import _Client

            self._client = _Client(self.config)
        await asyncio.wait_for(self._client.connect(), timeout)
        return await asyncio.wait_for(fn(self._client), timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), CALL_TIMEOUT)


@dataclass
class _Held:
    lease: Any
    renewed: float  # monotonic time of the last successful refresh (or the grant)


class LeaderElection:
    """Campaign for ``LEADER_KEY`` with ``identity`` (a JSON-able dict naming this
    replica); ``leading`` says whether this replica leads now."""

    def __init__(
        self,
        etcd: Etcd,
        identity: dict[str, Any],
        *,
        ttl: int = DEFAULT_TTL,
        poll: float = POLL,
        key: str = LEADER_KEY,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if ttl < 2:
            raise ValueError("the leader lease needs a TTL of at least 2 s")
        self.etcd = etcd
        self.identity = identity
        self.value = json.dumps(identity, sort_keys=True).encode()
        self.ttl = ttl
        self.poll = poll
        self.key = etcd.key(key)
        self.on_change = on_change
        self._held: _Held | None = None
        self._lease_id: int | None = None  # the lease this replica last led with
        self.leader: dict[str, Any] | None = None  # the holder last seen (maybe us)
        self.transitions = 0  # how many times this replica started or stopped leading
        self.since: float | None = None  # wall-clock time this replica became leader
        self._stopped = asyncio.Event()

    @property
    def leading(self) -> bool:
        held = self._held
        # Past its deadline a refresh has not come back: lead no more, even before the
        # loop notices (the lease may be about to expire in etcd).
        return held is not None and time.monotonic() - held.renewed < self._deadline

    def fence(self) -> Fence | None:
        """The fence of the lease this replica last led with (None: it never led)."""
        from meshgate.store import Fence

        return None if self._lease_id is None else Fence(self.key, self._lease_id)

    @property
    def _deadline(self) -> float:
        return self.ttl - min(1.0, self.ttl / 3)

    def describe(self) -> dict[str, Any]:
        return {
            "election": f"etcd lease {self.key.decode()} (ttl {self.ttl}s)",
            "leading": self.leading,
            "leader": self.leader,
            "leaderSince": self.since if self.leading else None,
            "transitions": self.transitions,
        }

    async def run(self) -> None:
        """Campaign and hold leadership until ``stop``; never raises for etcd errors."""
        while not self._stopped.is_set():
            try:
                if self._held is None:
                    await self._campaign()
                else:
                    await self._refresh()
            except Exception as exc:
                if self._held is not None:
                    self._lose(f"refresh failed on {self.etcd.endpoint}: {exc!r}")
                else:
                    log.debug("election: etcd call failed: %r", exc)
            wait = self.ttl / 3 if self._held is not None else self.poll
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), wait)

    async def stop(self) -> None:
        """Stop campaigning; a leader gives its key up at once (revokes its lease)."""
        self._stopped.set()
        held, self._held = self._held, None
        if held is not None:
            self._changed(False)
            with contextlib.suppress(Exception):
                await self.etcd.call(lambda c: c.revoke_lease(held.lease.id))
            log.info("leader election: resigned")
        await self.etcd.close()

    async def _campaign(self) -> None:
        found = await self.etcd.call(lambda c: c.get(self.key))
        if found is not None:
            self.leader = _decode(found.value)
            return
        lease = await self.etcd.call(lambda c: c.lease(self.ttl))
        granted = time.monotonic()
        won, responses = await self.etcd.call(
            lambda c: c.transaction(
                compare=[c.transactions.create(self.key) == 0],
                success=[c.transactions.put(self.key, self.value, lease=lease)],
                failure=[c.transactions.get(self.key)],
            )
        )
        if not won:
            with contextlib.suppress(Exception):
                await self.etcd.call(lambda c: c.revoke_lease(lease.id))
            if responses and responses[0]:
                self.leader = _decode(responses[0][0][0])
            return
        self._held = _Held(lease, granted)
        self._lease_id = int(lease.id)
        self.leader = self.identity
        self.since = time.time()
        log.info("leader election: this replica leads now (lease %x)", lease.id)
        self._changed(True)

    async def _refresh(self) -> None:
        held = self._held
        assert held is not None
        sent = time.monotonic()
        reply = await self.etcd.call(lambda c: c.refresh_lease(held.lease.id))
        if reply is None or reply.TTL <= 0:
            self._lose("its lease expired in etcd")
            return
        if not self.leading:
            self._lose(f"no refresh for {self._deadline:.1f}s")
            return
        held.renewed = sent

    def _lose(self, why: str) -> None:
        if self._held is None:
            return
        self._held = None
        self.leader = None
        log.warning("leader election: this replica no longer leads: %s", why)
        self._changed(False)

    def _changed(self, leading: bool) -> None:
        self.transitions += 1
        if self.on_change is not None:
            self.on_change(leading)


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
    return value if isinstance(value, dict) else {"raw": value}
