"""Cross-resource analysis: the checks behind ``meshgate analyze`` (istioctl analyze's).

Rules of this package:
- It sits after the store in the data flow: it may import ``api``, ``validation``,
  ``store``, ``model`` and ``security.policies`` (which policies apply to a workload: the
  rule the RBAC compiler uses, so analysis and data plane agree), and only ``cli`` imports
  it.
- Pure over its inputs: ``inputs`` turns files, store objects and a fresh mesh's defaults
  into entries; ``runner.analyze`` runs every analyzer (one module per family: gateways,
  virtualservices, vsmatches, destinationrules, serviceentries, sidecars, authz,
  deprecation) and returns messages from the catalog in ``messages``.
- Where a check is one of Istio's, it keeps Istio's code, name, level and wording; the
  table of analyzers is ``runner.ANALYZERS`` and docs/analyze.md.
"""
