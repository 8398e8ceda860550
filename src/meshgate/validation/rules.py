"""Single-resource rules, beyond what the types already enforce: the table of codes.

Rules of this module:
- A rule looks at one resource only (cross-resource checks belong to ``analysis``) and
  reports ``Finding``s: a field path, a message, a stable code and a severity. It never
  raises and never stops at the first finding.
- For the six Istio kinds the rules are Istio's own (``pkg/config/validation``): an
  error here is a resource Istio would reject, a warning one it accepts with a warning.
  They live in one module per kind (``networking_*``, ``security``); the syntax they
  share is in ``common``, ``shared`` and ``regex``; other kinds' rules are in ``kube``
  (NetworkPolicy's in ``kube_networkpolicy``).
- Rules read effective values (``effective_resolution``...) so an omitted field is judged
  by what it means, not by its absence.
- Codes are stable; add new ones at the end of the table. ``docs/validation.md`` has the
  table with fields and Istio's equivalents.

| code   | sev  | rule |
|--------|------|------|
| MG1001 | E    | hostnames: domains with at most a leading wildcard label; IPs where allowed |
| MG1002 | E    | ``*`` alone is not a ServiceEntry/destination host (nor a mesh-bound VS host) |
| MG1003 | E    | port numbers are 1..65535 |
| MG1004 | E    | ServiceEntry port numbers are unique |
| MG1005 | E/W  | several destinations: weights do not sum to 0 (W: not to 100) |
| MG1006 | E    | ServiceEntry DNS/DNS_ROUND_ROBIN without endpoints: hosts are FQDNs |
| MG1007 | E    | ServiceEntry resolution NONE cannot have endpoints |
| MG1008 | E    | CIDR addresses only with resolution NONE or STATIC |
| MG1009 | E    | every Gateway server has hosts; a Gateway has servers |
| MG1010 | E/W  | a VirtualService without hosts is a delegate: no gateways, tls, tcp |
| MG1011 | E    | a Deployment's selector is not empty and matches its template labels |
| MG1012 | E    | the MeshConfig is named ``default`` |
| MG1013 | E    | ServiceEntry ``workloadSelector`` and ``endpoints`` are exclusive |
| MG1014 | E    | ServiceEntry DNS_ROUND_ROBIN has at most one endpoint |
| MG1015 | E    | port protocols are ones Istio knows |
| MG1016 | E    | port names are DNS labels and unique |
| MG1017 | E    | addresses, subnets, ipBlocks and DNS endpoints are IPs, CIDRs (or FQDNs) |
| MG1018 | E    | ServiceEntry endpoint ports name ports of the ServiceEntry |
| MG1019 | E    | AuthorizationPolicy ``selector``, ``targetRef``, ``targetRefs`` are exclusive |
| MG1020 | E    | DestinationRule subset names are unique |
| MG1021 | E    | an HTTP route has route, redirect or directResponse |
| MG1022 | E    | a ServiceEntry DYNAMIC_DNS has only wildcard hosts and is MESH_EXTERNAL |
| MG1023 | E/W  | Sidecar egress hosts are ``namespace/dnsName`` (W: duplicates) |
| MG1024 | E/W  | ``gateways`` entries are ``namespace/name`` or a name (W: legacy ``name.ns``) |
| MG1025 | E    | AuthorizationPolicy ``serviceAccounts`` exclude principals and namespaces |
| MG1026 | E    | route weights are not negative |
| MG1027 | W    | ASMEgressTrafficPolicy lives in namespace ``istio-egress`` |
| MG1028 | W    | IstioGateway lives in namespace ``istio-system`` |
| MG1029 | W    | an empty match block, or a StringMatch with no kind, matches everything |
| MG1030 | E    | ``metadata.name``/namespace and ``sourceNamespace`` are valid names |
| MG1031 | E    | a TLS route matches on sniHosts; TCP/TLS routes have destinations |
| MG1032 | W    | header match names are compared lowercase |
| MG1033 | E/W  | percentages are within 0..100 (W: deprecated mirrorPercent) |
| MG1034 | E    | ``exportTo``: ``.``, ``*``, namespaces; no duplicates; ``*``/``~`` alone |
| MG1035 | E/W  | TLS modes have the fields they need and no fields they ignore |
| MG1036 | E    | AuthorizationPolicy CUSTOM needs ``provider.name``; ``provider`` only then |
| MG1037 | E    | AuthorizationPolicy from/to/when: written lists, sources, operations not empty |
| MG1038 | E    | rewrite sets ``uri`` or ``uriRegexRewrite``, not both |
| MG1039 | E    | a Pod spec has containers with unique names |
| MG1040 | E    | a Service with several ports names each; ``targetPort`` is a port or a name |
| MG1041 | W    | ServiceEntry ``workloadSelector``: MESH_INTERNAL, resolution STATIC |
| MG1042 | E    | ``egressProxy``: mode ALLOW_ANY, an FQDN host and a port |
| MG1043 | E    | a ``unix://`` endpoint: an absolute path, no ports, exactly one service port |
| MG1044 | E    | durations are at least 1ms, in whole milliseconds |
| MG1045 | E    | regexes compile as RE2 and are at most 1024 characters |
| MG1046 | E    | a ``prefix`` or ``regex`` string match is not empty (a uri prefix may be) |
| MG1047 | E    | header names and values in matches and header operations are valid |
| MG1048 | E    | label keys and values are Kubernetes label syntax |
| MG1049 | E/W  | workload selectors: no empty key, no wildcard (W: no labels) |
| MG1050 | E    | ServiceEntry with several hosts, resolution not NONE: HTTP or TLS ports only |
| MG1051 | E/W  | ServiceEntry STATIC endpoints are IPs or unix paths; an address is required |
| MG1052 | E    | Gateway ports have a name; ``targetPort`` is refused on Gateways and Sidecars |
| MG1053 | E    | ``bind`` is an IP, or a ``unix://`` path with port 0 |
| MG1054 | E/W  | only HTTPS/TLS servers have TLS settings (HTTP: passthrough redirect only) |
| MG1055 | E    | a Gateway's name is a DNS label |
| MG1056 | E    | a VirtualService's hosts do not overlap |
| MG1057 | E    | a VirtualService has http, tcp or tls routes |
| MG1058 | E/W  | TLS route SNI hosts are within the VirtualService's hosts (W: an IP) |
| MG1059 | E    | delegation: a root route sets only delegate; a delegate's routes do not delegate |
| MG1060 | E    | redirect/directResponse exclude route, fault, rewrite; mirror excludes mirrors |
| MG1061 | E    | a redirect sets uri, authority, scheme or port; code 3xx; scheme http(s) |
| MG1062 | E/W  | directResponse status 200..600; body under 1MB (W: over 100KB) |
| MG1063 | E    | retries: attempts not negative; settings need attempts; retryOn known |
| MG1064 | E    | a rewrite rewrites something; uriRegexRewrite has both parts; one authority |
| MG1065 | E/W  | fault: abort and/or delay; HTTP/gRPC status valid; no http2Error |
| MG1066 | E    | CORS: origins non-empty, methods known, header names, maxAge in seconds |
| MG1067 | E    | JWT claim header routing only on gateways |
| MG1068 | E    | traffic policies set something; tunnel excludes proxyProtocol; port settings |
| MG1069 | E/W  | connection pools: http or tcp, counts not negative, UPGRADE vs client protocol |
| MG1070 | E/W  | outlier detection: local-origin failures need the split (W: consecutiveErrors) |
| MG1071 | E/W  | load balancer: cookie name, maglev table size, ring size, warmup |
| MG1072 | E/W  | locality load balancing: distribute xor failover, weights, localities |
| MG1073 | E    | client TLS: MUTUAL certificate and key; credentialName and skip-verify rules |
| MG1074 | E    | Sidecar: not empty; listener ports, binds, catch-all egress last; ingress TLS |
| MG1075 | E    | AuthorizationPolicy DENY/CUSTOM need rules; CUSTOM matching restrictions |
| MG1076 | E    | AuthorizationPolicy values: no empty strings, ports, paths, service accounts |
| MG1077 | E    | AuthorizationPolicy conditions: known keys with valid values |
| MG1078 | E    | targetRef: a name, no namespace, a Service/ServiceEntry/Gateway/GatewayClass |
| MG1079 | E    | ``istio.io/dry-run`` only on AuthorizationPolicy ALLOW/DENY, as a boolean |
| MG1080 | W    | a DENY rule with only HTTP attributes also denies all TCP traffic |
| MG1081 | E    | subset names (and destination subsets) are DNS labels |
| MG1082 | -    | retired: ISTIO_MUTUAL warned while there was no mesh CA (now implemented) |
| MG1083 | E    | Kubernetes counts are not negative (replicas...); progress deadline > minReady |
| MG1084 | E    | Secret/ConfigMap keys are config keys; ``data``/``binaryData`` are base64 |
| MG1085 | E    | a Service's ports differ in port number or protocol |
| MG1086 | E    | pod (and IstioGateway) volumes: unique names; mounts name a volume, absolute |
| MG1087 | E    | PeerAuthentication ``portLevelMtls`` only with a selector that has labels |
| MG1088 | E    | capture annotations, MeshConfig capture ranges: ports, CIDRs, ``*`` if allowed |
| MG1089 | E    | NetworkPolicy: selectors, peers, ports and ipBlocks as kube-apiserver has them |
| MG1090 | E    | size: ConfigMap/Secret data at most 1 MiB; any object at most 1.5 MiB encoded |
| MG1091 | E/W  | Endpoints/EndpointSlice: dialable IPs, ports, names (W: slice of no Service) |
| MG1092 | E/W  | Service type: ExternalName's name, no cluster IP; ``None`` only for ClusterIP |
| MG1093 | E/W  | RequestAuthentication JWT rules as Istio has them (W: JWTs are not validated) |
| MG1094 | E    | RBAC: rules have verbs, groups, resources; bindings a valid roleRef, subjects |
| MG1095 | E    | MeshConfig ``accessLogFormat`` with JSON encoding: a JSON object |
"""

from __future__ import annotations

from meshgate.api.kinds import istio_security as sec
from meshgate.api.meta import Resource
from meshgate.api.registry import by_group_kind

# Imported for their @rule registrations.
from meshgate.validation import (  # noqa: F401
    kube,
    kube_endpoints,
    kube_networkpolicy,
    networking_destinationrule,
    networking_gateway,
    networking_serviceentry,
    networking_sidecar,
    networking_virtualservice,
    rbac,
    security,
)
from meshgate.validation.findings import Finding, Findings, run_rules
from meshgate.validation.limits import check_size
from meshgate.validation.names import label_name_problem, object_name_problem

__all__ = ["Finding", "Findings", "check_resource"]

DRY_RUN = "istio.io/dry-run"
ALWAYS_REJECT = "internal.istio.io/webhook-always-reject"
_ISTIO_GROUPS = ("networking.istio.io", "security.istio.io")
_BOOLEANS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false"})
_BOOLEANS = _BOOLEANS | {"False"}


def check_resource(resource: Resource) -> list[Finding]:
    """Every finding of every rule that applies to ``resource``."""
    out = Findings()
    _metadata(resource, out)
    run_rules(resource, out)
    check_size(resource, out)
    return out.items


def _metadata(resource: Resource, out: Findings) -> None:
    meta = out.at("metadata")
    meta.check("MG1030", object_name_problem(resource.metadata.name), "name")
    info = by_group_kind(resource.group, resource.kind)
    if resource.metadata.namespace and (info is None or info.namespaced):
        meta.check("MG1030", label_name_problem(resource.metadata.namespace), "namespace")
    if resource.group not in _ISTIO_GROUPS:
        return
    annotations = resource.metadata.annotations or {}
    if ALWAYS_REJECT in annotations:
        meta.error("MG1079", f"annotation {ALWAYS_REJECT} rejects this resource", "annotations")
    if DRY_RUN not in annotations:
        return
    if not isinstance(resource, sec.AuthorizationPolicy):
        meta.error(
            "MG1079",
            f"annotation {DRY_RUN} is supported only on AuthorizationPolicy",
            "annotations",
            DRY_RUN,
        )
    elif resource.spec.effective_action not in ("ALLOW", "DENY"):
        meta.error(
            "MG1079",
            f"annotation {DRY_RUN} works only with action ALLOW or DENY",
            "annotations",
            DRY_RUN,
        )
    elif annotations[DRY_RUN] not in _BOOLEANS:
        meta.error("MG1079", f"annotation {DRY_RUN} must be a boolean", "annotations", DRY_RUN)
