"""Golden file of the egress gateway's authorization with the AuthorizationPolicies of the e2e
test (DENY ``/admin*``, ALLOW the sleep pod's address): per listener and filter chain, the
network filters' names and the HTTP connection manager's filters in full. Only what the
policies add is recorded; the rest of the listener is step4-gateway.json's. Regenerate with
``MESHGATE_UPDATE_GOLDEN=1 pytest tests/golden``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from tests.golden.seedworld import SLEEP_IP, decode, gateway_proxy, step_resources
from tests.golden.test_golden import UPDATE

HERE = Path(__file__).parent
POLICIES = f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-admin, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: egressgateway}}}}
  action: DENY
  rules: [{{to: [{{operation: {{paths: ["/admin*"]}}}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: allow-sleep, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: egressgateway}}}}
  rules: [{{from: [{{source: {{ipBlocks: ["{SLEEP_IP}/32"]}}}}]}}]
"""


def _chain(chain: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"filters": [f.name for f in chain.filters]}
    for f in chain.filters:
        hcm = hcm_pb2.HttpConnectionManager()
        if f.typed_config.Unpack(hcm):
            out["httpFilters"] = [json_format.MessageToDict(h) for h in hcm.http_filters]
    return out


def test_golden_gateway_with_policies() -> None:
    snap = Snapshot.build(step_resources(4) + decode(POLICIES, "policies.yaml"))
    config = translate(snap, gateway_proxy(snap))
    doc = {m.name: [_chain(c) for c in m.filter_chains] for m in config.listeners}
    actual = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    path = HERE / "step4-gateway-authz.json"
    if UPDATE or not path.exists():
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"golden file {path.name} was missing and has been written; rerun")
    assert actual == path.read_text(), (
        f"{path.name} differs; if the change is intended, rerun with MESHGATE_UPDATE_GOLDEN=1"
    )
