"""Joined nodes' side of the control plane: its own Node, and xDS over mTLS for them.

Rules:
- Nodes (``nodes``, ``joinapi``): the control plane's own Node is written at start. A
  TLS endpoint on 127.0.0.1 lets nodes join with a bootstrap token and serves their
  agents (mTLS); xDS is served over mTLS TCP too, to proxies on joined nodes, on
  10.34.0.1:15012 inside the first node's namespace (a socket made there, relayed to the
  TLS gRPC listener on loopback); local proxies keep the Unix socket. A mesh nobody
  joins behaves as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshgate.api.meta import ResourceKey
from meshgate.runtime.node import Node
from meshgate.security.ca import MeshCA
from meshgate.server import joinapi
from meshgate.server import nodes as nodes_mod
from meshgate.store.base import ConfigStore
from meshgate.xds.server import XdsServer

if TYPE_CHECKING:
    from meshgate.server.reconcile import Reconciler

log = logging.getLogger("meshgate.server")


class JoinedNodes:
    """The ``ControlPlane``'s part for joined nodes (a mixin: its state is the control
    plane's, set in ``ControlPlane.__init__``)."""

    home: Path
    store: ConfigStore
    ca: MeshCA
    node: Node
    xds: XdsServer
    reconciler: Reconciler
    join_listener: joinapi.JoinListener
    _relay: asyncio.Server | None

    def join_info(self) -> dict[str, Any]:
        """Where nodes join, and the pin of the CA they must find there."""
        from meshgate.security.bootstraptoken import ca_cert_hash

        return {"url": self.join_listener.url, "caCertHash": ca_cert_hash(self.ca.root_pem)}

    def _own_node(self) -> None:
        """The control plane's own Node, written when missing (see nodes)."""
        key = ResourceKey("", "Node", "", nodes_mod.OWN_NODE)
        if self.store.get(key) is not None:
            return
        obj = nodes_mod.own_node()
        self.store.apply([{k: v for k, v in obj.items() if k != "status"}])
        self.store.update_status(key, obj["status"])

    async def _serve_remote_xds(self) -> None:
        """xDS over mTLS for proxies on joined nodes (see the module rules)."""
        import grpc

        cert, key = joinapi.serving_cert(
            self.ca, self.home / "security" / "join", joinapi.XDS_NAME, [nodes_mod.OWN_NODE_IP]
        )
        creds = grpc.ssl_server_credentials(
            [(key.read_bytes(), cert.read_bytes())],
            root_certificates=self.ca.trust_bundle(),
            require_client_auth=True,
        )
        port = await self.xds.start_tcp("127.0.0.1", 0, creds)
        sock = await asyncio.to_thread(
            joinapi.listen_in_netns, self.node.netns, nodes_mod.OWN_NODE_IP, joinapi.XDS_PORT
        )

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                writer.close()
                return

            async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                try:
                    while data := await r.read(65536):
                        w.write(data)
                        await w.drain()
                except (OSError, asyncio.CancelledError):
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        w.close()

            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

        self._relay = await asyncio.start_server(relay, sock=sock)
        self.reconciler.remote_xds = f"{nodes_mod.OWN_NODE_IP}:{joinapi.XDS_PORT}"
        log.info(
            "xDS over mTLS for joined nodes at %s (relayed to 127.0.0.1:%d)",
            self.reconciler.remote_xds,
            port,
        )
