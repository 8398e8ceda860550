"""Golden file of the egress gateway's listeners with the AuthorizationPolicies of the e2e
test (DENY ``/admin*``, ALLOW the sleep pod's address). Regenerate with
``MESHGATE_UPDATE_GOLDEN=1 pytest tests/golden``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def test_golden_gateway_with_policies() -> None:
    snap = Snapshot.build(step_resources(4) + decode(POLICIES, "policies.yaml"))
    config = translate(snap, gateway_proxy(snap))
    doc = {"listeners": [json_format.MessageToDict(m) for m in config.listeners]}
    actual = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    path = HERE / "step4-gateway-authz.json"
    if UPDATE or not path.exists():
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"golden file {path.name} was missing and has been written; rerun")
    assert actual == path.read_text(), (
        f"{path.name} differs; if the change is intended, rerun with MESHGATE_UPDATE_GOLDEN=1"
    )
