"""meshgate: a unified egress gateway for a service mesh (Istio API in, real Envoy out)."""

__version__ = "0.1.0"
