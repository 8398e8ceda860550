"""Where this control plane serves xDS to the node's proxies: a Unix socket.

Rules:
- The socket and its directory are the proxies' group's only (0660, 0750): no other local
  user, and no app (no sandbox shows it).
- A replica's socket lives in the node owner's runtime directory, which the node owner's
  ``down`` removes: the replica listens again, before its next pass, once it is gone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from meshgate.runtime import envoy
from meshgate.runtime.names import xds_socket
from meshgate.runtime.node import Node
from meshgate.server.membership import Membership
from meshgate.xds.server import XdsServer

log = logging.getLogger("meshgate.server")


class XdsListen:
    """The ``ControlPlane``'s xDS socket (a mixin: its state is the control plane's, set in
    ``ControlPlane.__init__``)."""

    owns_node: bool
    node: Node
    members: Membership
    xds: XdsServer
    _xds_sock: Path | None  # where this control plane serves xDS

    async def _listen_xds(self) -> None:
        xds_sock = self.members.xds_socket(xds_socket(self.node.mesh_id))
        xds_sock.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        os.chown(xds_sock.parent, 0, envoy.PROXY_GID)
        os.chmod(xds_sock.parent, 0o750)
        # The proxies' group only: no other local user, and no app (no sandbox shows it).
        await self.xds.start(str(xds_sock), mode=0o660, gid=envoy.PROXY_GID)
        self._xds_sock = xds_sock

    async def _relisten_xds(self) -> None:
        """A replica's socket lives in the node owner's runtime directory, which the node
        owner's ``down`` removes: listen again once it is gone (its next ``up`` starts
        proxies that look for it there)."""
        if self.owns_node or self._xds_sock is None or self._xds_sock.exists():
            return
        log.warning("xDS socket %s is gone (node owner's down?); listening again", self._xds_sock)
        try:
            await self._listen_xds()
        except Exception:
            log.exception("listening on %s again failed; next pass retries", self._xds_sock)
