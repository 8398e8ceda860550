"""Limits on input, on a running mesh: an object larger than Kubernetes or etcd allow is
refused at `apply`, by the CLI and by the server alike, naming it and its size, and the
store is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from meshgate.client import ApiError, Client
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.e2e

SMALL = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: small, namespace: default}
data: {k: v}
"""


def big_configmap() -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "default"},
        "data": {"blob": "x" * (5 * 1024 * 1024)},
    }


def big_serviceentry() -> dict[str, object]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "huge", "namespace": "default"},
        "spec": {
            "hosts": [f"host-{i:06d}.example.com" for i in range(90_000)],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "DNS",
        },
    }


def stored(mesh: Mesh) -> tuple[int, list[object]]:
    listed = Client(mesh.home).call("GET", "/v1/objects")
    return int(listed["revision"]), listed["items"]


def test_oversized_objects_are_refused_and_nothing_is_stored(mesh: Mesh, tmp_path: Path) -> None:
    mesh.meshgate("apply", "-f", "-", input=SMALL)
    before = stored(mesh)
    for obj, name, what in (
        (big_configmap(), "ConfigMap default/big", "5.0 MiB) of data"),
        (big_serviceentry(), "ServiceEntry default/huge", "MiB) encoded"),
    ):
        path = tmp_path / "big.yaml"
        # With a small object beside it: all or nothing.
        path.write_text(SMALL.replace("v}", "changed}") + "---\n" + yaml.safe_dump(obj))
        res = mesh.meshgate("apply", "-f", str(path), check=False)
        assert res.returncode == 1
        assert name in res.stderr and what in res.stderr and "MG1090" in res.stderr, res.stderr
        assert f"{path}:" in res.stderr  # the file it came from
        # The server does not trust the CLI: its own check refuses it the same way.
        with pytest.raises(ApiError) as err:
            Client(mesh.home).call("POST", "/v1/apply", {"objects": [obj]})
        assert name in json.dumps(err.value.body)
        assert stored(mesh) == before


def test_the_server_reports_every_problem_at_once(mesh: Mesh) -> None:
    se = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "two-problems", "namespace": "default"},
        "spec": {
            "hosts": ["a.example.com"],
            "ports": [{"number": 99999, "name": "http", "protocol": "HTTP"}],
            "resolution": "DNSS",
        },
    }
    with pytest.raises(ApiError) as err:
        Client(mesh.home).call("POST", "/v1/apply", {"objects": [se]})
    codes = sorted(p["code"] for p in err.value.body["problems"])
    assert codes == ["MG0008", "MG1003"], err.value.body
