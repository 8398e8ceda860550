"""ServiceEntry analyzers: addresses for TCP ports.

Rules of this module (Istio's ``ProtocolAddressesAnalyzer``, same code and wording):
- A ServiceEntry with no ``addresses`` (absent or empty, as protobuf reads both) and none
  allocated in its ``status.addresses`` gets IST0134 for each port whose protocol is TCP
  (any case) or unset: sidecars cannot tell its TCP traffic apart without a virtual IP.
  Istio (``serviceentry/protocoladdresses.go`` at 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c)
  also stays silent when the MeshConfig's ``defaultConfig.proxyMetadata`` sets
  ``ISTIO_META_DNS_CAPTURE`` and ``ISTIO_META_DNS_AUTO_ALLOCATE`` (or
  ``PILOT_ENABLE_IP_AUTOALLOCATE``) to ``"true"``; meshgate's MeshConfig has no such field
  and its DNS allocates no addresses, so that exemption never applies here.
- The resolution, location and other port protocols do not matter (HTTP, TLS... ports are
  told apart by host or SNI).
"""

from __future__ import annotations

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext
from meshgate.api.kinds.istio_networking import ServiceEntry


def addresses_required(ctx: AnalysisContext) -> None:
    for se in ctx.of(ServiceEntry):
        spec = se.resource.spec
        allocated = (se.resource.status or {}).get("addresses")
        if spec.addresses or allocated:
            continue
        for i, port in enumerate(spec.ports or []):
            if not port.protocol or port.protocol.upper() == "TCP":
                ctx.report(se, msg.SERVICE_ENTRY_ADDRESSES_REQUIRED, path=("spec", "ports", i))
