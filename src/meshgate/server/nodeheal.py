"""The node's own processes (its DNS server, the world's Envoy): watched and healed.

Rules:
- The node's own processes are watched too (``exitwatch``): one that dies is started
  again in the pass its exit wakes (``Node.up`` is idempotent). Only the node owner heals.
"""

from __future__ import annotations

import logging

from meshgate.runtime import procs
from meshgate.runtime.node import Node
from meshgate.runtime.pods import Runtime
from meshgate.runtime.world import World

log = logging.getLogger("meshgate.server")

# Manifest keys of the node's own processes (its DNS server, the world's Envoy).
NODE_PROCESSES = "node/"


class NodeHeal:
    """The ``ControlPlane``'s care of the node's processes (a mixin: its state is the
    control plane's, set in ``ControlPlane.__init__``)."""

    owns_node: bool
    node: Node
    runtime: Runtime
    world: World | None

    def _node_processes(self) -> dict[str, procs.ProcId]:
        recorded = self.node.manifest.peek()["processes"]
        return {
            key: procs.ProcId(rec["pid"], rec["start_time"])
            for key, rec in recorded.items()
            if key.startswith(NODE_PROCESSES)
        }

    def _watched_processes(self) -> list[procs.ProcId]:
        return [*self.runtime.running_processes(), *self._node_processes().values()]

    def _heal_node(self) -> None:
        """Start again the node's own processes (DNS, the world's Envoy) that died: every
        name lookup in the mesh depends on the DNS server. `Node.up` is idempotent."""
        if not self.owns_node:
            return
        dead = [k for k, p in self._node_processes().items() if not procs.is_alive(p)]
        if dead:
            log.warning("node process(es) %s gone; starting them again", ", ".join(dead))
            try:
                self.node.up(self.world)
            except Exception:
                log.exception("restarting the node's processes failed; next pass retries")
