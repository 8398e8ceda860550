"""What ``meshgate status``, ``proxy-status`` and ``ca status`` show about the control plane.

Rules:
- Reports read the control plane's state and change nothing.
- ``status`` shows the work done since start: at rest none of its counters move (see
  ``app``'s rules), so rest is visible.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from meshgate.console.server import ConsoleServer
from meshgate.runtime import capture, sandbox, uplink
from meshgate.runtime.node import Node
from meshgate.runtime.pods import Runtime
from meshgate.security.ca import MeshCA
from meshgate.server.membership import Membership
from meshgate.store.base import ConfigStore
from meshgate.telemetry import http as telemetry_http
from meshgate.translate.cache import SharedTranslations
from meshgate.xds.server import XdsServer

if TYPE_CHECKING:
    from meshgate.server.reconcile import Reconciler


class Report:
    """The ``ControlPlane``'s reports (a mixin: its state is the control plane's, set in
    ``ControlPlane.__init__``)."""

    home: Path
    world_name: str | None
    started: float
    store: ConfigStore
    runtime: Runtime
    node: Node
    ca: MeshCA
    xds: XdsServer
    reconciler: Reconciler
    members: Membership
    console: ConsoleServer
    metrics_listener: telemetry_http.MetricsListener | None
    dns_upstreams: tuple[str, ...]
    translations: int
    _shared: SharedTranslations

    def proxy_statuses(self, pod: str | None = None) -> list[dict[str, Any]]:
        """Every proxy, compact (no subscribed names); or those ``pod`` names, in full."""
        if pod is None:
            return [st.to_json() for st in self.xds.statuses(names=False)]
        return [st.to_json() for st in self.xds.statuses() if st.matches(pod)]

    def ca_status(self) -> dict[str, Any]:
        roots = x509.load_pem_x509_certificates(self.ca.trust_bundle())
        signing = self.ca.root_cert
        return {
            "roots": [
                {
                    "serialNumber": format(c.serial_number, "x"),
                    "notAfter": c.not_valid_after_utc.isoformat(),
                    "signing": c == signing,
                }
                for c in roots
            ],
            "rotation": self.ca.rotation(),
            "workloadCertTTLSeconds": self.ca.lifetime.total_seconds(),
        }

    def status(self) -> dict[str, Any]:
        pods = self.runtime.pod_states()
        return {
            "home": str(self.home),
            "pid": os.getpid(),
            "world": self.world_name,
            "uptimeSeconds": round(time.time() - self.started, 1),
            "revision": self.store.revision(),
            "pods": len(pods),
            "proxies": len(self.xds.statuses(names=False)),
            # Work done since start: at rest none of these move (see the module rules).
            "xds": {
                **self.xds.counters(),
                "translations": self.translations,
                # Configs made from another proxy's translation (translate.cache).
                "sharedTranslations": self._shared.derivations,
                "snapshots": self.reconciler.snapshot_builds,
            },
            # Reconcile passes, and those in which controllers worked (none at rest).
            "reconcile": {
                "passes": self.reconciler.passes,
                "controllerPasses": self.reconciler.controller_passes,
                # Controller writes refused by the leader fence (leadership already gone).
                "fencedWrites": self.reconciler.fenced_writes,
            },
            # What lets the proxies' own traffic out uncaptured (never uid 1337 alone).
            "captureExempts": capture.describe(self.runtime.launcher.proxy_cgroup()),
            "sandbox": sandbox.describe(),
            "uplink": uplink.describe(self.node.manifest, self.dns_upstreams),
            "metrics": self.metrics_listener.url if self.metrics_listener else None,
            "console": self.console.base,
            **self.members.status(),
        }
