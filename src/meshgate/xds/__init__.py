"""meshgate.xds: the ADS server that pushes translated config to Envoy, and its bootstrap.

Rules: imports only from earlier stages (translate.output); no knowledge of Istio kinds.
"""

from meshgate.xds.server import XdsServer
from meshgate.xds.status import ProxyStatus, SyncState, TypeStatus

__all__ = ["ProxyStatus", "SyncState", "TypeStatus", "XdsServer"]
