"""What a Pod's containers get from the store: env and envFrom, configMap and secret
volumes, and `$(VAR)` in command and args, resolved as the kubelet resolves them.

Rules:
- ConfigMap values are `data` (text) and `binaryData` (base64); Secret values are `data`
  (base64) with `stringData` on top, as the API server merges them. Objects are looked up
  in the pod's own namespace only.
- env: `envFrom` first (each source in order, `prefix` added; keys that are not valid
  variable names skipped, as the kubelet skips them), then `env` in order, a later entry
  replacing an earlier one of the same name. `value` expands `$(NAME)` with the variables
  defined before it; `valueFrom` takes `configMapKeyRef`, `secretKeyRef` and the common
  `fieldRef`s. A missing object or key is the kubelet's CreateContainerConfigError with
  its message (`configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`), unless
  the reference is `optional`, which leaves the variable out.
- command and args expand `$(NAME)` with the container's final env (`$$` is a `$`; an
  unknown name is kept as written).
- A configMap/secret volume holds every key as a file, or with `items` the listed keys at
  their paths; modes are the item's `mode`, else `defaultMode`, else 0644. A missing object
  (not `optional`) or listed key is the error the kubelet's volume setup reports; an
  optional missing object is an empty volume, an optional missing key is left out.
- Pure: the store's objects come in as plain dicts.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgate.model.secrets import secret_bytes
from meshgate.runtime.podspec import VolumeFile, VolumeSpec

Obj = dict[str, Any]
DEFAULT_MODE = 0o644
# Kubernetes' IsEnvVarName: what envFrom keys must look like to become variables.
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_KINDS = {"configMap": "ConfigMap", "secret": "Secret"}


class ConfigError(Exception):
    """A container cannot be created: the kubelet's CreateContainerConfigError message."""


@dataclass
class Sources:
    """The ConfigMaps and Secrets of the store, as bytes per (namespace, name)."""

    config_maps: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)

    @classmethod
    def build(cls, objects: Iterable[Obj]) -> Sources:
        out = cls()
        for o in objects:
            meta = o.get("metadata") or {}
            key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
            if o.get("kind") == "ConfigMap":
                out.config_maps[key] = config_map_bytes(o)
            elif o.get("kind") == "Secret":
                out.secrets[key] = secret_bytes(o)
        return out

    def get(self, kind: str, namespace: str, name: str) -> dict[str, bytes] | None:
        table = self.config_maps if kind == "configMap" else self.secrets
        return table.get((namespace, name))


def config_map_bytes(cm: Obj) -> dict[str, bytes]:
    out = {str(k): str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        try:
            out[str(k)] = base64.b64decode(str(v), validate=True)
        except (binascii.Error, ValueError):
            continue  # the API server would have refused it
    return out


def _not_found(kind: str, name: str) -> str:
    return f'{kind.lower()} "{name}" not found'


# --- $(VAR) expansion ----------------------------------------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion: `$(NAME)` -> its value (kept as written if unknown), `$$` ->
    `$`, any other `$` kept."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:  # not closed: kept, and the rest read on
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# --- env -------------------------------------------------------------------------------------


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _field_ref(path: str, pod: Obj, ip: str) -> str | None:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName") or "meshgate",
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": ip,
        "status.podIPs": ip,
        "status.hostIP": "10.34.0.1",
    }
    if path in simple:
        value = simple[path]
        return None if value is None else str(value)
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    return None


def container_env(container: Obj, pod: Obj, sources: Sources, ip: str) -> dict[str, str]:
    """The container's variables from envFrom and env; ConfigError when one is missing."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        if not isinstance(src, dict):
            continue
        for kind in ("configMap", "secret"):
            ref = src.get(f"{kind}Ref")
            if not isinstance(ref, dict):
                continue
            name = str(ref.get("name") or "")
            data = sources.get(kind, namespace, name)
            if data is None:
                if ref.get("optional") is True:
                    continue
                raise ConfigError(_not_found(kind, name))
            prefix = str(src.get("prefix") or "")
            for key in sorted(data):
                if _ENV_NAME.fullmatch(prefix + key):
                    env[prefix + key] = _text(data[key])
    for e in container.get("env") or []:
        if not isinstance(e, dict) or "name" not in e:
            continue
        name = str(e["name"])
        value_from = e.get("valueFrom")
        if not isinstance(value_from, dict):
            env[name] = expand(str(e.get("value") or ""), env)
            continue
        value = _value_from(value_from, pod, sources, namespace, ip)
        if value is not None:
            env[name] = value
    return env


def _value_from(value_from: Obj, pod: Obj, sources: Sources, namespace: str, ip: str) -> str | None:
    for kind in ("configMap", "secret"):
        ref = value_from.get(f"{kind}KeyRef")
        if not isinstance(ref, dict):
            continue
        name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
        optional = ref.get("optional") is True
        data = sources.get(kind, namespace, name)
        if data is None:
            if optional:
                return None
            raise ConfigError(_not_found(kind, name))
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in {_KINDS[kind]} {namespace}/{name}")
        return _text(data[key])
    ref = value_from.get("fieldRef")
    if isinstance(ref, dict):
        return _field_ref(str(ref.get("fieldPath") or ""), pod, ip)
    return None  # resourceFieldRef...: not modelled, the variable is left out


# --- volumes ---------------------------------------------------------------------------------


def _mode(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def config_volume(volume: Obj, kind: str, namespace: str, sources: Sources) -> VolumeSpec:
    """A configMap or secret volume's files, or its error in the kubelet's words."""
    src = volume.get(kind) or {}
    vol_name = str(volume["name"])
    name = str(src.get("name") if kind == "configMap" else src.get("secretName") or "")
    optional = src.get("optional") is True
    default = _mode(src.get("defaultMode"), DEFAULT_MODE)
    data = sources.get(kind, namespace, name)
    spec = VolumeSpec(name=vol_name, source="configMap" if kind == "configMap" else "secret")
    if data is None:
        if not optional:
            spec.error = _not_found(kind, name)
        return spec
    items = src.get("items")
    if isinstance(items, list) and items:
        for item in items:
            if not isinstance(item, dict):
                continue
            key = str(item.get("key") or "")
            if key not in data:
                if optional:
                    continue
                # The kubelet's words, which differ between the two plugins.
                spec.error = (
                    f"configmap references non-existent config key: {key}"
                    if kind == "configMap"
                    else f"references non-existent secret key: {key}"
                )
                spec.files = []
                return spec
            spec.files.append(_file(str(item.get("path") or key), data[key], item, default))
    else:
        spec.files = [_file(key, data[key], {}, default) for key in sorted(data)]
    return spec


def _file(path: str, data: bytes, item: Obj, default: int) -> VolumeFile:
    return VolumeFile(
        path=path,
        data=base64.b64encode(data).decode("ascii"),
        mode=_mode(item.get("mode"), default),
    )


# --- a container's run -----------------------------------------------------------------------


@dataclass
class Run:
    """What a container runs: `argv` for a container without an image (as given), else its
    `image` with `command`/`args` (expanded); its env; `error` when it cannot be created."""

    argv: list[str]
    image: str
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    error: str = ""


def container_run(container: Obj, pod: Obj, sources: Sources, ip: str) -> Run:
    error = ""
    try:
        env = container_env(container, pod, sources, ip)
    except ConfigError as exc:
        env, error = {}, str(exc)
    command = [expand(str(a), env) for a in container.get("command") or []] or None
    args = [expand(str(a), env) for a in container.get("args") or []] or None
    image = str(container.get("image") or "")
    if image:
        return Run([], image, command, args, env, error)
    return Run([*(command or []), *(args or [])], "", None, None, env, error)


def waits_for_config(state: Any) -> bool:
    """Whether a pod (its runtime state) has a container waiting for a ConfigMap or Secret."""
    return any(
        c.state == "waiting"
        and (
            c.reason == "CreateContainerConfigError"
            or (c.reason == "ContainerCreating" and c.message.startswith("MountVolume.SetUp"))
        )
        for c in state.containers
    )
