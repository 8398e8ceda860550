"""Documents and names as ``get -o yaml|json|name`` prints them.

Rules: one named object prints as itself; any listing prints as a kubectl ``List``
(``apiVersion: v1``, ``items``, ``kind: List``, ``metadata: {resourceVersion: ""}``), even
when it holds one item, so scripts see one shape. YAML keys are sorted as kubectl sorts
them; JSON is indented by 4 as kubectl's. Names are ``kind.group/name`` in lower case
(``serviceentry.networking.istio.io/x``; core kinds have no group: ``pod/x``). The YAML
module is imported only when YAML is printed.
"""

from __future__ import annotations

import json
from typing import Any

Obj = dict[str, Any]


def as_list(items: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def to_yaml(doc: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(doc, Dumper=dumper, sort_keys=True, default_flow_style=False)
    return text


def to_json(doc: Any) -> str:
    return json.dumps(doc, indent=4) + "\n"


def qualified_kind(group: str, kind: str) -> str:
    """``serviceentry.networking.istio.io``; ``pod`` for the core group."""
    return f"{kind.lower()}.{group}" if group else kind.lower()


def object_name(obj: Obj) -> str:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    name = (obj.get("metadata") or {}).get("name", "")
    return f"{qualified_kind(group, str(obj.get('kind', '')))}/{name}"
