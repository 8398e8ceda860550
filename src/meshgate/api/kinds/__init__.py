"""Importing this package registers every kind (see ``meshgate.api.registry``).

Rules: one module per API group family; each registers its kinds at import time.
"""

from meshgate.api.kinds import (
    alibabacloud,
    istio_networking,
    istio_security,
    kubernetes,
    meshgate_kinds,
    rbac,
)

__all__ = [
    "alibabacloud",
    "istio_networking",
    "istio_security",
    "kubernetes",
    "meshgate_kinds",
    "rbac",
]
