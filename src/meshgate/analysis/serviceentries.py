"""ServiceEntry analyzers: addresses for TCP ports.

Rules of this module (Istio's ``ProtocolAddressesAnalyzer``, same code and wording):
- A ServiceEntry with no ``addresses`` (and none allocated in its status) gets IST0134 for
  each port whose protocol is TCP or unset: sidecars cannot tell its TCP traffic apart
  without a virtual IP.
"""

from __future__ import annotations

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext
from meshgate.api.kinds.istio_networking import ServiceEntry


def addresses_required(ctx: AnalysisContext) -> None:
    for se in ctx.of(ServiceEntry):
        spec = se.resource.spec
        allocated = (se.resource.status or {}).get("addresses")
        if spec.addresses is not None or allocated:
            continue
        for i, port in enumerate(spec.ports or []):
            if not port.protocol or port.protocol.upper() == "TCP":
                ctx.report(se, msg.SERVICE_ENTRY_ADDRESSES_REQUIRED, path=("spec", "ports", i))
