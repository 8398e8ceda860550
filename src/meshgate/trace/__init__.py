"""``meshgate trace``: one request walked through the configuration its proxies ACKed.

Modules, one job each:
- ``config``: a proxy's ACKed resources, unpacked and indexed (``ProxyView``).
- ``matchers``: Envoy's string, header, query, domain and route matching.
- ``chains``: listener and filter-chain selection (Envoy's filter_chain_match order).
- ``rbac``: Envoy RBAC policies (as translated from AuthorizationPolicy) on one request.
- ``origin``: which Istio resource an Envoy name or metadata came from.
- ``walk``: the hops, sidecar -> gateway -> upstream, and the verdict.
- ``render``: the walk in words (and as JSON data).
- ``service``: the control plane's side: ACKed configs, DNS, pods; the egress dry-run.
"""
