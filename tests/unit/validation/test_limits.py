"""MG1090: one object's size, as the API server and etcd limit it."""

from __future__ import annotations

import base64
from typing import Any

from meshgate.api.decode import decode_object
from meshgate.validation import validate_resource


def problems(obj: dict[str, Any]) -> list[str]:
    res, decode_problems = decode_object(obj)
    assert res is not None, decode_problems
    return [str(p) for p in validate_resource(res) if p.code == "MG1090"]


def configmap(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, **fields}


def test_a_5mib_configmap_is_refused_with_its_name_and_size() -> None:
    (p,) = problems(configmap(data={"blob": "x" * (5 * 1024 * 1024)}))
    assert "ConfigMap default/big" in p
    assert "5242884 bytes (5.0 MiB) of data, at most 1048576 bytes (1.0 MiB) in a ConfigMap" in p


def test_configmap_limit_counts_keys_values_and_decoded_binary_data() -> None:
    assert problems(configmap(data={"k": "x" * (1024 * 1024 - 1)})) == []
    assert len(problems(configmap(data={"k": "x" * (1024 * 1024)}))) == 1
    raw = base64.b64encode(b"\0" * (1024 * 1024 - 1)).decode()  # 1.33 MiB written
    assert problems(configmap(binaryData={"k": raw})) == []


def test_secret_limit() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}}
    (p,) = problems({**secret, "stringData": {"k": "y" * (2 * 1024 * 1024)}})
    assert "Secret ns/s" in p and "in a Secret" in p


def test_a_2mib_serviceentry_is_refused_with_its_name_and_size() -> None:
    se = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "huge", "namespace": "default"},
        "spec": {
            "hosts": [f"host-{i:06d}.example.com" for i in range(90_000)],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "DNS",
        },
    }
    (p,) = problems(se)
    assert "ServiceEntry default/huge" in p
    assert "MiB) encoded, at most 1572864 bytes (1.5 MiB) per object" in p
