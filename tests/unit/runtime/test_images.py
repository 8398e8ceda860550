"""The image table: reference normalisation, Kubernetes' command/args rule, the user's
table (and its errors), and the ErrImagePull messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.runtime import images


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("nginx", "nginx"),
        ("nginx:1.25", "nginx"),
        ("docker.io/library/nginx:1.25", "nginx"),
        ("library/nginx", "nginx"),
        ("docker.io/curlimages/curl:8.16.0", "curlimages/curl"),
        ("registry.example.com:5000/team/app:v2", "team/app"),
        ("localhost/app", "app"),
        ("ubuntu/squid@sha256:" + "a" * 64, "ubuntu/squid"),
        ("docker.io/mccutchen/go-httpbin:v2.15.0", "mccutchen/go-httpbin"),
    ],
)
def test_references_are_normalised_as_a_container_runtime_names_them(ref: str, name: str) -> None:
    assert images.normalise(ref) == name


def test_command_replaces_entrypoint_and_args_replace_cmd() -> None:
    image = images.Image(name="x", entrypoint=("/entry",), cmd=("default",))
    assert images.argv(image, None, None) == ["/entry", "default"]
    assert images.argv(image, None, ["-v"]) == ["/entry", "-v"]
    assert images.argv(image, ["/bin/sleep"], None) == ["/bin/sleep"]  # CMD not used
    assert images.argv(image, ["/bin/sh", "-c"], ["echo"]) == ["/bin/sh", "-c", "echo"]
    assert images.argv(image, [], []) == ["/entry", "default"]  # empty lists: not given


def _table(tmp_path: Path, text: str | None = None) -> images.UserTable:
    if text is not None:
        (tmp_path / "images.yaml").write_text(text)
    return images.load_user_table(tmp_path)


def test_well_known_images_resolve_to_their_programs(tmp_path: Path) -> None:
    user = _table(tmp_path)
    curl = images.resolve("curlimages/curl:8.16.0", user)
    # curlimages/curl's entrypoint hands options to curl and runs anything else.
    assert images.argv(curl, None, ["-sS", "http://x"])[-3:] == [
        "/entrypoint.sh",
        "-sS",
        "http://x",
    ]
    assert images.resolve("curl", user).entrypoint == curl.entrypoint
    assert images.resolve("busybox", user).cmd == ("sh",)
    for ref in ("nginx", "ubuntu/squid", "docker.io/kong/httpbin", "kennethreitz/httpbin"):
        assert images.builtin(images.normalise(ref)) is not None, ref
    assert images.builtin("mccutchen/go-httpbin") is not None
    assert images.builtin("sameersbn/squid") is not None


def test_an_unknown_image_says_how_to_map_it(tmp_path: Path) -> None:
    with pytest.raises(images.ImageError) as err:
        images.resolve("example.com/team/thing:2", _table(tmp_path))
    msg = str(err.value)
    assert msg.startswith('Failed to pull image "example.com/team/thing:2"')
    assert 'no mapping for "team/thing"' in msg
    assert str(tmp_path / "images.yaml") in msg and "docs/pods.md" in msg


def test_an_image_whose_program_is_missing_names_it(tmp_path: Path) -> None:
    user = _table(tmp_path)
    user.images["app"] = images.Image(
        name="app", cmd=("app",), programs=(("/nonexistent/app", "Debian's app"),)
    )
    with pytest.raises(images.ImageError, match=r"Debian's app \(/nonexistent/app\), which is not"):
        images.resolve("app:1", user)


def test_the_users_table_maps_and_overrides(tmp_path: Path) -> None:
    user = _table(
        tmp_path,
        "images:\n"
        "  registry.example.com/team/web:1.0:\n"
        "    entrypoint: [python3, -m, http.server]\n"
        "    cmd: ['8080']\n"
        "  my/nginx: {like: docker.io/library/nginx}\n",
    )
    assert user.problem == ""
    web = images.resolve("registry.example.com/team/web:2.0", user)
    assert images.argv(web, None, None) == ["python3", "-m", "http.server", "8080"]
    mine = images.resolve("my/nginx", user)
    assert mine.cmd == ("nginx", "-g", "daemon off;") and mine.layer
    assert mine.source == "mapped in images.yaml"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("images: [a]", "images: must map image names to entries"),
        ("other: {}", "the file holds one mapping, `images:`"),
        ("images: {app: {cmd: python3}}", "images.app.cmd: must be a list of strings"),
        ("images: {app: {command: [x]}}", "images.app.command: unknown field"),
        ("images: {app: {like: nope}}", "images.app.like: 'nope' is not a built-in image"),
        ("images: {app: {}}", "images.app: give entrypoint and/or cmd, or like"),
        ("images: {app: [", "not YAML"),
    ],
)
def test_a_broken_users_table_is_reported_and_not_used(
    tmp_path: Path, text: str, problem: str
) -> None:
    user = _table(tmp_path, text)
    assert problem in user.problem
    assert user.problem.startswith(str(tmp_path / "images.yaml"))
    assert user.images == {}
    assert images.resolve("busybox", user).cmd == ("sh",)  # the built-ins still work
    with pytest.raises(images.ImageError, match="not used"):
        images.resolve("app", user)
