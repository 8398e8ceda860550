"""The kind registry: static names agree with the kind modules; lookups load no models."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meshgate.api import kinds  # noqa: F401  (registers every model)
from meshgate.api.meta import Resource
from meshgate.api.registry import (
    _KINDS,
    KindInfo,
    all_kinds,
    by_group_kind,
    kind_for,
    lookup,
    register,
)


def test_every_tabled_kind_has_its_model_and_names() -> None:
    infos = all_kinds()
    assert len(infos) == len(_KINDS) == 26
    for info in infos:
        model = info.model
        assert issubclass(model, Resource)
        # The model's own apiVersion/kind round trip through the table entry.
        assert kind_for(info.api_version, info.kind) is info


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("se", "ServiceEntry"),
        ("serviceentries.networking.istio.io", "ServiceEntry"),
        ("VirtualService", "VirtualService"),
        ("gw", "Gateway"),
        ("dr", "DestinationRule"),
        ("ap", "AuthorizationPolicy"),
        ("po", "Pod"),
        ("svc", "Service"),
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("ns", "Namespace"),
        ("istiogateways", "IstioGateway"),
        ("meshconfig", "MeshConfig"),
        ("netpol", "NetworkPolicy"),
        ("networkpolicies.networking.k8s.io", "NetworkPolicy"),
    ],
)
def test_lookup_names(typed: str, kind: str) -> None:
    info = lookup(typed)
    assert info is not None and info.kind == kind


def test_unknown_names_and_versions() -> None:
    assert lookup("nosuchkind") is None
    assert lookup("se.apps") is None
    assert kind_for("networking.istio.io/v2", "ServiceEntry") is None
    assert kind_for("networking.istio.io/v1alpha3", "ServiceEntry") is not None
    assert by_group_kind("security.istio.io", "ServiceEntry") is None


def test_a_module_disagreeing_with_the_table_is_refused() -> None:
    se = by_group_kind("networking.istio.io", "ServiceEntry")
    assert se is not None
    with pytest.raises(ValueError, match="registered twice"):
        register(
            KindInfo(
                group=se.group,
                kind=se.kind,
                versions=se.versions,
                plural=se.plural,
                singular=se.singular,
                short_names=se.short_names,
                namespaced=se.namespaced,
                model=se.model,
            )
        )


def test_names_must_match_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    def thing(plural: str, model: type[Resource] | None = None) -> KindInfo:
        return KindInfo(
            group="x.io",
            kind="Thing",
            versions=("v1",),
            plural=plural,
            singular="thing",
            short_names=(),
            namespaced=True,
            model=model,
            module="meshgate.api.kinds",
        )

    tabled = thing("things")
    monkeypatch.setitem(_KINDS, ("x.io", "Thing"), tabled)
    with pytest.raises(ValueError, match="table says"):
        register(thing("thingz", Resource))
    assert register(thing("things", Resource)) is tabled
    assert tabled.model is Resource


def test_name_lookup_imports_no_model_module() -> None:
    code = (
        "import sys\n"
        "from meshgate.api.registry import lookup, kind_for, all_kinds\n"
        "assert lookup('se').kind == 'ServiceEntry'\n"
        "assert kind_for('apps/v1', 'Deployment') is not None\n"
        "assert len(all_kinds()) == 26\n"
        "print(sorted(m for m in sys.modules if m.startswith('meshgate.api.kinds')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
