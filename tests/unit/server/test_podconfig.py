"""env/envFrom and configMap/secret volumes from the store, as the kubelet resolves them."""

from __future__ import annotations

import base64

import pytest

from meshgate.server import podconfig
from meshgate.server.podconfig import ConfigError, Sources, container_env, container_run, expand

POD = {"metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}}, "spec": {}}


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


SOURCES = Sources.build(
    [
        {
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "shop"},
            "data": {"LEVEL": "debug", "site.conf": "listen 80;\n", "1bad": "x"},
            "binaryData": {"blob": _b64("\x00\x01")},
        },
        {
            "kind": "Secret",
            "metadata": {"name": "token", "namespace": "shop"},
            "data": {"value": _b64("s3cret")},
            "stringData": {"extra": "plain"},
        },
        # Same name, other namespace: never seen by the pod.
        {"kind": "ConfigMap", "metadata": {"name": "elsewhere", "namespace": "other"}, "data": {}},
    ]
)


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("$(A)-$(B)", "1-2"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("cost: $5", "cost: $5"),
        ("$(A", "$(A"),
        ("$(A$(B)", "$(A$(B)"),
        ("end$", "end$"),
    ],
)
def test_expansion_follows_kubernetes(text: str, out: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == out


def test_env_from_then_env_with_refs_and_expansion() -> None:
    container = {
        "envFrom": [
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            {"secretRef": {"name": "token"}},
        ],
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "value"}}},
            {"name": "MSG", "value": "$(CFG_LEVEL)/$(TOKEN)/$(LATER)"},
            {"name": "LATER", "value": "x"},
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "GONE",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
            {"name": "CFG_LEVEL", "value": "info"},  # a later entry replaces an earlier one
        ],
    }
    env = container_env(container, POD, SOURCES, "10.34.0.9")
    assert env["CFG_site.conf"] == "listen 80;\n"  # a valid variable name for Kubernetes
    assert env["CFG_1bad"] == "x" and env["CFG_blob"] == "\x00\x01"
    assert env["value"] == "s3cret" and env["extra"] == "plain"
    assert env["TOKEN"] == "s3cret"
    assert env["MSG"] == "debug/s3cret/$(LATER)"  # only what was defined before
    assert env["ME"] == "web-1" and env["APP"] == "web" and env["IP"] == "10.34.0.9"
    assert env["CFG_LEVEL"] == "info"
    assert "GONE" not in env


def test_env_from_skips_keys_that_are_not_variable_names() -> None:
    env = container_env({"envFrom": [{"configMapRef": {"name": "settings"}}]}, POD, SOURCES, "")
    assert "1bad" not in env and env["LEVEL"] == "debug"


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
        ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
        (
            {"envFrom": [{"configMapRef": {"name": "elsewhere"}}]},
            'configmap "elsewhere" not found',
        ),
        (
            {
                "env": [
                    {
                        "name": "X",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}},
                    }
                ]
            },
            "couldn't find key k in ConfigMap shop/settings",
        ),
        (
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "token", "key": "k"}}}]},
            "couldn't find key k in Secret shop/token",
        ),
    ],
)
def test_a_missing_object_or_key_is_the_kubelets_config_error(
    container: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        container_env(container, POD, SOURCES, "")
    assert str(err.value) == message
    run = container_run({**container, "image": "busybox"}, POD, SOURCES, "")
    assert run.error == message and run.env == {}


def test_command_and_args_expand_with_the_final_env() -> None:
    run = container_run(
        {
            "image": "busybox",
            "command": ["sh", "-c"],
            "args": ["echo $(CFG_LEVEL) $$(HOME)"],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        },
        POD,
        SOURCES,
        "",
    )
    assert (run.image, run.command, run.args) == ("busybox", ["sh", "-c"], ["echo debug $(HOME)"])
    assert run.argv == []  # the runtime computes it from the image
    bare = container_run({"command": ["sleep"], "args": ["1"]}, POD, SOURCES, "")
    assert bare.argv == ["sleep", "1"] and bare.image == ""


def _files(vol: object) -> dict[str, tuple[bytes, int]]:
    return {f.path: (base64.b64decode(f.data), f.mode) for f in vol.files}  # type: ignore[attr-defined]


def test_volumes_hold_every_key_or_the_items_with_their_modes() -> None:
    whole = podconfig.config_volume(
        {"name": "c", "configMap": {"name": "settings"}}, "configMap", "shop", SOURCES
    )
    assert whole.source == "configMap" and whole.error == ""
    assert _files(whole)["site.conf"] == (b"listen 80;\n", 0o644)
    assert _files(whole)["blob"] == (b"\x00\x01", 0o644)
    items = podconfig.config_volume(
        {
            "name": "s",
            "secret": {
                "secretName": "token",
                "defaultMode": 0o400,
                "items": [
                    {"key": "value", "path": "a/b"},
                    {"key": "extra", "path": "e", "mode": 0o440},
                ],
            },
        },
        "secret",
        "shop",
        SOURCES,
    )
    assert items.source == "secret"
    assert _files(items) == {"a/b": (b"s3cret", 0o400), "e": (b"plain", 0o440)}


@pytest.mark.parametrize(
    ("volume", "kind", "error"),
    [
        ({"name": "v", "configMap": {"name": "nope"}}, "configMap", 'configmap "nope" not found'),
        ({"name": "v", "secret": {"secretName": "nope"}}, "secret", 'secret "nope" not found'),
        (
            {"name": "v", "configMap": {"name": "settings", "items": [{"key": "k", "path": "k"}]}},
            "configMap",
            "configmap references non-existent config key: k",
        ),
        (
            {"name": "v", "secret": {"secretName": "token", "items": [{"key": "k", "path": "k"}]}},
            "secret",
            "references non-existent secret key: k",
        ),
        ({"name": "v", "secret": {"secretName": "nope", "optional": True}}, "secret", ""),
    ],
)
def test_volume_errors_are_the_kubelets(volume: dict[str, object], kind: str, error: str) -> None:
    vol = podconfig.config_volume(volume, kind, "shop", SOURCES)
    assert vol.error == error and vol.files == []
