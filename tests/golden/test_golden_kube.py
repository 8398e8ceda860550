"""Golden files of the translated config when Services go beyond selectors (Endpoints and
EndpointSlice objects, ExternalName aliases, a headless Service): the sleep sidecar and a
router. Regenerate with ``MESHGATE_UPDATE_GOLDEN=1 pytest tests/golden``."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from tests.golden.kubeworld import kube_resources, kube_snapshot
from tests.golden.seedworld import GATEWAY_IP, pod, sleep_proxy
from tests.golden.test_golden import UPDATE, render

HERE = Path(__file__).parent


def _check(name: str, actual: str) -> None:
    path = HERE / name
    if UPDATE or not path.exists():
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"golden file {path.name} was missing and has been written; rerun")
    assert actual == path.read_text(), (
        f"{path.name} differs; if the change is intended, rerun with MESHGATE_UPDATE_GOLDEN=1"
    )


def test_golden_kube_services_sidecar() -> None:
    snap = kube_snapshot()
    _check("kube-services-sidecar.json", render(translate(snap, sleep_proxy(snap))))


def test_golden_kube_services_router() -> None:
    router = pod("router-0", "default", GATEWAY_IP, {"app": "router"}, router=True)
    snap = Snapshot.build([*kube_resources(), router])
    proxy = snap.proxy_for(f"router~{GATEWAY_IP}~router-0.default~default.svc.cluster.local")
    assert proxy is not None and proxy.is_router
    _check("kube-services-router.json", render(translate(snap, proxy)))
