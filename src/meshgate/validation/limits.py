"""Size limits on one object (MG1090), as Kubernetes and etcd set them.

Rules of this module:
- A ConfigMap's ``data`` and ``binaryData``, and a Secret's ``data`` and ``stringData``,
  hold at most 1 MiB (1048576 bytes: keys plus values, binary values decoded), the API
  server's limit (``MaxSecretSize``, ``validateConfigMap``'s ``totalSize``).
- Any object, encoded as the store keeps it (compact JSON, UTF-8), is at most 1.5 MiB
  (1572864 bytes): etcd's default request limit (``--max-request-bytes``), which the API
  server meets first with "etcdserver: request is too large".
- The message names the object, its size in bytes and MiB, and the limit; the store
  enforces the same object limit (``MAX_OBJECT_BYTES``) on every write, validated or not.
"""

from __future__ import annotations

import base64
import binascii
import json

from meshgate.api.kinds import kubernetes as kube
from meshgate.api.meta import Resource
from meshgate.validation.findings import Findings

MAX_CONFIG_BYTES = 1024 * 1024
MAX_OBJECT_BYTES = 3 * 512 * 1024


def describe_size(size: int) -> str:
    """`5242880 bytes (5.0 MiB)`: exact, and readable."""
    mib = size / (1024 * 1024)
    return f"{size} bytes ({mib:.1f} MiB)" if mib >= 0.1 else f"{size} bytes"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _decoded_len(value: str) -> int:
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return len(value)  # MG1084 reports it; count it as written


def config_data_bytes(resource: Resource) -> int | None:
    """The bytes of a ConfigMap's or Secret's data as the API server counts them."""
    if isinstance(resource, kube.ConfigMap):
        plain = resource.data or {}
        binary = resource.binary_data or {}
    elif isinstance(resource, kube.Secret):
        plain = resource.string_data or {}
        binary = resource.data or {}
    else:
        return None
    return sum(len(k.encode()) + len(v.encode()) for k, v in plain.items()) + sum(
        len(k.encode()) + _decoded_len(v) for k, v in binary.items()
    )


def too_large(size: int) -> str | None:
    """The problem of an object of `size` bytes as the store encodes it (None: fits)."""
    if size <= MAX_OBJECT_BYTES:
        return None
    return (
        f"object too large: {describe_size(size)} encoded, at most "
        f"{describe_size(MAX_OBJECT_BYTES)} per object (etcd's request limit)"
    )


def check_size(resource: Resource, out: Findings) -> None:
    """MG1090 on `resource` (the problem names it; the message says by how much)."""
    data = config_data_bytes(resource)
    if data is not None and data > MAX_CONFIG_BYTES:
        out.error(
            "MG1090",
            f"object too large: {describe_size(data)} of data, at most "
            f"{describe_size(MAX_CONFIG_BYTES)} in a {resource.kind} (Kubernetes' limit)",
        )
        return  # the object is then too large too: one problem says it
    out.check("MG1090", too_large(len(_ENCODER.encode(resource.to_wire()).encode())))
