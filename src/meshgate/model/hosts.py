"""Istio host names: matching, wildcards, namespace-qualified hosts, short-name expansion.

Rules of this module:
- A host is a lower-case DNS name, optionally with a single leading ``*`` label
  (``*.foo.com``), or ``*`` alone (every host). Callers normalise with ``normalize``.
- ``*.foo.com`` matches ``a.foo.com`` and ``a.b.foo.com`` but never the bare ``foo.com``
  (Envoy and Istio wildcards never match the empty label).
- ``matches(a, b)`` is symmetric: the two patterns share at least one concrete name.
  ``subset_of(a, b)`` means every name ``a`` covers is covered by ``b``.
- Namespace-qualified hosts (``ns/host``, ``*/host``, ``./host``, ``~/host``) appear in
  Gateway servers and Sidecar egress listeners; a missing namespace means ``*``.
- Kubernetes short names are expanded relative to the namespace of the resource that
  wrote them: ``reviews`` in ``default`` -> ``reviews.default.svc.cluster.local``.
- Pure functions only: no I/O, no global state beyond constants.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN_SUFFIX = "cluster.local"
ANY = "*"


def normalize(host: str) -> str:
    """Lower-case and strip a trailing dot: DNS names are case-insensitive."""
    return host.strip().lower().rstrip(".")


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def _suffix(host: str) -> str:
    """``*.foo.com`` -> ``.foo.com``; ``*`` -> ``""``."""
    return host[1:]


def matches(a: str, b: str) -> bool:
    """True when the two host patterns have at least one concrete name in common."""
    if a == b:
        return True
    a_wild, b_wild = is_wildcard(a), is_wildcard(b)
    if a_wild and b_wild:
        # Both cover every name under their suffix: they overlap iff one suffix ends the other.
        sa, sb = _suffix(a), _suffix(b)
        return sa.endswith(sb) or sb.endswith(sa)
    if a_wild:
        return _covers(a, b)
    if b_wild:
        return _covers(b, a)
    return False


def _covers(wildcard: str, name: str) -> bool:
    """A wildcard pattern covers a concrete name: the name is strictly longer than the suffix."""
    suffix = _suffix(wildcard)
    if suffix == "":
        return True
    return name.endswith(suffix) and len(name) > len(suffix)


def subset_of(a: str, b: str) -> bool:
    """True when every name matched by ``a`` is matched by ``b``."""
    if a == b or b == ANY:
        return True
    if not is_wildcard(b):
        return False
    if is_wildcard(a):
        sa, sb = _suffix(a), _suffix(b)
        return sa.endswith(sb) and len(sa) >= len(sb)
    return _covers(b, a)


def more_specific(a: str, b: str) -> str:
    """Of two matching patterns, the narrower one (used to intersect server and route hosts)."""
    if subset_of(a, b):
        return a
    return b


def specificity_key(host: str) -> tuple[int, int, str]:
    """Sort key: exact names first, then wildcards by decreasing suffix length."""
    if is_wildcard(host):
        return (1, -len(host), host)
    return (0, 0, host)


def expand_short_name(host: str, namespace: str, domain: str = DOMAIN_SUFFIX) -> str:
    """Resolve a Kubernetes short name relative to ``namespace``; names with a dot stay."""
    host = normalize(host)
    if host == ANY or "." in host or not namespace:
        return host
    return f"{host}.{namespace}.svc.{domain}"


def kubernetes_host(name: str, namespace: str, domain: str = DOMAIN_SUFFIX) -> str:
    """The DNS name of a Kubernetes Service."""
    return f"{name}.{namespace}.svc.{domain}"


def short_forms(host: str, client_namespace: str, domain: str = DOMAIN_SUFFIX) -> list[str]:
    """The extra names a client may use for a Kubernetes host (Istio's vhost domains).

    ``name.ns.svc.cluster.local`` gives ``name.ns.svc`` and ``name.ns`` always, and ``name``
    when the client lives in ``ns``. Non-Kubernetes hosts have no short forms.
    """
    tail = f".svc.{domain}"
    if not host.endswith(tail):
        return []
    parts = host[: -len(tail)].split(".")
    if len(parts) != 2:
        return []
    name, ns = parts
    forms = [f"{name}.{ns}.svc", f"{name}.{ns}"]
    if ns == client_namespace:
        forms.append(name)
    return forms


@dataclass(frozen=True)
class NamespacedHost:
    """A host pattern qualified by a namespace pattern (``*``, a name, or ``~`` for none)."""

    namespace: str
    host: str

    def admits(self, namespace: str, host: str) -> bool:
        """Does this pattern import ``host`` published from ``namespace``?"""
        if self.namespace == "~":
            return False
        if self.namespace not in (ANY, namespace):
            return False
        return matches(self.host, host)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.host}"


def parse_namespaced_host(value: str, own_namespace: str) -> NamespacedHost:
    """Parse ``ns/host``; ``.`` means ``own_namespace``; no namespace means ``*``."""
    ns, sep, host = value.partition("/")
    if not sep:
        return NamespacedHost(ANY, normalize(ns))
    ns = ns.strip()
    if ns == ".":
        ns = own_namespace
    return NamespacedHost(ns or ANY, normalize(host))
