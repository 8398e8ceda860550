"""Golden files of the translated config for the sleep sidecar and the egress gateway at each
seed step. Regenerate with ``MESHGATE_UPDATE_GOLDEN=1 pytest tests/golden``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from google.protobuf import json_format

from meshgate.translate import translate
from meshgate.translate.output import ProxyConfig
from tests.golden.seedworld import gateway_proxy, sleep_proxy, step_snapshot

HERE = Path(__file__).parent
UPDATE = os.environ.get("MESHGATE_UPDATE_GOLDEN") == "1"
CASES = [(1, "sidecar"), (2, "sidecar"), (3, "sidecar"), (4, "sidecar"), (4, "gateway")]


def render(config: ProxyConfig) -> str:
    doc = {
        "listeners": [json_format.MessageToDict(m) for m in config.listeners],
        "routes": [json_format.MessageToDict(m) for m in config.routes],
        "clusters": [json_format.MessageToDict(m) for m in config.clusters],
        "endpoints": [json_format.MessageToDict(m) for m in config.endpoints],
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


@pytest.mark.parametrize(("step", "who"), CASES, ids=[f"step{s}-{w}" for s, w in CASES])
def test_golden(step: int, who: str) -> None:
    snap = step_snapshot(step)
    proxy = sleep_proxy(snap) if who == "sidecar" else gateway_proxy(snap)
    actual = render(translate(snap, proxy))
    path = HERE / f"step{step}-{who}.json"
    if UPDATE or not path.exists():
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"golden file {path.name} was missing and has been written; rerun")
    assert actual == path.read_text(), (
        f"{path.name} differs; if the change is intended, rerun with MESHGATE_UPDATE_GOLDEN=1"
    )
