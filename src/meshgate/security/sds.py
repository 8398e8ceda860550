"""A proxy's mesh identity as SDS secrets: `default` (its certificate chain and key) and
`ROOTCA` (the mesh's trust bundle), Istio's names.

Rules:
- Only names the proxy's own listeners and clusters refer to are built (the translator's
  references), and only from the proxy's own identity: no proxy is ever sent another's key.
- Certificates and keys go inline in the Secret (over the proxy's authenticated ADS stream);
  they are never written where another process could read them.
- ``withheld`` names the ``credentialName`` keys a sidecar asks for and may not read
  (``security.secretaccess``), with istiod's reason, for the control plane's log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from meshgate.model.proxy import Proxy
from meshgate.model.secrets import CA_SUFFIX, KUBERNETES_PREFIX
from meshgate.model.snapshot import Snapshot
from meshgate.security.ca import MeshCA, spiffe_id
from meshgate.security.secretaccess import RbacIndex
from meshgate.translate.tls import ROOT_CA, WORKLOAD_CERT


def identity(proxy: Proxy, trust_domain: str) -> str:
    return spiffe_id(trust_domain, proxy.namespace, proxy.service_account)


def identity_secrets(
    ca: MeshCA, proxy: Proxy, trust_domain: str, referenced: Iterable[str]
) -> list[Any]:
    """The `default` and `ROOTCA` secrets among `referenced`, for this proxy only."""
    wanted = set(referenced)
    out = []
    if WORKLOAD_CERT in wanted:
        issued = ca.workload(identity(proxy, trust_domain))
        out.append(
            secret_pb2.Secret(
                name=WORKLOAD_CERT,
                tls_certificate=common_pb2.TlsCertificate(
                    certificate_chain=base_pb2.DataSource(inline_bytes=issued.cert_chain),
                    private_key=base_pb2.DataSource(inline_bytes=issued.key),
                ),
            )
        )
    if ROOT_CA in wanted:
        out.append(
            secret_pb2.Secret(
                name=ROOT_CA,
                validation_context=common_pb2.CertificateValidationContext(
                    trusted_ca=base_pb2.DataSource(inline_bytes=ca.trust_bundle())
                ),
            )
        )
    return out


def withheld(snapshot: Snapshot, proxy: Proxy, referenced: Iterable[str]) -> tuple[list[str], str]:
    """The Secrets (by name) whose keys ``proxy`` refers to and may not read, and why; empty
    for gateways, CA bundles and proxies allowed to read Secrets."""
    names = sorted(
        n.removeprefix(KUBERNETES_PREFIX)
        for n in set(referenced)
        if n.startswith(KUBERNETES_PREFIX) and not n.endswith(CA_SUFFIX)
    )
    if proxy.is_router or not names:
        return [], ""
    access = RbacIndex(snapshot.rbac).may_list_secrets(proxy.namespace, proxy.service_account)
    return ([], "") if access.allowed else (names, access.reason)
