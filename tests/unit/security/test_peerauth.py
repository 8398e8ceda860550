"""PeerAuthentication levels: the most specific policy wins, UNSET inherits, the oldest
wins within a level, and clients guess only from namespace and mesh policies."""

from __future__ import annotations

from typing import Any

from meshgate.security.peerauth import inbound_mtls, service_mtls


def pa(
    name: str,
    namespace: str,
    mode: str | None = None,
    *,
    selector: dict[str, str] | None = None,
    ports: dict[int, str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if mode:
        spec["mtls"] = {"mode": mode}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if ports:
        spec["portLevelMtls"] = {p: {"mode": m} for p, m in ports.items()}
    meta = {"name": name, "namespace": namespace, "creationTimestamp": created}
    return {"metadata": meta, "spec": spec}


WEB = {"app": "web"}


def test_default_is_permissive() -> None:
    got = inbound_mtls([], "default", WEB, "istio-system")
    assert got.mode(8080) == "PERMISSIVE" and not got.policies


def test_levels_most_specific_first_and_unset_inherits() -> None:
    policies = [
        pa("mesh", "istio-system", "STRICT"),
        pa("ns", "default", "UNSET"),
        pa("web", "default", selector=WEB, ports={9000: "DISABLE", 9001: "UNSET"}),
    ]
    got = inbound_mtls(policies, "default", WEB, "istio-system")
    assert got.mode(8080) == "STRICT"  # workload UNSET -> namespace UNSET -> mesh STRICT
    assert got.mode(9000) == "DISABLE"
    assert got.mode(9001) == "STRICT"
    assert got.policies == ("default/web", "istio-system/mesh")
    # Another workload of the namespace, and a namespace of its own, get the mesh's.
    assert inbound_mtls(policies, "default", {"app": "db"}, "istio-system").mode(9000) == "STRICT"
    assert (
        inbound_mtls([pa("ns", "other", "DISABLE"), *policies], "other", WEB, "istio-system").mode(
            1
        )
        == "DISABLE"
    )


def test_the_oldest_policy_of_a_level_wins() -> None:
    older = pa("b-older", "default", "STRICT", created="2025-01-01T00:00:00Z")
    newer = pa("a-newer", "default", "DISABLE", created="2026-06-01T00:00:00Z")
    assert inbound_mtls([newer, older], "default", WEB, "istio-system").default == "STRICT"


def test_root_namespace_policy_is_the_mesh_level_there_too() -> None:
    policies = [pa("mesh", "istio-system", "STRICT")]
    assert inbound_mtls(policies, "istio-system", {}, "istio-system").default == "STRICT"


def test_clients_guess_from_namespace_then_mesh_never_workload() -> None:
    policies = [
        pa("mesh", "istio-system", "DISABLE"),
        pa("web", "default", "STRICT", selector=WEB),
    ]
    assert service_mtls(policies, "default", "istio-system") == "DISABLE"
    policies.append(pa("ns", "default", "PERMISSIVE"))
    assert service_mtls(policies, "default", "istio-system") == "PERMISSIVE"
    assert service_mtls([], "default", "istio-system") == "PERMISSIVE"
