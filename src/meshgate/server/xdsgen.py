"""What each proxy is sent over xDS: its translation of the snapshot, and its secrets.

Rules:
- Each proxy's translation is kept for the snapshot it was made from: a push for
  certificates alone re-issues secrets without translating again. Proxies that would
  receive the same resources share one translation (``translate.cache``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.security import proxy_credentials, sds
from meshgate.security.ca import MeshCA
from meshgate.telemetry import als
from meshgate.translate import translate
from meshgate.translate.cache import SharedTranslations, own_strings
from meshgate.translate.output import ProxyConfig
from meshgate.translate.secrets import referenced
from meshgate.translate.tls import ROOT_CA, WORKLOAD_CERT

if TYPE_CHECKING:
    from meshgate.server.reconcile import Reconciler

log = logging.getLogger("meshgate.server")


class XdsGen:
    """The ``ControlPlane``'s xDS answers (a mixin: its state is the control plane's, set
    in ``ControlPlane.__init__``; used by the xDS worker thread alone)."""

    reconciler: Reconciler
    ca: MeshCA
    translations: int
    _credential_key: bytes
    _translated: dict[str, tuple[Proxy, ProxyConfig, frozenset[str]]]
    _translated_for: Snapshot | None
    _shared: SharedTranslations
    _cluster_refs: dict[int, tuple[list[Any], set[str]]]
    _identities: dict[tuple[str, frozenset[str]], tuple[Any, bytes | None, list[Any]]]

    def generate(self, node_id: str, metadata: Any) -> ProxyConfig | None:
        snap = self.reconciler.snapshot
        proxy = snap.proxy_for(node_id)
        if proxy is None:
            return None
        if self._translated_for is not snap:
            self._translated, self._translated_for = {}, snap
            self._cluster_refs = {}
        held = self._translated.get(node_id)
        if held is not None and held[0] == proxy:
            config, wanted = held[1], held[2]
        else:
            # Proxies that would receive the same resources share one translation
            # (translate.cache), byte-identical to each one's own.
            unshared = self._shared.unshared_groups
            config = self._shared.config(snap, proxy, node_id)
            self.translations = self._shared.translations
            if self._shared.unshared_groups != unshared:
                log.info("xDS: %s differs from its group's translation: not shared", node_id)
            wanted = self._references(config)
            self._translated[node_id] = (proxy, config, wanted)
            denied, why = sds.withheld(snap, proxy, wanted)
            if denied:  # istiod's warning, word for word
                log.warning(
                    "proxy %s.%s attempted to access unauthorized certificates %s: %s",
                    proxy.pod, proxy.namespace, ", ".join(denied), why,
                )  # fmt: skip
        # The proxy's own mesh identity, where its TLS contexts ask for it (ISTIO_MUTUAL):
        # issued now (it may have been renewed), beside the translation's own secrets.
        identity = self._identity_secrets(proxy, snap.mesh.trust_domain, wanted)
        return dataclasses.replace(config, secrets=[*config.secrets, *identity])

    def _references(self, config: ProxyConfig) -> frozenset[str]:
        """SDS names the config refers to; its clusters' part once per list object."""
        held = self._cluster_refs.get(id(config.clusters))
        if held is None or held[0] is not config.clusters:
            held = (config.clusters, referenced(config.clusters, ()))
            self._cluster_refs[id(config.clusters)] = held
        return frozenset(held[1] | referenced((), config.listeners))

    def _identity_secrets(
        self, proxy: Proxy, trust_domain: str, wanted: frozenset[str]
    ) -> list[Any]:
        names = wanted & {WORKLOAD_CERT, ROOT_CA}
        if not names:
            return []
        key = (sds.identity(proxy, trust_domain), names)
        issued = self.ca.workload(key[0]) if WORKLOAD_CERT in names else None
        bundle = self.ca.trust_bundle() if ROOT_CA in names else None
        held = self._identities.get(key)
        if held is not None and held[0] is issued and held[1] == bundle:
            return held[2]
        secrets = sds.identity_secrets(self.ca, proxy, trust_domain, names)
        self._identities[key] = (issued, bundle, secrets)
        return secrets

    def _translate(self, snap: Snapshot, proxy: Proxy, node_id: str) -> ProxyConfig:
        config = translate(snap, proxy)
        # Its access-log stream authenticates as its xDS stream does, unless MeshConfig
        # turns the stream off.
        als.serve_loggers(
            config,
            proxy_credentials.HEADER,
            proxy_credentials.credential(self._credential_key, node_id),
            stream=snap.mesh.access_log_service,
        )
        return config

    def _personal(self, proxy: Proxy, node_id: str) -> tuple[str, ...]:
        """The strings of a translation that are the proxy's own (see translate.cache)."""
        return (
            *own_strings(proxy),
            proxy_credentials.credential(self._credential_key, node_id),
        )
