"""Pods start in several threads (issue 14): addresses stay unique and no pod record is lost
when many pods are recorded at once (`podnet.reserve`, under the manifest's lock)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from meshgate.runtime import manifest, names, podnet
from meshgate.runtime.podspec import PodError


def _record(name: str) -> Any:
    return lambda ip: {"name": name, "namespace": "default", "ip": ip}


def test_concurrent_reservations_get_unique_addresses_and_all_are_recorded(
    tmp_path: Path,
) -> None:
    man = manifest.Manifest(tmp_path)
    pods = [f"p{i}" for i in range(24)]
    got: dict[str, str] = {}
    start = threading.Barrier(len(pods))

    def reserve(name: str) -> None:
        start.wait()  # all at once, as a pass's pool starts them
        rec = podnet.reserve(man, "pods", f"default/{name}", "default", name, None, _record(name))
        got[name] = rec["ip"]

    threads = [threading.Thread(target=reserve, args=(n,)) for n in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got.values())) == len(pods), f"an address was given twice: {got}"
    assert names.BRIDGE_IP not in got.values()
    data = man.read()
    recorded = data["sections"]["pods"]
    assert {k: r["ip"] for k, r in recorded.items()} == {f"default/{n}": got[n] for n in pods}
    # Each pod's namespace and veth were recorded in the same write, before they exist.
    for n in pods:
        pid = names.pod_id("default", n)
        assert names.pod_netns(man.mesh_id, pid) in data["netns"]
        assert [names.node_netns(man.mesh_id), names.pod_host_ifname(pid)] in data["veths"]


def test_an_address_asked_for_that_another_pod_holds_is_refused(tmp_path: Path) -> None:
    man = manifest.Manifest(tmp_path)
    first = podnet.reserve(man, "pods", "default/a", "default", "a", None, _record("a"))
    with pytest.raises(PodError, match=f"pod IP {first['ip']} is in use"):
        podnet.reserve(man, "pods", "default/b", "default", "b", first["ip"], _record("b"))
    assert set(man.read()["sections"]["pods"]) == {"default/a"}  # nothing recorded for b
    # The same pod re-created keeps its own address.
    again = podnet.reserve(man, "pods", "default/a", "default", "a", first["ip"], _record("a"))
    assert again["ip"] == first["ip"]
