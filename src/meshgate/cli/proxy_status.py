"""What ``meshgate proxy-status`` prints: istioctl's table, and one proxy in detail.

Rules:
- The table has istioctl's columns in istioctl's order (``NAME CLUSTER CDS LDS EDS RDS ECDS
  ISTIOD VERSION``, as ``istioctl proxy-status`` prints them with every type shown), then
  meshgate's own: ``MODE`` (the ADS flavour, sotw or delta) and ``ERRORS`` (why a type was
  rejected), so a script reading istioctl's columns reads these the same way.
- NAME is ``POD.NAMESPACE``; CLUSTER the proxy's ``CLUSTER_ID`` node metadata, else
  ``Kubernetes`` (Istio's name for the one cluster); ISTIOD the control plane serving it,
  named from its state directory as a replica is (``meshgate-<mesh id>``); VERSION the
  control plane's release (istioctl prints istiod's version there).
- A type's state: SYNCED (the last version sent is acknowledged), STALE (sent, not yet
  acknowledged), NACKED (rejected; the proxy runs its previous version), NOT SENT (nothing
  of that type went to the proxy: meshgate never sends ECDS), and DISCONNECTED for every
  type once the proxy's stream has closed.
- Pure functions of the control plane's ``/v1/proxy-status`` records: tested without it.
"""

from __future__ import annotations

from typing import Any

Proxy = dict[str, Any]
Rows = list[list[str]]

HEADER = ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION", "MODE",
          "ERRORS"]  # fmt: skip
NOT_SENT = "NOT SENT"
DISCONNECTED = "DISCONNECTED"
DEFAULT_CLUSTER = "Kubernetes"

SHORT = {
    "Listener": "LDS",
    "RouteConfiguration": "RDS",
    "Cluster": "CDS",
    "ClusterLoadAssignment": "EDS",
    "Secret": "SDS",
    "TypedExtensionConfig": "ECDS",
}


def short_type(url: str) -> str:
    """``type.googleapis.com/envoy.config.cluster.v3.Cluster`` -> ``CDS``."""
    return SHORT.get(url.rsplit(".", 1)[-1], url)


def proxy_name(p: Proxy) -> str:
    node = str(p.get("nodeId", ""))
    parts = node.split("~")
    return parts[2] if len(parts) > 2 else node


def matches(p: Proxy, wanted: str) -> bool:
    name = proxy_name(p)
    return wanted in (name, name.split(".", 1)[0])


def cluster_id(p: Proxy) -> str:
    return str((p.get("metadata") or {}).get("CLUSTER_ID") or DEFAULT_CLUSTER)


def control_plane_id(mesh_id: str) -> str:
    """The replica name shown under ISTIOD: one control plane per state directory."""
    return f"meshgate-{mesh_id}"


def status_rows(proxies: list[Proxy], istiod: str, version: str) -> Rows:
    rows = [list(HEADER)]
    for p in sorted(proxies, key=proxy_name):
        cells: dict[str, str] = {}
        errors = []
        for url, t in (p.get("types") or {}).items():
            label = short_type(str(url))
            cells[label] = str(t.get("state") or NOT_SENT)
            if t.get("nackError"):
                errors.append(f"{label}: {t['nackError']}")
        absent = NOT_SENT if p.get("connected", True) else DISCONNECTED
        rows.append(
            [
                proxy_name(p),
                cluster_id(p),
                *(cells.get(x, absent) for x in ("CDS", "LDS", "EDS", "RDS", "ECDS")),
                # With replicas, the one serving this proxy (server.membership).
                control_plane_id(p["controlPlane"]) if p.get("controlPlane") else istiod,
                version,
                str(p.get("mode") or "sotw"),
                "; ".join(errors) or "<none>",
            ]
        )
    return rows


def format_rows(rows: Rows) -> list[str]:
    """Columns padded as istioctl's tabwriter pads them (5 spaces between columns)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["     ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _table(rows: Rows) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def detail_lines(p: Proxy, istiod: str, version: str) -> list[str]:
    """One proxy: identity, connection, the control plane serving it, and each type."""
    sent = p.get("sent") or {}
    lines = [
        f"Proxy:      {proxy_name(p)}",
        f"Node ID:    {p.get('nodeId')}",
        f"Connected:  {'yes' if p.get('connected') else 'no'} (since {p.get('connectedSince')})",
        f"Cluster:    {cluster_id(p)}",
        f"Istiod:     {istiod} (meshgate {version})",
        f"xDS mode:   {p.get('mode') or 'sotw'} "
        f"({sent.get('responses', 0)} responses, {sent.get('bytes', 0)} bytes sent)",
    ]
    rows = [["TYPE", "STATE", "SENT", "ACKED", "RESOURCES", "MISSING", "REJECTED"]]
    types = p.get("types") or {}
    for url, t in sorted(types.items(), key=lambda kv: short_type(str(kv[0]))):
        rejected = "-"
        if t.get("nackError"):
            rejected = f"version {t.get('nackedVersion')}: {t['nackError']}"
        rows.append(
            [
                short_type(str(url)),
                str(t.get("state") or "-"),
                str(t.get("sentVersion") or "-"),
                str(t.get("ackedVersion") or "-"),
                str(t.get("resourceCount", 0)),
                # Names the proxy waits for that the configuration lacks (a credentialName
                # Secret not created yet, say): the usual cause of a type stuck STALE.
                ",".join(t.get("missingNames") or []) or "-",
                rejected,
            ]
        )
    return lines + _table(rows)
