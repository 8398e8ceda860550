"""Reading fields from typed resources, open Kubernetes models and plain dicts alike.

Rules of this module:
- The model reads Istio/Kubernetes fields by their snake_case (proto) names. Typed pydantic
  models expose them as attributes; open Kubernetes models keep unknown fields as extras;
  ``status`` and some nested values are plain dicts keyed in camelCase. ``get`` accepts all
  three so the snapshot never depends on which of them a given field arrived as.
- Missing or ``None`` fields read as the default: absent and empty mean the same here.
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` for models, ``obj[name]`` or ``obj[camelName]`` for dicts, else default."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        value = obj.get(name)
        if value is None:
            camel = to_camel(name)
            # Kubernetes spells initialisms in capitals: podIP, clusterIP, hostIP.
            value = obj.get(camel)
            if value is None and "Ip" in camel:
                value = obj.get(camel.replace("Ip", "IP"))
    else:
        value = getattr(obj, name, None)
        if value is None:
            # The attribute behind pydantic's ``model_extra`` property, read directly: this
            # is the model's hottest path (hundreds of thousands of calls per snapshot).
            extra = getattr(obj, "__pydantic_extra__", None)
            if extra:
                value = extra.get(to_camel(name))
    return default if value is None else value


def get_list(obj: Any, name: str) -> list[Any]:
    value = get(obj, name)
    return list(value) if value else []


def get_dict(obj: Any, name: str) -> dict[str, Any]:
    value = get(obj, name)
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dict(dump(exclude_none=True))
    return {}


def get_str(obj: Any, name: str, default: str = "") -> str:
    value = get(obj, name)
    return default if value is None else str(value)


def get_int(obj: Any, name: str, default: int = 0) -> int:
    value = get(obj, name)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def str_map(value: Any) -> dict[str, str]:
    """Labels, selectors and similar string maps from either a dict or a model."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return {str(k): str(v) for k, v in dump(exclude_none=True).items()}
    return {}
