"""DestinationRule analyzers: hosts, subsets, and TLS that does not verify the server.

Rules of this module (Istio's ``PodNotSelectedAnalyzer`` and ``CaCertificateAnalyzer``, same
codes and wording):
- A host no visible service answers to is IST0174 (and its subsets are not judged).
- A subset selects the pods whose labels, augmented with their node's topology labels
  (``topology.kubernetes.io/region``, ``.../zone``, ``topology.istio.io/subzone`` and
  ``kubernetes.io/hostname``, when set and not empty), carry the subset's labels and the
  ServiceEntry's workload selector. A subset selecting none is IST0173.
- TLS mode SIMPLE or MUTUAL without ``caCertificates`` does not verify the server:
  IST0128 for the DestinationRule's policy, IST0129 for each port-level one. A
  ``credentialName`` supplies the CA only on the workloads a ``workloadSelector`` picks
  (gateways), so it counts only with one.
"""

from __future__ import annotations

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, Entry, selects
from meshgate.analysis.services import ServiceIndex
from meshgate.api.kinds.istio_networking import ClientTLSSettings, DestinationRule
from meshgate.api.kinds.kubernetes import Pod

TOPOLOGY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
    "kubernetes.io/hostname",
)


def _pod_labels(ctx: AnalysisContext, pod: Entry[Pod]) -> dict[str, str]:
    labels = dict(pod.labels)
    node = ctx.nodes.get(pod.resource.spec.node_name or "")
    if node is not None:
        for key in TOPOLOGY_LABELS:
            value = node.labels.get(key)
            if value:
                labels.setdefault(key, value)
    return labels


def subsets_select_pods(ctx: AnalysisContext) -> None:
    """IST0174 for a host that is no service; IST0173 for a subset selecting no pod."""
    services = ServiceIndex(ctx)
    pod_labels = [_pod_labels(ctx, p) for p in ctx.of(Pod)]
    for dr in ctx.of(DestinationRule):
        spec = dr.resource.spec
        service = services.lookup(dr.namespace, spec.host, spec.export_to)
        if service is None:
            ctx.report(dr, msg.UNKNOWN_DR_HOST, spec.host, path=("spec", "host"))
            continue
        for i, subset in enumerate(spec.subsets or []):
            wanted = {**service.workload_selector, **(subset.labels or {})}
            if not any(selects(wanted, labels) for labels in pod_labels):
                ctx.report(
                    dr,
                    msg.DR_SUBSET_NOT_SELECT_PODS,
                    subset.name,
                    path=("spec", "subsets", i, "name"),
                )


VERIFYING_MODES = ("SIMPLE", "MUTUAL")


def _unverified(tls: ClientTLSSettings | None, selected: bool) -> bool:
    """TLS to the server without a CA to check it by (a credential counts, for selected pods)."""
    if tls is None or str(tls.mode or "") not in VERIFYING_MODES or tls.ca_certificates:
        return False
    return not (tls.credential_name and selected)


def ca_certificates(ctx: AnalysisContext) -> None:
    """IST0128/IST0129: SIMPLE or MUTUAL TLS origination that does not verify the server."""
    for dr in ctx.of(DestinationRule):
        spec = dr.resource.spec
        policy = spec.traffic_policy
        if policy is None:
            continue
        selected = spec.workload_selector is not None
        if _unverified(policy.tls, selected):
            assert policy.tls is not None
            ctx.report(
                dr,
                msg.NO_SERVER_CERT_VERIFICATION_DESTINATION,
                dr.full_name,
                dr.namespace,
                policy.tls.mode,
                spec.host,
                path=("spec", "trafficPolicy", "tls", "mode"),
            )
        for i, settings in enumerate(policy.port_level_settings or []):
            if not _unverified(settings.tls, selected):
                continue
            assert settings.tls is not None
            number = settings.port.number if settings.port is not None else None
            ctx.report(
                dr,
                msg.NO_SERVER_CERT_VERIFICATION_PORT,
                dr.full_name,
                dr.namespace,
                settings.tls.mode,
                spec.host,
                f"number:{number}" if number else "",
                path=("spec", "trafficPolicy", "portLevelSettings", i, "tls", "mode"),
            )
