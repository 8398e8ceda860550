"""The connection to etcd: store URLs, TLS and auth options, and a sync face over aetcd.

Rules of this module:
- A store URL is ``etcd://HOST:PORT[,HOST:PORT...][/PREFIX]``; the options are named as
  etcdctl names them (``cacert``, ``cert``, ``key``, ``user``). TLS is on when a CA or a
  client certificate is given. ``user`` is ``NAME[:PASSWORD]``, as etcdctl's ``--user``.
- Every member is one address of one gRPC channel (``pick_first``): when the member in use
  dies, the channel moves on to the next; callers only see a failed call, and retry.
- aetcd is asyncio; the store's contract is sync. A ``Connection`` owns a private event
  loop on a daemon thread and runs coroutines there (``run``); never call ``run`` from that
  thread (the store's watch callbacks run on their own thread for that reason).
- A member that cannot be reached is ``StoreUnavailable`` naming the URL, never a gRPC
  traceback; etcd's refusals of a too big transaction name the etcd flag that raises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aetcd
import grpc
from aetcd import rpc

from meshgate.store.base import StoreError

T = TypeVar("T")

DEFAULT_PREFIX = "/meshgate/registry"
# Seconds one call may take (a member election takes well under this).
CALL_TIMEOUT = 15.0
# Seconds a call keeps trying while the member it used is gone (an election is ~1 s).
FAILOVER_WINDOW = 8.0
# Big transactions and watch responses (a bulk apply of thousands of objects is one of each).
_MAX_MESSAGE = 512 * 1024 * 1024


class StoreUnavailable(StoreError):
    """etcd did not answer (every member down or unreachable, or refused our credentials)."""


@dataclass(frozen=True)
class EtcdConfig:
    """Where etcd is and how to talk to it."""

    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        hosts = ",".join(f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in self.endpoints)
        suffix = "" if self.prefix == DEFAULT_PREFIX else self.prefix
        return f"etcd://{hosts}{suffix}"

    @property
    def tls(self) -> bool:
        return bool(self.cacert or self.cert)


def parse_store_url(url: str, **options: str | None) -> EtcdConfig:
    """An ``etcd://`` URL (and etcdctl-named options) as a config; ValueError if malformed."""
    parts = urlsplit(url)
    if parts.scheme != "etcd" or not parts.netloc:
        raise ValueError(f"store URL {url!r}: expected etcd://HOST:PORT[,HOST:PORT...]")
    endpoints = []
    for item in parts.netloc.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"store URL {url!r}: {item!r} is not HOST:PORT")
        endpoints.append((host.strip("[]"), int(port)))
    prefix = parts.path.rstrip("/") or DEFAULT_PREFIX
    if options.get("key") and not options.get("cert"):
        raise ValueError("--etcd-key needs --etcd-cert (the client certificate of that key)")
    for name in ("cacert", "cert", "key"):
        path = options.get(name)
        if path and not Path(path).is_file():
            raise ValueError(f"--etcd-{name} {path}: no such file")
    user, password = options.get("user"), options.get("password")
    if user and ":" in user and password is None:
        user, password = user.split(":", 1)
    if user and password is None:
        raise ValueError("--etcd-user NAME needs a password: NAME:PASSWORD, or --etcd-password")
    return EtcdConfig(
        tuple(endpoints),
        prefix,
        options.get("cacert"),
        options.get("cert"),
        options.get("key"),
        user,
        password,
    )


def _target(config: EtcdConfig) -> str:
    """One gRPC target naming every member: ``ipv4:A:P,B:P`` (names resolved here, so that
    several hosts can be one channel's addresses)."""
    v4: list[str] = []
    v6: list[str] = []
    for host, port in config.endpoints:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise StoreUnavailable(f"etcd at {config.url}: cannot resolve {host}: {exc}") from None
        for family, _, _, _, addr in infos:
            if family == socket.AF_INET:
                v4.append(f"{addr[0]}:{port}")
            elif family == socket.AF_INET6:
                v6.append(f"[{addr[0]}]:{port}")
    if v4:
        return "ipv4:" + ",".join(dict.fromkeys(v4))
    return "ipv6:" + ",".join(dict.fromkeys(v6))


class _Client(aetcd.Client):  # type: ignore[misc]
    """aetcd's client on a channel to every member, with TLS when configured."""

    def __init__(self, config: EtcdConfig) -> None:
        super().__init__(
            username=config.user,
            password=config.password,
            timeout=int(CALL_TIMEOUT),
            options={
                "grpc.max_receive_message_length": _MAX_MESSAGE,
                "grpc.max_send_message_length": _MAX_MESSAGE,
                "grpc.keepalive_time_ms": 10_000,
                "grpc.keepalive_timeout_ms": 5_000,
                "grpc.keepalive_permit_without_calls": 1,
                "grpc.initial_reconnect_backoff_ms": 200,
                "grpc.max_reconnect_backoff_ms": 2_000,
            },
        )
        self.config = config
        self._connect_lock: asyncio.Lock | None = None

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        # Coroutines of one loop may all find it unconnected: one of them connects.
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if not self._connected.is_set():
                await self._open()

    async def _open(self) -> None:
        config = self.config
        target = _target(config)
        options = list(self._options.items())
        if config.tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(config.cacert),
                private_key=_read(config.key),
                certificate_chain=_read(config.cert),
            )
            # Names were resolved to addresses: the certificate is checked for the first.
            options.append(("grpc.ssl_target_name_override", config.endpoints[0][0]))
            self.channel = rpc.secure_channel(target, creds, options=options)
        else:
            self.channel = rpc.insecure_channel(target, options=options)
        # "hasleader": a member cut off from the others refuses watches instead of going quiet.
        self.metadata: tuple[tuple[str, str], ...] = (("hasleader", "true"),)
        if config.user:
            await self.authenticate()
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self.watchstub = rpc.WatchStub(self.channel)
        self._connected.set()

    async def authenticate(self) -> None:
        """A (new) auth token for ``user``, sent with every call from now on."""
        self.auth_stub = rpc.AuthStub(self.channel)
        resp = await self.auth_stub.Authenticate(
            rpc.AuthenticateRequest(name=self.config.user, password=self.config.password or ""),
            timeout=self._timeout,
        )
        self.metadata = (("hasleader", "true"), ("token", resp.token))


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def describe(exc: BaseException, config: EtcdConfig) -> StoreError:
    """A gRPC failure as a store error that names the URL and, if any, the etcd flag."""
    if isinstance(exc, grpc.aio.AioRpcError):
        detail = exc.details() or exc.code().name
        if "too many operations in txn" in detail:
            return StoreError(
                f"etcd at {config.url} refused one transaction ({detail}): run etcd with a "
                "larger --max-txn-ops (docs/store.md)"
            )
        if "request is too large" in detail:
            return StoreError(
                f"etcd at {config.url} refused one transaction ({detail}): run etcd with a "
                "larger --max-request-bytes (docs/store.md)"
            )
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return StoreUnavailable(f"etcd at {config.url} is unreachable: {detail}")
        return StoreError(f"etcd at {config.url}: {detail}")
    if isinstance(exc, TimeoutError):
        return StoreUnavailable(f"etcd at {config.url} did not answer in {CALL_TIMEOUT:.0f} s")
    return StoreError(f"etcd at {config.url}: {exc}")


class Connection:
    """A client and the private loop it runs on."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="meshgate-etcd", daemon=True
        )
        self._thread.start()
        self.client = _Client(config)
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``coro`` on the loop; gRPC failures become ``StoreError``s naming the URL."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("Connection.run called on its own loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout + 5)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            future.cancel()
            raise describe(exc, self.config) from None
        except aetcd.exceptions.ClientError as exc:
            raise describe(exc.__cause__ or exc, self.config) from None

    async def kv(self, method: str, request: Any, *, retry: float = FAILOVER_WINDOW) -> Any:
        """One KV call (``Range``, ``Txn``), connecting first.

        A member that went away fails the call it was serving: the call is made again (the
        channel moves to another member) for up to ``retry`` seconds. A transaction tried
        twice cannot apply twice: its compares fail the second time, and the store plans
        again. etcd's auth tokens expire (``--auth-token-ttl``): a call refused for its
        token authenticates again, once."""
        await self.client.connect()
        deadline = asyncio.get_running_loop().time() + retry
        delay, renewed = 0.1, False
        while True:
            try:
                return await getattr(self.client.kvstub, method)(
                    request, timeout=CALL_TIMEOUT, metadata=self.client.metadata
                )
            except grpc.aio.AioRpcError as exc:
                detail = exc.details() or ""
                if self.config.user and "auth token" in detail and not renewed:
                    renewed = True
                    await self.client.authenticate()
                    continue
                transient = exc.code() == grpc.StatusCode.UNAVAILABLE or "no leader" in detail
                if not transient or asyncio.get_running_loop().time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    @property
    def metadata(self) -> Any:
        return self.client.metadata

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Closing a channel to a dead member may fail: nothing is left to do then.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()
